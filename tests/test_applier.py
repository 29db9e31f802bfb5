"""
The applier on its own (issue 12, item 1): what a committed command goes through whichever
log committed it. Real sqlite files in temp dirs; the writer inline, held by the test (a
batch "in flight" for as long as the test wants), or the real writer thread.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.consensus.applier import CommandApplier, InlineWriter, ThreadWriter
from scheduler0.consensus.interface import NotAccepting, StorageFull
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.store.service import StoreService

AT = "2026-11-26T16:00:00.000Z"


def fill_disk(conn: sqlite3.Connection) -> None:
    """From now on the database cannot grow by a single page (SQLITE_FULL, as a full disk)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def free_space(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


def project(i: int, description: str = "") -> Command:
    return Command(f"p{i}", C.PROJECT_CREATE, AT, {"project": {
        "id": i, "name": f"p{i}", "description": description, "signing_secret": "s"}})


def big(i: int) -> Command:
    """A command that needs new pages, so it fails while the disk is full."""
    return project(i, description="x" * 20_000)


def record(command_id: str = "outbox") -> Command:
    return Command(command_id, C.EXECUTION_RECORD, AT, {"records": []})


class HeldWriter:
    """Runs the sqlite work for real, in order, but only when the test releases it."""

    synchronous = False

    def __init__(self) -> None:
        self.held: list[tuple[Callable[..., Any], tuple, Deferred]] = []
        self.stopped = False

    def start(self) -> None:
        pass

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self.held.append((f, args, d))
        return d

    def stop(self) -> None:
        self.stopped = True

    def release(self) -> None:
        f, args, d = self.held.pop(0)
        try:
            result = f(*args)
        except Exception:
            d.errback()
        else:
            d.callback(result)

    def batch(self) -> list[str]:
        """The ids of the commands of the batch waiting to be written (a single node's
        entries carry theirs unencoded)."""
        (_, args, _), = self.held
        return [getattr(entry, "command", entry).id for entry in args[1]]


class Harness:
    def __init__(self, testcase: SynchronousTestCase, max_batch: int = 256,
                 held: bool = True, start: bool = True) -> None:
        store = StoreService(testcase.mktemp())
        store.startService()
        testcase.addCleanup(store.stopService)
        self.path = store.path
        self.clock = Clock()
        self.writer = HeldWriter() if held else InlineWriter()
        self.applier = CommandApplier(self.path, self.clock, self.writer, max_batch=max_batch)
        self.seen: list[str] = []
        self.applier.add_observer(lambda command, result: self.seen.append(command.id))
        if start:
            self.applier.start()
            if held:
                self.writer.release()  # the connection opens

    def turns(self) -> None:
        """Let the reactor take every turn it has scheduled."""
        while self.clock.getDelayedCalls():
            self.clock.advance(0)

    def stored(self) -> int:
        check = sqlite3.connect(self.path)
        try:
            return check.execute("SELECT count(*) FROM applied_commands").fetchone()[0]
        finally:
            check.close()


class OrderTests(SynchronousTestCase):
    def test_observers_see_every_command_in_apply_order_across_batches(self) -> None:
        h = Harness(self, max_batch=3)
        second: list[str] = []
        h.applier.add_observer(lambda command, result: second.append(command.id))
        results: dict[int, dict] = {}
        for i in range(1, 11):
            h.applier.apply(project(i)).addCallback(lambda r, i=i: results.update({i: r}))
        while h.writer.held:
            h.writer.release()
            h.turns()
        expected = [f"p{i}" for i in range(1, 11)]
        self.assertEqual(h.seen, expected)
        self.assertEqual(second, expected)
        # each caller got its own command's result
        self.assertEqual({i: r["id"] for i, r in results.items()}, {i: i for i in range(1, 11)})
        self.assertEqual(h.applier.applied, 10)

    def test_a_failing_observer_neither_stops_the_others_nor_the_caller(self) -> None:
        h = Harness(self, held=False)

        def fails(command: Command, result: dict) -> None:
            raise RuntimeError("observer bug")

        after: list[str] = []
        h.applier.add_observer(fails)
        h.applier.add_observer(lambda command, result: after.append(command.id))
        self.assertTrue(self.successResultOf(h.applier.apply(project(1)))["ok"])
        self.assertEqual((h.seen, after), (["p1"], ["p1"]))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_results_are_handed_back_one_per_reactor_turn(self) -> None:
        h = Harness(self)
        for i in range(1, 4):
            h.applier.apply(project(i))  # the first goes alone, the others wait
        h.writer.release()
        h.writer.release()
        self.assertEqual(h.seen, ["p1", "p2"])
        h.clock.advance(0)
        self.assertEqual(h.seen, ["p1", "p2", "p3"])


class UrgentTests(SynchronousTestCase):
    def test_urgent_commands_go_first_in_the_next_batch(self) -> None:
        h = Harness(self, max_batch=3)
        for i in range(1, 6):
            h.applier.apply(project(i))
        h.applier.apply(record())
        h.writer.release()  # p1 was in the writer's hands alone
        self.assertEqual(h.writer.batch(), ["outbox", "p2", "p3"])
        while h.writer.held:
            h.writer.release()
            h.turns()
        self.assertEqual(h.seen, ["p1", "outbox", "p2", "p3", "p4", "p5"])

    def test_urgent_results_are_handed_back_ahead_of_an_earlier_batch(self) -> None:
        h = Harness(self)
        answered: list[str] = []
        for i in range(1, 5):
            h.applier.apply(project(i)).addCallback(lambda _, i=i: answered.append(f"p{i}"))
        h.writer.release()  # p1 alone
        self.assertEqual(h.writer.batch(), ["p2", "p3", "p4"])
        h.applier.apply(record()).addCallback(lambda _: answered.append("outbox"))
        h.writer.release()  # p2..p4 applied: p2 handed back, the others wait for turns
        self.assertEqual(answered, ["p1", "p2"])
        h.writer.release()  # the record, applied after them, overtakes them
        self.assertEqual(answered, ["p1", "p2", "outbox", "p3"])
        h.turns()
        self.assertEqual(answered, ["p1", "p2", "outbox", "p3", "p4"])


class StorageFailureTests(SynchronousTestCase):
    def test_a_full_disk_fails_each_command_of_the_batch_with_storage_full(self) -> None:
        h = Harness(self)
        self.successResultOf(self._applied(h, project(1)))
        fill_disk(h.applier.connection)
        first = h.applier.apply(big(2))
        rest = [h.applier.apply(big(3)), h.applier.apply(big(4))]
        h.writer.release()
        self.assertEqual(h.writer.batch(), ["p3", "p4"])
        h.writer.release()
        for d in [first] + rest:
            self.failureResultOf(d, StorageFull)
        self.assertEqual((h.seen, h.stored(), h.applier.applied), (["p1"], 1, 1))
        # not stored as a result: once there is room the same command is applied
        free_space(h.applier.connection)
        retried = self._applied(h, big(3))
        # (the failed batch took no id: ids are chosen inside the transaction that failed)
        self.assertEqual(self.successResultOf(retried), {"ok": True, "id": 2})

    def test_a_result_goes_to_the_caller_of_its_own_application(self) -> None:
        """
        The same command id applied twice: the first application's result (still waiting
        for its reactor turn) goes to the first caller, the second's failure to the second.
        """
        h = Harness(self)
        first = [h.applier.apply(project(i)) for i in (1, 2, 3)]
        h.writer.release()  # p1 alone
        again = [h.applier.apply(big(9)), h.applier.apply(project(3))]
        h.writer.release()  # p2 handed back, p3 waits for its turn
        self.assertEqual(h.writer.batch(), ["p9", "p3"])
        fill_disk(h.applier.connection)
        h.writer.release()
        for d in again:
            self.failureResultOf(d, StorageFull)
        h.turns()
        self.assertEqual(self.successResultOf(first[2]), {"ok": True, "id": 3})
        self.assertEqual(h.seen, ["p1", "p2", "p3"])

    def _applied(self, h: Harness, command: Command) -> Deferred:
        d = h.applier.apply(command)
        h.writer.release()
        h.turns()
        return d


class DrainTests(SynchronousTestCase):
    def test_stop_waits_for_the_batch_in_flight_and_what_waits_behind_it(self) -> None:
        h = Harness(self)
        answered: list[str] = []
        for i in range(1, 5):
            h.applier.apply(project(i)).addCallback(lambda _, i=i: answered.append(f"p{i}"))
        stopped = h.applier.stop()
        h.writer.release()  # p1
        h.writer.release()  # p2..p4, handed back one per turn
        self.assertNoResult(stopped)
        h.clock.advance(0)
        self.assertNoResult(stopped)
        h.turns()
        self.assertEqual(answered, ["p1", "p2", "p3", "p4"])
        self.assertNoResult(stopped)  # the connection closes in the writer
        h.writer.release()
        self.successResultOf(stopped)
        self.assertIsNone(h.applier.connection)
        self.assertTrue(h.writer.stopped)
        self.assertEqual(h.stored(), 4)


class ThreadedTests(TestCase):
    """The real writer thread and the real reactor."""

    @defer.inlineCallbacks
    def test_stop_drains_in_order_through_the_writer_thread(self):  # type: ignore[no-untyped-def]
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        applier = CommandApplier(store.path, reactor, ThreadWriter(reactor), max_batch=7)
        seen: list[str] = []
        applier.add_observer(lambda command, result: seen.append(command.id))
        yield applier.start()
        answered: list[str] = []
        for i in range(1, 51):
            applier.apply(project(i)).addCallback(lambda r, i=i: answered.append(r["id"]))
        yield applier.stop()
        self.assertEqual(seen, [f"p{i}" for i in range(1, 51)])
        self.assertEqual(answered, list(range(1, 51)))
        self.assertEqual(store.reader.projects(1, 0)[1], 50)


class LocalLogTests(SynchronousTestCase):
    """The single-node log around a given applier: it only decides what to take."""

    def test_a_given_applier_is_started_fed_and_stopped_by_the_log(self) -> None:
        h = Harness(self, held=False, start=False)
        commands = LocalCommandLog(h.path, h.clock, applier=h.applier, max_pending=1)
        self.successResultOf(commands.startService())
        self.assertEqual(self.successResultOf(commands.submit(project(1))), {"ok": True, "id": 1})
        self.assertEqual(h.seen, ["p1"])
        status = commands.status()
        self.assertEqual((status["state"], status["num_peers"]), ("Leader", "0"))
        self.assertEqual(status["applied_index"], status["last_log_index"])
        self.successResultOf(commands.stopService())
        self.assertIsNone(h.applier.connection)
        self.failureResultOf(commands.submit(project(2)), NotAccepting)
