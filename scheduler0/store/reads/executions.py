"""
Executions, merged with the delivery outbox: an occurrence being delivered now is listed
as 'dispatched' in place of its stored row, whose outcome is not known yet.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...domain import Execution
from ...state.machine import EXECUTION_COLUMNS
from .common import Projects, Queries, _only

#: The columns of an execution row, in table order.
EXECUTION_ROW = (*EXECUTION_COLUMNS, "date_created", "date_modified")

#: Occurrences in the delivery outbox as execution rows in state 'dispatched' (what an
#: earlier attempt recorded, such as the first attempt's lateness, carried over). They take
#: precedence over the stored row of the same execution, whose outcome is not known yet.
IN_FLIGHT = """
SELECT o.value ->> 0 AS id, o.value ->> 1 AS job_id, d.project_id,
       o.value ->> 2 AS scheduled_time, 'dispatched' AS state, o.value ->> 3 AS attempts,
       d.target, d.node_id, e.last_status, e.last_error, e.error_category, e.duration_ms,
       coalesce(e.lateness_ms, CASE WHEN o.value ->> 3 = 1 THEN round(
           (julianday(d.started_at) - julianday(o.value ->> 2)) * 86400000.0, 1) END)
           AS lateness_ms,
       coalesce(e.first_attempt_at, d.started_at) AS first_attempt_at,
       d.started_at AS last_attempt_at, NULL AS next_retry_at,
       coalesce(e.date_created, d.started_at) AS date_created,
       d.started_at AS date_modified, d.id AS delivery_id
FROM deliveries d, json_each(d.occurrences) o
LEFT JOIN executions e ON e.id = o.value ->> 0
"""
_IN_FLIGHT_IDS = "SELECT o.value ->> 0 FROM deliveries d, json_each(d.occurrences) o"
_ROW = ", ".join(EXECUTION_ROW)
#: executions counted at most for a listing's C{total} (a few milliseconds' work)
EXECUTIONS_COUNT_CAP = 100_000


def execution_from_row(row: sqlite3.Row) -> Execution:
    """An execution (stored, or in flight from the outbox)."""
    return Execution(*(row[name] for name in EXECUTION_ROW))


class ExecutionQueries(Queries):
    """The execution queries of L{StateReader}."""

    executions_count_cap: int

    def execution(self, execution_id: str) -> Execution | None:
        row = (self._one(f"SELECT * FROM ({IN_FLIGHT}) WHERE id = ?", (execution_id,))
               or self._one("SELECT * FROM executions WHERE id = ?", (execution_id,)))
        return execution_from_row(row) if row else None

    def executions(self, *, job_id: int | None = None, project_id: int | None = None,
                   state: str | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 50, offset: int = 0,
                   only: Projects = None) -> tuple[list[Execution], int, bool]:
        """Newest first, filtered on scheduled time C{[since, until)} and to the projects
        in C{only} (when given); occurrences being
        delivered now are listed as 'dispatched'. Answers the page, the number of matching
        executions and whether that number stopped at C{executions_count_cap}: the table
        may hold tens of millions of rows, and counting them all would stall the reactor."""
        count_cap = self.executions_count_cap
        clauses, args = [], []
        if only is not None:
            clause, only_args = _only("project_id", only)
            clauses.append(clause)
            args.extend(only_args)
        for column, value in (("job_id", job_id), ("project_id", project_id),
                              ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("scheduled_time >= ?")
            args.append(since)
        if until is not None:
            clauses.append("scheduled_time < ?")
            args.append(until)
        where = " AND ".join(clauses) or "1"
        if not self._count("SELECT count(*) FROM deliveries"):
            # the common case, and the cheap one: nothing in flight
            rows = self._conn.execute(
                f"SELECT * FROM executions WHERE {where} "
                "ORDER BY scheduled_time DESC, id LIMIT ? OFFSET ?",
                (*args, limit, offset)).fetchall()
            total = self._count(
                f"SELECT count(*) FROM (SELECT 1 FROM executions WHERE {where} LIMIT ?)",
                (*args, count_cap + 1))
            return [execution_from_row(r) for r in rows], min(total, count_cap), total > count_cap
        stored = f"SELECT {_ROW} FROM executions WHERE {where} AND id NOT IN ({_IN_FLIGHT_IDS})"
        flying = f"SELECT {_ROW} FROM ({IN_FLIGHT}) WHERE {where}"
        rows = self._conn.execute(
            f"{stored} UNION ALL {flying} ORDER BY scheduled_time DESC, id LIMIT ? OFFSET ?",
            (*args, *args, limit, offset)).fetchall()
        total = self._count(f"SELECT count(*) FROM ({stored} UNION ALL {flying} LIMIT ?)",
                            (*args, *args, count_cap + 1))
        return [execution_from_row(r) for r in rows], min(total, count_cap), total > count_cap

    def has_executions(self, job_id: int, only: Projects = None) -> bool:
        """Whether any execution of C{job_id} is stored (a deleted job's history too), in
        the projects of C{only} when given."""
        where, args = _only("project_id", only)
        return self._one(f"SELECT 1 FROM executions WHERE job_id = ? AND {where} LIMIT 1",
                         (job_id, *args)) is not None
