"""
The seed's cluster-management API (issue 14 items 1-2) on real loopback clusters of
C{twistd scheduler0} nodes (L{tests.integration.cluster}): every endpoint's answer and
refusals, a fourth node added while writes go on (a learner that counts toward no quorum
until it caught up from a snapshot, then a voter) and removed, a transfer of leadership, demote and promote, reset-raft and the rejoin, and
force-rebuild after two of three nodes are killed.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from .cluster import SHARED_SECRETS, Cluster
from .daemon import Daemon, free_ports, sleep

#: low enough that the fourth node must get the log from a snapshot
SNAPSHOT_EVERY = {"RaftSnapshotThreshold": 50, "RaftSnapshotInterval": 5}


async def wait_for(testcase: Any, check: Any, timeout: float, what: str) -> Any:
    """Poll the async C{check} until it returns something true."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        await sleep(0.1)
    testcase.fail(f"{what} within {timeout} s (last: {str(last)[:800]})")


class ClusterApiHelpers:
    cluster: Cluster

    async def leader(self) -> tuple[Daemon, list[Daemon]]:
        answers = await self.cluster.wait_leader(*self.running(), timeout=20)
        leader_id = int(answers[0]["leaderId"])
        leader = self.cluster.node(leader_id)
        return leader, [n for n in self.cluster.nodes if n is not leader and n.process
                        and n.process.running]

    def running(self) -> list[int]:
        return [i for i, n in enumerate(self.cluster.nodes, start=1)
                if n.process is not None and n.process.running]

    async def call(self, node: Daemon, method: str, path: str) -> tuple[int, Any]:
        return await self.cluster.peer(node).request(method, "/cluster/" + path)

    async def ok(self, node: Daemon, method: str, path: str) -> Any:
        code, envelope = await self.call(node, method, path)
        assert code == 200, f"{method} {path} on {node.base_url}: {code} {envelope}"
        return envelope["data"]

    async def nodes(self, node: Daemon) -> dict[int, dict[str, Any]]:
        return {row["id"]: row for row in await self.ok(node, "GET", "list-nodes")}

    def add_spare(self, node_id: int, **config: Any) -> Daemon:
        """A node not in the cluster yet, configured with Replicas naming the cluster and
        itself, JoinCluster: true (how docs/architecture.md says to start one)."""
        port, raft = free_ports(2)
        me = {"Address": f"http://127.0.0.1:{port}", "RaftAddress": f"127.0.0.1:{raft}",
              "NodeId": node_id}
        settings = {"NodeId": node_id, "Replicas": [*self.cluster.replicas, me],
                    "JoinCluster": True, **SHARED_SECRETS, **config}
        node = Daemon(self, settings, port=port, raft_port=raft)
        self.cluster.nodes.append(node)
        return node


