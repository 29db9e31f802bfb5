"""
A Raft snapshot taken off the reactor thread (scheduler0.consensus.raft_snapshot): while the
backup runs PySyncObj is told it is still serializing (no other snapshot, no journal
compaction), and the snapshot file appears whole, at once, when the backup is done. Real
sqlite files in temp dirs; the thread is a Deferred the test fires.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable

from pysyncobj.config import SERIALIZER_STATE
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.raft_snapshot import SqliteSnapshots, read_snapshot_meta
from scheduler0.store.service import StoreService

#: what PySyncObj hands the serializer: its last applied entry, the one before, the cluster
DATA = (("cmd", 42, 1), ("cmd", 41, 1), {"127.0.0.1:7001"})


class BackgroundSnapshotTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        store = StoreService(directory)
        store.startService()
        self.addCleanup(store.stopService)
        self.db = store.path
        self.final = os.path.join(directory, "raft.snapshot")
        self.jobs: list[tuple[Callable[[], None], Deferred]] = []

        def in_thread(work: Callable[[], None]) -> Deferred:
            d: Deferred = Deferred()
            self.jobs.append((work, d))
            return d

        self.snapshots = SqliteSnapshots(self.db, idle=lambda: True, local_index=lambda: 42,
                                         install=lambda path, index: None, in_thread=in_thread)

    def run_thread(self) -> None:
        (work, d), = self.jobs
        try:
            work()
        except Exception as e:
            d.errback(e)
        else:
            d.callback(None)

    def test_serializing_until_the_backup_is_in_place(self) -> None:
        self.snapshots.serialize(self.final + ".tmp", DATA)
        self.assertEqual(self.snapshots.check(), SERIALIZER_STATE.SERIALIZING)
        self.assertFalse(os.path.exists(self.final))  # nothing half-written in its place
        self.run_thread()
        self.assertEqual(self.snapshots.check(), SERIALIZER_STATE.SUCCESS)
        self.assertEqual(self.snapshots.check(), SERIALIZER_STATE.NOT_SERIALIZING)
        data, index = read_snapshot_meta(self.final)
        self.assertEqual((index, data[0][1]), (42, 42))
        tables = {row[0] for row in sqlite3.connect(self.final).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.assertIn("jobs", tables)
        self.assertFalse(os.path.exists(self.final + ".tmp"))

    def test_a_failed_backup_says_so_once_and_leaves_the_previous_snapshot(self) -> None:
        with open(self.final, "wb") as f:
            f.write(b"the previous snapshot")
        self.snapshots.serialize(self.final + ".tmp", DATA)
        (work, d), = self.jobs
        self.jobs = [(_disk_full, d)]  # the backup fails in its thread
        self.run_thread()
        self.assertEqual(self.snapshots.check(), SERIALIZER_STATE.FAILED)
        self.assertEqual(self.snapshots.check(), SERIALIZER_STATE.NOT_SERIALIZING)
        with open(self.final, "rb") as f:
            self.assertEqual(f.read(), b"the previous snapshot")
        self.flushLoggedErrors(OSError)


def _disk_full() -> Any:
    raise OSError("No space left on device")
