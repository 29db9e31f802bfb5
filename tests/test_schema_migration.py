"""
Schema migrations: a data directory written by an earlier release opens, is migrated in
place at start and keeps every record; a file that lost something it had is refused as
before. Real sqlite files in temp dirs.

Version 2 (issue 9) moves the single previous signing secret of a project (two columns of
C{projects}) to the C{previous_signing_secrets} table (any number of rotations keep their
own grace) and adds the C{supervisor} table (an operator's halt survives a restart).

Version 3 (issue 10) adds C{credentials.project_ids} (credentials limited to projects);
the credentials a file already had stay node-wide.
"""

from __future__ import annotations

import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.domain import PreviousSecret, SupervisorHalt
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import DatabaseError, connect, database_path
from scheduler0.store.integrity import open_database
from scheduler0.store.reads import ScheduleReader, StateReader
from scheduler0.store.schema import SCHEMA, SCHEMA_VERSION, expected_tables
from scheduler0.store.service import StoreService

# The projects table as release 1 wrote it (schema version 1).
PROJECTS_V1 = """
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    signing_secret TEXT NOT NULL,
    previous_signing_secret TEXT,
    previous_secret_expires TEXT,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);
"""
# The credentials table as releases 1 and 2 wrote it (schema versions 1 and 2).
CREDENTIALS_V2 = """
CREATE TABLE credentials (
    id INTEGER PRIMARY KEY,
    api_key TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    date_created TEXT NOT NULL,
    date_modified TEXT NOT NULL
);
"""
AT = "2026-11-26T16:00:00.000Z"
ROTATED = "2026-11-26T16:30:00.000Z"
EXPIRES = "2026-11-27T16:30:00.000Z"


def version_1_file(testcase: SynchronousTestCase, user_version: int = 1) -> str:
    """A data dir's database as release 1 left it: two projects (one rotated, its old
    secret in its grace period), two jobs, one execution."""
    data_dir = testcase.mktemp()
    os.makedirs(data_dir)
    path = database_path(data_dir)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.executescript(
            "DROP TABLE previous_signing_secrets; DROP TABLE supervisor; DROP TABLE projects;"
            " DROP TABLE credentials;" + PROJECTS_V1 + CREDENTIALS_V2)
        conn.executescript(f"""
            INSERT INTO meta VALUES ('schema_version', '1');
            INSERT INTO projects VALUES (1, 'billing', '', 'whsec_new', 'whsec_old',
                                         '{EXPIRES}', '{AT}', '{ROTATED}');
            INSERT INTO projects VALUES (2, 'plain', '', 'whsec_plain', NULL, NULL,
                                         '{AT}', '{AT}');
            INSERT INTO jobs VALUES (1, 1, '@every 1m', 'http://127.0.0.1:3000/cb', NULL,
                                     'http', 'UTC', NULL, NULL, 0, 'fire_once', 60,
                                     '{AT}', '{AT}');
            INSERT INTO jobs VALUES (2, 2, '@every 1m', 'http://127.0.0.1:3000/cb', NULL,
                                     'http', 'UTC', NULL, NULL, 0, 'fire_once', 60,
                                     '{AT}', '{AT}');
            INSERT INTO executions (id, job_id, project_id, scheduled_time, state, attempts,
                                    target, node_id, date_created, date_modified)
            VALUES ('1-20261126T160100Z', 1, 1, '2026-11-26T16:01:00.000Z', 'succeeded', 1,
                    'http://127.0.0.1:3000', 1, '{AT}', '{AT}');
            INSERT INTO sequences VALUES ('projects', 2), ('jobs', 2);
            PRAGMA user_version = {user_version};
        """)
    finally:
        conn.close()
    return path


def columns(path: str) -> dict[str, tuple[str, ...]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: tuple(r[1] for r in conn.execute(f"PRAGMA table_info({n})")) for n in names}
    finally:
        conn.close()


def version_of(path: str) -> tuple[int, str]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


