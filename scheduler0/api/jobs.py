"""Routes of C{/api/v1/jobs}: jobs, pausing and running now (a job's history is in
L{scheduler0.api.executions})."""

from __future__ import annotations

from typing import Any

from ..timestamps import format_time, from_seconds
from . import validation as V
from .base import ApiBase
from .envelope import no_content, read_json, respond
from .errors import BadRequest
from .routing import app, requires, visible_projects
from .shapes import job_json


class JobRoutes(ApiBase):
    @app.route("/api/v1/jobs", methods=["POST"])
    @requires("write")
    async def create_jobs(self, request: Any) -> bytes:
        jobs, many = V.validate_jobs(read_json(request), now=self.facade.now(),
                                     default_grace=self.settings.default_misfire_grace,
                                     url_policy=self.settings.url_policy)
        principal = request.principal
        if principal.projects is not None:
            # before existence, so the answer is the same for a project that does not exist
            for index, job in enumerate(jobs):
                principal.require_project(job.project_id,
                                          f"jobs[{index}].projectId" if many else "projectId")
        known = self.reader().existing_project_ids(job.project_id for job in jobs)
        for index, job in enumerate(jobs):
            if job.project_id not in known:
                where = f"jobs[{index}]." if many else ""
                raise BadRequest(f"{where}projectId: project {job.project_id} does not exist")
        created = [job_json(job, next_run) for job, next_run in
                   await self.facade.create_jobs(jobs)]
        return respond(request, 201, created if many else created[0])

    @app.route("/api/v1/jobs", methods=["GET"])
    @requires("read")
    def list_jobs(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        project_id = V.optional_int_arg(request.args, "projectId")
        if project_id is None:
            project_id = V.optional_int_arg(request.args, "project_id")
        jobs, total = self.reader().jobs(project_id, limit, offset,
                                         only=visible_projects(request))
        shown = [job_json(job, next_run)
                 for job, next_run in zip(jobs, self.facade.next_runs(jobs))]
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "jobs": shown})

    @app.route("/api/v1/jobs/<int:job_id>", methods=["GET"])
    @requires("read")
    def get_job(self, request: Any, job_id: int) -> bytes:
        return self._show(request, job_id)

    @app.route("/api/v1/jobs/<int:job_id>", methods=["PUT"])
    @requires("write")
    async def update_job(self, request: Any, job_id: int) -> bytes:
        existing = self._job(request, job_id)
        fields = V.validate_job(read_json(request), now=self.facade.now(),
                                default_grace=self.settings.default_misfire_grace,
                                existing=existing, url_policy=self.settings.url_policy)
        if fields.project_id != existing.project_id:
            request.principal.require_project(fields.project_id)
            if not self.reader().project(fields.project_id):
                raise BadRequest(f"projectId: project {fields.project_id} does not exist")
        await self.facade.update_job(existing, fields)
        return self._show(request, job_id)

    @app.route("/api/v1/jobs/<int:job_id>", methods=["DELETE"])
    @requires("write")
    async def delete_job(self, request: Any, job_id: int) -> bytes:
        self._job(request, job_id)
        await self.facade.delete_job(job_id)
        return no_content(request)

    @app.route("/api/v1/jobs/<int:job_id>/pause", methods=["POST"])
    @requires("write")
    async def pause_job(self, request: Any, job_id: int) -> bytes:
        return await self._set_paused(request, job_id, True)

    @app.route("/api/v1/jobs/<int:job_id>/resume", methods=["POST"])
    @requires("write")
    async def resume_job(self, request: Any, job_id: int) -> bytes:
        return await self._set_paused(request, job_id, False)

    async def _set_paused(self, request: Any, job_id: int, paused: bool) -> bytes:
        self._job(request, job_id)
        await self.facade.set_paused(job_id, paused)
        return self._show(request, job_id)

    def _show(self, request: Any, job_id: int) -> bytes:
        job = self._job(request, job_id)
        return respond(request, 200, job_json(job, self.facade.next_run(job)))

    @app.route("/api/v1/jobs/<int:job_id>/run", methods=["POST"])
    @requires("execute")
    async def run_job(self, request: Any, job_id: int) -> bytes:
        # any node answers: the run is a command, delivered by the node that owns the job
        job = self._job(request, job_id)
        eid, scheduled = await self.facade.run_now(job)
        return respond(request, 202, {
            "executionId": eid, "jobId": job_id,
            "scheduledTime": format_time(from_seconds(scheduled))})
