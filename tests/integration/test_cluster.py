"""
Three real C{twistd scheduler0} nodes replicating through Raft (issue 12 items 8-10, 13),
on free loopback ports (L{tests.integration.cluster}): bootstrap and a leader within a few
seconds, any node answers any request, the healthcheck's Raft fields, what happens without
a leader, and the cluster secret.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import yaml
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from .cluster import Cluster
from .daemon import node_env, run, sleep, twistd_argv

RAFT_STATS = {"state", "term", "last_log_index", "commit_index", "applied_index",
              "fsm_pending", "num_peers", "connected_peers", "last_contact"}


class ClusterTests(TestCase):
    timeout = 120

    async def test_three_nodes_elect_a_leader_any_node_answers_and_all_agree(self) -> None:
        # configured as the seed's are: Bootstrap true on one node only
        cluster = Cluster(self, secrets={2: {"Bootstrap": False}, 3: {"Bootstrap": False}})
        started = time.monotonic()
        await cluster.start()
        answers = await cluster.wait_leader()
        self.assertLess(time.monotonic() - started, 20)
        leader_address, leader_id = answers[0]["leaderAddress"], answers[0]["leaderId"]
        listed = {r["RaftAddress"]: str(r["NodeId"]) for r in cluster.replicas}
        self.assertEqual(listed[leader_address], leader_id)
        states = sorted(a["raftStats"]["state"] for a in answers)
        self.assertEqual(states, ["Follower", "Follower", "Leader"])
        for a in answers:
            self.assertEqual(set(a["raftStats"]), RAFT_STATS)
            self.assertEqual(a["raftStats"]["num_peers"], "2")
        leader = cluster.node(int(leader_id))
        follower, other = [n for n in cluster.nodes if n is not leader]

        # a credential made on a follower (a write through Raft) works on every node
        credential = await follower.create_credential()
        for node in cluster.nodes:
            await node.client(credential).ok("GET", "/projects")
        # a write on a follower is answered once applied there, and read on another node
        created = await follower.client(credential).ok(
            "POST", "/projects", {"name": "replicated", "description": "d"}, expect=201)
        project_id = created["id"]
        mine = await follower.client(credential).ok("GET", f"/projects/{project_id}")
        self.assertEqual(mine["name"], "replicated")
        deadline = time.monotonic() + 10
        while True:
            code, _ = await other.client(credential).request("GET", f"/projects/{project_id}")
            if code == 200 or time.monotonic() > deadline:
                break
            await sleep(0.05)
        self.assertEqual(code, 200)
        job = await other.client(credential).ok("POST", "/jobs", {
            "projectId": project_id, "spec": "0 0 1 1 *", "timezone": "UTC",
            "callbackUrl": "http://127.0.0.1:9/callback", "data": "{}"}, expect=201)
        deadline = time.monotonic() + 10
        while True:
            code, _ = await leader.client(credential).request("GET", f"/jobs/{job['id']}")
            if code == 200 or time.monotonic() > deadline:
                break
            await sleep(0.05)
        self.assertEqual(code, 200)
        # every node applied the same entries
        deadline = time.monotonic() + 10
        while True:
            stats = [(await cluster.health(n))["raftStats"] for n in cluster.nodes]
            if len({s["applied_index"] for s in stats}) == 1 or time.monotonic() > deadline:
                break
            await sleep(0.05)
        self.assertEqual(len({s["applied_index"] for s in stats}), 1, stats)
        self.assertGreater(int(stats[0]["applied_index"]), 0)
        metrics = await _metrics(leader)
        self.assertIn("scheduler0_raft_is_leader 1.0", metrics)
        self.assertIn("scheduler0_raft_num_peers 2.0", metrics)
        self.assertIn("scheduler0_raft_connected_peers 2.0", metrics)

    async def test_a_restarted_node_catches_up_and_a_restarted_cluster_keeps_everything(
            self) -> None:
        cluster = Cluster(self)
        await cluster.start()
        leader_id = int((await cluster.wait_leader())[0]["leaderId"])
        leader = cluster.node(leader_id)
        follower = next(node for node in cluster.nodes if node is not leader)
        for i in range(3):
            await cluster.peer(leader).ok("POST", "/projects", {"name": f"p{i}"}, expect=201)
        await follower.stop()
        for i in range(3, 5):
            await cluster.peer(leader).ok("POST", "/projects", {"name": f"p{i}"}, expect=201)
        await follower.start()  # replays its journal, then takes the rest from the leader
        expected = [f"p{i}" for i in range(5)]
        await _until_names(cluster, follower, expected)

        await gatherResults([ensureDeferred(node.stop()) for node in cluster.nodes])
        await cluster.start()
        await cluster.wait_leader()
        for node in cluster.nodes:
            self.assertEqual(await _names(cluster, node), expected)
        await cluster.peer(follower).ok("POST", "/projects", {"name": "after"}, expect=201)
        for node in cluster.nodes:
            await _until_names(cluster, node, expected + ["after"])

    async def test_a_node_far_behind_catches_up_from_a_snapshot(self) -> None:
        cluster = Cluster(self, config={"RaftSnapshotThreshold": 20})
        await cluster.start()
        leader_id = int((await cluster.wait_leader())[0]["leaderId"])
        leader = cluster.node(leader_id)
        late = next(node for node in cluster.nodes if node is not leader)
        await late.stop()
        expected = [f"p{i}" for i in range(40)]
        for name in expected:
            await cluster.peer(leader).ok("POST", "/projects", {"name": name}, expect=201)
        # the others compact their journals past what the stopped node has
        deadline = time.monotonic() + 15
        while not all(os.path.exists(os.path.join(n.data_dir, "raft.snapshot"))
                      for n in cluster.nodes if n is not late):
            self.assertLess(time.monotonic(), deadline, "no snapshot was taken")
            await sleep(0.05)
        await late.start()
        await _until_names(cluster, late, expected)
        self.assertIn("installing a Raft snapshot", late.log_text())
        await cluster.peer(late).ok("POST", "/projects", {"name": "after"}, expect=201)
        for node in cluster.nodes:
            await _until_names(cluster, node, expected + ["after"])

    async def test_without_a_leader_writes_answer_503_with_retry_after_and_reads_work(
            self) -> None:
        cluster = Cluster(self)
        await cluster.start(1)  # two of three nodes down: no majority, no leader
        node = cluster.node(1)
        peer = cluster.peer(node)
        health = await cluster.health(node)
        self.assertEqual((health["leaderAddress"], health["leaderId"]), ("", ""))
        response = await node.http().post(
            node.base_url + "/api/v1/projects", json={"name": "nope"},
            headers=peer.headers)
        body = await response.json()
        self.assertEqual(response.code, 503, body)
        self.assertIn("no Raft leader", body["data"])
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        await peer.ok("GET", "/projects")  # reads are served locally: 200

    async def test_a_node_with_another_secret_cannot_join_and_both_sides_log_it(self) -> None:
        cluster = Cluster(self, secrets={3: {"SecretKey": "another secret"}})
        await cluster.start()
        await cluster.wait_leader(1, 2)
        deadline = time.monotonic() + 15
        while True:
            logs = [node.log_text() for node in cluster.nodes]
            refused = ["does not decrypt" in text for text in logs]
            if (refused[2] and (refused[0] or refused[1])) or time.monotonic() > deadline:
                break
            await sleep(0.1)
        self.assertTrue(refused[2], "the stranger did not log the refusal")
        self.assertTrue(refused[0] or refused[1], "no cluster member logged the refusal")
        stranger = await cluster.health(cluster.node(3))
        self.assertEqual(stranger["leaderAddress"], "")
        self.assertEqual(stranger["raftStats"]["connected_peers"], "0")

    async def test_a_cluster_config_without_shared_secrets_refuses_to_start(self) -> None:
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        config = os.path.join(workdir, "scheduler0.yml")
        with open(config, "w", encoding="utf-8") as f:
            yaml.safe_dump({"NodeId": 1, "DataDir": os.path.join(workdir, "data"),
                            "Replicas": Cluster(self, 2).replicas}, f)
        status, out, err = await run(self, twistd_argv(config), cwd=workdir, env=node_env(),
                                     timeout=30)
        self.assertFalse(status.clean)
        lines = [line for line in (out + err).splitlines() if "SecretKey" in line]
        self.assertEqual(len(lines), 1, out + err)
        self.assertIn("scheduler0 credential init", lines[0])
        self.assertIn("SCHEDULER0_SECRET_KEY", lines[0])
        self.assertFalse(os.path.exists(os.path.join(workdir, "data", "node-secrets.json")))

    async def test_a_node_whose_raft_port_is_taken_exits_at_once_with_one_line(self) -> None:
        cluster = Cluster(self, 2)
        node = cluster.node(1)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", node.raft_port))
            taken.listen()
            started = time.monotonic()
            status, out, err = await run(self, twistd_argv(node.config_path), cwd=node.workdir,
                                         env=node_env(), timeout=30)
        output = out + err
        self.assertLess(time.monotonic() - started, 20, output)
        self.assertEqual((status.code, status.signal), (1, None), output)
        self.assertIn(f"scheduler0: cannot listen for Raft on 127.0.0.1:{node.raft_port}",
                      output)
        self.assertNotIn("Traceback", output)


async def _metrics(node: Any) -> str:
    response = await node.http().get(node.base_url + "/metrics")
    return (await response.content()).decode()


async def _names(cluster: Cluster, node: Any) -> list[str]:
    page = await cluster.peer(node).ok("GET", "/projects?limit=100")
    return [p["name"] for p in page["projects"]]


async def _until_names(cluster: Cluster, node: Any, expected: list[str],
                       timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        names = await _names(cluster, node)
        if names == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"node {node.base_url} has {names}, not {expected}")
        await sleep(0.05)