class MigrationTests(SynchronousTestCase):
    def assertMigrated(self, path: str) -> None:
        self.assertEqual(version_of(path), (SCHEMA_VERSION, str(SCHEMA_VERSION)))
        # the same tables and columns as a file this release creates
        self.assertEqual(columns(path), dict(expected_tables()))
        conn = connect(path)
        self.addCleanup(conn.close)
        schedule, state = ScheduleReader(conn), StateReader(conn)
        # the rotated project still signs with its old secret until it expires
        self.assertEqual(schedule.signing_secrets(1, "2026-11-27T16:29:59.000Z"),
                         ["whsec_new", "whsec_old"])
        self.assertEqual(schedule.signing_secrets(1, "2026-11-27T16:30:00.000Z"),
                         ["whsec_new"])
        self.assertEqual(state.signing_secret(1).previous,
                         (PreviousSecret(secret="whsec_old", expires=EXPIRES),))
        self.assertEqual(schedule.signing_secrets(2, AT), ["whsec_plain"])
        self.assertEqual([j.id for j in schedule.all_jobs()], [1, 2])
        self.assertEqual(state.execution("1-20261126T160100Z").state, "succeeded")
        self.assertEqual(state.sequence("jobs"), 2)
        self.assertIsNone(schedule.supervisor())

    def test_a_version_1_file_is_migrated_at_start_keeping_its_state(self) -> None:
        path = version_1_file(self)
        done = open_database(path)
        self.assertIn(f"no damage; migrated its schema from version 1 to {SCHEMA_VERSION}",
                      done)
        self.assertMigrated(path)
        # opening it again is a plain check
        self.assertNotIn("migrated", open_database(path))

    def test_the_store_service_opens_a_version_1_data_dir(self) -> None:
        path = version_1_file(self)
        store = StoreService(os.path.dirname(path))
        store.open()
        self.addCleanup(store.stopService)
        self.assertMigrated(path)

    def test_a_migrated_file_takes_new_rotations_and_halts(self) -> None:
        path = version_1_file(self)
        open_database(path)
        conn = connect(path)
        self.addCleanup(conn.close)
        results = apply_batch(conn, [
            Command("r", C.PROJECT_ROTATE_SECRET, "2026-11-26T17:00:00.000Z", {
                "id": 1, "secret": "whsec_newer", "previous_expires": "2026-11-26T18:00:00.000Z"}),
            Command("h", C.SUPERVISOR_SET, "2026-11-26T17:00:00.000Z", {
                "halted": True, "reason": "halted by an operator", "at": AT})])
        self.assertTrue(all(r["ok"] for r in results), results)
        self.assertEqual(ScheduleReader(conn).signing_secrets(1, "2026-11-26T17:30:00.000Z"),
                         ["whsec_newer", "whsec_new", "whsec_old"])
        self.assertEqual(ScheduleReader(conn).supervisor(),
                         SupervisorHalt(halted=True, reason="halted by an operator", at=AT))

    def test_a_file_without_user_version_at_version_1_is_migrated(self) -> None:
        path = version_1_file(self, user_version=0)
        open_database(path)
        self.assertMigrated(path)

    def test_past_the_size_bound_the_tables_it_has_are_checked_then_migrated(self) -> None:
        path = version_1_file(self)
        done = open_database(path, full_check_max_bytes=0)
        self.assertIn("every table but executions", done)
        self.assertIn("migrated", done)
        self.assertMigrated(path)

    def test_a_version_1_file_that_lost_a_column_it_had_is_refused(self) -> None:
        path = version_1_file(self)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("ALTER TABLE projects DROP COLUMN previous_secret_expires")
        conn.close()
        with self.assertRaises(DatabaseError) as caught:
            open_database(path)
        self.assertIn("has lost column(s) previous_secret_expires of table 'projects'",
                      str(caught.exception))
        self.assertEqual(version_of(path), (1, "1"))       # untouched

    def test_a_version_1_file_that_lost_a_table_is_refused(self) -> None:
        path = version_1_file(self)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("DROP TABLE credentials")
        conn.close()
        with self.assertRaises(DatabaseError) as caught:
            open_database(path)
        self.assertIn("has lost its table 'credentials'", str(caught.exception))
        self.assertEqual(version_of(path), (1, "1"))


