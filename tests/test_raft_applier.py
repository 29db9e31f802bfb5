"""
The applier as a Raft replica uses it (C{ordered=True}, issue 12 items 3 and 8): committed
entries are applied in log order, a batch that fails on storage is retried until it is
stored (never dropped: the entries are committed), the last applied Raft index is stored in
the batch's own transaction, and a whole-state replacement (a snapshot installed) runs in
order and tells the replaced observers. Real sqlite files, a held writer, a Clock.
"""

from __future__ import annotations

import pickle
import sqlite3

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.applier import CommandApplier
from scheduler0.consensus.raft_snapshot import (read_snapshot_meta, restore_from,
                                                stored_index, write_snapshot)
from scheduler0.store.service import StoreService

from .test_applier import HeldWriter, big, fill_disk, free_space, project, record


class Replica:
    def __init__(self, testcase: SynchronousTestCase, max_batch: int = 256) -> None:
        store = StoreService(testcase.mktemp())
        store.startService()
        testcase.addCleanup(store.stopService)
        self.path = store.path
        self.clock = Clock()
        self.writer = HeldWriter()
        self.applier = CommandApplier(self.path, self.clock, self.writer, max_batch=max_batch,
                                      ordered=True, retry_delay=1.0)
        self.seen: list[str] = []
        self.applier.add_observer(lambda command, result: self.seen.append(command.id))
        self.applier.start()
        self.writer.release()  # the connection opens

    def drain(self) -> None:
        while self.writer.held or self.clock.getDelayedCalls():
            if self.writer.held:
                self.writer.release()
            else:
                self.clock.advance(1.0)

    def projects(self) -> int:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute("SELECT count(*) FROM projects").fetchone()[0]
        finally:
            conn.close()


class EncodedEntryTests(SynchronousTestCase):
    """Raft entries arrive as their JSON text and are read back by the writer."""

    def test_entries_are_applied_in_order_and_settled_after_the_observers(self) -> None:
        r = Replica(self)
        events: list[str] = []
        r.applier.add_observer(lambda command, result: events.append(f"saw {command.id}"))
        r.applier.on_settled(lambda command, result: events.append(
            f"settled {command.id} {result['id']}"))
        for i in (1, 2):
            r.applier.apply_encoded(project(i).to_json(), i + 1)
        r.drain()
        self.assertEqual(events, ["saw p1", "settled p1 1", "saw p2", "settled p2 2"])
        self.assertEqual(stored_index(r.path), 3)

    def test_an_index_counts_as_observed_only_once_the_observers_saw_its_entry(self) -> None:
        # a restarted node executes its share only once it has seen the assignments up to
        # the leader's commit index: stored is not enough
        r = Replica(self)
        for i in (1, 2, 3):
            r.applier.apply_encoded(project(i).to_json(), i + 1)
        r.writer.release()  # p1 alone
        self.assertEqual((r.applier.applied_index, r.applier.observed_index), (2, 2))
        r.writer.release()  # p2 and p3 stored in one batch, handed back one per turn
        self.assertEqual((r.applier.applied_index, r.applier.observed_index, r.seen),
                         (4, 3, ["p1", "p2"]))
        r.clock.advance(0)
        self.assertEqual((r.applier.observed_index, r.seen), (4, ["p1", "p2", "p3"]))
        r.applier.apply_encoded("not json", 5)
        r.drain()
        self.flushLoggedErrors(ValueError)
        self.assertEqual(r.applier.observed_index, 5)

    def test_an_entry_that_is_not_a_command_is_skipped_and_its_index_stored(self) -> None:
        r = Replica(self)
        r.applier.apply_encoded('{"not": "a command"}', 2)
        r.applier.apply_encoded(project(1).to_json(), 3)
        r.drain()
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(r.seen, ["p1"])
        self.assertEqual((r.projects(), stored_index(r.path)), (1, 3))


class LogOrderTests(SynchronousTestCase):
    def test_execution_records_do_not_jump_ahead_of_earlier_entries(self) -> None:
        r = Replica(self, max_batch=3)
        r.applier.apply(project(1), 2)
        r.applier.apply(project(2), 3)
        r.applier.apply(record(), 4)
        r.writer.release()  # p1 alone
        # the single-node applier would put the record first here
        self.assertEqual(r.writer.batch(), ["p2", "outbox"])
        r.drain()
        self.assertEqual(r.seen, ["p1", "p2", "outbox"])

    def test_the_last_index_of_each_batch_is_stored_with_it(self) -> None:
        r = Replica(self)
        self.assertEqual(stored_index(r.path), 0)
        r.applier.apply(project(1), 5)
        r.writer.release()
        self.assertEqual((stored_index(r.path), r.applier.applied_index), (5, 5))
        r.applier.apply(project(2), 6)
        r.applier.apply(project(3), 7)
        r.drain()
        self.assertEqual((stored_index(r.path), r.projects()), (7, 3))


class StorageFailureTests(SynchronousTestCase):
    def test_a_committed_batch_that_fails_on_storage_is_retried_not_dropped(self) -> None:
        r = Replica(self)
        first = r.applier.apply(project(1), 2)
        r.writer.release()
        self.successResultOf(first)
        fill_disk(r.applier.connection)
        waiting = [r.applier.apply(big(2), 3), r.applier.apply(big(3), 4)]
        r.writer.release()  # fails: the disk is full
        for d in waiting:
            self.assertNoResult(d)  # not failed: a replica cannot skip committed entries
        self.assertEqual(r.writer.held, [])  # waits before trying again
        r.clock.advance(1.0)
        r.writer.release()  # still full
        free_space(r.applier.connection)
        r.clock.advance(1.0)
        r.writer.release()
        r.clock.advance(0)  # the second result is handed back on the next turn
        self.assertEqual([self.successResultOf(d)["id"] for d in waiting], [2, 3])
        self.assertEqual((r.seen, stored_index(r.path)), (["p1", "p2", "p3"], 4))

    def test_stopping_gives_up_a_batch_waiting_to_be_retried(self) -> None:
        r = Replica(self)
        fill_disk(r.applier.connection)
        d = r.applier.apply(big(1), 2)
        r.writer.release()
        stopped = r.applier.stop()
        r.drain()
        self.successResultOf(stopped)
        self.failureResultOf(d)
        self.assertEqual(stored_index(r.path), 0)  # the journal keeps the entry


class ReplaceStateTests(SynchronousTestCase):
    def test_a_snapshot_replaces_the_state_in_order_then_observers_are_told(self) -> None:
        source = Replica(self)
        for i in range(1, 4):
            source.applier.apply(project(i), i + 1)
        source.drain()
        snapshot = self.mktemp()
        write_snapshot(source.path, snapshot, 9, pickle.dumps("pysyncobj's data"))
        self.assertEqual(read_snapshot_meta(snapshot), ("pysyncobj's data", 9))

        r = Replica(self)
        replaced: list[int] = []
        r.applier.add_replaced_observer(lambda: replaced.append(r.projects()))
        r.applier.apply(project(7), 2)
        done = r.applier.replace_state(restore_from(_copy(snapshot)), 9)
        r.applier.apply(project(8), 10)
        r.drain()
        self.successResultOf(done)
        # p7 was applied before the snapshot replaced everything; p8 after it
        self.assertEqual(r.seen, ["p7", "p8"])
        self.assertEqual(replaced, [3])
        self.assertEqual((r.projects(), stored_index(r.path)), (4, 10))


def _copy(path: str) -> str:
    copy = path + ".copy"
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    return copy
