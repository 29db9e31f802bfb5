"""
Operations: dead letters (whole, per target, per job) and dispatches whose outcome was
never recorded, behind the health, dead-letter and supervisor APIs.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from ...domain import DeadLetterSummary, Execution
from .executions import IN_FLIGHT, _IN_FLIGHT_IDS, execution_from_row

#: dead letters: dead, of a job that still exists (a deleted job's are history, not
#: something to act on), and not being delivered again (a replay in flight)
_DEAD = (f"state = 'dead' AND id NOT IN ({_IN_FLIGHT_IDS}) "
         "AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = executions.job_id)")


#: the columns of a L{DeadLetterSummary}, over a group of dead letters
_SUMMARY = ("count(*), min(coalesce(first_attempt_at, date_created)), "
            "max(coalesce(last_attempt_at, date_modified)), max(attempts), "
            "sum(error_category = 'permanent')")


def _summary(columns: Sequence[Any]) -> DeadLetterSummary:
    count, first, last, attempts, permanent = columns
    return DeadLetterSummary(count=count, first_attempt=first, last_attempt=last,
                             attempts=attempts, permanent=bool(permanent))


class OperationsReader:
    """Queries behind the health, dead-letter and supervisor APIs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def dead_letter_count(self) -> int:
        return self._conn.execute(
            f"SELECT count(*) FROM executions WHERE {_DEAD}").fetchone()[0]

    def dead_letters(self, target: str | None = None,
                     limit: int | None = None) -> list[Execution]:
        """Dead-lettered executions, most recent first."""
        sql = f"SELECT * FROM executions WHERE {_DEAD}"
        args: list[Any] = []
        if target is not None:
            sql += " AND target = ?"
            args.append(target)
        sql += " ORDER BY date_modified DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [execution_from_row(r) for r in self._conn.execute(sql, args)]

    def dead_letters_by_target(self) -> dict[str, DeadLetterSummary]:
        """Per target: how many are dead, since when, and whether any failed permanently."""
        rows = self._conn.execute(
            f"SELECT target, {_SUMMARY} FROM executions WHERE {_DEAD} "
            "GROUP BY target").fetchall()
        return {row[0]: _summary(row[1:]) for row in rows}

    def dead_letters_by_job(self) -> dict[tuple[int, str], DeadLetterSummary]:
        """Per job and target: the L{dead_letters_by_target} summary, so the health API
        can group dead letters by callback endpoint."""
        rows = self._conn.execute(
            f"SELECT job_id, target, {_SUMMARY} FROM executions WHERE {_DEAD} "
            "GROUP BY job_id, target").fetchall()
        return {(row[0], row[1]): _summary(row[2:]) for row in rows}

    def dispatched_before(self, cutoff: str) -> list[tuple[Execution, str | None]]:
        """Executions dispatched before C{cutoff} whose outcome was never recorded: the
        outbox's, each with the id of the delivery it belongs to, and 'dispatched' rows
        (with None)."""
        flying = self._conn.execute(
            f"SELECT * FROM ({IN_FLIGHT}) WHERE last_attempt_at < ? ORDER BY scheduled_time",
            (cutoff,)).fetchall()
        found = [(execution_from_row(r), r["delivery_id"]) for r in flying]
        rows = self._conn.execute(
            "SELECT * FROM executions WHERE state = 'dispatched' AND "
            "coalesce(last_attempt_at, date_modified) < ? ORDER BY scheduled_time",
            (cutoff,)).fetchall()
        seen = {execution.id for execution, _ in found}
        found.extend((execution_from_row(r), None) for r in rows if r["id"] not in seen)
        return found
