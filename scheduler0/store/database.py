"""
Opening the sqlite file the way every connection in this process must see it.

WAL lets the reactor thread read while the writer thread commits; ``synchronous=NORMAL``
with WAL keeps commits durable across a process crash (only power loss can drop the last
transactions), at a fraction of the cost of ``FULL`` (see reference/stack.md §6).
"""

from __future__ import annotations

import os
import sqlite3

from .schema import SCHEMA, SCHEMA_VERSION

DATABASE_FILENAME = "scheduler0.db"


class DatabaseError(Exception):
    """The database file cannot be used (wrong schema version, unreadable, ...)."""


def database_path(data_dir: str) -> str:
    return os.path.join(data_dir, DATABASE_FILENAME)


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


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of an empty database, or check that an existing one is ours."""
    conn.executescript(SCHEMA)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) != SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema version {row[0]} is not the version {SCHEMA_VERSION} this "
            "release understands"
        )
