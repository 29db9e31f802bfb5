"""
The start-up check of the database file (issue 8, item 6): a damaged file, a file of
another schema version or an empty file where there was state is refused with one line
naming the file and what to do, and never started empty over; a new data dir and a file
written before C{user_version} was used still open. Real sqlite files in temp dirs.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import DatabaseError, connect, database_path
from scheduler0.store.integrity import open_database
from scheduler0.store.schema import SCHEMA_VERSION
from scheduler0.store.service import StoreService

from .test_state import job

AT = "2026-11-26T16:00:00.000Z"
JOBS = 600


def populate(data_dir: str, jobs: int = JOBS) -> str:
    """A database in C{data_dir} with a project and C{jobs} jobs, as a node would have left
    it (closed, the WAL checkpointed into the file); returns the file."""
    store = StoreService(data_dir)
    store.open()
    conn = connect(store.path)
    apply_batch(conn, [
        Command("p", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": "billing", "description": "", "signing_secret": "s"}}),
        Command("j", C.JOB_CREATE, AT, {"jobs": [
            dict(job(i), data="x" * 200) for i in range(1, jobs + 1)]}),
    ])
    conn.close()
    store.stopService()  # the last connection's close checkpoints the WAL into the file
    assert not os.path.exists(store.path + "-wal")
    return store.path


def populated(testcase: SynchronousTestCase) -> str:
    """A data dir whose database holds a project and L{JOBS} jobs; returns the file."""
    return populate(testcase.mktemp())


def sql(path: str, *statements: str) -> list[tuple]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        rows: list[tuple] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
        return rows
    finally:
        conn.close()


def overwrite_page(path: str, page: int) -> None:
    """Replace one page of the file with (deterministic) garbage."""
    size = sql(path, "PRAGMA page_size")[0][0]
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(random.Random(page).randbytes(size))


def root_page(path: str, name: str) -> int:
    return sql(path, f"SELECT rootpage FROM sqlite_master WHERE name = '{name}'")[0][0]


def snapshot(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class RefusedTests(SynchronousTestCase):
    """Each kind of damage: refused in one line naming the file, and the file is left as is."""

    def refused(self, path: str, *fragments: str) -> str:
        before = snapshot(path) if os.path.isfile(path) else None
        with self.assertRaises(DatabaseError) as caught:
            StoreService(os.path.dirname(path)).open()
        message = str(caught.exception)
        self.assertEqual(len(message.splitlines()), 1, message)
        self.assertIn(path, message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        if before is not None:
            self.assertEqual(snapshot(path), before, "the refused file was changed")
        return message

    def test_corrupted_middle_page(self) -> None:
        path = populated(self)
        pages = os.path.getsize(path) // sql(path, "PRAGMA page_size")[0][0]
        overwrite_page(path, pages // 2)
        self.refused(path, "is damaged", "restore it from a backup")

    def test_corrupted_index(self) -> None:
        path = populated(self)
        overwrite_page(path, root_page(path, "jobs_by_project"))
        self.refused(path, "is damaged (quick_check: ", "restore it from a backup")

    def test_truncated_file(self) -> None:
        path = populated(self)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2 + 100)
        self.refused(path, "is damaged", "restore it from a backup")

    def test_damaged_header(self) -> None:
        path = populated(self)
        with open(path, "r+b") as f:
            f.write(b"not a database!!")
        self.refused(path, "is not a sqlite database")

    def test_directory_in_place_of_the_file(self) -> None:
        path = populated(self)
        os.remove(path)
        os.mkdir(path)
        self.refused(path, "is not a regular file")

    def test_empty_file_is_not_started_empty(self) -> None:
        path = populated(self)
        open(path, "w").close()
        message = self.refused(path, "is empty (0 bytes)", "restore it from a backup",
                               "delete it to start a node with no jobs")
        self.assertEqual(os.path.getsize(path), 0, message)

    def test_dropped_table_is_not_recreated_empty(self) -> None:
        path = populated(self)
        sql(path, "DROP TABLE jobs")
        self.refused(path, "has lost its table 'jobs'")
        self.assertEqual(sql(path, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'"),
                         [(0,)])

    def test_dropped_column(self) -> None:
        path = populated(self)
        sql(path, "ALTER TABLE jobs DROP COLUMN data")
        self.refused(path, "has lost column(s) data of table 'jobs'")

    def test_newer_schema_version(self) -> None:
        path = populated(self)
        sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        self.refused(path, f"has schema version {SCHEMA_VERSION + 1} and this release reads "
                     f"version {SCHEMA_VERSION}", "run the release that wrote it")

    def test_unknown_version_in_a_file_without_user_version(self) -> None:
        path = populated(self)
        sql(path, "PRAGMA user_version = 0",
            "UPDATE meta SET value = '7' WHERE key = 'schema_version'")
        self.refused(path, "has schema version 7")

    def test_another_applications_database(self) -> None:
        path = database_path(self.mktemp())
        os.makedirs(os.path.dirname(path))
        sql(path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        self.refused(path, "is not a Scheduler0 database")

    def test_deleted_file_whose_write_ahead_log_had_state(self) -> None:
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        path = database_path(data_dir)
        with open(path + "-wal", "wb") as f:
            f.write(b"\x37\x7f\x06\x82" + b"\0" * 1000)
        self.refused(path, "is missing but its write-ahead log")
        self.assertFalse(os.path.exists(path))


class AcceptedTests(SynchronousTestCase):
    def test_new_data_dir_gets_a_versioned_database(self) -> None:
        data_dir = self.mktemp()
        store = StoreService(data_dir)
        store.open()
        store.stopService()
        path = database_path(data_dir)
        self.assertEqual(sql(path, "PRAGMA user_version"), [(SCHEMA_VERSION,)])
        self.assertEqual(sql(path, "SELECT value FROM meta WHERE key = 'schema_version'"),
                         [(str(SCHEMA_VERSION),)])
        self.assertEqual(sorted(os.listdir(data_dir)), ["scheduler0.db"])

    def test_reopening_keeps_the_state(self) -> None:
        path = populated(self)
        store = StoreService(os.path.dirname(path))
        store.open()
        self.addCleanup(store.stopService)
        self.assertEqual(sql(path, "SELECT count(*) FROM jobs"), [(JOBS,)])

    def test_file_without_user_version_is_accepted_and_marked(self) -> None:
        path = populated(self)
        sql(path, "PRAGMA user_version = 0")  # as the first release wrote it: meta row only
        self.assertIn("no damage", open_database(path))
        self.assertEqual(sql(path, "PRAGMA user_version"), [(SCHEMA_VERSION,)])
        self.assertEqual(sql(path, "SELECT count(*) FROM jobs"), [(JOBS,)])

    def test_a_lost_index_is_rebuilt(self) -> None:
        path = populated(self)
        sql(path, "DROP INDEX jobs_by_project")
        open_database(path)
        self.assertEqual(sql(path, "SELECT count(*) FROM sqlite_master "
                                   "WHERE name = 'jobs_by_project'"), [(1,)])

    def test_a_sqlite_file_with_no_tables_is_initialised(self) -> None:
        path = database_path(self.mktemp())
        os.makedirs(os.path.dirname(path))
        sql(path, "PRAGMA user_version = 0", "VACUUM")  # a valid, empty sqlite file
        self.assertGreater(os.path.getsize(path), 0)
        open_database(path)
        self.assertEqual(sql(path, "PRAGMA user_version"), [(SCHEMA_VERSION,)])

    def test_a_creation_cut_short_leaves_no_database(self) -> None:
        """The new file is made under a temporary name: a crash while making it leaves
        that, never an empty or half-made scheduler0.db, and the next start replaces it."""
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        path = database_path(data_dir)
        with open(path + ".new", "wb") as f:
            f.write(b"SQLite format 3\0 half written")
        self.assertEqual(open_database(path), "created a new database")
        self.assertEqual(sorted(os.listdir(data_dir)), ["scheduler0.db"])
        self.assertEqual(sql(path, "PRAGMA quick_check"), [("ok",)])


class BoundedCheckTests(SynchronousTestCase):
    """Past the size bound, every table but the execution history is still checked."""

    def test_damage_outside_the_execution_history_is_still_found(self) -> None:
        path = populated(self)
        overwrite_page(path, root_page(path, "jobs"))
        with self.assertRaises(DatabaseError) as caught:
            open_database(path, full_check_max_bytes=0)
        self.assertIn("is damaged", str(caught.exception))

    def test_the_log_says_what_was_checked(self) -> None:
        path = populated(self)
        copy = path + ".copy"
        shutil.copyfile(path, copy)
        self.assertIn("every table but executions", open_database(path, full_check_max_bytes=0))
        self.assertIn("the whole file", open_database(copy))
