"""
C{scheduler0 backup} and C{scheduler0 restore} (issue 14 item 4) on real sqlite files in
temp dirs: a backup taken beside a writer is one consistent state holding everything
committed before it started; the file is private and never half-written; a restore seeds
only a data directory without state, nobody else's, from a sound backup of a schema this
release reads (an older one migrated), opened by this node's SecretKey, and forgets the
source's Raft position. The end-to-end drills are in
L{tests.integration.test_backup_restore}.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.secrets_at_rest import SigningSecretBox
from scheduler0.store.backup import BackupError, restore_backup, take_backup
from scheduler0.store.database import (SCHEMA_VERSION, connect, create_database,
                                       database_path)
from scheduler0.store.integrity import open_database
from scheduler0.store.lock import DataDirInUse, DataDirLock
from scheduler0.store.reads import ScheduleReader, StateReader

from .cli_fixtures import run
from .test_schema_migration import version_1_file, version_of

AT = "2026-11-30T12:00:00.000Z"
KEY = "the node's secret key"


def new_data_dir(testcase: SynchronousTestCase) -> str:
    data_dir = os.path.abspath(testcase.mktemp())
    os.makedirs(data_dir)
    create_database(database_path(data_dir))
    return data_dir


def add_project(conn: sqlite3.Connection, project_id: int, key: str = KEY) -> None:
    sealed = SigningSecretBox(key).seal(project_id, f"whsec_{project_id}")
    conn.execute("INSERT INTO projects VALUES (?, ?, '', ?, ?, ?)",
                 (project_id, f"project-{project_id}", sealed, AT, AT))


def add_job(conn: sqlite3.Connection, job_id: int) -> None:
    """One job with one execution and the jobs sequence at its id, in one transaction: a
    consistent copy has as many of each as the sequence says."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO jobs VALUES (?, 1, '@every 1m', 'http://127.0.0.1:3000/cb', "
                 "NULL, 'http', 'UTC', NULL, NULL, 0, 'fire_once', 60, ?, ?)",
                 (job_id, AT, AT))
    conn.execute("INSERT INTO executions (id, job_id, project_id, scheduled_time, state, "
                 "attempts, target, node_id, date_created, date_modified) VALUES "
                 "(?, ?, 1, ?, 'succeeded', 1, 'http://127.0.0.1:3000', 1, ?, ?)",
                 (f"{job_id}-20261130T120000Z", job_id, AT, AT, AT))
    conn.execute("INSERT OR REPLACE INTO sequences VALUES ('jobs', ?)", (job_id,))
    conn.execute("COMMIT")


def populated(testcase: SynchronousTestCase, jobs: int = 3, raft_index: int | None = None,
              key: str = KEY) -> str:
    """A data dir with one project (its secret sealed with C{key}) and C{jobs} jobs."""
    data_dir = new_data_dir(testcase)
    conn = connect(database_path(data_dir))
    try:
        add_project(conn, 1, key)
        for job_id in range(1, jobs + 1):
            add_job(conn, job_id)
        if raft_index is not None:
            conn.execute("INSERT INTO raft_applied VALUES (1, ?)", (raft_index,))
    finally:
        conn.close()
    return data_dir


def invariant(path: str) -> tuple[int, int, int]:
    """(jobs, executions, the jobs sequence) in C{path}."""
    conn = sqlite3.connect(path)
    try:
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        executions = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
        row = conn.execute("SELECT last FROM sequences WHERE name = 'jobs'").fetchone()
    finally:
        conn.close()
    return jobs, executions, row[0] if row else 0


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def with_umask(testcase: SynchronousTestCase, value: int) -> None:
    testcase.addCleanup(os.umask, os.umask(value))


