"""
Appliers of the execution commands: the records of occurrences, the delivery outbox kept in
step with them, deletion and retention (prune).
"""

from __future__ import annotations

import json
import operator
import sqlite3
from datetime import datetime
from typing import Any

from ..domain.delivery import DeliveryOutcome
from ..domain.execution import RECORDED_FIELDS, TERMINAL_STATES
from ..timestamps import parse_time
from .payloads import (RERUN_HANGING, RETRY_DEAD, RUN_NOW, DeleteExecutions, PruneExecutions,
                       RecordExecutions, RequestDeliveries, ResetBreaker)
from .rows import Rejected, Result, existing_ids

#: an execution's columns (but its dates): the fields of L{scheduler0.domain.Execution}
EXECUTION_COLUMNS = RECORDED_FIELDS
_recorded_values = operator.attrgetter(*RECORDED_FIELDS)
__all__ = ["EXECUTION_COLUMNS", "TERMINAL_STATES", "delete_executions", "finish_delivery",
           "prune_executions", "record_executions", "request_deliveries", "reset_breaker"]
# a later record of the same execution replaces these; the others keep their last
# known value when the later record leaves them out (e.g. lateness, first attempt)
_REPLACED = ("state", "attempts", "target", "node_id", "next_retry_at")
_KEPT = tuple(c for c in EXECUTION_COLUMNS[4:] if c not in _REPLACED)
_RECORD_SQL = (
    f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)}, date_created, date_modified) "
    f"VALUES ({', '.join('?' * (len(EXECUTION_COLUMNS) + 2))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _REPLACED)
    + ", "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in _KEPT)
    + ", date_modified = excluded.date_modified"
)


def record_executions(conn: sqlite3.Connection, payload: RecordExecutions,
                      stamp: str) -> Result:
    """
    Upsert execution records and keep the delivery outbox in step, atomically:
    C{finished} deliveries (or some of their occurrences) leave the outbox in the same
    transaction that records their outcomes, and C{started} deliveries enter it. Each of
    C{outcomes} writes the records of the occurrences its delivery's entry lists.

    A record of a job deleted meanwhile is dropped (checked once per distinct job: a per-row
    subquery doubled the cost of every insert).
    """
    for finished in payload.finished:
        finish_delivery(conn, finished.id, finished.executions)
    count = 0
    if payload.outcomes:
        rows = [row for outcome in payload.outcomes
                for row in _outcome_rows(conn, outcome, stamp)]
        count = len(rows)
        live = existing_ids(conn, "jobs", {row[1] for row in rows})
        conn.executemany(_RECORD_SQL, [row for row in rows if row[1] in live])
    records = payload.records
    if records:
        count += len(records)
        live = existing_ids(conn, "jobs", {record.job_id for record in records})
        conn.executemany(_RECORD_SQL, [
            (*_recorded_values(record), stamp, stamp)
            for record in records if record.job_id in live
        ])
    started = payload.started
    if started:
        conn.executemany(
            "INSERT OR REPLACE INTO deliveries (id, node_id, project_id, target, started_at, "
            "occurrences) VALUES (?, ?, ?, ?, ?, ?)",
            [(d.id, d.node_id, d.project_id, d.target, d.started_at,
              json.dumps(d.occurrences, separators=(",", ":"))) for d in started])
    return {"count": count}


def _outcome_rows(conn: sqlite3.Connection, outcome: DeliveryOutcome,
                  stamp: str) -> list[tuple[Any, ...]]:
    """
    The records of C{outcome}'s occurrences, in L{EXECUTION_COLUMNS} order (and the
    dates), read from its outbox entry, which it removes. An entry already gone (another
    delivery of a new leader took its occurrences over) leaves nothing to record: that
    delivery records them.
    """
    row = conn.execute("SELECT occurrences, project_id, target, node_id, started_at "
                       "FROM deliveries WHERE id = ?", (outcome.id,)).fetchone()
    if row is None:
        return []
    conn.execute("DELETE FROM deliveries WHERE id = ?", (outcome.id,))
    listed, project_id, target, node_id, started = row
    state, at, retry_at = outcome.state, outcome.at, outcome.next_retry_at
    status, error, category, duration = (outcome.status, outcome.error, outcome.category,
                                         outcome.duration_ms)
    dead = frozenset(outcome.dead)
    lateness: dict[str, float] = {}  # by scheduled time: a POST's jobs often share slots
    start = None
    rows = []
    for eid, job_id, scheduled, attempt in json.loads(listed):
        first = late = None
        if attempt == 1:
            first = started
            late = lateness.get(scheduled)
            if late is None:
                if start is None:
                    start = datetime.fromisoformat(started)
                late = lateness[scheduled] = round(
                    (start - datetime.fromisoformat(scheduled)).total_seconds() * 1000, 1)
        if eid in dead:
            rows.append((eid, job_id, project_id, scheduled, "dead", attempt, target, node_id,
                         status, error, category, duration, late, first, at, None,
                         stamp, stamp))
        else:
            rows.append((eid, job_id, project_id, scheduled, state, attempt, target, node_id,
                         status, error, category, duration, late, first, at, retry_at,
                         stamp, stamp))
    return rows


