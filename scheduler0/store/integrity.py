"""
The start-up check of the database file: a node refuses, in one line, a file it cannot
trust instead of hanging, answering 500s or starting empty over lost state.

What is refused, and why:

* a path that is not a regular file (a directory, a dangling link);
* an B{empty (0-byte) file}: a node creates its database under a temporary name and
  renames it into place once the schema is written (L{create_database}), so it never
  leaves an empty C{scheduler0.db} behind; an empty one was truncated or replaced (a
  failed copy, a filesystem that lost the data of a crash). Deleting it is the
  operator's explicit choice to start a node with no jobs;
* no database file but a non-empty write-ahead log beside it: the file was deleted or
  moved while it had state;
* a file that sqlite cannot read, an unknown schema version, a missing table or column
  (L{scheduler0.store.database.verify_schema}); a file of an earlier schema version that
  this release migrates is checked against that version's tables, then migrated;
* any error found by C{PRAGMA quick_check} (damaged pages, including index pages).

C{quick_check} reads the whole file. Measured here (2 vCPU, sqlite 3.40): a 356 MB file
with 1M execution rows takes 0.65 s with the file in the page cache and 3.2 s cold, i.e.
roughly 1-10 s per GB. Its argument N only caps the number of errors reported, not the
work, so it bounds nothing. Up to L{FULL_CHECK_MAX_BYTES} the whole file is checked; past
it, every table except the big execution history (L{LARGE_TABLES}) is checked with
C{quick_check(table)}, which keeps start-up in seconds, and the log says so: damage in
the execution history then shows up as a clear storage error on the writes and reads that
touch it, and C{sqlite3 scheduler0.db 'PRAGMA quick_check'} checks it all offline.
"""

from __future__ import annotations

import os
import sqlite3
import time

from .database import (RESTORE_HINT, DatabaseError, create_database, ensure_schema, refuse,
                       verify_schema)
from .schema import LARGE_TABLES, expected_tables

FULL_CHECK_MAX_BYTES = 1 << 30
SQLITE_HEADER = b"SQLite format 3\x00"


def open_database(path: str, *, full_check_max_bytes: int = FULL_CHECK_MAX_BYTES) -> str:
    """
    Make C{path} ready for L{scheduler0.store.database.connect}: create it when there is
    none, else check it and bring its version marker up to date.

    @return: what was done, for the log.
    @raise DatabaseError: the file cannot be trusted; the message names it and the fix.
    """
    if not os.path.lexists(path):
        wal = path + "-wal"
        if os.path.isfile(wal) and os.path.getsize(wal) > 0:
            raise refuse(path, f"is missing but its write-ahead log {wal} is not empty, so "
                         "it had state", "put the file back or " + RESTORE_HINT)
        create_database(path)
        return "created a new database"
    if not os.path.isfile(path):
        raise refuse(path, "is not a regular file", "move it away and " + RESTORE_HINT)
    size = os.path.getsize(path)
    if size == 0:
        raise refuse(path, "is empty (0 bytes), so it was truncated or replaced (a node "
                     "never leaves an empty file)",
                     RESTORE_HINT + ", or delete it to start a node with no jobs")
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise refuse(path, f"cannot be read ({e.strerror})",
                     "check its owner and permissions") from None
    if header != SQLITE_HEADER:
        raise refuse(path, "is not a sqlite database (its header is damaged or it is "
                     "another kind of file)")
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    except sqlite3.Error as e:
        raise refuse(path, f"cannot be opened ({e})", "check its owner and permissions") from None
    try:
        return _check_and_upgrade(conn, path, size, full_check_max_bytes)
    except sqlite3.Error as e:
        raise refuse(path, f"is damaged ({_one_line(str(e))})") from None
    finally:
        conn.close()


def _check_and_upgrade(conn: sqlite3.Connection, path: str, size: int,
                       full_check_max_bytes: int) -> str:
    started = time.monotonic()
    had_tables = verify_schema(conn)
    if size <= full_check_max_bytes or sqlite3.sqlite_version_info < (3, 33):
        problem = _first_problem(conn, "PRAGMA quick_check")
        scope = "the whole file"
    else:
        problem = None
        present = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        # an older file about to be migrated lacks the tables its migration adds
        for table in sorted((set(expected_tables()) - set(LARGE_TABLES)) & present):
            problem = _first_problem(conn, f"PRAGMA quick_check({table})")
            if problem:
                break
        scope = (f"every table but {', '.join(LARGE_TABLES)} (the file is over "
                 f"{full_check_max_bytes // (1 << 20)} MB)")
    if problem:
        raise refuse(path, f"is damaged (quick_check: {problem})")
    migrated = ensure_schema(conn)
    elapsed = time.monotonic() - started
    if not had_tables:
        return "created the tables of an empty sqlite database"
    done = f"checked {scope} in {elapsed:.1f} s: no damage"
    return f"{done}; {migrated}" if migrated else done


def _first_problem(conn: sqlite3.Connection, check: str) -> str | None:
    """The first line quick_check reports, or None when it answers ok."""
    rows = [row[0] for row in conn.execute(check)]
    if rows == ["ok"]:
        return None
    lines = [line for row in rows for line in str(row).splitlines()
             if line and not line.startswith("***")]
    return _one_line(lines[0] if lines else str(rows))


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["DatabaseError", "FULL_CHECK_MAX_BYTES", "open_database"]
