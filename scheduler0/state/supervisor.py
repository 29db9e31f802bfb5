"""Applier of the supervisor command: the operator's halt or restart of the scheduler."""

from __future__ import annotations

import sqlite3

from .payloads import SetSupervisor
from .rows import Rejected, Result


def set_supervisor(conn: sqlite3.Connection, change: SetSupervisor, stamp: str) -> Result:
    """The operator's halt or restart of the scheduler, kept so a restart keeps it."""
    halted = change.halted
    if not isinstance(halted, bool):
        raise Rejected(400, "halted: must be true or false")
    conn.execute(
        "INSERT INTO supervisor (id, halted, reason, changed_at) VALUES (1, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET halted = excluded.halted, reason = excluded.reason, "
        "changed_at = excluded.changed_at",
        (int(halted), change.reason, change.at or stamp))
    return {"halted": halted}
