"""Routes that report on and repair the node: the healthcheck, scheduler health, circuit
breakers, dead letters and C{/metrics}."""

from __future__ import annotations

from typing import Any

from .base import ApiBase
from .envelope import JSON_CONTENT_TYPE, encode_json, respond
from .error_map import run_repair
from .errors import ApiError, NotFound
from .routing import app, requires


class MonitoringRoutes(ApiBase):
    @app.route("/api/v1/healthcheck", methods=["GET"])
    def healthcheck(self, request: Any) -> bytes:
        leader = self.commands.leader()
        return respond(request, 200, {
            "leaderAddress": leader[0] if leader else "",
            "leaderId": leader[1] if leader else "",
            "raftStats": self.commands.status(),
        })

    @app.route("/api/monitoring/scheduler/health", methods=["GET"])
    @requires("read", node_wide=True)
    def scheduler_health(self, request: Any) -> bytes:
        # the seed's shape: the snapshot itself, so its jq queries work unchanged
        request.setHeader("content-type", JSON_CONTENT_TYPE)
        return encode_json(self._ops().health.snapshot()).encode()

    @app.route("/api/monitoring/breakers/<path:target>/reset", methods=["POST"])
    @requires("admin", node_wide=True)
    async def reset_breaker(self, request: Any, target: str) -> bytes:
        # a command every node observes (each resets its own); answered from this node
        return respond(request, 200,
                       await run_repair(self._ops().repairs.reset_breaker, target))

    @app.route("/api/monitoring/dlq/retry", methods=["POST"])
    @requires("admin", node_wide=True)
    async def retry_all_dead(self, request: Any) -> bytes:
        return respond(request, 202, await run_repair(self._ops().repairs.retry_dead))

    @app.route("/api/monitoring/dlq/<path:target>/retry", methods=["POST"])
    @requires("admin", node_wide=True)
    async def retry_dead_of(self, request: Any, target: str) -> bytes:
        return respond(request, 202, await run_repair(self._ops().repairs.retry_dead, target))

    @app.route("/api/monitoring/dlq/<path:target>", methods=["DELETE"])
    @requires("admin", node_wide=True)
    async def delete_dead_of(self, request: Any, target: str) -> bytes:
        result = await run_repair(self._ops().repairs.delete_dead, target)
        return respond(request, 200, result)

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: Any) -> bytes:
        if self.settings.metrics_auth == "basic":
            try:
                self.authenticator.authenticate_basic(request)
            except ApiError:
                request.setHeader("www-authenticate", 'Basic realm="scheduler0 metrics"')
                raise
        metrics = self._ops().metrics
        if metrics is None:
            raise NotFound("metrics are not enabled on this node")
        body, content_type = metrics.render()
        request.setHeader("content-type", content_type)
        return body
