"""
Opening the sqlite file the way every connection in this process must see it.

WAL lets the reactor thread read while the writer thread commits; ``synchronous=NORMAL``
with WAL keeps commits durable across a process crash (only power loss can drop the last
transactions), at a fraction of the cost of ``FULL`` (see reference/stack.md §6).

An existing file is never "repaired" into an empty one: L{ensure_schema} creates tables
only in a database that has none, migrates a file of an earlier schema version (one
transaction per version step, see L{scheduler0.store.schema.MIGRATIONS}), and refuses a
file whose tables, columns or schema version are not the ones this release writes or
migrates.
"""

from __future__ import annotations

import os
import sqlite3

from .schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, Migration, expected_tables

DATABASE_FILENAME = "scheduler0.db"

RESTORE_HINT = "restore it from a backup (scheduler0 restore; README, 'Backup and restore')"

# sqlite primary result codes that say the storage failed rather than the command: the same
# command can succeed later, so it must not be recorded as rejected.
_STORAGE_CODES = {
    3: "io",       # SQLITE_PERM
    5: "io",       # SQLITE_BUSY
    6: "io",       # SQLITE_LOCKED
    7: "io",       # SQLITE_NOMEM
    8: "io",       # SQLITE_READONLY
    9: "io",       # SQLITE_INTERRUPT
    10: "io",      # SQLITE_IOERR
    11: "damaged",  # SQLITE_CORRUPT
    13: "full",    # SQLITE_FULL
    14: "io",      # SQLITE_CANTOPEN
    15: "io",      # SQLITE_PROTOCOL
    22: "io",      # SQLITE_NOLFS
    26: "damaged",  # SQLITE_NOTADB
}


class DatabaseError(Exception):
    """The database file cannot be used; the message is one line naming the file and the fix."""


#: The oldest sqlite the state machine and the reads work with: the JSON operator C{->>}
#: (3.38.0) reads the delivery outbox; window functions (3.25) and upserts (3.24) are older.
MIN_SQLITE = (3, 38, 0)


def require_sqlite(version: tuple[int, int, int] | None = None) -> None:
    """
    Refuse to start on a sqlite older than L{MIN_SQLITE}, in one line, before any file is
    touched: the features it lacks would otherwise fail the first write or read that uses
    them, as a 500 long after start.

    @raise DatabaseError: naming both versions and the fix.
    """
    if version is None:
        version = sqlite3.sqlite_version_info
    if tuple(version) < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        have = ".".join(map(str, version))
        raise DatabaseError(
            f"this node needs sqlite {need} or later (for its JSON operators), but this "
            f"Python is linked with sqlite {have}; run it with a Python built against a newer "
            "sqlite (python.org and distribution builds since 2022 have one)")


def database_path(data_dir: str) -> str:
    return os.path.join(data_dir, DATABASE_FILENAME)


def refuse(path: str, problem: str, remedy: str = RESTORE_HINT) -> DatabaseError:
    return DatabaseError(f"database {path} {problem}; {remedy}")


def storage_failure(error: BaseException) -> str | None:
    """
    C{"full"}, C{"damaged"} or C{"io"} when C{error} means the database could not be
    read or written (disk full, I/O error, damaged file, out of memory); None when it is
    about the command itself (a bad value, a constraint), which fails the same way on
    every replica.
    """
    if isinstance(error, MemoryError):
        return "io"
    if not isinstance(error, sqlite3.Error):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return None
    return _STORAGE_CODES.get(code & 0xFF)


