"""
The read side: queries over this node's copy of the state, run in the reactor thread.

Under WAL a read never waits for the writer thread, and every query here is an indexed
lookup or a bounded page, so running them synchronously keeps the code plain without
stalling the reactor.
"""

from __future__ import annotations

import json
import sqlite3
from typing import AbstractSet, Any, Iterable, Optional

from ..secrets_at_rest import SigningSecretBox, unseal_with
from ..state.machine import EXECUTION_COLUMNS

Record = dict[str, Any]

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
#: a project's previous signing secrets, the most recently rotated out first
_PREVIOUS_SECRETS = ("SELECT secret, expires FROM previous_signing_secrets WHERE project_id = ? "
                     "ORDER BY rotated_at DESC, expires DESC, secret")
#: executions counted at most for a listing's C{total} (a few milliseconds' work)
EXECUTIONS_COUNT_CAP = 100_000
#: dead letters: dead, of a job that still exists (a deleted job's are history, not
#: something to act on), and not being delivered again (a replay in flight)
_DEAD = (f"state = 'dead' AND id NOT IN ({_IN_FLIGHT_IDS}) "
         "AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = executions.job_id)")


def project_record(row: sqlite3.Row) -> Record:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "dateCreated": row["date_created"],
        "dateModified": row["date_modified"],
    }


def job_record(row: sqlite3.Row) -> Record:
    return {
        "id": row["id"],
        "projectId": row["project_id"],
        "spec": row["spec"],
        "callbackUrl": row["callback_url"],
        "data": row["data"],
        "executionType": row["execution_type"],
        "timezone": row["timezone"],
        "startDate": row["start_date"],
        "endDate": row["end_date"],
        "paused": bool(row["paused"]),
        "misfirePolicy": row["misfire_policy"],
        "misfireGraceSeconds": row["misfire_grace_seconds"],
        "dateCreated": row["date_created"],
        "dateModified": row["date_modified"],
    }


def credential_record(row: sqlite3.Row) -> Record:
    """A credential as the API shows it: never the secret, not even its hash.
    C{projectIds} is None for a node-wide credential."""
    projects = row["project_ids"]
    return {
        "id": row["id"],
        "apiKey": row["api_key"],
        "scopes": row["scopes"].split(",") if row["scopes"] else [],
        "projectIds": [int(i) for i in projects.split(",")] if projects is not None else None,
        "archived": bool(row["archived"]),
        "dateCreated": row["date_created"],
        "dateModified": row["date_modified"],
    }


#: Which projects a caller may see: None for all of them (a node-wide caller), else their
#: ids (a credential limited to projects).
Projects = Optional[AbstractSet[int]]


def _only(column: str, projects: Projects) -> tuple[str, list[Any]]:
    """A WHERE clause (and its argument) keeping rows whose C{column} is one of
    C{projects}; C{"1"} when every project is visible. One JSON argument, whatever the
    number of ids."""
    if projects is None:
        return "1", []
    return (f"{column} IN (SELECT value FROM json_each(?))",
            [json.dumps(sorted(projects))])


