"""
What the scheduler and executor read at start-up and per dispatch round: every job, where
each schedule continues from, unfinished executions, the outbox and the signing secrets.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Iterable

from ...domain import DeliveryRecord, Execution, Job, SupervisorHalt
from ...domain.assignment import Assignment
from ...secrets_at_rest import SigningSecretBox, unseal_with
from .credentials import _PREVIOUS_SECRETS
from .executions import execution_from_row
from .jobs import job_from_row


class ScheduleReader:
    """The queries the scheduler and executor need at start-up and per dispatch round.

    @param signing_box: opens the sealed signing secrets (None: plaintext ones only).
    """

    def __init__(self, conn: sqlite3.Connection,
                 signing_box: SigningSecretBox | None = None) -> None:
        self._conn = conn
        self._signing_box = signing_box

    def all_jobs(self) -> Iterable[Job]:
        for row in self._conn.execute("SELECT * FROM jobs ORDER BY id"):
            yield job_from_row(row)

    def last_scheduled_times(self) -> dict[int, str]:
        """Each job's newest recorded occurrence: where its schedule continues from."""
        last = dict(self._conn.execute(
            "SELECT job_id, max(scheduled_time) FROM executions GROUP BY job_id"))
        for job_id, stamp in self._conn.execute(
                "SELECT o.value ->> 1, max(o.value ->> 2) FROM deliveries d, "
                "json_each(d.occurrences) o GROUP BY 1"):
            if stamp > last.get(job_id, ""):
                last[job_id] = stamp
        return last

    def unfinished_executions(self) -> list[Execution]:
        """Occurrences held, dispatched or waiting for a retry: to resume after a restart."""
        rows = self._conn.execute(
            "SELECT * FROM executions WHERE state IN ('scheduled', 'dispatched', 'retrying') "
            "ORDER BY scheduled_time").fetchall()
        return [execution_from_row(r) for r in rows]

    def deliveries(self) -> list[DeliveryRecord]:
        """The delivery outbox: POSTs that were in flight when the node stopped."""
        return [DeliveryRecord(id=row[0], node_id=row[1], project_id=row[2], target=row[3],
                               started_at=row[4], occurrences=json.loads(row[5]))
                for row in self._conn.execute(
                    "SELECT id, node_id, project_id, target, started_at, occurrences "
                    "FROM deliveries ORDER BY started_at, id")]

    def signing_secrets(self, project_id: int, now: str) -> list[str]:
        """The secrets to sign a project's callbacks with, opened: current first, then
        every previous one whose grace period lasts at C{now}, the most recently rotated
        first.

        @raise scheduler0.secrets_at_rest.SigningKeyError: a secret does not open (the
            callback then fails its attempt; it is never sent unsigned)."""
        row = self._conn.execute(
            "SELECT signing_secret FROM projects WHERE id = ?", (project_id,)).fetchone()
        if row is None:
            return []
        stored = [row[0]] + [secret for secret, expires in
                             self._conn.execute(_PREVIOUS_SECRETS, (project_id,))
                             if expires > now]
        return [unseal_with(self._signing_box, project_id, s) for s in stored]

    def job_assignment(self) -> Assignment | None:
        """Which node executes which job buckets (None before the leader assigned them)."""
        row = self._conn.execute(
            "SELECT version, owners FROM job_assignment WHERE id = 1").fetchone()
        return None if row is None else Assignment(row[0], json.loads(row[1]))

    def supervisor(self) -> SupervisorHalt | None:
        """The operator's last halt or restart; None if there was none."""
        row = self._conn.execute(
            "SELECT halted, reason, changed_at FROM supervisor WHERE id = 1").fetchone()
        if row is None:
            return None
        return SupervisorHalt(halted=bool(row[0]), reason=row[1], at=row[2])