def connect(path: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """
    Open C{path} with this project's pragmas. Transactions are explicit: the connection
    runs in autocommit mode and callers issue C{BEGIN}/C{COMMIT} themselves.
    """
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=check_same_thread, timeout=30
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def file_of(conn: sqlite3.Connection) -> str:
    """The file behind C{conn}'s main database, for messages."""
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main":
            return row[2] or ":memory:"
    return "?"


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version: C{user_version}, else (files written before it was used)
    the meta row; 0 for a database with no tables, -1 when neither says."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version:
        return version
    present = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not present:
        return 0
    if "meta" not in present:
        return -1
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None and str(row[0]).isdigit() else -1


def verify_schema(conn: sqlite3.Connection) -> bool:
    """
    Check that C{conn} holds this release's schema, or an earlier one this release
    migrates (with every table and column that version had), reading only. Returns False
    for a database with no tables at all (a new file), True for a valid one.

    @raise DatabaseError: an unknown schema version, a missing table or column, or a file
        that is not a Scheduler0 database.
    """
    path = file_of(conn)
    present = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = schema_version(conn)
    if version == 0 and not present:
        return False
    if version == -1 and "meta" not in present:
        raise refuse(path, "is not a Scheduler0 database (it has no schema version)",
                     "point DataDir at the right directory, or " + RESTORE_HINT)
    if version != SCHEMA_VERSION and version not in MIGRATIONS:
        shown = "unknown" if version < 0 else str(version)
        raise refuse(path, f"has schema version {shown} and this release reads version "
                     f"{SCHEMA_VERSION}", "run the release that wrote it, or " + RESTORE_HINT)
    # an older file lacks what its migrations add and has what they move away
    steps = [MIGRATIONS[v] for v in range(version, SCHEMA_VERSION)]
    added = {table for step in steps for table in step.new_tables}
    moved = {table: columns for step in steps for table, columns in step.old_columns.items()}
    new_columns = {(table, column) for step in steps
                   for table, columns in step.new_columns.items() for column in columns}
    for table, columns in expected_tables().items():
        if table in added:
            continue
        if table not in present:
            raise refuse(path, f"has lost its table {table!r}")
        found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in (*columns, *moved.get(table, ()))
                   if column not in found and (table, column) not in new_columns]
        if missing:
            raise refuse(path, f"has lost column(s) {', '.join(missing)} of table {table!r}")
    return True


def ensure_schema(conn: sqlite3.Connection) -> str | None:
    """
    Create the tables of a database that has none (atomically, with its version), or
    check that an existing one is ours and migrate it from an earlier version; a file
    written before C{user_version} was used gets it set, and an index that went missing
    is rebuilt.

    @return: what was migrated, for the log; None when nothing was.
    @raise DatabaseError: see L{verify_schema}.
    """
    if not verify_schema(conn):
        conn.executescript(
            "BEGIN IMMEDIATE;\n" + SCHEMA + "\n" + _mark_version(SCHEMA_VERSION) + "COMMIT;")
        return None
    found = schema_version(conn)
    for version in range(found, SCHEMA_VERSION):
        _migrate(conn, MIGRATIONS[version])
    conn.executescript(SCHEMA)  # every table exists: this only rebuilds missing indexes
    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    if found != SCHEMA_VERSION:
        return f"migrated its schema from version {found} to {SCHEMA_VERSION}"
    return None


def _mark_version(version: int) -> str:
    return (f"INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', "
            f"'{version}');\nPRAGMA user_version = {version};\n")


def _migrate(conn: sqlite3.Connection, migration: Migration) -> None:
    """One version step in one transaction: a crash leaves the file at either version."""
    drops = ""
    if sqlite3.sqlite_version_info >= (3, 35):
        drops = "".join(f"ALTER TABLE {table} DROP COLUMN {column};\n"
                        for table, column in migration.drops)
    conn.executescript(
        "BEGIN IMMEDIATE;\n" + SCHEMA + "\n" + migration.script + "\n" + drops
        + _mark_version(migration.from_version + 1) + "COMMIT;")


def create_database(path: str) -> None:
    """
    Create a new database at C{path} under a temporary name and rename it into place
    once its schema is written, so a crash never leaves a half-made or empty
    C{scheduler0.db}: an existing empty file always means damage.
    """
    temporary = path + ".new"
    for leftover in (temporary, temporary + "-journal"):
        if os.path.lexists(leftover):
            os.remove(leftover)
    conn = sqlite3.connect(temporary, isolation_level=None)
    try:
        ensure_schema(conn)
    finally:
        conn.close()
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
