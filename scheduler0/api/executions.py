"""Routes of C{/api/v1/executions} and C{/api/v1/jobs/<id>/executions}: execution history,
retrying and deleting an execution."""

from __future__ import annotations

from typing import Any

from . import validation as V
from .base import ApiBase
from .envelope import no_content, respond
from .error_map import run_repair
from .routing import app, requires, visible_projects
from .shapes import execution_json


class ExecutionRoutes(ApiBase):
    @app.route("/api/v1/jobs/<int:job_id>/executions", methods=["GET"])
    @requires("read")
    def job_executions(self, request: Any, job_id: int) -> bytes:
        if not self.reader().has_executions(job_id, only=visible_projects(request)):
            # 404 only when neither the job nor any history exists (that the caller sees)
            self._job(request, job_id)
        return self._executions(request, job_id=job_id)

    @app.route("/api/v1/executions", methods=["GET"])
    @requires("read")
    def list_executions(self, request: Any) -> bytes:
        return self._executions(request, job_id=V.optional_int_arg(request.args, "jobId"))

    def _executions(self, request: Any, job_id: int | None) -> bytes:
        limit, offset = V.page(request.args)
        filters = V.execution_filters(request.args)
        executions, total, capped = self.reader().executions(
            job_id=job_id, limit=limit, offset=offset, only=visible_projects(request),
            **filters)
        page = {"total": total, "offset": offset, "limit": limit,
                "executions": [execution_json(e) for e in executions]}
        if capped:
            page["totalCapped"] = True  # at least `total` match; counting stopped there
        return respond(request, 200, page)

    @app.route("/api/v1/executions/<execution_id>", methods=["GET"])
    @requires("read")
    def get_execution(self, request: Any, execution_id: str) -> bytes:
        return respond(request, 200, execution_json(self._execution(request, execution_id)))

    @app.route("/api/v1/executions/<execution_id>/retry", methods=["POST"])
    @requires("execute")
    async def retry_execution(self, request: Any, execution_id: str) -> bytes:
        # any node answers: the retry is a command, delivered by the node owning the job
        self._execution(request, execution_id)
        return respond(request, 202,
                       await run_repair(self._ops().repairs.retry_execution, execution_id))

    @app.route("/api/v1/executions/<execution_id>", methods=["DELETE"])
    @requires("write")
    async def delete_execution(self, request: Any, execution_id: str) -> bytes:
        self._execution(request, execution_id)
        await run_repair(self._ops().repairs.delete_execution, execution_id)
        return no_content(request)
