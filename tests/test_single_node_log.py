"""
A single node is a one-node Raft cluster (issue 12 item 14): its commands go through
PySyncObj and are read back from their JSON in the writer thread, as on every replica, with
no Raft port, no journal on disk and no wait for a tick. Real sqlite files in temp dirs.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.consensus.applier import CommandApplier
from scheduler0.consensus.local import AT_ONCE_ROWS, COMPACT_ENTRIES, LocalCommandLog
from scheduler0.consensus.raft_snapshot import stored_index
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.store.service import StoreService

from .test_applier import HeldWriter

AT = "2026-11-26T16:00:00.000Z"


def project(i: int) -> Command:
    return Command(f"p{i}", C.PROJECT_CREATE, AT, {"project": {
        "id": i, "name": f"p{i}", "description": "", "signing_secret": "s"}})


def job() -> dict:
    return {"project_id": 1, "spec": "@every 1m", "callback_url": "http://127.0.0.1:3000/cb",
            "data": None, "execution_type": "http", "timezone": "UTC", "start_date": None,
            "end_date": None, "paused": 0, "misfire_policy": "fire_once",
            "misfire_grace_seconds": 60}


def record(command_id: str = "outbox") -> Command:
    return Command(command_id, C.EXECUTION_RECORD, AT, {"records": []})


def stored(path: str) -> int:
    check = sqlite3.connect(path)
    try:
        return check.execute("SELECT count(*) FROM applied_commands").fetchone()[0]
    finally:
        check.close()


class Node:
    """A started single-node log, writing inline, on a Clock."""

    def __init__(self, testcase: SynchronousTestCase, path: str | None = None,
                 address: str = "127.0.0.1:7071") -> None:
        if path is None:
            store = StoreService(testcase.mktemp())
            store.startService()
            testcase.addCleanup(store.stopService)
            path = store.path
        self.path = path
        self.clock = Clock()
        self.log = LocalCommandLog(path, self.clock, node_id=1, address=address,
                                   threaded=False)
        testcase.successResultOf(self.log.startService())
        testcase.addCleanup(lambda: self.log.running and self.log.stopService())
        self.observed: list[Command] = []
        self.log.add_observer(lambda command, result: self.observed.append(command))


class OneNodeClusterTests(SynchronousTestCase):
    def test_it_leads_at_once_and_answers_before_submit_returns(self) -> None:
        node = Node(self)
        self.assertEqual(node.log.leader(), ("127.0.0.1:7071", "1"))
        self.assertEqual(self.successResultOf(node.log.submit(project(1))),
                         {"ok": True, "id": 1})
        status = node.log.status()
        self.assertEqual((status["state"], status["num_peers"]), ("Leader", "0"))
        self.assertEqual(status["applied_index"], status["last_log_index"])
        # no tick left to wait for, and no timer behind (proposals tick PySyncObj)
        self.assertEqual(node.clock.getDelayedCalls(), [])

    def test_it_binds_no_raft_port(self) -> None:
        # two single nodes with the same RaftAddress in one process: a bound port would
        # refuse the second
        first, second = Node(self), Node(self)
        self.assertEqual(self.successResultOf(first.log.submit(project(1)))["id"], 1)
        self.assertEqual(self.successResultOf(second.log.submit(project(1)))["id"], 1)

    def test_its_ticks_poll_nothing(self) -> None:
        # PySyncObj's tick ends with a poll of its sockets: a real poll, even of nothing,
        # lets go of the interpreter lock (to the writer thread), and asked to wait for
        # events it would sleep; a node with no transport returns at once
        node = Node(self)
        started = time.monotonic()
        node.log.node.doTick(5.0)
        self.assertLess(time.monotonic() - started, 4.0)
        self.assertEqual(self.successResultOf(node.log.submit(project(1)))["id"], 1)

    def test_what_is_applied_and_observed_is_the_command_read_back(self) -> None:
        node = Node(self)
        # a payload field JSON carries as an array: a replica would read a list back
        given = Command("p1", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": "p1", "description": "", "signing_secret": "s"}, "extra": (1, 2)})
        self.successResultOf(node.log.submit(given))
        self.successResultOf(node.log.submit(record()))  # the scheduler's records too
        self.assertEqual(node.observed, [Command.from_json(given.to_json()),
                                         Command.from_json(record().to_json())])
        self.assertIsNot(node.observed[1], record())

    def test_a_command_json_cannot_carry_is_refused_and_nothing_stored(self) -> None:
        node = Node(self)
        unwritable = Command("p1", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": b"bytes", "description": "", "signing_secret": "s"}})
        result = self.successResultOf(node.log.submit(unwritable))
        self.assertEqual((result["ok"], result["status"]), (False, 500))
        self.assertIn("cannot be carried as JSON", result["error"])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertEqual(self.successResultOf(node.log.submit(project(2))), {"ok": True, "id": 1})
        self.assertEqual(stored(node.path), 1)

    def test_a_command_proposed_by_an_observer_is_applied_after_the_one_it_saw(self) -> None:
        node = Node(self)
        answers: list[dict] = []

        def follow(command: Command, result: dict) -> None:
            if command.id == "p1":  # proposed while PySyncObj's tick applies p1
                node.log.submit(project(2)).addCallback(answers.append)

        node.log.add_observer(follow)
        self.assertEqual(self.successResultOf(node.log.submit(project(1)))["id"], 1)
        self.assertEqual(answers, [{"ok": True, "id": 2}])
        self.assertEqual([c.id for c in node.observed], ["p1", "p2"])

    def test_its_journal_stays_in_memory_and_small(self) -> None:
        node = Node(self)
        for i in range(1, COMPACT_ENTRIES * 3):
            self.assertTrue(self.successResultOf(node.log.submit(record(f"r{i}")))["ok"])
        assert node.log.node is not None
        self.assertLessEqual(node.log.node.getStatus()["log_len"], COMPACT_ENTRIES + 2)
        self.assertEqual(stored(node.path), COMPACT_ENTRIES * 3 - 1)

    def test_its_indices_are_not_stored_and_start_again(self) -> None:
        # a database a single node wrote may later start a cluster's first node: no stored
        # index may make that node skip the cluster's first entries as already applied
        node = Node(self)
        self.successResultOf(node.log.submit(project(1)))
        self.successResultOf(node.log.stopService())
        self.assertEqual(stored_index(node.path), 0)
        again = Node(self, node.path)
        self.assertEqual(self.successResultOf(again.log.submit(project(2)))["id"], 2)
        self.assertEqual(stored(node.path), 2)


class _WritesAtOnce:
    """A writer that runs the sqlite work at once but is not synchronous, as the
    daemon's thread is not: the log ticks PySyncObj as it does in the daemon."""

    synchronous = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, f, *args):  # type: ignore[no-untyped-def]
        return defer.maybeDeferred(f, *args)


