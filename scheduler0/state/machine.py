"""
The state machine: one function applies every command to sqlite.

Applying is deterministic: it reads nothing but the command and the database (no clock,
no randomness), so a Raft replica applying the same log reaches the same state. A command
that cannot be applied (a duplicate name, a missing project) is I{rejected}: the rejection
is its deterministic result, recorded like a success, so resubmitting it answers the same.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Iterable, Mapping

from . import commands as C
from ..store.database import storage_failure
from ..store.schema import MAX_PREVIOUS_SECRETS
from ..timestamps import parse_time
from .commands import Command

Result = dict[str, Any]


class Rejected(Exception):
    """Raised by an applier: the command is refused, with an HTTP-like status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def apply_command(conn: sqlite3.Connection, command: Command) -> Result:
    """
    Apply one command inside the caller's transaction, atomically (a savepoint), once.

    A command whose applier raises is rolled back to its savepoint and I{rejected}, so the
    other commands of its batch still commit: a rejection for what the applier refused
    (L{Rejected}, a constraint), a stable "malformed" message for anything else that is
    about the command (a value sqlite cannot store, a missing field, a bug). Those
    messages never quote exception text, which differs between Python and sqlite versions
    and so between replicas; the exception itself is returned under L{EXCEPTION_KEY} (not
    stored) for the log. A storage failure (disk full, I/O error, damaged file) is not
    about the command: it propagates and fails the whole batch, which can be retried.
    """
    row = conn.execute(
        "SELECT result FROM applied_commands WHERE id = ?", (command.id,)
    ).fetchone()
    if row is not None:
        return json.loads(row[0])
    applier = _APPLIERS.get((command.kind, command.version))
    conn.execute("SAVEPOINT command")
    unexpected: Exception | None = None
    try:
        if applier is None:
            raise Rejected(
                400, f"unknown command {command.kind!r} version {command.version}"
            )
        result: Result = {"ok": True, **(applier(conn, command) or {})}
    except Rejected as rejected:
        conn.execute("ROLLBACK TO command")
        result = {"ok": False, "status": rejected.status, "error": rejected.message}
    except sqlite3.IntegrityError as error:
        conn.execute("ROLLBACK TO command")
        result = {"ok": False, "status": 409, "error": f"conflicts with stored data: {error}"}
    except Exception as error:
        if storage_failure(error) is not None:
            raise
        conn.execute("ROLLBACK TO command")
        unexpected = error
        status, reason = _malformed(error)
        result = {"ok": False, "status": status,
                  "error": f"malformed {command.kind} command: {reason}"}
    conn.execute(
        "INSERT INTO applied_commands (id, kind, issued_at, result) VALUES (?, ?, ?, ?)",
        (command.id, command.kind, command.issued_at, json.dumps(result)),
    )
    conn.execute("RELEASE command")
    if unexpected is not None:
        result = {**result, EXCEPTION_KEY: unexpected}
    return result


# Not stored and not part of the answer: the exception behind a "malformed" rejection, for
# the command log to log (this module runs in the writer thread and does not log).
EXCEPTION_KEY = "_exception"


def _malformed(error: Exception) -> tuple[int, str]:
    """A status and a message that depend only on the kind of C{error}, never its text."""
    if isinstance(error, OverflowError):
        return 400, "a value is out of range"
    if isinstance(error, sqlite3.DataError):
        return 400, "a value is too large to store"
    if isinstance(error, KeyError):
        return 400, "a required field is missing"
    if isinstance(error, (TypeError, sqlite3.InterfaceError, sqlite3.ProgrammingError)):
        return 400, "a value has the wrong type"
    if isinstance(error, ValueError):
        return 400, "a value is not valid"
    return 500, "it could not be applied (an internal error; the node's log has details)"


