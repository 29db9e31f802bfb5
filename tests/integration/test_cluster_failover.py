"""
Execution in a three-node cluster of real C{twistd scheduler0} nodes (issue 12 items 11,
12; issue 13): the followers call the jobs back, the leader none; when the leader is
killed with kill -9, a new one is elected within 3 s, writes resume, no acknowledged write
is lost and the jobs keep firing with no slot missed (a slot a node may have sent before
its jobs moved is sent again with the same executionId); a follower that stalls loses its
jobs to the other one; a whole-cluster restart keeps every record.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from typing import Any

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import parse_time

from .cluster import Cluster
from .daemon import Daemon, sleep
from .receiver import Hit, Receiver
from .scheduling import FAST

EVERY = "@every 1s"


class FailoverTests(TestCase):
    timeout = 120

    async def start(self, receiver: Receiver) -> tuple[Cluster, Daemon, list[dict]]:
        """A cluster with three jobs calling C{receiver} every second (two fire_all, one
        fire_once), created on a follower; returns it, its leader and the jobs."""
        cluster = Cluster(self, config=FAST)
        await cluster.start()
        leader = cluster.node(int((await cluster.wait_leader())[0]["leaderId"]))
        follower = next(node for node in cluster.nodes if node is not leader)
        peer = cluster.peer(follower)
        project = await peer.ok("POST", "/projects", {"name": "failover"}, expect=201)
        jobs = await peer.ok("POST", "/jobs", [
            {"projectId": project["id"], "spec": EVERY, "callbackUrl": receiver.url,
             "data": json.dumps({"n": n}), "misfirePolicy": policy}
            for n, policy in enumerate(("fire_all", "fire_all", "fire_once"))], expect=201)
        await receiver.wait_jobs([j["id"] for j in jobs], 2, timeout=10)
        return cluster, leader, jobs

    async def supervisor(self, cluster: Cluster, node: Daemon) -> dict[str, Any]:
        response = await node.http().get(node.base_url + "/api/supervisor/state",
                                         headers=cluster.peer(node).headers)
        return (await response.json())["data"]

    async def scheduler_health(self, cluster: Cluster, node: Daemon) -> dict[str, Any]:
        response = await node.http().get(node.base_url + "/api/monitoring/scheduler/health",
                                         headers=cluster.peer(node).headers)
        return await response.json()

    def assert_every_slot_once(self, hits: list[Hit], what: str, since: float | None = None,
                               until: float | None = None) -> list[float]:
        """Every whole second between the first hit and the last (or C{since}/C{until}) has
        a hit, and every hit of a slot carries the one executionId of that slot."""
        by_slot: dict[float, set[str]] = defaultdict(set)
        for hit in hits:
            by_slot[hit.scheduled].add(hit.execution_id)
        for slot, ids in by_slot.items():
            self.assertEqual(ids, {execution_id(hits[0].job_id, slot)},
                             f"{what}: slot {slot} came with other executionIds")
        slots = sorted(by_slot)
        first = slots[0] if since is None else since
        last = slots[-1] if until is None else until
        missing = [s for s in range(int(first), int(last) + 1) if float(s) not in by_slot]
        self.assertEqual(missing, [], f"{what}: slots never called back")
        return slots

    async def test_the_followers_call_back_each_execution_once_and_the_leader_none(
            self) -> None:
        receiver = Receiver(self)
        cluster, leader, jobs = await self.start(receiver)
        await sleep(4)
        for job in jobs:
            hits = receiver.hits_for(job["id"])
            ids = [h.execution_id for h in hits]
            self.assertEqual(len(ids), len(set(ids)), receiver.summary())
            self.assertGreaterEqual(len(hits), 4, receiver.summary())
            self.assert_every_slot_once(hits, f"job {job['id']}")
        # the jobs are spread over the two followers (consecutive ids go to different
        # nodes); the records and each POST's X-Scheduler0-Node say which
        leader_id = cluster.nodes.index(leader) + 1
        followers = {n for n in (1, 2, 3) if n != leader_id}
        records = await _executions(cluster, leader, jobs)
        self.assertEqual({node for runs in records.values() for _, _, node, _ in runs},
                         followers)
        self.assertEqual({h.post.headers.get("x-scheduler0-node") for h in receiver.hits},
                         {str(n) for n in followers})
        for node in cluster.nodes:
            state = await self.supervisor(cluster, node)
            health = await self.scheduler_health(cluster, node)
            if node is leader:
                self.assertEqual((state["state"], state["role"], state["executing"]),
                                 ("STANDBY", "leader", False))
                self.assertIn("assigns the jobs to the other nodes", state["reason"])
                self.assertEqual((health["role"], health["executing"], health["enabled"]),
                                 ("leader", False, False))
            else:
                self.assertEqual(state, {"state": "RUNNING", "reason": None,
                                         "role": "follower", "executing": True})
                self.assertEqual((health["role"], health["executing"], health["enabled"]),
                                 ("follower", True, True))

    async def test_killing_the_leader_loses_no_write_and_no_slot(self) -> None:
        receiver = Receiver(self)
        cluster, leader, jobs = await self.start(receiver)
        survivors = [node for node in cluster.nodes if node is not leader]
        acknowledged: list[str] = []
        answered_at: list[float] = []
        writing = True

        async def write(node: Daemon, prefix: str) -> None:
            peer = cluster.peer(node)
            n = 0
            while writing:
                name = f"{prefix}-{n}"
                n += 1
                try:
                    code, _ = await peer.request("POST", "/projects", {"name": name})
                except Exception:
                    code = 0
                if code == 201:
                    acknowledged.append(name)
                    answered_at.append(time.monotonic())
                else:
                    await sleep(0.05)

        writers = [ensureDeferred(write(node, f"w{i}")) for i, node in enumerate(survivors)]
        try:
            await sleep(1)
            await leader.kill()
            killed = time.monotonic()
            self.assertGreater(len(acknowledged), 0)
            new_leader = await _new_leader(cluster, survivors, timeout=10)
            elected = time.monotonic() - killed
            self.assertLess(elected, 3, f"a new leader only after {elected:.1f} s")
            await sleep(2)
        finally:
            writing = False
            await gatherResults(writers)
        self.assertTrue(any(at > killed + elected for at in answered_at),
                        "no write was answered after the election")

        # every acknowledged write is on every surviving node, then on the restarted one
        for node in survivors:
            await _until_has(cluster, node, acknowledged)
        await leader.start()
        await _until_has(cluster, leader, acknowledged)

        # the jobs kept firing across the failover: every slot (fire_all), from the first
        # to one second ago, with each slot's own executionId
        until = time.time() - 1
        await receiver.wait_until(lambda: all(
            any(h.scheduled >= until for h in receiver.hits_for(j["id"])) for j in jobs),
            timeout=5, what="hits after the restart")
        for job in jobs[:2]:
            self.assert_every_slot_once(receiver.hits_for(job["id"]), f"job {job['id']}",
                                        until=until)
        fire_once = receiver.hits_for(jobs[2]["id"])
        self.assertTrue(any(h.received > time.time() - 2 for h in fire_once),
                        receiver.summary())
        restarted = await self.supervisor(cluster, leader)
        self.assertEqual(restarted["role"], "follower")

    async def test_a_follower_that_stalls_loses_its_jobs_and_executes_nothing_after(
            self) -> None:
        """SIGSTOP an executing follower past RaftTransportTimeout, then let it go on: its
        jobs move to the other follower within seconds, no slot is missed (copies share
        their executionId), and once it is back it executes only the share it is given
        again, never a slot the other sent with another id."""
        receiver = Receiver(self)
        cluster, leader, jobs = await self.start(receiver)
        stalled = next(node for node in cluster.nodes if node is not leader)
        stalled_id = str(cluster.nodes.index(stalled) + 1)
        assert stalled.process is not None
        pid = stalled.process.transport.pid
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.time()
        try:
            # every job is called back by the other follower within 5 s
            await receiver.wait_until(lambda: all(
                any(h.received > stopped_at + 1 and
                    h.post.headers.get("x-scheduler0-node") != stalled_id
                    for h in receiver.hits_for(j["id"])) for j in jobs),
                timeout=8, what="every job called back by another node")
            moved = max(min(h.received for h in receiver.hits_for(j["id"])
                            if h.received > stopped_at and
                            h.post.headers.get("x-scheduler0-node") != stalled_id)
                        for j in jobs) - stopped_at
            self.assertLess(moved, 5 + 1.5, f"the jobs moved only after {moved:.1f} s")
            await sleep(1)
        finally:
            os.kill(pid, signal.SIGCONT)
        await sleep(4)  # it learns where its jobs went, and gets a share back
        for job in jobs[:2]:
            self.assert_every_slot_once(receiver.hits_for(job["id"]), f"job {job['id']}",
                                        until=time.time() - 1)
        state = await self.supervisor(cluster, stalled)
        self.assertEqual((state["state"], state["role"]), ("RUNNING", "follower"), state)

    async def test_a_whole_cluster_restart_keeps_every_record_and_the_halt(self) -> None:
        receiver = Receiver(self)
        cluster, leader, jobs = await self.start(receiver)
        follower = next(node for node in cluster.nodes if node is not leader)
        # a halt asked of a follower holds the leader: the records stop changing
        halted = await cluster.peer(follower).http.post(
            follower.base_url + "/api/supervisor/halt", headers=cluster.peer(follower).headers)
        self.assertEqual(halted.code, 200, await halted.text())
        deadline = time.monotonic() + 10
        while (await self.supervisor(cluster, leader))["state"] != "HALTED":
            self.assertLess(time.monotonic(), deadline, "the leader did not take the halt")
            await sleep(0.05)
        await sleep(1)  # callbacks in flight finish and are recorded
        records = await _until_same(cluster, jobs)
        self.assertGreater(sum(len(ids) for ids in records.values()), 0)

        await gatherResults([ensureDeferred(node.stop()) for node in cluster.nodes])
        await cluster.start()
        answers = await cluster.wait_leader()
        new_leader = cluster.node(int(answers[0]["leaderId"]))
        for node in cluster.nodes:
            self.assertEqual(await _executions(cluster, node, jobs), records)
        # the halt was kept: nothing was called back since, whichever node leads now
        count = len(receiver.hits)
        await sleep(1.5)
        self.assertEqual(len(receiver.hits), count, receiver.summary())
        self.assertEqual((await self.supervisor(cluster, new_leader))["state"], "HALTED")
        restart = await cluster.peer(new_leader).http.post(
            new_leader.base_url + "/api/supervisor/restart",
            headers=cluster.peer(new_leader).headers)
        self.assertEqual(restart.code, 200, await restart.text())
        await receiver.wait_until(lambda: len(receiver.hits) > count, 5, "hits after restart")


async def _new_leader(cluster: Cluster, survivors: list[Daemon], timeout: float) -> Daemon:
    """Once the survivors agree on a leader among them: that node."""
    ids = {str(cluster.nodes.index(node) + 1) for node in survivors}
    deadline = time.monotonic() + timeout
    while True:
        answers = [await cluster.health(node) for node in survivors]
        leaders = {a["leaderId"] for a in answers}
        if len(leaders) == 1 and leaders <= ids:
            return cluster.node(int(leaders.pop()))
        if time.monotonic() > deadline:
            raise AssertionError(f"no new leader within {timeout} s: {answers}")
        await sleep(0.05)


async def _names(cluster: Cluster, node: Daemon) -> set[str]:
    page = await cluster.peer(node).ok("GET", "/projects?limit=10000")
    return {p["name"] for p in page["projects"]}


async def _until_has(cluster: Cluster, node: Daemon, names: list[str],
                     timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        missing = set(names) - await _names(cluster, node)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"node {node.base_url} lacks acknowledged writes "
                                 f"{sorted(missing)}")
        await sleep(0.1)


async def _executions(cluster: Cluster, node: Daemon,
                      jobs: list[dict]) -> dict[int, list[tuple[str, str, int, float]]]:
    """Per job: its execution records (id, state, node, scheduled time), as this node
    has them."""
    found = {}
    for job in jobs:
        page = await cluster.peer(node).ok("GET", f"/jobs/{job['id']}/executions?limit=10000")
        found[job["id"]] = sorted((e["executionId"], e["state"], e["nodeId"],
                                   parse_time(e["scheduledTime"]).timestamp())
                                  for e in page["executions"])
    return found


async def _until_same(cluster: Cluster, jobs: list[dict],
                      timeout: float = 10) -> dict[int, list[tuple[str, str, int, float]]]:
    """The execution records once every node has the same ones."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [await _executions(cluster, node, jobs) for node in cluster.nodes]
        if all(s == seen[0] for s in seen):
            return seen[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes do not agree on the execution records: {seen}")
        await sleep(0.1)
