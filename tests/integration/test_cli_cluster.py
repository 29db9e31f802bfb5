"""
`scheduler0 cluster status` and `scheduler0 cluster transfer` (issue 14 item 3) against a
real three-node cluster (L{tests.integration.cluster}): the commands resolve the node and its
peer credentials from a node's config file, as an operator runs them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.trial.unittest import TestCase

from .cluster import Cluster
from .daemon import Daemon, sleep


class ClusterCliTests(TestCase):
    timeout = 180

    async def cli(self, node: Daemon, *args: str) -> tuple[Any, str, str]:
        assert node.config_path is not None
        return await node.cli("cluster", *args, "--config", node.config_path, timeout=90)

    async def status(self, node: Daemon) -> list[dict[str, Any]]:
        code, out, err = await self.cli(node, "status", "--format", "json")
        self.assertTrue(code.clean, (code, out, err))
        return json.loads(out)["nodes"]

    async def leader_everywhere(self, cluster: Cluster, other_than: str = "") -> str:
        """The leader's id once every node names the same one (not C{other_than})."""
        deadline = time.monotonic() + 30
        while True:
            answers = await cluster.wait_leader()
            leader = answers[0]["leaderId"]
            if leader != other_than:
                return leader
            if time.monotonic() > deadline:
                self.fail(f"node {other_than} still leads: {answers}")
            await sleep(0.2)

    async def test_status_lists_three_nodes_and_transfer_moves_the_leader(self) -> None:
        cluster = Cluster(self)
        await cluster.start()
        leader_id = await self.leader_everywhere(cluster)
        follower = next(n for n in cluster.nodes
                        if n is not cluster.node(int(leader_id)))

        nodes = await self.status(follower)
        self.assertEqual([n["id"] for n in nodes], [1, 2, 3], nodes)
        self.assertEqual([n["id"] for n in nodes if n["isLeader"]], [int(leader_id)], nodes)
        self.assertEqual([n["clientAddress"] for n in nodes],
                         [node.base_url for node in cluster.nodes])
        self.assertEqual([n["raftAddress"] for n in nodes],
                         [r["RaftAddress"] for r in cluster.replicas])
        self.assertEqual({n["suffrage"] for n in nodes}, {"Voter"})
        self.assertEqual([n["error"] for n in nodes], [None, None, None])
        self.assertTrue(all(isinstance(n["lag"], int) for n in nodes), nodes)

        code, out, err = await self.cli(follower, "status")
        self.assertTrue(code.clean, (code, out, err))
        lines = out.splitlines()
        self.assertEqual(len(lines), 4, out)
        self.assertEqual([line.split()[0] for line in lines[1:]], ["1", "2", "3"])
        self.assertEqual([line.split()[3] == "yes" for line in lines[1:]],
                         [n == int(leader_id) for n in (1, 2, 3)], out)

        # sent to a follower: the follower's 403 names the leader, which takes it
        code, out, err = await self.cli(follower, "transfer")
        self.assertTrue(code.clean, (code, out, err))
        self.assertEqual(out, "leadership transferred\n")
        self.assertEqual(err, f"scheduler0: {follower.base_url} is not the leader; sending to "
                              f"the leader at {cluster.node(int(leader_id)).base_url}\n")
        new_leader = await self.leader_everywhere(cluster, other_than=leader_id)
        nodes = await self.status(follower)
        self.assertEqual([n["id"] for n in nodes if n["isLeader"]], [int(new_leader)], nodes)
