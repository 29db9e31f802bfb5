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

from . import kinds as C
from . import credentials, executions, jobs, projects, supervisor
from . import cluster
from ..store.database import storage_failure
from .commands import Command
from .executions import EXECUTION_COLUMNS, TERMINAL_STATES
from .jobs import DELETED_BEFORE_FINISHING, JOB_COLUMNS
from .payloads import (CREDENTIAL_PROJECTS_VERSION, JOB_ROWS_VERSION, RECORD_OUTCOMES_VERSION,
                       payload_from_json)
from .rows import Rejected, Result

# what importers have always found here; the appliers themselves live in one module per
# domain (projects, jobs, executions, credentials, supervisor), their helpers in rows
__all__ = [
    "CREDENTIAL_PROJECTS_VERSION", "DELETED_BEFORE_FINISHING", "EXCEPTION_KEY",
    "RECORD_OUTCOMES_VERSION",
    "EXECUTION_COLUMNS", "JOB_COLUMNS", "TERMINAL_STATES", "Rejected", "Result",
    "apply_batch", "apply_command",
]


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
        payload = command.payload
        if isinstance(payload, Mapping):
            # a payload that did not make a typed one: this raises what is wrong with it
            payload = payload_from_json(command.kind, payload)
        result: Result = {"ok": True, **(applier(conn, payload, command.issued_at) or {})}
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


def apply_batch(conn: sqlite3.Connection, commands: Iterable[Command],
                applied_index: int | None = None) -> list[Result]:
    """
    Apply commands in order in one transaction: one commit for the whole batch. When the
    batch fails (a storage failure, a failed commit) nothing of it is stored and the
    connection is left outside any transaction, ready for the next batch.

    @param applied_index: the Raft index of the batch's last entry, stored in the same
        transaction (so a replayed journal skips exactly what is in the file); None on a
        single node, which has no Raft index.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [apply_command(conn, command) for command in commands]
        if applied_index is not None:
            conn.execute("INSERT OR REPLACE INTO raft_applied (id, applied_index) "
                         "VALUES (1, ?)", (applied_index,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more than this one
        raise
    return results



_APPLIERS: dict[tuple[str, int], Callable[[sqlite3.Connection, Any, str], Result | None]] = {
    (C.PROJECT_CREATE, 1): projects.create_project,
    (C.PROJECT_UPDATE, 1): projects.update_project,
    (C.PROJECT_DELETE, 1): projects.delete_project,
    (C.PROJECT_ROTATE_SECRET, 1): projects.rotate_project_secret,
    (C.EXECUTION_RECORD, 1): executions.record_executions,
    # version 2 carries per-POST outcomes (see RECORD_OUTCOMES_VERSION)
    (C.EXECUTION_RECORD, RECORD_OUTCOMES_VERSION): executions.record_executions,
    (C.EXECUTION_DELETE, 1): executions.delete_executions,
    (C.EXECUTION_PRUNE, 1): executions.prune_executions,
    (C.JOB_CREATE, 1): jobs.create_jobs,
    # version 2 carries each job as an array (see JOB_ROWS_VERSION)
    (C.JOB_CREATE, JOB_ROWS_VERSION): jobs.create_jobs,
    (C.JOB_UPDATE, 1): jobs.update_job,
    (C.JOB_DELETE, 1): jobs.delete_job,
    (C.CREDENTIAL_CREATE, 1): credentials.create_credential,
    (C.CREDENTIAL_UPDATE, 1): credentials.update_credential,
    # version 2 carries project_ids: a release that does not know it refuses the command
    # rather than storing a node-wide credential (see CREDENTIAL_PROJECTS_VERSION)
    (C.CREDENTIAL_CREATE, CREDENTIAL_PROJECTS_VERSION): credentials.create_credential,
    (C.CREDENTIAL_UPDATE, CREDENTIAL_PROJECTS_VERSION): credentials.update_credential,
    (C.CREDENTIAL_DELETE, 1): credentials.delete_credential,
    (C.SUPERVISOR_SET, 1): supervisor.set_supervisor,
    (C.CLUSTER_MEMBERS, 1): cluster.set_members,
    (C.EXECUTION_REQUEST, 1): executions.request_deliveries,
    (C.BREAKER_RESET, 1): executions.reset_breaker,
    (C.CLUSTER_ASSIGN, 1): cluster.assign_jobs,
}
