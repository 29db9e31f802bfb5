"""Routes of C{/api/supervisor}: the job supervisor's state, halting and restarting it,
and resolving executions that hang."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import maybeDeferred

from .base import ApiBase
from .envelope import read_json, respond
from .error_map import run_repair
from .errors import Unavailable
from .routing import app, requires
from .shapes import execution_json


class SupervisorRoutes(ApiBase):
    @app.route("/api/supervisor/state", methods=["GET"])
    @requires("admin", node_wide=True)
    def supervisor_state(self, request: Any) -> bytes:
        supervisor = self._ops().supervisor
        if supervisor.state() is None:
            raise Unavailable("no job is configured on this node")
        return respond(request, 200, supervisor.view())

    @app.route("/api/supervisor/halt", methods=["POST"])
    @requires("admin", node_wide=True)
    def supervisor_halt(self, request: Any) -> bytes:
        supervisor = self._ops().supervisor
        supervisor.halt()
        return respond(request, 200, {"state": "HALTED", "reason": supervisor.reason()})

    @app.route("/api/supervisor/restart", methods=["POST"])
    @requires("admin", node_wide=True)
    def supervisor_restart(self, request: Any) -> bytes:
        supervisor = self._ops().supervisor
        supervisor.restart()
        return respond(request, 200, {"state": supervisor.state(), "reason": supervisor.reason()})

    @app.route("/api/supervisor/hanging", methods=["GET"])
    @requires("admin", node_wide=True)
    def supervisor_hanging(self, request: Any) -> bytes:
        repairs = self._ops().repairs
        hanging = [execution_json(record) for record, _ in repairs.hanging()]
        return respond(request, 200, {"hangingAfterSeconds": repairs.hanging_after,
                                      "total": len(hanging), "executions": hanging})

    @app.route("/api/supervisor/hanging/<execution_id>/resolve", methods=["POST"])
    @requires("admin", node_wide=True)
    async def supervisor_resolve(self, request: Any, execution_id: str) -> bytes:
        body = read_json(request)
        action = body.get("action") if isinstance(body, dict) else None
        result = await maybeDeferred(run_repair, self._ops().repairs.resolve, execution_id,
                                     action)
        return respond(request, 200, result)
