"""
The Raft command log (issue 12 items 3, 8, 9, 10, 13) with PySyncObj on real loopback ports,
several nodes in this one process. PySyncObj polls its own sockets, so these tests run on
the real reactor (not a Clock); they are kept few, and each waits for a condition, never for
a fixed time.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from scheduler0.consensus.interface import NotAccepting
from scheduler0.consensus.raft import RaftCommandLog, RaftSettings, raft_password
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.store.service import StoreService

from .integration.daemon import free_port

AT = "2026-11-26T16:00:00.000Z"


def project(i: int) -> Command:
    return Command(f"p{i}", C.PROJECT_CREATE, AT, {"project": {
        "id": i, "name": f"p{i}", "description": "", "signing_secret": "s"}})


def projects(path: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM projects ORDER BY id")]
    finally:
        conn.close()


async def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll C{check} every 20 ms until it answers something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        await deferLater(reactor, 0.02, lambda: None)


class Cluster:
    """Raft logs sharing this process, one data dir each, on free loopback ports."""

    def __init__(self, testcase: TestCase, size: int, secrets: list[str] | None = None) -> None:
        self.testcase = testcase
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        self.secrets = secrets or ["cluster secret"] * size
        self.dirs = [os.path.abspath(testcase.mktemp()) for _ in range(size)]
        self.paths: list[str] = []
        for data_dir in self.dirs:
            store = StoreService(data_dir)
            store.open()
            store.stopService()
            self.paths.append(store.path)
        self.logs: list[RaftCommandLog | None] = [None] * size
        testcase.addCleanup(self.stop_all)

    def settings(self, i: int) -> RaftSettings:
        return RaftSettings(
            self_address=self.addresses[i],
            partners=tuple(a for a in self.addresses if a != self.addresses[i]),
            node_ids={a: str(n + 1) for n, a in enumerate(self.addresses)},
            data_dir=self.dirs[i], password=raft_password(self.secrets[i]), apply_timeout=10)

    def start(self, i: int) -> RaftCommandLog:
        log = RaftCommandLog(self.paths[i], reactor, self.settings(i))
        log.startService()
        self.logs[i] = log
        return log

    async def stop(self, i: int) -> None:
        log, self.logs[i] = self.logs[i], None
        if log is not None:
            await log.stopService()

    async def stop_all(self) -> None:
        for i in range(len(self.logs)):
            await self.stop(i)

    def running(self) -> list[RaftCommandLog]:
        return [log for log in self.logs if log is not None]

    async def leader_known(self) -> tuple[str, str]:
        def agreed() -> Any:
            leaders = {log.leader() for log in self.running()}
            return len(leaders) == 1 and None not in leaders and leaders.pop()
        return await until(agreed, what="every running node knows the same leader")


class ReplicationTests(TestCase):
    timeout = 60

    async def test_a_write_on_a_follower_is_answered_with_its_result_and_applied_everywhere(
            self) -> None:
        cluster = Cluster(self, 3)
        for i in range(3):
            cluster.start(i)
        address, node_id = await cluster.leader_known()
        self.assertIn(address, cluster.addresses)
        self.assertEqual(node_id, str(cluster.addresses.index(address) + 1))
        follower = next(log for log in cluster.running() if log.status()["state"] == "Follower")
        result = await follower.submit(project(1))
        self.assertEqual(result, {"ok": True, "id": 1})
        # read-your-writes on the answering node, without waiting
        self.assertEqual(projects(cluster.paths[cluster.logs.index(follower)]), ["p1"])
        # the same command again (a client retry): the stored result, nothing applied twice
        self.assertEqual(await follower.submit(project(1)), {"ok": True, "id": 1})
        await until(lambda: all(projects(path) == ["p1"] for path in cluster.paths),
                    what="every node has the project")
        stats = [log.status() for log in cluster.running()]
        self.assertEqual(sorted(s["state"] for s in stats), ["Follower", "Follower", "Leader"])
        for s in stats:
            self.assertEqual(set(s), {"state", "term", "last_log_index", "commit_index",
                                      "applied_index", "fsm_pending", "num_peers",
                                      "connected_peers", "last_contact"})
            self.assertTrue(all(isinstance(v, str) for v in s.values()), s)
            self.assertEqual(s["num_peers"], "2")
        await until(lambda: len({log.status()["applied_index"] for log in cluster.running()})
                    == 1, what="every node applied the same index")
        # what a restarted node catches up to before it executes: the leader's commit index
        leader = next(log for log in cluster.running() if log.status()["state"] == "Leader")
        await until(lambda: {log.leader_commit_index() for log in cluster.running()}
                    == {int(leader.status()["commit_index"])},
                    what="every node knows the leader's commit index")

    async def test_without_a_leader_a_write_fails_at_once_and_says_why(self) -> None:
        cluster = Cluster(self, 3)
        alone = cluster.start(0)  # its two partners never start: no quorum, no leader
        self.assertIsNone(alone.leader_commit_index())
        d = alone.submit(project(1))
        failure = self.failureResultOf(d, NotAccepting)
        self.assertIn("no Raft leader", str(failure.value))
        self.assertIsNone(alone.leader())
        self.assertIn(alone.status()["state"], ("Follower", "Candidate"))
        self.assertEqual(alone.status()["last_contact"], "never")


class ReplayTests(TestCase):
    timeout = 60

    async def test_a_restart_does_not_apply_again_what_the_database_already_holds(
            self) -> None:
        cluster = Cluster(self, 1)  # a one-node Raft cluster: its own majority
        log = cluster.start(0)
        await cluster.leader_known()
        for i in (1, 2):
            self.assertTrue((await log.submit(project(i)))["ok"])
        await cluster.stop(0)
        # the state moved on without the journal (an operator's repair, say): the entries
        # at or below the stored index must not be applied again over it
        conn = sqlite3.connect(cluster.paths[0])
        conn.execute("DELETE FROM projects")
        conn.execute("DELETE FROM applied_commands")
        conn.commit()
        conn.close()
        log = cluster.start(0)
        await cluster.leader_known()
        self.assertTrue((await log.submit(project(3)))["ok"])
        self.assertEqual(projects(cluster.paths[0]), ["p3"])


class SnapshotTests(TestCase):
    timeout = 90

    async def test_a_node_far_behind_catches_up_from_a_snapshot_and_says_so(self) -> None:
        cluster = Cluster(self, 3)
        first, second = cluster.start(0), cluster.start(1)
        await cluster.leader_known()
        for i in range(1, 6):
            self.assertTrue((await first.submit(project(i)))["ok"])
        snapshot = os.path.join(cluster.dirs[0], "raft.snapshot")
        for log in (first, second):
            assert log.node is not None
            log.node.forceLogCompaction()
        await until(lambda: all(os.path.exists(os.path.join(d, "raft.snapshot"))
                                for d in cluster.dirs[:2]), what="both nodes took a snapshot")
        self.assertTrue(os.path.getsize(snapshot) > 0)
        # the third node starts empty: the others' logs no longer hold the first entries
        replaced: list[list[str]] = []
        late = RaftCommandLog(cluster.paths[2], reactor, cluster.settings(2))
        late.add_replaced_observer(lambda: replaced.append(projects(cluster.paths[2])))
        late.startService()
        cluster.logs[2] = late
        await until(lambda: replaced, what="the late node installed a snapshot")
        self.assertEqual(replaced, [[f"p{i}" for i in range(1, 6)]])
        # and it goes on from there with the log
        self.assertTrue((await late.submit(project(6)))["ok"])
        await until(lambda: all(projects(p) == [f"p{i}" for i in range(1, 7)]
                                for p in cluster.paths), what="every node has p1..p6")
        # a restart loads its own snapshot file without installing it again (the database
        # is already past it) and replays only what the database lacks
        await cluster.stop(2)
        again = RaftCommandLog(cluster.paths[2], reactor, cluster.settings(2))
        again.add_replaced_observer(lambda: replaced.append(["again"]))
        again.startService()
        cluster.logs[2] = again
        await cluster.leader_known()
        self.assertTrue((await again.submit(project(7)))["ok"])
        self.assertEqual(projects(cluster.paths[2]), [f"p{i}" for i in range(1, 8)])
        self.assertEqual(len(replaced), 1)


class SecretTests(TestCase):
    timeout = 60

    async def test_a_node_with_another_secret_cannot_join_and_both_sides_log_it(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        cluster = Cluster(self, 3, secrets=["ours", "ours", "not ours"])
        good = [cluster.start(0), cluster.start(1)]
        stranger = cluster.start(2)
        await cluster_leader_among(good)

        def refused_by(log: RaftCommandLog) -> bool:
            return any("does not decrypt" in str(e.get("log_format", ""))
                       and e.get("raft_node") == log.settings.self_address for e in events)

        await until(lambda: refused_by(stranger) and (refused_by(good[0]) or refused_by(good[1])),
                    what="both sides logged the refusal")
        self.assertIsNone(stranger.leader())
        self.assertEqual(stranger.status()["connected_peers"], "0")
        self.failureResultOf(stranger.submit(project(1)), NotAccepting)


async def cluster_leader_among(logs: list[RaftCommandLog]) -> None:
    await until(lambda: all(log.leader() is not None for log in logs),
                what="the nodes with the right secret elected a leader")