class Writer(threading.Thread):
    """Adds jobs one transaction at a time through its own connection until stopped."""

    def __init__(self, path: str, first: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.committed = first - 1
        self.stop = threading.Event()
        self.going = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = connect(self.path, check_same_thread=False)
            try:
                while not self.stop.is_set():
                    add_job(conn, self.committed + 1)
                    self.committed += 1
                    self.going.set()
            finally:
                conn.close()
        except BaseException as e:  # reported by the test
            self.error = e
            self.going.set()


class BackupTests(SynchronousTestCase):
    def test_a_backup_beside_a_writer_is_consistent_and_has_every_commit_before_it(self) -> None:
        """The node keeps writing (another connection, another thread) while the backup
        runs: the copy is one transaction-consistent state, with at least every job
        committed before the backup started (a copy of the file alone misses those still in
        the write-ahead log) and at most those committed before it ended."""
        data_dir = populated(self, jobs=2000)
        writer = Writer(database_path(data_dir), first=2001)
        writer.start()
        self.addCleanup(writer.join, 30)
        self.addCleanup(writer.stop.set)
        self.assertTrue(writer.going.wait(30))
        target = os.path.join(self.mktemp() + "-backup.db")
        before = writer.committed
        saved = take_backup(database_path(data_dir), target)
        after = writer.committed
        writer.stop.set()
        writer.join(30)
        self.assertIsNone(writer.error)
        jobs, executions, sequence = invariant(target)
        self.assertEqual((jobs, executions), (sequence, sequence))
        self.assertGreaterEqual(jobs, before)
        self.assertLessEqual(jobs, after)
        self.assertGreater(writer.committed, before)  # it kept writing
        self.assertEqual((saved.jobs, saved.executions, saved.projects), (jobs, jobs, 1))
        self.assertEqual(saved.schema_version, SCHEMA_VERSION)
        self.assertIsNone(saved.raft_index)

    def test_the_backup_is_one_private_file_and_no_temporary_is_left(self) -> None:
        with_umask(self, 0o022)
        data_dir = populated(self, raft_index=41)
        target = os.path.abspath(self.mktemp())
        saved = take_backup(database_path(data_dir), target)
        self.assertEqual(mode(target), 0o600)
        self.assertEqual(saved.raft_index, 41)
        for leftover in (".tmp", "-wal", "-journal", ".tmp-journal"):
            self.assertFalse(os.path.exists(target + leftover), leftover)
        conn = sqlite3.connect(target)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual(conn.execute("PRAGMA quick_check").fetchone()[0], "ok")

    def test_the_backup_of_a_stopped_node_leaves_its_data_dir_as_it_was(self) -> None:
        data_dir = populated(self)
        before = sorted(os.listdir(data_dir))
        take_backup(database_path(data_dir), os.path.abspath(self.mktemp()))
        self.assertEqual(sorted(os.listdir(data_dir)), before)

    def test_an_existing_file_is_replaced_only_with_force(self) -> None:
        data_dir = populated(self)
        target = os.path.abspath(self.mktemp())
        with open(target, "w") as f:
            f.write("last week's backup")
        result = run(["backup", "--to", target, "--data-dir", data_dir])
        self.assertEqual(result.status, 1, result)
        self.assertIn(f"{target} already exists; pass --force", result.err)
        with open(target) as f:
            self.assertEqual(f.read(), "last week's backup")
        self.assertFalse(os.path.exists(target + ".tmp"))
        result = run(["backup", "--to", target, "--data-dir", data_dir, "--force"])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(invariant(target), (3, 3, 3))

    def test_the_command_resolves_data_dir_like_the_daemon_and_says_what_it_saved(self) -> None:
        data_dir = populated(self, jobs=5, raft_index=77)
        config = os.path.abspath(self.mktemp() + ".yml")
        with open(config, "w") as f:
            f.write(f"DataDir: {data_dir}\n")
        target = os.path.abspath(self.mktemp())
        result = run(["backup", "--to", target, "--config", config])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(result.out.count("\n"), 1, result.out)
        self.assertIn("1 projects, 5 jobs, 5 executions, schema version "
                      f"{SCHEMA_VERSION}, Raft index 77", result.out)
        # the environment too, over the file
        other = os.path.abspath(self.mktemp())
        result = run(["backup", "--to", other, "--config", config],
                     environ={"SCHEDULER0_DATA_DIR": populated(self, jobs=2)})
        self.assertEqual(result.status, 0, result)
        self.assertIn("2 jobs", result.out)

    def test_no_database_in_data_dir_is_one_line_naming_it(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        target = os.path.abspath(self.mktemp())
        result = run(["backup", "--to", target, "--data-dir", data_dir])
        self.assertEqual(result.status, 1, result)
        self.assertEqual(result.err, f"scheduler0: there is no database at "
                         f"{database_path(data_dir)}; point --config or --data-dir at the "
                         "node's DataDir\n")
        self.assertFalse(os.path.exists(target))

    def test_the_node_s_own_database_is_never_the_target(self) -> None:
        data_dir = populated(self)
        path = database_path(data_dir)
        with self.assertRaises(BackupError):
            take_backup(path, path, force=True)
        self.assertEqual(invariant(path), (3, 3, 3))


class RestoreTests(SynchronousTestCase):
    def backup_of(self, data_dir: str) -> str:
        target = os.path.abspath(self.mktemp())
        take_backup(database_path(data_dir), target)
        return target

    def assertNothingRestored(self, data_dir: str) -> None:
        names = os.listdir(data_dir) if os.path.isdir(data_dir) else []
        self.assertEqual([n for n in names if n.startswith("scheduler0.db")], [], names)

    def test_a_restored_node_has_the_backup_s_state_and_opens_it(self) -> None:
        with_umask(self, 0o022)
        backup = self.backup_of(populated(self, jobs=4))
        data_dir = os.path.abspath(self.mktemp())
        result = run(["restore", "--from", backup, "--data-dir", data_dir,
                      "--set", f"SecretKey={KEY}"])
        self.assertEqual(result.status, 0, result)
        path = database_path(data_dir)
        self.assertEqual(result.out, f"restored {backup} into {path}: 1 projects, 4 jobs, "
                         f"4 executions, schema version {SCHEMA_VERSION}, no Raft index\n")
        self.assertEqual(result.err, "")
        self.assertEqual(mode(path), 0o600)
        self.assertEqual(mode(data_dir), 0o700)
        self.assertEqual(sorted(os.listdir(data_dir)), ["scheduler0.db", "scheduler0.lock"])
        # start-up's check passes and the signing secret opens with the node's key
        self.assertIn("no damage", open_database(path))
        conn = connect(path)
        self.addCleanup(conn.close)
        self.assertEqual([j.id for j in ScheduleReader(conn).all_jobs()], [1, 2, 3, 4])
        self.assertEqual(StateReader(conn, SigningSecretBox(KEY)).signing_secret(1).current,
                         "whsec_1")

    def test_the_source_s_raft_index_is_cleared(self) -> None:
        """A kept index would make a new cluster skip its own first entries."""
        backup = self.backup_of(populated(self, raft_index=1234))
        data_dir = os.path.abspath(self.mktemp())
        result = run(["restore", "--from", backup, "--data-dir", data_dir])
        self.assertEqual(result.status, 0, result)
        self.assertIn("Raft index 1234 was cleared", result.out)
        self.assertIn("no Raft index", result.out)
        conn = sqlite3.connect(database_path(data_dir))
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("SELECT count(*) FROM raft_applied").fetchone()[0], 0)

    def test_a_raft_snapshot_file_restores_without_its_pysyncobj_data(self) -> None:
        from scheduler0.consensus.raft_snapshot import write_snapshot
        snapshot = os.path.abspath(self.mktemp())
        write_snapshot(database_path(populated(self)), snapshot, 99, b"pysyncobj data")
        data_dir = os.path.abspath(self.mktemp())
        self.assertEqual(run(["restore", "--from", snapshot, "--data-dir", data_dir]).status,
                         0)
        conn = sqlite3.connect(database_path(data_dir))
        self.addCleanup(conn.close)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        self.assertNotIn("raft_snapshot_meta", tables)
        self.assertEqual(conn.execute("SELECT count(*) FROM raft_applied").fetchone()[0], 0)

    def test_a_backup_of_an_older_schema_is_migrated_and_the_backup_left_as_it_was(self) -> None:
        old = version_1_file(self)
        data_dir = os.path.abspath(self.mktemp())
        result = run(["restore", "--from", old, "--data-dir", data_dir])
        self.assertEqual(result.status, 0, result)
        self.assertIn(f"migrated its schema from version 1 to {SCHEMA_VERSION}", result.out)
        self.assertEqual(version_of(database_path(data_dir)),
                         (SCHEMA_VERSION, str(SCHEMA_VERSION)))
        self.assertEqual(version_of(old), (1, "1"))
        self.assertEqual(invariant(database_path(data_dir))[:2], (2, 1))

    def test_a_data_dir_with_state_is_refused(self) -> None:
        backup = self.backup_of(populated(self))
        for name in ("scheduler0.db", "raft.journal", "raft.snapshot"):
            data_dir = os.path.abspath(self.mktemp())
            os.makedirs(data_dir)
            with open(os.path.join(data_dir, name), "w") as f:
                f.write("state")
            result = run(["restore", "--from", backup, "--data-dir", data_dir])
            self.assertEqual(result.status, 1, result)
            self.assertEqual(result.err, (
                f"scheduler0: data directory {data_dir} already has state ({name}); a "
                f"restore only seeds a new node: move it away first (mv {data_dir} "
                f"{data_dir}.old) and run the restore again\n"))
            with open(os.path.join(data_dir, name)) as f:
                self.assertEqual(f.read(), "state")

    def test_secrets_alone_are_no_state(self) -> None:
        """Copying the source's node-secrets.json in first is the way to give the new node
        its SecretKey."""
        backup = self.backup_of(populated(self))
        data_dir = os.path.abspath(self.mktemp())
        self.assertEqual(run(["credential", "init", "--generate", "--data-dir", data_dir,
                              "--secret-key", KEY]).status, 0)
        result = run(["restore", "--from", backup, "--data-dir", data_dir])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(result.err, "")

    def test_a_data_dir_held_by_a_running_node_is_refused(self) -> None:
        backup = self.backup_of(populated(self))
        data_dir = os.path.abspath(self.mktemp())
        lock = DataDirLock(data_dir)
        lock.acquire()
        self.addCleanup(lock.release)
        with self.assertRaises(DataDirInUse):
            restore_backup(backup, data_dir)
        result = run(["restore", "--from", backup, "--data-dir", data_dir])
        self.assertEqual(result.status, 1, result)
        self.assertIn(f"data directory {data_dir} is in use by another node (pid "
                      f"{os.getpid()}); stop that node first", result.err)
        self.assertNothingRestored(data_dir)

    def test_a_backup_sealed_with_another_secret_key_is_refused(self) -> None:
        backup = self.backup_of(populated(self, key="the source's key"))
        data_dir = os.path.abspath(self.mktemp())
        result = run(["restore", "--from", backup, "--data-dir", data_dir],
                     environ={"SCHEDULER0_SECRET_KEY": "another key"})
        self.assertEqual(result.status, 1, result)
        self.assertIn("were sealed with another SecretKey than this node's", result.err)
        self.assertNothingRestored(data_dir)

    def test_without_a_secret_key_the_restore_says_to_copy_the_source_s(self) -> None:
        backup = self.backup_of(populated(self))
        data_dir = os.path.abspath(self.mktemp())
        result = run(["restore", "--from", backup, "--data-dir", data_dir])
        self.assertEqual(result.status, 0, result)
        self.assertIn("copy the source node's node-secrets.json", result.err)

    def test_what_is_not_a_sound_backup_is_refused(self) -> None:
        good = self.backup_of(populated(self, jobs=50))
        with open(good, "rb") as f:
            content = f.read()
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)

        def file_with(name: str, data: bytes) -> str:
            path = os.path.join(workdir, name)
            with open(path, "wb") as f:
                f.write(data)
            return path

        unknown = file_with("future.db", content)
        conn = sqlite3.connect(unknown)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        # the execution history's first page overwritten: the header and the schema are
        # fine, only a check of the whole file finds it
        conn = sqlite3.connect(good)
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'executions'").fetchone()
        conn.close()
        damaged = bytearray(content)
        damaged[(root - 1) * page_size:root * page_size] = b"\xff" * page_size
        empty_sqlite = file_with("empty.db", b"")
        sqlite3.connect(empty_sqlite).execute("CREATE TABLE t (x)").connection.close()
        cases = {
            os.path.join(workdir, "missing.db"): "there is no backup file",
            workdir: "is not a regular file",
            file_with("zero.db", b""): "is not a sqlite database",
            file_with("text.db", b"hello"): "is not a sqlite database",
            file_with("damaged.db", bytes(damaged)): "damaged",
            unknown: "has schema version 99 and this release reads version",
            empty_sqlite: "is not a Scheduler0 database",
        }
        for source, problem in cases.items():
            data_dir = os.path.abspath(self.mktemp())
            result = run(["restore", "--from", source, "--data-dir", data_dir])
            self.assertEqual(result.status, 1, (source, result))
            self.assertIn(problem, result.err, source)
            self.assertEqual(result.err.count("\n"), 1, result.err)
            self.assertNothingRestored(data_dir)


class HelpTests(SynchronousTestCase):
    def test_help_says_what_each_command_does_and_its_options(self) -> None:
        cases = {"backup": ["--to FILE", "--force", "0600", "FILE.tmp", "online backup",
                            "--config", "--data-dir", "restore --from FILE"],
                 "restore": ["--from FILE", "already has state", "node-secrets.json",
                             "every node", "--config", "--data-dir"]}
        top = run(["--help"]).out
        for command, needles in cases.items():
            self.assertIn(f"scheduler0 {command} --", top)
            result = run([command, "--help"])
            self.assertEqual(result.status, 0, result)
            for needle in needles:
                self.assertIn(needle, " ".join(result.out.split()), (command, needle))