class MembershipTests(ClusterApiHelpers, TestCase):
    timeout = 240

    async def test_every_call_answers_and_refuses_and_a_fourth_node_joins_under_writes(
            self) -> None:
        self.cluster = cluster = Cluster(self, config=SNAPSHOT_EVERY)
        await cluster.start()
        leader, (follower, other) = await self.leader()
        leader_id = int(cluster.replicas[cluster.nodes.index(leader)]["NodeId"])

        # every node lists the same members (the Replicas the first leader stored)
        async def listed_everywhere() -> bool:
            views = [await self.nodes(n) for n in cluster.nodes]
            return all(set(v) == {1, 2, 3} for v in views) and views
        views = await wait_for(self, listed_everywhere, 10, "every node lists 1, 2, 3")
        for view in views:
            for replica in cluster.replicas:
                row = view[replica["NodeId"]]
                self.assertEqual((row["address"], row["clientAddress"], row["suffrage"],
                                  row["isLeader"]),
                                 (replica["RaftAddress"], replica["Address"], "Voter",
                                  replica["NodeId"] == leader_id))
        on_leader = await self.nodes(leader)
        for row in on_leader.values():
            self.assertTrue(row["connected"], row)
            self.assertIsNotNone(row["lag"], row)
            self.assertIsNotNone(row["lastContact"], row)

        # refusals: no credentials 401, an API key (even admin) 403, a follower 403 naming
        # the leader's API address, a bad query 400 saying what to fix
        code, _ = await follower.client().request("GET", "/cluster/list-nodes")
        self.assertEqual(code, 401)
        credential = await leader.create_credential("--scopes", "read,write,execute,admin")
        code, envelope = await leader.client(credential).request("GET", "/cluster/list-nodes")
        self.assertEqual(code, 403)
        self.assertIn("X-Peer", envelope["data"])
        code, envelope = await self.call(follower, "POST", "remove-node?nodeId=3")
        self.assertEqual(code, 403)
        self.assertIn(leader.base_url, envelope["data"])
        for path, word in (("add-node?nodeId=x&nodeAddress=a:1&clientAddress=a:2", "nodeId"),
                           ("add-node?nodeId=4&clientAddress=a:2", "nodeAddress"),
                           ("add-node?nodeId=4&nodeAddress=nohost&clientAddress=a:2",
                            "nodeAddress"),
                           ("remove-node", "nodeId"), ("force-rebuild", "seedNodeId")):
            code, envelope = await self.call(leader, "POST", path)
            self.assertEqual((code, word in envelope["data"]), (400, True), (path, envelope))
        code, envelope = await self.call(leader, "POST", "remove-node?nodeId=9")
        self.assertEqual(code, 404, envelope)
        code, envelope = await self.call(leader, "POST", "force-rebuild?seedNodeId="
                                         f"{leader_id}")
        self.assertEqual(code, 409, envelope)  # the cluster has its quorum

        # the dumps answer on any node
        # the jobs' buckets are spread over the two followers, none on the leader (which
        # assigns them once it has seen both alive: on a loaded machine, after the calls
        # above have answered)
        async def spread() -> Any:
            queues = await self.ok(follower, "GET", "dump/job-queues")
            return sorted(q["buckets"] for q in queues) == [128, 128] and queues
        queues = await wait_for(self, spread, 20, "the buckets spread over both followers")
        self.assertNotIn(leader_id, [q["nodeId"] for q in queues])
        versions = await self.ok(follower, "GET", "dump/job-queue-versions")
        self.assertEqual(versions[0]["numberOfActiveNodes"], 2)
        self.assertEqual((await self.ok(follower, "GET", "dump/schedule-queue"))["total"], 0)
        await self.ok(leader, "GET", "dump/job-executions-cache")

        # writes go on while a fourth node joins; enough of them that it needs a snapshot
        writing = True
        written: list[int] = []

        async def write() -> None:
            n = 0
            while writing:
                n += 1
                code, envelope = await leader.client(credential).request(
                    "POST", "/projects", {"name": f"p{n}", "description": "d"})
                if code == 201:
                    written.append(envelope["data"]["id"])
                else:
                    await sleep(0.05)
        writer = ensureDeferred(write())
        await wait_for(self, lambda: _true(len(written) > 120), 30, "120 writes")

        spare = self.add_spare(4, **SNAPSHOT_EVERY)
        replica = spare_replica(spare)
        adding = ensureDeferred(self.call(
            leader, "POST", f"add-node?nodeId=4&nodeAddress={replica['RaftAddress']}"
                            f"&clientAddress={replica['Address']}"))
        # node 4 is a learner until it caught up: listed as a non-voter, and the leader
        # still counts two other voters
        view = await wait_for(self, lambda: self._has(leader, 4), 10, "node 4 listed")
        self.assertEqual(view[4]["suffrage"], "Nonvoter")
        self.assertEqual((await cluster.health(leader))["raftStats"]["num_peers"], "2")
        # one change at a time: the add waits for node 4 to catch up
        code, envelope = await self.call(leader, "POST", "remove-node?nodeId=3")
        self.assertEqual(code, 409, envelope)
        self.assertIn("in progress", envelope["data"])
        # the quorum is unchanged (two of the three voters): with one old follower killed
        # while node 4 has not caught up, writes still commit
        await other.kill()
        committed = len(written)
        await wait_for(self, lambda: _true(len(written) > committed + 20), 20,
                       "20 writes committed with a follower down while node 4 catches up")
        await spare.start()
        code, envelope = await adding
        self.assertEqual((code, envelope["data"]), (200, {"status": "node added"}))
        self.assertIn("installing a Raft snapshot", spare.log_text())
        # then it is a voter: three of the four voters are up
        self.assertEqual((await self.nodes(leader))[4]["suffrage"], "Voter")
        self.assertEqual((await cluster.health(leader))["raftStats"]["num_peers"], "3")
        for node in (leader, follower, spare):
            view = await wait_for(self, lambda node=node: self._has(node, 4), 10,
                                  "node 4 listed")
            self.assertEqual(view[4]["clientAddress"], replica["Address"])
        self.assertEqual((await self.nodes(leader))[4]["connected"], True)
        writing = False
        await writer

        # node 4 holds every write
        async def all_there() -> bool:
            code, envelope = await spare.client(credential).request(
                "GET", f"/projects/{written[-1]}")
            return code == 200
        await wait_for(self, all_there, 15, "node 4 has the last write")

        # and leaves again
        data = await self.ok(leader, "POST", "remove-node?nodeId=4")
        self.assertEqual(data, {"status": "node removed"})
        view = await self.nodes(leader)
        self.assertEqual(set(view), {1, 2, 3})
        code, _ = await leader.client(credential).request(
            "POST", "/projects", {"name": "after removal", "description": "d"})
        self.assertEqual(code, 201)
        await spare.stop()

    async def test_a_node_adds_and_removes_itself(self) -> None:
        self.cluster = cluster = Cluster(self)
        await cluster.start()
        leader, (follower, _) = await self.leader()
        code, envelope = await self.call(follower, "POST", "add-self")
        self.assertEqual(code, 409, envelope)  # already a member
        spare = self.add_spare(4)
        await spare.start()
        data = await self.ok(spare, "POST", "add-self")
        self.assertEqual(data, {"status": "added"})
        view = await wait_for(self, lambda: self._has(leader, 4), 10, "node 4 listed")
        self.assertEqual(view[4]["suffrage"], "Voter")
        self.assertEqual((await cluster.health(leader))["raftStats"]["num_peers"], "3")
        # node 4 now answers for the cluster: a follower, knowing the leader
        health = await cluster.health(spare)
        self.assertEqual(health["leaderAddress"], (await cluster.health(leader))[
            "leaderAddress"])
        data = await self.ok(spare, "POST", "remove-self")
        self.assertEqual(data, {"status": "removed"})

        async def gone() -> bool:
            return 4 not in await self.nodes(leader)
        await wait_for(self, gone, 10, "node 4 no longer listed")
        await wait_for(self, lambda: self._peers(leader, "2"), 10, "the leader counts two peers")
        code, envelope = await self.call(leader, "POST", "remove-self")
        self.assertEqual(code, 409, envelope)
        self.assertIn("transfer-leadership", envelope["data"])
        await spare.stop()

    async def _peers(self, node: Daemon, count: str) -> bool:
        return (await self.cluster.health(node))["raftStats"]["num_peers"] == count

    async def _has(self, node: Daemon, node_id: int) -> Any:
        view = await self.nodes(node)
        return view if node_id in view else None