def apply_batch(conn: sqlite3.Connection, commands: Iterable[Command]) -> list[Result]:
    """
    Apply commands in order in one transaction: one commit for the whole batch. When the
    batch fails (a storage failure, a failed commit) nothing of it is stored and the
    connection is left outside any transaction, ready for the next batch.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [apply_command(conn, command) for command in commands]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more than this one
        raise
    return results


def _bump_sequence(conn: sqlite3.Connection, name: str, ids: Iterable[int]) -> None:
    top = max(ids, default=None)
    if top is None:
        return
    conn.execute(
        "INSERT INTO sequences (name, last) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET last = max(last, excluded.last)",
        (name, top),
    )


def _require_row(conn: sqlite3.Connection, table: str, row_id: int, what: str) -> sqlite3.Row:
    row = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        raise Rejected(404, f"{what} {row_id} does not exist")
    return row


def _update(conn: sqlite3.Connection, table: str, row_id: int, changes: Mapping[str, Any],
            modified: str) -> None:
    columns = dict(changes)
    columns["date_modified"] = modified
    assignments = ", ".join(f"{column} = ?" for column in columns)
    conn.execute(
        f"UPDATE {table} SET {assignments} WHERE id = ?", (*columns.values(), row_id)
    )


# -- projects ---------------------------------------------------------------------------

_PROJECT_FIELDS = ("name", "description")


def _project_name_taken(conn: sqlite3.Connection, name: str, except_id: int | None) -> None:
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != except_id:
        raise Rejected(409, f"a project named {name!r} already exists (id {row[0]})")


def _project_create(conn: sqlite3.Connection, command: Command) -> Result:
    project = command.payload["project"]
    _project_name_taken(conn, project["name"], None)
    conn.execute(
        "INSERT INTO projects (id, name, description, signing_secret, date_created, "
        "date_modified) VALUES (?, ?, ?, ?, ?, ?)",
        (project["id"], project["name"], project["description"], project["signing_secret"],
         command.issued_at, command.issued_at),
    )
    _bump_sequence(conn, "projects", [project["id"]])
    return {"id": project["id"]}


def _project_update(conn: sqlite3.Connection, command: Command) -> Result:
    project_id = command.payload["id"]
    _require_row(conn, "projects", project_id, "project")
    changes = {k: v for k, v in command.payload["changes"].items() if k in _PROJECT_FIELDS}
    if "name" in changes:
        _project_name_taken(conn, changes["name"], project_id)
    _update(conn, "projects", project_id, changes, command.issued_at)
    return {"id": project_id}


def _project_delete(conn: sqlite3.Connection, command: Command) -> Result:
    project_id = command.payload["id"]
    _require_row(conn, "projects", project_id, "project")
    (jobs,) = conn.execute(
        "SELECT count(*) FROM jobs WHERE project_id = ?", (project_id,)
    ).fetchone()
    if jobs:
        raise Rejected(
            409, f"project {project_id} still has {jobs} job(s); delete them first"
        )
    conn.execute("DELETE FROM previous_signing_secrets WHERE project_id = ?", (project_id,))
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
    return {"id": project_id}


def _project_rotate_secret(conn: sqlite3.Connection, command: Command) -> Result:
    """
    The new secret signs from now on; the one it replaces is kept beside it until
    C{previous_expires}. Earlier previous secrets keep their own expiry (a second rotation
    within the first one's grace does not cut it short); expired ones are dropped, and at
    most L{MAX_PREVIOUS_SECRETS} are kept, the most recently rotated out.
    """
    project_id = command.payload["id"]
    project = _require_row(conn, "projects", project_id, "project")
    stamp = command.issued_at
    conn.execute(
        "INSERT OR REPLACE INTO previous_signing_secrets (project_id, secret, expires, "
        "rotated_at) VALUES (?, ?, ?, ?)",
        (project_id, project["signing_secret"], command.payload["previous_expires"], stamp))
    conn.execute("DELETE FROM previous_signing_secrets WHERE project_id = ? AND expires <= ?",
                 (project_id, stamp))
    conn.execute(
        "DELETE FROM previous_signing_secrets WHERE project_id = ? AND secret NOT IN ("
        "SELECT secret FROM previous_signing_secrets WHERE project_id = ? "
        "ORDER BY rotated_at DESC, expires DESC, secret LIMIT ?)",
        (project_id, project_id, MAX_PREVIOUS_SECRETS))
    _update(conn, "projects", project_id, {"signing_secret": command.payload["secret"]},
            stamp)
    return {"id": project_id}


# -- jobs -------------------------------------------------------------------------------

JOB_COLUMNS = (
    "id", "project_id", "spec", "callback_url", "data", "execution_type", "timezone",
    "start_date", "end_date", "paused", "misfire_policy", "misfire_grace_seconds",
)
_JOB_MUTABLE = frozenset(JOB_COLUMNS) - {"id"}


def _missing_projects(conn: sqlite3.Connection, project_ids: set[int]) -> set[int]:
    return project_ids - _existing(conn, "projects", project_ids)


def _job_create(conn: sqlite3.Connection, command: Command) -> Result:
    jobs = command.payload["jobs"]
    missing = _missing_projects(conn, {job["project_id"] for job in jobs})
    if missing:
        index = next(i for i, job in enumerate(jobs) if job["project_id"] in missing)
        raise Rejected(
            400, f"jobs[{index}].projectId: project {jobs[index]['project_id']} does not exist"
        )
    stamp = command.issued_at
    conn.executemany(
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}, date_created, date_modified) "
        f"VALUES ({', '.join('?' * (len(JOB_COLUMNS) + 2))})",
        [tuple(job[column] for column in JOB_COLUMNS) + (stamp, stamp) for job in jobs],
    )
    _bump_sequence(conn, "jobs", (job["id"] for job in jobs))
    return {"count": len(jobs)}


def _job_update(conn: sqlite3.Connection, command: Command) -> Result:
    job_id = command.payload["id"]
    _require_row(conn, "jobs", job_id, "job")
    changes = {k: v for k, v in command.payload["changes"].items() if k in _JOB_MUTABLE}
    if "project_id" in changes and _missing_projects(conn, {changes["project_id"]}):
        raise Rejected(400, f"projectId: project {changes['project_id']} does not exist")
    _update(conn, "jobs", job_id, changes, command.issued_at)
    return {"id": job_id}


#: the last error of a deleted job's occurrences that had not finished
DELETED_BEFORE_FINISHING = "the job was deleted before this occurrence finished"


def _job_delete(conn: sqlite3.Connection, command: Command) -> Result:
    """
    The job goes; its execution history stays until retention prunes it (an operator
    who deleted a job can still ask what it did). Occurrences that had not finished
    (held, waiting for a retry) are recorded as failed, so nothing resumes them and
    retention can prune them. The job's entries in the delivery outbox are dropped, as
    is any outcome recorded after this command (L{_execution_record}): a deleted job's
    history ends with its deletion.
    """
    job_id = command.payload["id"]
    _require_row(conn, "jobs", job_id, "job")
    conn.execute(
        "UPDATE executions SET state = 'failed', last_error = ?, next_retry_at = NULL, "
        "date_modified = ? WHERE job_id = ? AND state IN ('scheduled', 'dispatched', "
        "'retrying')", (DELETED_BEFORE_FINISHING, command.issued_at, job_id))
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    for delivery_id, occurrences in conn.execute(
            "SELECT d.id, d.occurrences FROM deliveries d WHERE EXISTS "
            "(SELECT 1 FROM json_each(d.occurrences) o WHERE o.value ->> 1 = ?)",
            (job_id,)).fetchall():
        _finish_delivery(conn, delivery_id, [o[0] for o in json.loads(occurrences)
                                             if o[1] == job_id], keep_facts=False)
    return {"id": job_id}


# -- executions -------------------------------------------------------------------------

EXECUTION_COLUMNS = (
    "id", "job_id", "project_id", "scheduled_time", "state", "attempts", "target", "node_id",
    "last_status", "last_error", "error_category", "duration_ms", "lateness_ms",
    "first_attempt_at", "last_attempt_at", "next_retry_at",
)
TERMINAL_STATES = ("succeeded", "failed", "dead")
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


def _existing(conn: sqlite3.Connection, table: str, ids: set[int]) -> set[int]:
    wanted = list(ids)
    found: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(row[0] for row in conn.execute(
            f"SELECT id FROM {table} WHERE id IN ({marks})", chunk))
    return found


def _execution_record(conn: sqlite3.Connection, command: Command) -> Result:
    """
    Upsert execution records and keep the delivery outbox in step, atomically:
    C{finished} deliveries (or some of their occurrences) leave the outbox in the same
    transaction that records their outcomes, and C{started} deliveries enter it.

    A record of a job deleted meanwhile is dropped (checked once per distinct job: a per-row
    subquery doubled the cost of every insert).
    """
    stamp = command.issued_at
    payload = command.payload
    for finished in payload.get("finished", ()):
        _finish_delivery(conn, finished["id"], finished.get("executions"))
    records = payload.get("records", ())
    if records:
        live = _existing(conn, "jobs", {record["job_id"] for record in records})
        conn.executemany(_RECORD_SQL, [
            tuple(record.get(c) for c in EXECUTION_COLUMNS) + (stamp, stamp)
            for record in records if record["job_id"] in live
        ])
    started = payload.get("started", ())
    if started:
        conn.executemany(
            "INSERT OR REPLACE INTO deliveries (id, node_id, project_id, target, started_at, "
            "occurrences) VALUES (?, ?, ?, ?, ?, ?)",
            [(d["id"], d["node_id"], d["project_id"], d["target"], d["started_at"],
              json.dumps(d["occurrences"], separators=(",", ":"))) for d in started])
    return {"count": len(records)}


_FIRST_ATTEMPT_SQL = (
    "INSERT INTO executions (id, job_id, project_id, scheduled_time, state, attempts, target, "
    "node_id, lateness_ms, first_attempt_at, last_attempt_at, date_created, date_modified) "
    "SELECT ?, ?, ?, ?, 'dispatched', 1, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?) "
    "ON CONFLICT (id) DO UPDATE SET lateness_ms = coalesce(lateness_ms, excluded.lateness_ms), "
    "first_attempt_at = coalesce(first_attempt_at, excluded.first_attempt_at)"
)


def _finish_delivery(conn: sqlite3.Connection, delivery_id: str,
                     executions: list[str] | None, keep_facts: bool = True) -> None:
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


def _execution_delete(conn: sqlite3.Connection, command: Command) -> Result:
    ids = command.payload["ids"]
    deleted = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        deleted += conn.execute(
            f"DELETE FROM executions WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ).rowcount
    return {"deleted": deleted}


def _execution_prune(conn: sqlite3.Connection, command: Command) -> Result:
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
    payload = command.payload
    terminal = ",".join(f"'{s}'" for s in TERMINAL_STATES)
    before, keep = payload["before"], payload["keep_per_job"]
    forgotten = 0
    if payload.get("commands_before"):
        forgotten = conn.execute("DELETE FROM applied_commands WHERE issued_at < ?",
                                 (payload["commands_before"],)).rowcount
    if "jobs" not in payload:
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
    low, high = payload["jobs"]
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


# -- the supervisor ---------------------------------------------------------------------


def _supervisor_set(conn: sqlite3.Connection, command: Command) -> Result:
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


# -- credentials ------------------------------------------------------------------------

#: The payload version of a credential command that limits it to projects
#: (C{project_ids}). An older release has no applier for it and rejects the command, where
#: it would have ignored the field and stored a node-wide credential.
CREDENTIAL_PROJECTS_VERSION = 2

_CREDENTIAL_MUTABLE = frozenset({"archived", "scopes", "project_ids"})


def _project_ids_column(conn: sqlite3.Connection, project_ids: Any) -> str | None:
    """
    C{credentials.project_ids} for a payload's C{project_ids}: None (node-wide) or the
    ids, sorted and comma-separated. Each must be a project that exists when the command
    is applied; an empty list is refused (it would read as node-wide).
    """
    if project_ids is None:
        return None
    if not isinstance(project_ids, list) or not project_ids or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in project_ids):
        raise Rejected(400, "projectIds: must be a non-empty list of project ids, or null")
    wanted = set(project_ids)
    missing = _missing_projects(conn, wanted)
    if missing:
        raise Rejected(400, f"projectIds: project {min(missing)} does not exist")
    return ",".join(str(i) for i in sorted(wanted))


def _credential_create(conn: sqlite3.Connection, command: Command) -> Result:
    credential = command.payload["credential"]
    conn.execute(
        "INSERT INTO credentials (id, api_key, secret_hash, scopes, archived, date_created, "
        "date_modified, project_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (credential["id"], credential["api_key"], credential["secret_hash"],
         credential["scopes"], int(credential.get("archived", False)), command.issued_at,
         command.issued_at, _project_ids_column(conn, credential.get("project_ids"))),
    )
    _bump_sequence(conn, "credentials", [credential["id"]])
    return {"id": credential["id"]}


def _credential_update(conn: sqlite3.Connection, command: Command) -> Result:
    credential_id = command.payload["id"]
    _require_row(conn, "credentials", credential_id, "credential")
    changes = {
        k: v for k, v in command.payload["changes"].items() if k in _CREDENTIAL_MUTABLE
    }
    if "project_ids" in changes:
        changes["project_ids"] = _project_ids_column(conn, changes["project_ids"])
    _update(conn, "credentials", credential_id, changes, command.issued_at)
    return {"id": credential_id}


def _credential_delete(conn: sqlite3.Connection, command: Command) -> Result:
    credential_id = command.payload["id"]
    _require_row(conn, "credentials", credential_id, "credential")
    conn.execute("DELETE FROM credentials WHERE id = ?", (credential_id,))
    return {"id": credential_id}


_APPLIERS: dict[tuple[str, int], Callable[[sqlite3.Connection, Command], Result | None]] = {
    (C.PROJECT_CREATE, 1): _project_create,
    (C.PROJECT_UPDATE, 1): _project_update,
    (C.PROJECT_DELETE, 1): _project_delete,
    (C.PROJECT_ROTATE_SECRET, 1): _project_rotate_secret,
    (C.EXECUTION_RECORD, 1): _execution_record,
    (C.EXECUTION_DELETE, 1): _execution_delete,
    (C.EXECUTION_PRUNE, 1): _execution_prune,
    (C.JOB_CREATE, 1): _job_create,
    (C.JOB_UPDATE, 1): _job_update,
    (C.JOB_DELETE, 1): _job_delete,
    (C.CREDENTIAL_CREATE, 1): _credential_create,
    (C.CREDENTIAL_UPDATE, 1): _credential_update,
    # version 2 carries project_ids: a release that does not know it refuses the command
    # rather than storing a node-wide credential (see CREDENTIAL_PROJECTS_VERSION)
    (C.CREDENTIAL_CREATE, CREDENTIAL_PROJECTS_VERSION): _credential_create,
    (C.CREDENTIAL_UPDATE, CREDENTIAL_PROJECTS_VERSION): _credential_update,
    (C.CREDENTIAL_DELETE, 1): _credential_delete,
    (C.SUPERVISOR_SET, 1): _supervisor_set,
}
