"""
What every applier shares: the rejection it raises, its result type and row helpers.

Kept apart from L{scheduler0.state.machine} so the per-domain applier modules can use them
without importing the machine that imports them.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping

Result = dict[str, Any]


class Rejected(Exception):
    """Raised by an applier: the command is refused, with an HTTP-like status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def allocate_ids(conn: sqlite3.Connection, name: str, count: int = 1) -> int:
    """
    The first of C{count} new ids for C{name}'s rows (the others follow it), taken from the
    C{sequences} table inside the applying transaction: every replica applying the same
    commands in the same order chooses the same ids, two commands never get the same one,
    and the id of a deleted row is never handed out again (an execution id derived from a
    job id must never name two different jobs).
    """
    row = conn.execute("SELECT last FROM sequences WHERE name = ?", (name,)).fetchone()
    first = (row[0] if row else 0) + 1
    conn.execute(
        "INSERT INTO sequences (name, last) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET last = excluded.last",
        (name, first + count - 1),
    )
    return first


def require_row(conn: sqlite3.Connection, table: str, row_id: int, what: str) -> sqlite3.Row:
    """The row a command names, or a 404 rejection saying which C{what} does not exist."""
    row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        raise Rejected(404, f"{what} {row_id} does not exist")
    return row


def update_row(conn: sqlite3.Connection, table: str, row_id: int,
               changes: Mapping[str, Any], modified: str) -> None:
    """Set C{changes} on a row, stamping C{date_modified} with the command's time."""
    columns = dict(changes)
    columns["date_modified"] = modified
    assignments = ", ".join(f"{column} = ?" for column in columns)
    conn.execute(
        f"UPDATE {table} SET {assignments} WHERE id = ?", (*columns.values(), row_id)
    )


def existing_ids(conn: sqlite3.Connection, table: str, ids: set[int]) -> set[int]:
    """The C{ids} present in C{table}, asked in chunks that stay under sqlite's variable limit."""
    wanted = list(ids)
    found: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(row[0] for row in conn.execute(
            f"SELECT id FROM {table} WHERE id IN ({marks})", chunk))
    return found


def missing_projects(conn: sqlite3.Connection, project_ids: set[int]) -> set[int]:
    """The C{project_ids} no project has: a job or credential may only name existing ones."""
    return project_ids - existing_ids(conn, "projects", project_ids)