class StateReader:
    """Typed queries over one read connection. Rows come back as API-shaped records.

    @param signing_box: opens the sealed signing secrets (None: plaintext ones only).
    """

    def __init__(self, conn: sqlite3.Connection,
                 signing_box: SigningSecretBox | None = None) -> None:
        self._conn = conn
        self._signing_box = signing_box
        self.executions_count_cap = EXECUTIONS_COUNT_CAP

    def _one(self, sql: str, args: Iterable[Any]) -> sqlite3.Row | None:
        return self._conn.execute(sql, tuple(args)).fetchone()

    def _count(self, sql: str, args: Iterable[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(args)).fetchone()[0]

    def sequence(self, name: str) -> int:
        """The highest id ever used for C{name}'s rows (0 if none)."""
        row = self._one("SELECT last FROM sequences WHERE name = ?", (name,))
        return row[0] if row else 0

    # projects

    def project(self, project_id: int) -> Record | None:
        row = self._one("SELECT * FROM projects WHERE id = ?", (project_id,))
        return project_record(row) if row else None

    def projects(self, limit: int, offset: int,
                 only: Projects = None) -> tuple[list[Record], int]:
        where, args = _only("id", only)
        rows = self._conn.execute(
            f"SELECT * FROM projects WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
            (*args, limit, offset)).fetchall()
        return ([project_record(r) for r in rows],
                self._count(f"SELECT count(*) FROM projects WHERE {where}", args))

    def existing_project_ids(self, ids: Iterable[int]) -> set[int]:
        wanted = list(set(ids))
        found: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._conn.execute(
                f"SELECT id FROM projects WHERE id IN ({marks})", chunk))
        return found

    # jobs

    def job(self, job_id: int) -> Record | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return job_record(row) if row else None

    def jobs(self, project_id: int | None, limit: int, offset: int,
             only: Projects = None) -> tuple[list[Record], int]:
        """A page of jobs, of C{project_id} or of every project, among the projects in
        C{only} (when given)."""
        if only is not None and project_id is not None and project_id not in only:
            return [], 0
        if project_id is None:
            where, args = _only("project_id", only)
            rows = self._conn.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                (*args, limit, offset)).fetchall()
            total = self._count(f"SELECT count(*) FROM jobs WHERE {where}", args)
        else:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE project_id = ? ORDER BY id LIMIT ? OFFSET ?",
                (project_id, limit, offset),
            ).fetchall()
            total = self._count("SELECT count(*) FROM jobs WHERE project_id = ?", (project_id,))
        return [job_record(r) for r in rows], total

    def jobs_by_ids(self, ids: list[int]) -> list[Record]:
        records: list[Record] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            records.extend(job_record(r) for r in self._conn.execute(
                f"SELECT * FROM jobs WHERE id IN ({marks}) ORDER BY id", chunk))
        return records

    # executions

    def execution(self, execution_id: str) -> Record | None:
        row = (self._one(f"SELECT * FROM ({IN_FLIGHT}) WHERE id = ?", (execution_id,))
               or self._one("SELECT * FROM executions WHERE id = ?", (execution_id,)))
        return execution_record(row) if row else None

    def executions(self, *, job_id: int | None = None, project_id: int | None = None,
                   state: str | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 50, offset: int = 0,
                   only: Projects = None) -> tuple[list[Record], int, bool]:
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
            return [execution_record(r) for r in rows], min(total, count_cap), total > count_cap
        stored = f"SELECT {_ROW} FROM executions WHERE {where} AND id NOT IN ({_IN_FLIGHT_IDS})"
        flying = f"SELECT {_ROW} FROM ({IN_FLIGHT}) WHERE {where}"
        rows = self._conn.execute(
            f"{stored} UNION ALL {flying} ORDER BY scheduled_time DESC, id LIMIT ? OFFSET ?",
            (*args, *args, limit, offset)).fetchall()
        total = self._count(f"SELECT count(*) FROM ({stored} UNION ALL {flying} LIMIT ?)",
                            (*args, *args, count_cap + 1))
        return [execution_record(r) for r in rows], min(total, count_cap), total > count_cap

    def has_executions(self, job_id: int, only: Projects = None) -> bool:
        """Whether any execution of C{job_id} is stored (a deleted job's history too), in
        the projects of C{only} when given."""
        where, args = _only("project_id", only)
        return self._one(f"SELECT 1 FROM executions WHERE job_id = ? AND {where} LIMIT 1",
                         (job_id, *args)) is not None

    def signing_secret(self, project_id: int) -> Record | None:
        """The current secret and the previous ones kept (newest first, expired ones
        included until the next rotation drops them), opened; C{previousSigningSecret} and
        C{previousSecretExpires} name the newest previous one.

        @raise scheduler0.secrets_at_rest.SigningKeyError: a secret does not open."""
        row = self._one("SELECT signing_secret FROM projects WHERE id = ?", (project_id,))
        if row is None:
            return None
        box = self._signing_box
        previous = [{"secret": unseal_with(box, project_id, secret), "expires": expires}
                    for secret, expires in self._conn.execute(_PREVIOUS_SECRETS, (project_id,))]
        newest = previous[0] if previous else {"secret": None, "expires": None}
        return {"signingSecret": unseal_with(box, project_id, row[0]),
                "previousSigningSecret": newest["secret"],
                "previousSecretExpires": newest["expires"], "previousSigningSecrets": previous}

    # credentials

    def credential(self, credential_id: int) -> Record | None:
        row = self._one("SELECT * FROM credentials WHERE id = ?", (credential_id,))
        return credential_record(row) if row else None

    def credentials(self, limit: int, offset: int) -> tuple[list[Record], int]:
        rows = self._conn.execute(
            "SELECT * FROM credentials ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [credential_record(r) for r in rows], self._count("SELECT count(*) FROM credentials")

    def credential_for_key(self, api_key: str) -> tuple[Record, str] | None:
        """The credential with C{api_key} and its stored secret hash, for authentication."""
        row = self._one("SELECT * FROM credentials WHERE api_key = ?", (api_key,))
        return (credential_record(row), row["secret_hash"]) if row else None


class ScheduleReader:
    """The queries the scheduler and executor need at start-up and per dispatch round.

    @param signing_box: opens the sealed signing secrets (None: plaintext ones only).
    """

    def __init__(self, conn: sqlite3.Connection,
                 signing_box: SigningSecretBox | None = None) -> None:
        self._conn = conn
        self._signing_box = signing_box

    def all_jobs(self) -> Iterable[Record]:
        for row in self._conn.execute("SELECT * FROM jobs ORDER BY id"):
            yield job_record(row)

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

    def unfinished_executions(self) -> list[Record]:
        """Occurrences held, dispatched or waiting for a retry: to resume after a restart."""
        rows = self._conn.execute(
            "SELECT * FROM executions WHERE state IN ('scheduled', 'dispatched', 'retrying') "
            "ORDER BY scheduled_time").fetchall()
        return [execution_record(r) for r in rows]

    def deliveries(self) -> list[Record]:
        """The delivery outbox: POSTs that were in flight when the node stopped."""
        return [{"id": row[0], "nodeId": row[1], "projectId": row[2], "target": row[3],
                 "startedAt": row[4], "occurrences": json.loads(row[5])}
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

    def supervisor(self) -> Record | None:
        """The operator's last halt or restart (C{halted}, C{reason}, C{at}); None if
        there was none."""
        row = self._conn.execute(
            "SELECT halted, reason, changed_at FROM supervisor WHERE id = 1").fetchone()
        if row is None:
            return None
        return {"halted": bool(row[0]), "reason": row[1], "at": row[2]}


def execution_record(row: sqlite3.Row) -> Record:
    return {
        "executionId": row["id"],
        "jobId": row["job_id"],
        "projectId": row["project_id"],
        "scheduledTime": row["scheduled_time"],
        "state": row["state"],
        "attempts": row["attempts"],
        "target": row["target"],
        "nodeId": row["node_id"],
        "lastStatus": row["last_status"],
        "lastError": row["last_error"],
        "errorCategory": row["error_category"],
        "durationMs": row["duration_ms"],
        "latenessMs": row["lateness_ms"],
        "firstAttemptAt": row["first_attempt_at"],
        "lastAttemptAt": row["last_attempt_at"],
        "nextRetryAt": row["next_retry_at"],
        "dateCreated": row["date_created"],
        "dateModified": row["date_modified"],
    }


class OperationsReader:
    """Queries behind the health, dead-letter and supervisor APIs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def dead_letter_count(self) -> int:
        return self._conn.execute(
            f"SELECT count(*) FROM executions WHERE {_DEAD}").fetchone()[0]

    def dead_letters(self, target: str | None = None, limit: int | None = None) -> list[Record]:
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
        return [execution_record(r) for r in self._conn.execute(sql, args)]

    def dead_letters_by_target(self) -> dict[str, Record]:
        """Per target: how many are dead, since when, and whether any failed permanently."""
        rows = self._conn.execute(
            "SELECT target, count(*), min(coalesce(first_attempt_at, date_created)), "
            "max(coalesce(last_attempt_at, date_modified)), max(attempts), "
            f"sum(error_category = 'permanent') FROM executions WHERE {_DEAD} "
            "GROUP BY target").fetchall()
        return {row[0]: {"count": row[1], "firstAttempt": row[2], "lastAttempt": row[3],
                         "attempts": row[4], "permanent": bool(row[5])} for row in rows}

    def dead_letters_by_job(self) -> list[Record]:
        """Per job (and target): the L{dead_letters_by_target} summary, so the health
        API can group dead letters by callback endpoint."""
        rows = self._conn.execute(
            "SELECT job_id, target, count(*), min(coalesce(first_attempt_at, date_created)), "
            "max(coalesce(last_attempt_at, date_modified)), max(attempts), "
            f"sum(error_category = 'permanent') FROM executions WHERE {_DEAD} "
            "GROUP BY job_id, target").fetchall()
        return [{"jobId": row[0], "target": row[1], "count": row[2], "firstAttempt": row[3],
                 "lastAttempt": row[4], "attempts": row[5], "permanent": bool(row[6])}
                for row in rows]

    def dispatched_before(self, cutoff: str) -> list[Record]:
        """Executions dispatched before C{cutoff} whose outcome was never recorded: the
        outbox's, each with the C{deliveryId} it belongs to, and 'dispatched' rows."""
        flying = self._conn.execute(
            f"SELECT * FROM ({IN_FLIGHT}) WHERE last_attempt_at < ? ORDER BY scheduled_time",
            (cutoff,)).fetchall()
        records = [{**execution_record(r), "deliveryId": r["delivery_id"]} for r in flying]
        rows = self._conn.execute(
            "SELECT * FROM executions WHERE state = 'dispatched' AND "
            "coalesce(last_attempt_at, date_modified) < ? ORDER BY scheduled_time",
            (cutoff,)).fetchall()
        seen = {r["executionId"] for r in records}
        records.extend({**execution_record(r), "deliveryId": None} for r in rows
                       if r["id"] not in seen)
        return records
