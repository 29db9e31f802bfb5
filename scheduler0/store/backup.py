"""
Backups of a node's database, and new nodes seeded from one (issue 14 item 4).

A backup is taken online: a separate connection copies the live file with sqlite's online
backup API in one step, which reads one consistent snapshot (one read transaction) while
the node's writer goes on beside it (WAL: readers and the writer do not block each other).
The copy is a standalone file (rollback journal, no C{-wal}), written under C{FILE.tmp},
checked with C{quick_check}, synced and renamed into place, mode 0600 from its creation:
it holds the sealed signing secrets and the credential hashes.

A restore seeds a data directory that has no state yet, under the DataDir lock (no node can
start on it meanwhile): the backup is checked (sqlite header, C{quick_check}, schema),
copied in under a temporary name, migrated as start-up migrates an older schema, stripped
of the source's Raft position and renamed into place. The Raft journal and snapshot are
not in a backup; a stored applied index kept from the source would make the new cluster's
log skip its first entries (L{scheduler0.consensus.raft} skips entries at or below it), so
it is cleared.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Callable

import attrs

from ..secrets_at_rest import SigningKeyError, SigningSecretBox
from .sealing import seal_stored_secrets
from .database import DatabaseError, database_path, ensure_schema, schema_version, verify_schema
from .integrity import SQLITE_HEADER
from .lock import DataDirLock

#: Files that mean a data directory already has a node's state: a restore never mixes a
#: backup with them (the Raft ones would replay the source's entries over it).
STATE_FILES = ("scheduler0.db", "scheduler0.db-wal", "raft.journal", "raft.journal.meta",
               "raft.snapshot")

#: The table a Raft snapshot file keeps PySyncObj's data in (see raft_snapshot): not state.
_SNAPSHOT_META_TABLE = "raft_snapshot_meta"


class BackupError(Exception):
    """The backup or restore cannot be done; the message is one line naming what to fix."""


@attrs.frozen
class Contents:
    """What a database file holds, for the one line a backup or a restore prints."""

    projects: int
    jobs: int
    executions: int
    schema_version: int
    raft_index: int | None  # the last applied Raft index stored in it; None: none

    def describe(self) -> str:
        raft = (f"Raft index {self.raft_index}" if self.raft_index is not None
                else "no Raft index")
        return (f"{self.projects} projects, {self.jobs} jobs, {self.executions} executions, "
                f"schema version {self.schema_version}, {raft}")


def contents(conn: sqlite3.Connection) -> Contents:
    """Count what C{conn}'s database holds (one read transaction, so the counts agree)."""
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def count(table: str) -> int:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if (
            table in tables) else 0

    raft_index = None
    if "raft_applied" in tables:
        row = conn.execute("SELECT applied_index FROM raft_applied WHERE id = 1").fetchone()
        raft_index = int(row[0]) if row else None
    return Contents(projects=count("projects"), jobs=count("jobs"),
                    executions=count("executions"), schema_version=schema_version(conn),
                    raft_index=raft_index)


# -- backup ---------------------------------------------------------------------------------


def take_backup(db_path: str, to: str, *, force: bool = False) -> Contents:
    """
    Copy the database at C{db_path} (a node may be running on it) to C{to}.

    @param force: replace an existing C{to}; without it an existing file is refused.
    @return: what the copy holds.
    @raise BackupError: no database there, C{to} exists (without C{force}) or cannot be
        written, or the copy failed its check; nothing is left at C{to} or C{to}.tmp then.
    """
    target = os.path.abspath(to)
    if not os.path.isfile(db_path):
        raise BackupError(f"there is no database at {db_path}; point --config or --data-dir "
                          "at the node's DataDir")
    if os.path.isdir(target):
        raise BackupError(f"{to} is a directory; name the backup file, e.g. "
                          f"{os.path.join(to, 'scheduler0-backup.db')}")
    if _same_file(target, db_path):
        raise BackupError(f"{to} is the node's own database; write the backup elsewhere")
    if os.path.lexists(target) and not force:
        raise BackupError(f"{to} already exists; pass --force to replace it, or choose "
                          "another file")
    temporary = target + ".tmp"
    _remove(temporary, temporary + "-journal")
    try:
        # created 0600 before sqlite writes a byte into it: it holds sealed secrets
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise BackupError(f"cannot write {temporary}: {e.strerror}") from None
    try:
        saved = _copy_live(db_path, temporary)
        _sync_and_rename(temporary, target)
    except BaseException:
        _remove(temporary, temporary + "-journal")
        raise
    return saved


def _copy_live(db_path: str, temporary: str) -> Contents:
    """Back C{db_path} up into C{temporary} in one step (one consistent read), then check
    and count the copy."""
    try:
        # read-write, not mode=ro: a read-only connection leaves -wal and -shm behind on a
        # stopped node; this one only reads (and deletes them on close when it is the last)
        source = sqlite3.connect(db_path, timeout=30)
    except sqlite3.Error as e:
        raise BackupError(f"cannot open {db_path}: {e}") from None
    try:
        source.execute("PRAGMA busy_timeout=30000")
        copy = sqlite3.connect(temporary, isolation_level=None)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # a standalone file, no -wal
            _check(copy, temporary)
            try:
                verify_schema(copy)
            except DatabaseError:
                raise BackupError(f"{db_path} is not a Scheduler0 database this release "
                                  "reads; point --config or --data-dir at the node's "
                                  "DataDir") from None
            return contents(copy)
        finally:
            copy.close()
    except sqlite3.Error as e:
        raise BackupError(f"backing up {db_path} failed: {_one_line(str(e))}") from None
    finally:
        source.close()


