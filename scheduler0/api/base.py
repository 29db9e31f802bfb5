"""
What every resource mixin of L{scheduler0.api.app.Api} shares: its collaborators and the
lookups that decide what a credential limited to projects may see.
"""

from __future__ import annotations

from typing import Any, Callable

from ..domain import Execution, Job, Project
from ..store.reads import StateReader
from .auth import Authenticator
from .errors import NotFound, Unavailable
from .facade import CommandFacade
from .routing import app
from .settings import ApiSettings, Operations


class ApiBase:
    """The attributes L{scheduler0.api.app.Api} sets, and the per-project lookups: the
    one place a caller's view of projects, jobs and executions is decided."""

    app = app
    reader: Callable[[], StateReader]
    facade: CommandFacade
    commands: Any
    clock: Any
    authenticator: Authenticator
    settings: ApiSettings
    scheduler: Any
    operations: Operations | None

    def _project(self, request: Any, project_id: int) -> Project:
        """The project, or 404: also when the caller may not see it, with the same message,
        so that a credential limited to projects cannot tell others exist."""
        project = self.reader().project(project_id)
        if project is None or not request.principal.sees(project_id):
            raise NotFound(f"project {project_id} does not exist")
        return project

    def _job(self, request: Any, job_id: int) -> Job:
        """The job, or 404 (also when it is in a project the caller may not see)."""
        job = self.reader().job(job_id)
        if job is None or not request.principal.sees(job.project_id):
            raise NotFound(f"job {job_id} does not exist")
        return job

    def _execution(self, request: Any, execution_id: str) -> Execution:
        """The execution, or 404 (also when it is of a project the caller may not see)."""
        execution = self.reader().execution(execution_id)
        if execution is None or not request.principal.sees(execution.project_id):
            raise NotFound(f"execution {execution_id} does not exist")
        return execution

    def _ops(self) -> Operations:
        """The operability collaborators, or 503 on a wiring without them."""
        if self.operations is None:
            raise Unavailable("operability endpoints are not available on this node")
        return self.operations
