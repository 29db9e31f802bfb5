"""Applier of the supervisor command: the operator's halt or restart of the scheduler."""

from __future__ import annotations

import sqlite3

from .commands import Command
from .rows import Rejected, Result

def set_supervisor(conn: sqlite3.Connection, command: Command) -> Result:
    """The operator's halt or restart of the scheduler, kept so a restart keeps it."""
    payload = command.payload
    halted = payload["halted"]
    if not isinstance(halted, bool):
        raise Rejected(400, "halted: must be true or false")
    conn.execute(
        "INSERT INTO supervisor (id, halted, reason, changed_at) VALUES (1, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET halted = excluded.halted, reason = excluded.reason, "
        "changed_at = excluded.changed_at",
        (int(halted), payload.get("reason"), payload.get("at") or command.issued_at))
    return {"halted": halted}
