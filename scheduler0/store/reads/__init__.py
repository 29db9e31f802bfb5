"""
The read side: queries over this node's copy of the state, run in the reactor thread.

Under WAL a read never waits for the writer thread, and every query here is an indexed
lookup or a bounded page, so running them synchronously keeps the code plain without
stalling the reactor.

One concept per module: L{jobs} (projects and jobs), L{executions} (executions merged with
the delivery outbox), L{credentials} (credentials and signing secrets), L{scheduler} (what
the scheduler and executor read), L{operations} (dead letters and stale dispatches), and
L{common} (the project filter they share). They return the domain's records
(L{scheduler0.domain}), never the API's shape. L{StateReader} is the API's reader,
assembled here from the query mixins; every name stays importable from here.
"""

from __future__ import annotations

import sqlite3

from ...secrets_at_rest import SigningSecretBox
from .common import Projects, Queries, _only
from .credentials import _PREVIOUS_SECRETS, CredentialQueries, credential_from_row
from .executions import (EXECUTION_ROW, EXECUTIONS_COUNT_CAP, IN_FLIGHT, _IN_FLIGHT_IDS, _ROW,
                         ExecutionQueries, execution_from_row)
from .jobs import ProjectJobQueries, job_from_row, project_from_row
from .operations import _DEAD, OperationsReader
from .scheduler import ScheduleReader

__all__ = [
    "EXECUTION_ROW", "EXECUTIONS_COUNT_CAP", "IN_FLIGHT", "OperationsReader", "Projects",
    "ScheduleReader", "StateReader", "credential_from_row", "execution_from_row",
    "job_from_row", "project_from_row",
    # private helpers, kept importable from here for anyone who reached for them
    "_DEAD", "_IN_FLIGHT_IDS", "_PREVIOUS_SECRETS", "_ROW", "_only", "Queries",
]


class StateReader(ProjectJobQueries, ExecutionQueries, CredentialQueries):
    """Typed queries over one read connection. Projects, signing secrets, credentials, jobs
    and executions come back as domain records (L{scheduler0.domain}); the API gives them
    their JSON shape (L{scheduler0.api.shapes}).

    @param signing_box: opens the sealed signing secrets (None: plaintext ones only).
    """

    def __init__(self, conn: sqlite3.Connection,
                 signing_box: SigningSecretBox | None = None) -> None:
        self._conn = conn
        self._signing_box = signing_box
        self.executions_count_cap = EXECUTIONS_COUNT_CAP