SECRET_HASH = "0" * 64


def version_2_file(testcase: SynchronousTestCase) -> str:
    """A data dir's database as release 2 left it: a project and two credentials, one of
    them archived."""
    data_dir = testcase.mktemp()
    os.makedirs(data_dir)
    path = database_path(data_dir)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.executescript("DROP TABLE credentials;" + CREDENTIALS_V2)
        conn.executescript(f"""
            INSERT INTO meta VALUES ('schema_version', '2');
            INSERT INTO projects VALUES (1, 'billing', '', 'whsec_new', '{AT}', '{AT}');
            INSERT INTO credentials VALUES (1, 'key-one', '{SECRET_HASH}', 'read,write', 0,
                                            '{AT}', '{AT}');
            INSERT INTO credentials VALUES (2, 'key-two', '{SECRET_HASH}', 'admin', 1,
                                            '{AT}', '{AT}');
            INSERT INTO sequences VALUES ('projects', 1), ('credentials', 2);
            PRAGMA user_version = 2;
        """)
    finally:
        conn.close()
    return path


class CredentialProjectsMigrationTests(SynchronousTestCase):
    """Version 3: a release 2 data dir opens with its credentials, all still node-wide."""

    def test_a_version_2_file_is_migrated_and_its_credentials_stay_node_wide(self) -> None:
        path = version_2_file(self)
        done = open_database(path)
        self.assertIn(f"migrated its schema from version 2 to {SCHEMA_VERSION}", done)
        self.assertEqual(version_of(path), (SCHEMA_VERSION, str(SCHEMA_VERSION)))
        self.assertEqual(columns(path), dict(expected_tables()))
        conn = connect(path)
        self.addCleanup(conn.close)
        state = StateReader(conn)
        record, secret_hash = state.credential_for_key("key-one")
        self.assertEqual((record.scopes, record.project_ids, record.archived,
                          secret_hash), (("read", "write"), None, False, SECRET_HASH))
        self.assertEqual(state.credential(2).project_ids, None)
        self.assertTrue(state.credential(2).archived)
        # and it takes credentials limited to projects
        results = apply_batch(conn, [
            Command("c3", C.CREDENTIAL_CREATE, AT, {"credential": {
                "id": 3, "api_key": "key-three", "secret_hash": SECRET_HASH,
                "scopes": "read", "project_ids": [1]}}, version=2),
            Command("u1", C.CREDENTIAL_UPDATE, AT, {"id": 1, "changes": {
                "project_ids": [1]}}, version=2)])
        self.assertTrue(all(r["ok"] for r in results), results)
        self.assertEqual(state.credential(3).project_ids, (1,))
        self.assertEqual(state.credential(1).project_ids, (1,))
        self.assertNotIn("migrated", open_database(path))

    def test_a_version_2_file_that_lost_a_credentials_column_is_refused(self) -> None:
        path = version_2_file(self)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("ALTER TABLE credentials DROP COLUMN archived")
        conn.close()
        with self.assertRaises(DatabaseError) as caught:
            open_database(path)
        self.assertIn("has lost column(s) archived of table 'credentials'",
                      str(caught.exception))
        self.assertEqual(version_of(path), (2, "2"))

    def test_a_current_file_without_project_ids_is_refused(self) -> None:
        """Only an older file may lack the column its migration adds: a version 3 file
        without it lost it (a credential read from it would be node-wide)."""
        path = version_2_file(self)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.executescript(f"PRAGMA user_version = {SCHEMA_VERSION}; UPDATE meta SET "
                           f"value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';")
        conn.close()
        with self.assertRaises(DatabaseError) as caught:
            open_database(path)
        self.assertIn("has lost column(s) project_ids of table 'credentials'",
                      str(caught.exception))
