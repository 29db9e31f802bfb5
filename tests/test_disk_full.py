"""
Disk full, writer side (issue 8, item 8): a write that cannot be stored because the disk
is full is answered 507 with a message that says so, nothing of it is stored or recorded
as rejected, and writes succeed again by themselves once there is space.

The disk fills for real as far as sqlite can tell: C{PRAGMA max_page_count} on the writer
connection makes every write that needs a new page fail with SQLITE_FULL, exactly as a
full filesystem does.
"""

from __future__ import annotations

import sqlite3

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.interface import NotAccepting, StorageFull
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.store.database import storage_failure
from scheduler0.store.service import StoreService

from .harness import ApiHarness
from .test_state import job

AT = "2026-11-26T16:00:00.000Z"
FULL_MESSAGE = ("the disk holding the database is full; the write was not stored (free space "
                "on the node and retry)")


def fill_disk(conn: sqlite3.Connection) -> None:
    """From now on the database cannot grow by a single page."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def free_space(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


class ApiDiskFullTests(SynchronousTestCase):
    def test_writes_answer_507_while_the_disk_is_full_then_succeed_again(self) -> None:
        h = ApiHarness(self)
        project_id = h.project()["id"]
        body = [{"projectId": project_id, "spec": "*/5 * * * *", "data": "x" * 2000,
                 "callbackUrl": "http://127.0.0.1:3000/callback"} for _ in range(40)]
        writer = h.commands.applier.connection
        fill_disk(writer)

        code, envelope = h.request("POST", "/jobs", body)
        self.assertEqual((code, envelope["data"]), (507, FULL_MESSAGE))
        self.assertEqual(h.ok("GET", f"/jobs?projectId={project_id}")["total"], 0)

        free_space(writer)
        created = h.ok("POST", "/jobs", body, expect=201)
        self.assertEqual(len(created), 40)
        self.assertEqual(h.ok("GET", f"/jobs?projectId={project_id}")["total"], 40)


class CommandLogDiskFullTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = StoreService(self.mktemp())
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.log = LocalCommandLog(self.store.path, Clock(), threaded=False)
        self.successResultOf(self.log.startService())
        self.addCleanup(lambda: self.successResultOf(self.log.stopService()))
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.successResultOf(self.log.submit(Command("p", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": "a", "description": "", "signing_secret": "s"}})))

    def big(self, command_id: str, first: int) -> Command:
        return Command(command_id, C.JOB_CREATE, AT, {"jobs": [
            dict(job(i), data="x" * 2000) for i in range(first, first + 40)]})

    def test_the_command_fails_with_storage_full_and_is_not_recorded(self) -> None:
        fill_disk(self.log.applier.connection)
        failure = self.failureResultOf(self.log.submit(self.big("j", 1)), StorageFull)
        self.assertIsInstance(failure.value, NotAccepting)  # callers that retry see "not taken"
        self.assertEqual(str(failure.value), FULL_MESSAGE)
        free_space(self.log.applier.connection)
        # the same command id is applied now: the failure was not stored as its result
        self.assertEqual(self.successResultOf(self.log.submit(self.big("j", 1))),
                         {"ok": True, "count": 40, "first_id": 1})

    def test_logged_once_while_it_lasts_and_when_it_ends(self) -> None:
        fill_disk(self.log.applier.connection)
        for n in range(3):
            self.failureResultOf(self.log.submit(self.big(f"j{n}", 1 + 40 * n)), StorageFull)
        errors = [e for e in self.events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual(errors[0]["trouble"], "full")
        free_space(self.log.applier.connection)
        self.successResultOf(self.log.submit(self.big("j9", 1)))
        self.assertIn("the database takes writes again",
                      [e["log_format"] for e in self.events])


class ClassificationTests(SynchronousTestCase):
    """What fails a batch for a retry (storage) versus what rejects one command."""

    def test_storage_failures(self) -> None:
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        conn.execute("CREATE TABLE t (v)")
        conn.execute("PRAGMA max_page_count = 1")
        with self.assertRaises(sqlite3.OperationalError) as full:
            conn.execute("INSERT INTO t VALUES (randomblob(100000))")
        self.assertEqual(storage_failure(full.exception), "full")
        self.assertEqual(storage_failure(MemoryError()), "io")

    def test_command_failures(self) -> None:
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        for bad in (2 ** 63, [1]):
            try:
                conn.execute("SELECT ?", (bad,))
            except Exception as e:
                self.assertIsNone(storage_failure(e), e)
            else:
                self.fail(f"{bad!r} was bound")
        with self.assertRaises(sqlite3.OperationalError) as syntax:
            conn.execute("SELECT FROM")
        self.assertIsNone(storage_failure(syntax.exception))