class LeadershipTests(ClusterApiHelpers, TestCase):
    timeout = 240

    async def test_transfer_then_demote_and_promote(self) -> None:
        self.cluster = cluster = Cluster(self)
        await cluster.start()
        leader, (follower, other) = await self.leader()
        credential = await leader.create_credential()

        # transfer: a different node leads afterwards, every node agrees, writes work
        data = await self.ok(leader, "POST", "transfer-leadership")
        self.assertEqual(data, {"status": "leadership transferred"})
        new_leader, _ = await self.leader()
        self.assertIsNot(new_leader, leader)
        code, envelope = await self.call(leader, "POST", "transfer-leadership")
        self.assertEqual(code, 403)
        self.assertIn(new_leader.base_url, envelope["data"])
        code, _ = await follower.client(credential).request(
            "POST", "/projects", {"name": "after transfer", "description": "d"})
        self.assertEqual(code, 201)

        # demote a follower: every node lists it as a non-voter, the leader counts two
        # voters, and it still replicates (a write made elsewhere reaches it)
        target = next(n for n in cluster.nodes if n is not new_leader)
        target_id = cluster.nodes.index(target) + 1
        data = await self.ok(new_leader, "POST", f"demote-node?nodeId={target_id}")
        self.assertEqual(data, {"status": "node demoted to non-voter"})
        code, envelope = await self.call(new_leader, "POST", f"demote-node?nodeId={target_id}")
        self.assertEqual(code, 409, envelope)

        async def nonvoter_everywhere() -> bool:
            views = [await self.nodes(n) for n in cluster.nodes]
            return all(v[target_id]["suffrage"] == "Nonvoter" for v in views)
        await wait_for(self, nonvoter_everywhere, 10, "the demoted node listed as a non-voter")
        health = await cluster.health(new_leader)
        self.assertEqual(health["raftStats"]["num_peers"], "1")
        await wait_for(self, lambda: self._log_has(target, "restarted as a non-voter"), 10,
                       "the demoted node restarts as a non-voter")
        created = await new_leader.client(credential).ok(
            "POST", "/projects", {"name": "seen by the non-voter", "description": "d"},
            expect=201)

        async def replicated() -> bool:
            code, _ = await target.client(credential).request(
                "GET", f"/projects/{created['id']}")
            return code == 200
        await wait_for(self, replicated, 10, "the non-voter replicates")
        # it answers writes too (through the leader), and reads them back
        mine = await target.client(credential).ok(
            "POST", "/projects", {"name": "through the non-voter", "description": "d"},
            expect=201)
        await target.client(credential).ok("GET", f"/projects/{mine['id']}")
        # a non-voter never leads: a transfer goes to the other voter
        self.assertEqual((await cluster.health(target))["raftStats"]["state"], "Follower")

        # promote it back: a voter again everywhere, the leader counts it
        data = await self.ok(new_leader, "POST", f"promote-node?nodeId={target_id}")
        self.assertEqual(data, {"status": "node promoted to voter"})
        code, envelope = await self.call(new_leader, "POST", f"promote-node?nodeId={target_id}")
        self.assertEqual(code, 409, envelope)

        async def voter_everywhere() -> bool:
            views = [await self.nodes(n) for n in cluster.nodes]
            return all(v[target_id]["suffrage"] == "Voter" for v in views)
        await wait_for(self, voter_everywhere, 10, "the promoted node listed as a voter")
        self.assertEqual((await cluster.health(new_leader))["raftStats"]["num_peers"], "2")
        view = await self.nodes(new_leader)
        self.assertTrue(view[target_id]["connected"], view)
        # after a restart the node keeps its replicated suffrage
        await target.stop()
        await target.start()
        await self.leader()
        self.assertEqual((await cluster.health(target))["raftStats"]["num_peers"], "2")

    async def _log_has(self, node: Daemon, text: str) -> bool:
        return text in node.log_text()