_FIRST_ATTEMPT_SQL = (
    "INSERT INTO executions (id, job_id, project_id, scheduled_time, state, attempts, target, "
    "node_id, lateness_ms, first_attempt_at, last_attempt_at, date_created, date_modified) "
    "SELECT ?, ?, ?, ?, 'dispatched', 1, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?) "
    "ON CONFLICT (id) DO UPDATE SET lateness_ms = coalesce(lateness_ms, excluded.lateness_ms), "
    "first_attempt_at = coalesce(first_attempt_at, excluded.first_attempt_at)"
)


def finish_delivery(conn: sqlite3.Connection, delivery_id: str,
                    executions: tuple[str, ...] | list[str] | None,
                    keep_facts: bool = True) -> None:
    """
    Take a delivery out of the outbox; with C{executions}, only those occurrences. Their
    outcome is recorded by the same command (an outcome, a hold, a new delivery), but a
    first attempt's start and lateness were known only to the outbox: C{keep_facts} stores
    them on the execution's row first.
    """
    if executions is None:
        conn.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))
        return
    row = conn.execute("SELECT occurrences, project_id, target, node_id, started_at "
                       "FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    if row is None:
        return
    gone = set(executions)
    listed = json.loads(row[0])
    released = [o for o in listed if o[0] in gone]
    if keep_facts:
        started = row[4]
        start = parse_time(started)
        conn.executemany(_FIRST_ATTEMPT_SQL, [
            (eid, job_id, row[1], scheduled, row[2], row[3],
             round((start - parse_time(scheduled)).total_seconds() * 1000, 1),
             started, started, started, started, job_id)
            for eid, job_id, scheduled, attempt in released if attempt == 1])
    left = [o for o in listed if o[0] not in gone]
    if left:
        conn.execute("UPDATE deliveries SET occurrences = ? WHERE id = ?",
                     (json.dumps(left, separators=(",", ":")), delivery_id))
    else:
        conn.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))


def delete_executions(conn: sqlite3.Connection, delete: DeleteExecutions,
                      stamp: str) -> Result:
    ids = delete.ids
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        deleted += conn.execute(
            f"DELETE FROM executions WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ).rowcount
    return {"deleted": deleted}


def prune_executions(conn: sqlite3.Connection, prune: PruneExecutions, stamp: str) -> Result:
    """
    Retention: finished executions older than C{before}, and beyond the newest
    C{keep_per_job} of each job, are deleted. An existing job's newest execution is always
    kept: it is the anchor its schedule continues from after a restart. A deleted job's
    history has no anchor to keep: it goes by the same age and count rules, to the last.

    With C{jobs} (C{[from, to)} job ids) only those jobs' executions are pruned, through
    the per-job index: the retention service walks the jobs in small ranges so no single
    write holds the writer for long. C{commands_before} also forgets applied command ids
    issued before it (kept only to answer a resubmitted command the same way).
    """
    terminal = ",".join(f"'{s}'" for s in TERMINAL_STATES)
    before, keep = prune.before, prune.keep_per_job
    forgotten = 0
    if prune.commands_before:
        forgotten = conn.execute("DELETE FROM applied_commands WHERE issued_at < ?",
                                 (prune.commands_before,)).rowcount
    if prune.jobs is None:
        old = conn.execute(
            f"DELETE FROM executions WHERE state IN ({terminal}) AND scheduled_time < ? "
            "AND (scheduled_time < (SELECT max(e.scheduled_time) FROM executions e "
            "WHERE e.job_id = executions.job_id) "
            "OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = executions.job_id))",
            (before,)).rowcount
        excess = conn.execute(
            f"DELETE FROM executions WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            f"(PARTITION BY job_id ORDER BY scheduled_time DESC) AS n FROM executions) "
            f"WHERE n > ?) AND state IN ({terminal})", (keep,)).rowcount
        return {"deleted": old + excess, "commands": forgotten}
    low, high = prune.jobs
    deleted = 0
    # per job, through executions_by_job: its newest row (the anchor, while the job
    # exists) and the row just past the newest keep_per_job bound what goes
    jobs = conn.execute(
        "SELECT job_id, max(scheduled_time), (SELECT e.scheduled_time FROM executions e "
        "WHERE e.job_id = x.job_id ORDER BY e.scheduled_time DESC LIMIT 1 OFFSET ?), "
        "EXISTS (SELECT 1 FROM jobs j WHERE j.id = x.job_id) "
        "FROM executions x WHERE job_id >= ? AND job_id < ? GROUP BY job_id",
        (keep, low, high)).fetchall()
    for job_id, newest, beyond, live in jobs:
        bound = min(before, newest) if live else before
        deleted += conn.execute(
            f"DELETE FROM executions WHERE job_id = ? AND state IN ({terminal}) "
            "AND (scheduled_time < ? OR scheduled_time <= ?)",
            (job_id, bound, beyond if beyond is not None else "")).rowcount
    return {"deleted": deleted, "commands": forgotten}


