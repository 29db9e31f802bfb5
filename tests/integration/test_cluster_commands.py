"""
Issue 13 item 4 and item 6's breaker reset, on a real three-node cluster of C{twistd
scheduler0} nodes: run-now, a dead-letter retry and a breaker reset sent to a follower are
answered by it (no 503 naming the leader) and carried out by the node that owns the job
(a follower: the leader executes nothing), whose id the callback's C{X-Scheduler0-Node}
header names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial.unittest import TestCase

from .cluster import Cluster
from .daemon import Daemon, sleep
from .receiver import Receiver
from .scheduling import FAST

#: no retries: a failed callback is dead at once, each failure counts on the breaker
SETTINGS = {**FAST, "JobExecutionRetryMax": 0}


class ClusterCommandTests(TestCase):
    timeout = 120

    async def start(self, receiver: Receiver) -> tuple[Cluster, Daemon, Daemon, dict]:
        """A cluster, its leader, a follower and an hourly job calling C{receiver} (so
        only what a test asks for is sent), created through the follower."""
        cluster = Cluster(self, config=SETTINGS)
        await cluster.start()
        leader = cluster.node(int((await cluster.wait_leader())[0]["leaderId"]))
        follower = next(node for node in cluster.nodes if node is not leader)
        peer = cluster.peer(follower)
        project = await peer.ok("POST", "/projects", {"name": "commands"}, expect=201)
        job = await peer.ok("POST", "/jobs", {"projectId": project["id"], "spec": "@every 1h",
                                              "callbackUrl": receiver.url}, expect=201)
        await _until(lambda: _executing_nodes(cluster, follower), 2)  # jobs assigned
        return cluster, leader, follower, job

    async def call(self, cluster: Cluster, node: Daemon, method: str, path: str,
                   expect: int = 200) -> Any:
        """An operability endpoint (outside /api/v1) of C{node}: its C{data}, or the
        whole body when it is not enveloped."""
        response = await node.http().request(method, node.base_url + path,
                                              headers=cluster.peer(node).headers)
        body = await response.json()
        self.assertEqual(response.code, expect, body)
        return body.get("data", body) if isinstance(body, dict) else body

    async def test_a_run_now_sent_to_a_follower_is_delivered_once_by_the_executing_node(
            self) -> None:
        receiver = Receiver(self)
        cluster, leader, follower, job = await self.start(receiver)
        run = await cluster.peer(follower).ok("POST", f"/jobs/{job['id']}/run", expect=202)
        await receiver.wait_hits(1, job_id=job["id"], timeout=10)
        await sleep(2)  # a second delivery (by another node, or again) would arrive by now
        (hit,) = receiver.hits_for(job["id"])
        self.assertEqual((hit.execution_id, hit.attempt), (run["executionId"], 1))
        self.assertEqual(hit.post.headers["x-scheduler0-node"],
                         await _owner(cluster, follower, job["id"]))
        # the record, under the answered id, reaches every node
        for node in cluster.nodes:
            await _until(lambda n=node: _state(cluster, n, run["executionId"]), "succeeded")

    async def test_a_dead_letter_retried_through_a_follower_is_delivered(self) -> None:
        receiver = Receiver(self)
        receiver.answer(500)
        cluster, leader, follower, job = await self.start(receiver)
        peer = cluster.peer(follower)
        eid = (await peer.ok("POST", f"/jobs/{job['id']}/run", expect=202))["executionId"]
        await _until(lambda: _state(cluster, follower, eid), "dead")
        receiver.answer(200)
        self.assertEqual(await self.call(cluster, follower, "POST", "/api/monitoring/dlq/retry",
                                         expect=202), {"retried": [eid], "skipped": []})
        await receiver.wait_hits(2, job_id=job["id"], timeout=10)
        hits = receiver.hits_for(job["id"])
        self.assertEqual([(h.execution_id, h.attempt) for h in hits], [(eid, 1), (eid, 2)])
        self.assertEqual({h.post.headers["x-scheduler0-node"] for h in hits},
                         {await _owner(cluster, follower, job["id"])})
        await _until(lambda: _state(cluster, follower, eid), "succeeded")

    async def test_a_breaker_reset_sent_to_a_follower_resets_the_executing_nodes(
            self) -> None:
        receiver = Receiver(self)
        receiver.answer(503)
        cluster, leader, follower, job = await self.start(receiver)
        peer = cluster.peer(follower)
        # five failed POSTs in a row open the endpoint's breaker; one run at a time, since
        # runs applied together are delivered in one POST and count as one failure
        for sent in range(1, 6):
            await peer.ok("POST", f"/jobs/{job['id']}/run", expect=202)
            await receiver.wait_hits(sent, job_id=job["id"], timeout=10)
        self.assertEqual(len({hit.post.index for hit in receiver.hits_for(job["id"])}), 5)

        owner = cluster.node(int(await _owner(cluster, follower, job["id"])))

        async def breaker() -> str:
            health = await self.call(cluster, owner, "GET", "/api/monitoring/scheduler/health")
            states = {i["breaker"]["state"] for i in health["instances"]
                      if i["host"] == f"http://127.0.0.1:{receiver.port}"}
            return "open" if "open" in states else ",".join(sorted(states))

        await _until(breaker, "open")
        receiver.answer(200)
        host = quote(f"http://127.0.0.1:{receiver.port}", safe="")
        answer = await self.call(cluster, follower, "POST",
                                 f"/api/monitoring/breakers/{host}/reset")
        self.assertEqual(answer["breaker"], "closed")  # the follower's own: it has none
        await _until(breaker, "closed", timeout=3)


async def _queues(cluster: Cluster, node: Daemon) -> list[dict]:
    code, envelope = await cluster.peer(node).request("GET", "/cluster/dump/job-queues")
    return envelope["data"] if code == 200 else []


async def _executing_nodes(cluster: Cluster, node: Daemon) -> int:
    return sum(1 for queue in await _queues(cluster, node) if queue["buckets"])


async def _owner(cluster: Cluster, node: Daemon, job_id: int) -> str:
    """The NodeId of the node that executes C{job_id} (its bucket's owner)."""
    for queue in await _queues(cluster, node):
        if job_id % 256 in queue["bucketIds"]:
            return str(queue["nodeId"])
    raise AssertionError(f"no node owns job {job_id}")


async def _state(cluster: Cluster, node: Daemon, eid: str) -> str | None:
    code, envelope = await cluster.peer(node).request("GET", f"/executions/{eid}")
    return envelope["data"]["state"] if code == 200 else None


async def _until(read: Any, expected: Any, timeout: float = 10) -> None:
    """Poll C{await read()} until it answers C{expected}."""
    seen = None
    for _ in range(int(timeout / 0.1)):
        seen = await read()
        if seen == expected:
            return
        await sleep(0.1)
    raise AssertionError(f"still {seen!r} after {timeout} s, expected {expected!r}")