class TicksTests(SynchronousTestCase):
    def setUp(self) -> None:
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        self.clock = Clock()
        self.log = LocalCommandLog(store.path, self.clock, applier=CommandApplier(
            store.path, self.clock, _WritesAtOnce(), store_index=False))
        self.successResultOf(self.log.startService())
        self.addCleanup(lambda: self.log.running and self.log.stopService())

    def test_the_schedulers_records_reach_the_writer_in_the_same_reactor_turn(self) -> None:
        # a callback waits for its outbox entry: the record may not wait for the turn's end
        self.assertTrue(self.successResultOf(self.log.submit(record()))["ok"])

    def test_the_api_writes_of_a_turn_share_one_entry_in_the_next(self) -> None:
        entries = int(self.log.status()["last_log_index"])
        first, second = self.log.submit(project(1)), self.log.submit(project(2))
        self.assertNoResult(first)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # one proposal for both
        self.clock.advance(0)
        self.assertEqual(int(self.log.status()["last_log_index"]), entries + 1)
        self.assertEqual(self.successResultOf(first)["id"], 1)
        self.clock.advance(0)  # results are handed back one per reactor turn
        self.assertEqual(self.successResultOf(second)["id"], 2)

    def test_a_large_api_write_goes_at_once(self) -> None:
        self.log.submit(project(1))
        self.clock.advance(0)
        self.clock.advance(0)
        small = Command("small", C.JOB_CREATE, AT, {"jobs": [job()] * (AT_ONCE_ROWS - 1)})
        big = Command("big", C.JOB_CREATE, AT, {"jobs": [job()] * AT_ONCE_ROWS})
        waits, goes = self.log.submit(small), self.log.submit(big)
        self.assertEqual(self.successResultOf(goes)["ok"], True)
        self.assertNoResult(waits)  # a small write waits for the turn's end
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(waits)["ok"], True)


class BusyWriterTests(SynchronousTestCase):
    def test_while_the_writer_is_busy_the_writes_of_later_turns_wait_for_it_in_one_entry(
            self) -> None:
        # it takes nothing before its batch is stored, and a proposal and a tick per turn
        # were most of what the log added to a write under load
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        clock, writer = Clock(), HeldWriter()
        log = LocalCommandLog(store.path, clock, applier=CommandApplier(
            store.path, clock, writer, store_index=False))
        started = log.startService()
        writer.release()  # the connection opens
        self.successResultOf(started)
        first = log.submit(project(1))
        clock.advance(0)
        self.assertEqual(writer.batch(), ["p1"])
        entries = int(log.status()["last_log_index"])
        second = log.submit(project(2))
        clock.advance(0)
        third = log.submit(project(3))
        clock.advance(0)
        self.assertEqual(int(log.status()["last_log_index"]), entries)  # both held
        writer.release()  # p1 stored: p2 and p3 go in one entry, into the next batch
        self.assertEqual(int(log.status()["last_log_index"]), entries + 1)
        self.assertEqual(writer.batch(), ["p2", "p3"])
        writer.release()
        while clock.getDelayedCalls():
            clock.advance(0)
        self.assertEqual([self.successResultOf(d)["id"] for d in (first, second, third)],
                         [1, 2, 3])
        stopped = log.stopService()
        writer.release()  # the connection closes
        self.successResultOf(stopped)


class WriterThreadTests(TestCase):
    @defer.inlineCallbacks
    def test_the_json_is_written_and_read_in_the_writer_thread_not_the_reactor(
            self):  # type: ignore
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        log = LocalCommandLog(store.path, reactor)
        readers: list[str] = []
        writers: list[str] = []
        read, write = Command.from_json.__func__, Command.to_json  # type: ignore[attr-defined]

        def from_json(cls, text):  # type: ignore[no-untyped-def]
            readers.append(threading.current_thread().name)
            return read(cls, text)

        def to_json(command):  # type: ignore[no-untyped-def]
            writers.append(threading.current_thread().name)
            return write(command)

        self.patch(Command, "from_json", classmethod(from_json))
        self.patch(Command, "to_json", to_json)
        yield log.startService()
        results = yield defer.gatherResults([log.submit(c) for c in
                                             (project(1), project(2), record())])
        yield log.stopService()
        self.assertEqual([r.get("id") for r in results[:2]], [1, 2])
        self.assertEqual((len(readers), len(writers)), (3, 3))
        self.assertNotIn(threading.current_thread().name, readers + writers)