# -- deliveries an operator asked for (issue 13 item 4) ---------------------------------

def request_deliveries(conn: sqlite3.Connection, request: RequestDeliveries,
                       stamp: str) -> Result:
    """
    Record requested deliveries as 'scheduled' (durable before anything is sent: the
    owner delivers them when it observes the command, recovery if it dies first). Only
    occurrences of existing jobs are requested; a retry only of records still dead. The
    result's C{requested} lists the execution ids to deliver, C{skipped} the others.
    """
    reason = request.reason
    if reason not in (RUN_NOW, RETRY_DEAD, RERUN_HANGING):
        raise Rejected(400, f"reason: must be {RUN_NOW!r}, {RETRY_DEAD!r} or "
                            f"{RERUN_HANGING!r}")
    for finished in request.finished:
        finish_delivery(conn, finished.id, finished.executions)
    if any(len(o) != 5 for o in request.occurrences):
        raise Rejected(400, "occurrences: each is [execution id, job id, scheduled time, "
                            "attempts made, target]")
    wanted = [(str(o[0]), int(o[1]), str(o[2]), int(o[3]), o[4]) for o in request.occurrences]
    projects = _project_of_jobs(conn, {job_id for _, job_id, _, _, _ in wanted})
    requested, skipped = [], []
    for eid, job_id, scheduled, attempts, target in wanted:
        row = conn.execute("SELECT state FROM executions WHERE id = ?", (eid,)).fetchone()
        if job_id not in projects or (reason == RETRY_DEAD and (row is None
                                                                 or row[0] != "dead")):
            skipped.append(eid)
            continue
        if reason == RUN_NOW and row is not None:
            raise Rejected(409, f"execution {eid} already exists (two runs of job {job_id} "
                                "asked for in the same millisecond); ask again")
        conn.execute(
            "INSERT INTO executions (id, job_id, project_id, scheduled_time, state, attempts, "
            "target, node_id, date_created, date_modified) "
            "VALUES (?, ?, ?, ?, 'scheduled', ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = 'scheduled', attempts = excluded.attempts, "
            "next_retry_at = NULL, date_modified = excluded.date_modified",
            (eid, job_id, projects[job_id], scheduled, attempts, target, request.node_id,
             stamp, stamp))
        requested.append(eid)
    return {"requested": requested, "skipped": skipped}


def _project_of_jobs(conn: sqlite3.Connection, job_ids: set[int]) -> dict[int, int]:
    """The project of each existing job of C{job_ids}."""
    wanted = list(job_ids)
    found: dict[int, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.update(conn.execute(
            f"SELECT id, project_id FROM jobs WHERE id IN ({','.join('?' * len(chunk))})",
            chunk).fetchall())
    return found


def reset_breaker(conn: sqlite3.Connection, reset: ResetBreaker, stamp: str) -> Result:
    """Nothing to store: breakers are per node, each resets its own when it observes it."""
    if reset.scope not in ("endpoint", "host"):
        raise Rejected(400, 'scope: must be "endpoint" or "host"')
    return {"scope": reset.scope, "key": reset.key}