class RecoveryTests(ClusterApiHelpers, TestCase):
    timeout = 240

    async def test_reset_raft_answers_exits_and_the_node_rejoins_clean(self) -> None:
        self.cluster = cluster = Cluster(self)
        await cluster.start()
        leader, (follower, other) = await self.leader()
        credential = await leader.create_credential()
        before = await leader.client(credential).ok(
            "POST", "/projects", {"name": "before reset", "description": "d"}, expect=201)
        journal = os.path.join(follower.data_dir, "raft.journal")
        self.assertTrue(os.path.exists(journal))

        data = await self.ok(follower, "POST", "reset-raft")
        self.assertEqual(data, {"status": "raft reset"})
        status = await follower.wait_exit(20)
        self.assertEqual(status.code, 3, status)
        self.assertFalse(os.path.exists(journal))
        self.assertFalse(os.path.exists(journal + ".meta"))
        # what the cluster writes meanwhile reaches it once restarted
        after = await leader.client(credential).ok(
            "POST", "/projects", {"name": "after reset", "description": "d"}, expect=201)
        await follower.start()
        await self.leader()
        for project in (before, after):
            async def there(project: Any = project) -> bool:
                code, _ = await follower.client(credential).request(
                    "GET", f"/projects/{project['id']}")
                return code == 200
            await wait_for(self, there, 15, f"project {project['id']} on the reset node")
        self.assertTrue(os.path.exists(journal))
        view = await self.nodes(leader)
        follower_id = cluster.nodes.index(follower) + 1
        await wait_for(self, lambda: self._connected(leader, follower_id), 10,
                       "the reset node connected to the leader")
        self.assertEqual(view[follower_id]["suffrage"], "Voter")

    async def test_force_rebuild_after_two_of_three_are_killed(self) -> None:
        self.cluster = cluster = Cluster(self)
        await cluster.start()
        leader, (follower, other) = await self.leader()
        credential = await leader.create_credential()
        kept = await leader.client(credential).ok(
            "POST", "/projects", {"name": "kept", "description": "d"}, expect=201)
        survivor_id = cluster.nodes.index(follower) + 1
        await wait_for(self, lambda: self._has_project(follower, credential, kept["id"]), 10,
                       "the survivor has the write")
        await leader.kill()
        await other.kill()

        async def alone() -> bool:
            view = await self.nodes(follower)
            return not any(row["connected"] for row in view.values() if not row["self"])
        await wait_for(self, alone, 10, "the survivor sees the others disconnected")
        # only the survivor itself rebuilds, around itself
        code, envelope = await self.call(follower, "POST", "force-rebuild?seedNodeId=99")
        self.assertEqual(code, 400, envelope)
        data = await self.ok(follower, "POST", f"force-rebuild?seedNodeId={survivor_id}")
        self.assertEqual(data, {"status": "rebuild initiated"})
        health = await cluster.health(follower)
        self.assertEqual((health["leaderId"], health["raftStats"]["state"]),
                         (str(survivor_id), "Leader"))
        self.assertEqual(set(await self.nodes(follower)), {survivor_id})
        # its data is there and it takes writes alone
        await follower.client(credential).ok("GET", f"/projects/{kept['id']}")
        await follower.client(credential).ok(
            "POST", "/projects", {"name": "after rebuild", "description": "d"}, expect=201)
        # and it stays a one-node cluster after a restart
        await follower.stop()
        await follower.start()
        health = await wait_for(self, lambda: self._leads(follower, survivor_id), 15,
                                "the rebuilt node leads after a restart")
        await follower.client(credential).ok(
            "POST", "/projects", {"name": "after restart", "description": "d"}, expect=201)

    async def _leads(self, node: Daemon, node_id: int) -> Any:
        health = await self.cluster.health(node)
        return health if health["leaderId"] == str(node_id) else None

    async def _has_project(self, node: Daemon, credential: Any, project_id: int) -> bool:
        code, _ = await node.client(credential).request("GET", f"/projects/{project_id}")
        return code == 200

    async def _connected(self, node: Daemon, node_id: int) -> bool:
        return bool((await self.nodes(node))[node_id]["connected"])


def spare_replica(node: Daemon) -> dict[str, Any]:
    return next(r for r in _config(node)["Replicas"] if r["NodeId"] == _config(node)["NodeId"])


def _config(node: Daemon) -> dict[str, Any]:
    import yaml
    assert node.config_path is not None
    with open(node.config_path, encoding="utf-8") as f:
        return yaml.safe_load(f)


async def _true(value: bool) -> bool:
    return value