# -- restore --------------------------------------------------------------------------------


@attrs.frozen
class Restored:
    """What a restore put in place."""

    path: str
    contents: Contents
    source_raft_index: int | None  # the Raft index the backup had (now cleared)
    migrated: str | None           # the schema migration done, if any
    secrets_checked: bool          # the node's SecretKey was given and opens its secrets


def state_in(data_dir: str) -> list[str]:
    """The files of L{STATE_FILES} present in C{data_dir} (an empty C{-wal} is no state)."""
    found = []
    for name in STATE_FILES:
        path = os.path.join(data_dir, name)
        if not os.path.lexists(path):
            continue
        if name.endswith("-wal") and os.path.isfile(path) and os.path.getsize(path) == 0:
            continue
        found.append(name)
    return found


def restore_backup(source: str, data_dir: str,
                   box: SigningSecretBox | None = None,
                   lock_factory: Callable[[str], DataDirLock] = DataDirLock) -> Restored:
    """
    Seed C{data_dir}, which must have no state, with the backup at C{source}.

    @param box: the new node's SecretKey, when it is known: the restore then refuses a
        backup whose signing secrets it cannot open (the node would refuse to start).
    @raise BackupError: the data directory is in use or has state, or the backup is
        missing, damaged, of another schema, or sealed with another SecretKey; nothing in
        C{data_dir} is changed then.
    @raise scheduler0.store.lock.DataDirError: the data directory is in use or unusable.
    """
    _check_source_file(source)
    lock = lock_factory(data_dir)
    lock.acquire()
    try:
        present = state_in(lock.data_dir)
        if present:
            raise BackupError(
                f"data directory {lock.data_dir} already has state ({', '.join(present)}); a "
                f"restore only seeds a new node: move it away first (mv {lock.data_dir} "
                f"{lock.data_dir}.old) and run the restore again")
        return _restore_into(source, lock.data_dir, box)
    finally:
        lock.release()


def _check_source_file(source: str) -> None:
    if not os.path.lexists(source):
        raise BackupError(f"there is no backup file {source}")
    if not os.path.isfile(source):
        raise BackupError(f"{source} is not a regular file; name a backup file")
    try:
        with open(source, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise BackupError(f"cannot read {source}: {e.strerror}") from None
    if header != SQLITE_HEADER:
        raise BackupError(f"{source} is not a sqlite database (empty, truncated or another "
                          "kind of file), so not a Scheduler0 backup")


def _restore_into(source: str, data_dir: str, box: SigningSecretBox | None) -> Restored:
    path = database_path(data_dir)
    temporary = path + ".restore"
    _remove(temporary, temporary + "-journal", path + "-wal", path + "-shm")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        source_index, migrated = _copy_backup(source, temporary)
        secrets_checked = False
        if box is not None:
            try:
                seal_stored_secrets(temporary, box)
            except SigningKeyError:
                raise BackupError(
                    f"the signing secrets in {source} were sealed with another SecretKey "
                    "than this node's; give this node the source node's SecretKey (copy its "
                    "node-secrets.json into DataDir, or set SecretKey) and restore again"
                ) from None
            secrets_checked = True
        conn = sqlite3.connect(temporary)
        try:
            restored = contents(conn)
        finally:
            conn.close()
        _sync_and_rename(temporary, path)
    except BaseException:
        _remove(temporary, temporary + "-journal")
        raise
    return Restored(path=path, contents=restored, source_raft_index=source_index,
                    migrated=migrated, secrets_checked=secrets_checked)


def _copy_backup(source: str, temporary: str) -> tuple[int | None, str | None]:
    """Check the backup, copy it into C{temporary}, migrate the copy and clear its Raft
    position. Returns the Raft index the backup had and the migration done."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as e:
        raise BackupError(f"cannot open {source}: {e}") from None
    try:
        try:
            _check(src, source)
            if not verify_schema(src):
                raise BackupError(f"{source} has no tables, so it is not a Scheduler0 backup")
        except DatabaseError as e:
            raise BackupError(f"cannot restore from {source}: {e}") from None
        source_index = contents(src).raft_index
        copy = sqlite3.connect(temporary, isolation_level=None)
        try:
            src.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            migrated = ensure_schema(copy)
            copy.execute("BEGIN IMMEDIATE")
            copy.execute("DELETE FROM raft_applied")
            # the old cluster's members: the new one stores its own Replicas
            copy.execute("DELETE FROM cluster_members")
            copy.execute(f"DROP TABLE IF EXISTS {_SNAPSHOT_META_TABLE}")
            copy.execute("COMMIT")
        finally:
            copy.close()
    except sqlite3.Error as e:
        raise BackupError(f"restoring from {source} failed: {_one_line(str(e))}") from None
    finally:
        src.close()
    return source_index, migrated


# -- shared ---------------------------------------------------------------------------------


def _check(conn: sqlite3.Connection, path: str) -> None:
    """C{quick_check} of the whole file: a damaged copy is never kept or restored."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    if rows != ["ok"]:
        raise BackupError(f"{path} is damaged (quick_check: {_one_line(rows[0])}); "
                          "take the backup again from a healthy node")


def _sync_and_rename(temporary: str, target: str) -> None:
    os.chmod(temporary, 0o600)
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    directory = os.open(os.path.dirname(target) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove(*paths: str) -> None:
    for path in paths:
        if os.path.lexists(path):
            os.remove(path)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["BackupError", "Contents", "Restored", "STATE_FILES", "restore_backup",
           "state_in", "take_backup"]
