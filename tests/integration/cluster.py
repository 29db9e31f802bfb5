"""
A cluster of real C{twistd scheduler0} nodes on free loopback ports, built on
L{tests.integration.daemon.Daemon}: every node lists all of them in C{Replicas} and shares
the same C{SecretKey}/C{AuthUsername}/C{AuthPassword} (set in its config file), unless a
test gives one node other secrets.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from twisted.internet.defer import ensureDeferred, gatherResults

from .daemon import Daemon, basic_headers, free_ports, sleep

SHARED_SECRETS = {"SecretKey": "a cluster's shared secret key",
                  "AuthUsername": "cluster", "AuthPassword": "a cluster's shared password"}


class Cluster:
    """
    @param size: how many nodes (NodeId 1..size).
    @param secrets: per NodeId, secrets that replace the shared ones for that node.
    @param config: keys every node's config file gets.
    """

    def __init__(self, testcase: Any, size: int = 3, *,
                 secrets: Mapping[int, Mapping[str, str]] | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        self.testcase = testcase
        self.config = dict(config or {})
        chosen = free_ports(2 * size)  # all different: a node's API and Raft ports
        ports = list(zip(chosen[::2], chosen[1::2]))
        self.replicas = [{"Address": f"http://127.0.0.1:{port}",
                          "RaftAddress": f"127.0.0.1:{raft}", "NodeId": n}
                         for n, (port, raft) in enumerate(ports, start=1)]
        self.nodes: list[Daemon] = []
        for n, (port, raft) in enumerate(ports, start=1):
            settings: dict[str, Any] = {"NodeId": n, "Replicas": self.replicas,
                                        **SHARED_SECRETS, **dict(config or {})}
            settings.update((secrets or {}).get(n, {}))
            self.nodes.append(Daemon(testcase, settings, port=port, raft_port=raft))

    def node(self, node_id: int) -> Daemon:
        return self.nodes[node_id - 1]

    def node_id(self, node: Daemon) -> int:
        return self.nodes.index(node) + 1

    def spare(self) -> tuple[Daemon, dict[str, Any]]:
        """One more node, not a member yet (C{JoinCluster: true}, C{Replicas} naming the
        cluster and itself, the cluster's config): appended to L{nodes}; add it with
        C{add-node} (the returned replica has its addresses), then start it."""
        node_id = len(self.nodes) + 1
        taken = {p for n in self.nodes for p in (n.port, n.raft_port)}
        port, raft = free_ports(2)
        while {port, raft} & taken:  # a stopped node's port may be free right now
            port, raft = free_ports(2)
        me = {"Address": f"http://127.0.0.1:{port}", "RaftAddress": f"127.0.0.1:{raft}",
              "NodeId": node_id}
        settings = {"NodeId": node_id, "Replicas": [*self.replicas, me], "JoinCluster": True,
                    **SHARED_SECRETS, **self.config}
        node = Daemon(self.testcase, settings, port=port, raft_port=raft)
        self.nodes.append(node)
        return node, me

    async def start(self, *node_ids: int) -> None:
        """Start the given nodes (all by default) at once; each answers its healthcheck."""
        chosen = [self.node(n) for n in node_ids] if node_ids else self.nodes
        await gatherResults([_deferred(node.start()) for node in chosen])

    async def health(self, node: Daemon) -> dict[str, Any]:
        return await node.client().ok("GET", "/healthcheck")

    async def wait_leader(self, *node_ids: int, timeout: float = 15) -> list[dict[str, Any]]:
        """Until the given nodes (all by default) report the same leader; their
        healthcheck answers then."""
        chosen = [self.node(n) for n in node_ids] if node_ids else self.nodes
        deadline = time.monotonic() + timeout
        while True:
            answers = [await self.health(node) for node in chosen]
            leaders = {(a["leaderAddress"], a["leaderId"]) for a in answers}
            if len(leaders) == 1 and ("", "") not in leaders:
                return answers
            if time.monotonic() > deadline:
                self.testcase.fail(f"no common leader within {timeout} s: {answers}")
            await sleep(0.1)

    def peer(self, node: Daemon) -> Any:
        """A JSON client of C{node} with the shared peer Basic credentials."""
        return node.client().with_headers(basic_headers(
            SHARED_SECRETS["AuthUsername"], SHARED_SECRETS["AuthPassword"]))


def _deferred(coroutine: Any) -> Any:
    return ensureDeferred(coroutine)
