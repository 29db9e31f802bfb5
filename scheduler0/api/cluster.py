"""
Routes of C{/api/v1/cluster}: the seed's cluster-management API (membership, leadership,
recovery, debug dumps), for the node's peer Basic credentials with C{X-Peer} only (API keys
are refused whatever their scopes). The operations are
L{scheduler0.consensus.membership_changes.ClusterMembership}'s; the leader-only ones answer
403 on another node, naming the leader's API address.
"""

from __future__ import annotations

import heapq
from typing import Any

from twisted.internet.defer import Deferred

from ..consensus.membership import ClusterError, client_url, host_port
from ..domain.assignment import JOB_BUCKETS
from ..timestamps import format_time, from_seconds
from .base import ApiBase
from .envelope import respond
from .errors import BadRequest, Forbidden, Unavailable, error_for_status
from .routing import app, requires

#: Most items a dump lists (the rest are counted): a dump is one answer, not paginated
DUMP_LIMIT = 10_000

_MAX_NODE_ID = 2**31 - 1


def _peer_only(request: Any) -> None:
    if getattr(request.principal, "peer", None) is None:
        raise Forbidden("cluster endpoints are for the node's Basic credentials "
                        "(AuthUsername/AuthPassword) with X-Peer: peer or cmd; API keys "
                        "cannot call them, whatever their scopes")


def _arg(request: Any, name: str, example: str) -> str:
    values = request.args.get(name.encode("ascii")) or []
    if not values or not values[0]:
        raise BadRequest(f"{name}: required query parameter (e.g. {name}={example})")
    try:
        return values[0].decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"{name}: not valid UTF-8") from None


def _node_id(request: Any, name: str = "nodeId") -> int:
    raw = _arg(request, name, "2")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= _MAX_NODE_ID:
        raise BadRequest(f"{name}: {raw[:40]!r} is not a node id (a whole number from 1 "
                         f"to {_MAX_NODE_ID})")
    return int(raw)


def _when(seconds: float | None) -> str | None:
    return None if seconds is None else format_time(from_seconds(seconds))


class ClusterRoutes(ApiBase):
    cluster: Any = None  # a ClusterMembership, set by node.py
    ownership: Any = None  # which jobs each node executes (an Ownership), set by node.py

    def _membership(self, request: Any) -> Any:
        _peer_only(request)
        if self.cluster is None:
            raise Unavailable("cluster management is not available on this node")
        return self.cluster

    async def _change(self, request: Any, operation: Any) -> bytes:
        try:
            status = await operation
        except ClusterError as e:
            raise error_for_status(e.status, e.message) from None
        return respond(request, 200, {"status": status})

    def _checked(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except ClusterError as e:
            raise error_for_status(e.status, e.message) from None

    # -- membership -----------------------------------------------------------------------

    @app.route("/api/v1/cluster/list-nodes", methods=["GET"])
    @requires("admin", node_wide=True)
    def cluster_list_nodes(self, request: Any) -> bytes:
        return respond(request, 200, self._membership(request).list_nodes())

    @app.route("/api/v1/cluster/add-node", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_add_node(self, request: Any) -> bytes:
        cluster = self._membership(request)
        node_id = _node_id(request)
        try:
            address = host_port(_arg(request, "nodeAddress", "10.0.0.2:7070"), "nodeAddress",
                                "10.0.0.2:7070")
            client = client_url(_arg(request, "clientAddress", "10.0.0.2:9090"))
        except ClusterError as e:
            raise BadRequest(e.message) from None
        return await self._change(request, cluster.add_node(node_id, address, client))

    @app.route("/api/v1/cluster/remove-node", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_remove_node(self, request: Any) -> bytes:
        cluster = self._membership(request)
        return await self._change(request, cluster.remove_node(_node_id(request)))

    @app.route("/api/v1/cluster/add-self", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_add_self(self, request: Any) -> bytes:
        return await self._change(request, self._membership(request).add_self())

    @app.route("/api/v1/cluster/remove-self", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_remove_self(self, request: Any) -> bytes:
        return await self._change(request, self._membership(request).remove_self())

    # -- leadership -----------------------------------------------------------------------

    @app.route("/api/v1/cluster/promote-node", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_promote_node(self, request: Any) -> bytes:
        cluster = self._membership(request)
        return await self._change(request, cluster.promote_node(_node_id(request)))

    @app.route("/api/v1/cluster/demote-node", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_demote_node(self, request: Any) -> bytes:
        cluster = self._membership(request)
        return await self._change(request, cluster.demote_node(_node_id(request)))

    @app.route("/api/v1/cluster/transfer-leadership", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_transfer_leadership(self, request: Any) -> bytes:
        return await self._change(request, self._membership(request).transfer_leadership())

    # -- recovery -------------------------------------------------------------------------

    @app.route("/api/v1/cluster/force-rebuild", methods=["POST"])
    @requires("admin", node_wide=True)
    async def cluster_force_rebuild(self, request: Any) -> bytes:
        cluster = self._membership(request)
        seed = _node_id(request, "seedNodeId")
        return await self._change(request, cluster.force_rebuild(seed))

    @app.route("/api/v1/cluster/reset-raft", methods=["POST"])
    @requires("admin", node_wide=True)
    def cluster_reset_raft(self, request: Any) -> bytes:
        cluster = self._membership(request)
        answered: Deferred = request.notifyFinish()
        status = self._checked(cluster.reset_raft, answered)
        # the answer goes out whole before the node stops: no keep-alive to wait on
        request.setHeader("connection", "close")
        return respond(request, 200, {"status": status})

    # -- debug dumps ----------------------------------------------------------------------

    @app.route("/api/v1/cluster/dump/schedule-queue", methods=["GET"])
    @requires("admin", node_wide=True)
    def cluster_dump_schedule_queue(self, request: Any) -> bytes:
        self._membership(request)
        plans = getattr(self.scheduler, "plans", {}) or {}
        due = [p for p in plans.values() if p.next_fire is not None]
        first = heapq.nsmallest(DUMP_LIMIT, due, key=lambda p: (p.next_fire, p.job_id))
        return respond(request, 200, {
            "nodeId": self.settings.node_id, "total": len(due),
            "truncated": len(due) > len(first),
            "items": [{"jobId": p.job_id, "projectId": p.project_id,
                       "nextFire": _when(p.next_fire), "target": p.target,
                       "paused": p.paused} for p in first]})

    @app.route("/api/v1/cluster/dump/job-executions-cache", methods=["GET"])
    @requires("admin", node_wide=True)
    def cluster_dump_job_executions_cache(self, request: Any) -> bytes:
        self._membership(request)
        plans = getattr(self.scheduler, "plans", {}) or {}
        chosen = sorted(plans)[:DUMP_LIMIT]
        cache = {}
        for job_id in chosen:
            plan = plans[job_id]
            cache[str(job_id)] = {"lastScheduled": _when(plan.last_scheduled),
                                  "nextFire": _when(plan.next_fire)}
        return respond(request, 200, {"nodeId": self.settings.node_id, "total": len(plans),
                                      "truncated": len(plans) > len(chosen), "jobs": cache})

    @app.route("/api/v1/cluster/dump/job-queues", methods=["GET"])
    @requires("admin", node_wide=True)
    def cluster_dump_job_queues(self, request: Any) -> bytes:
        """Each node's queue: the job buckets it executes (a job's bucket is its id
        modulo the number of buckets), as the replicated assignment says."""
        self._membership(request)
        ownership = self.ownership
        assignment = ownership.assignment if ownership is not None else None
        if assignment is None:  # a single node, or before the leader's first assignment
            executing = ownership is None or ownership.executing()
            return respond(request, 200, [{
                "nodeId": self.settings.node_id, "buckets": JOB_BUCKETS if executing else 0,
                "bucketIds": list(range(JOB_BUCKETS)) if executing else [],
                "version": 0}])
        return respond(request, 200, [
            {"nodeId": node_id, "buckets": len(buckets), "bucketIds": sorted(buckets),
             "version": assignment.version}
            for node_id, buckets in sorted(
                (node, assignment.buckets_of(node)) for node in assignment.nodes())])

    @app.route("/api/v1/cluster/dump/job-queue-versions", methods=["GET"])
    @requires("admin", node_wide=True)
    def cluster_dump_job_queue_versions(self, request: Any) -> bytes:
        """The assignment's version (one more per change), how many nodes execute, and
        each one's share of the buckets."""
        self._membership(request)
        ownership = self.ownership
        assignment = ownership.assignment if ownership is not None else None
        if assignment is None:
            return respond(request, 200, [{
                "version": 0, "numberOfActiveNodes": 1, "buckets": JOB_BUCKETS,
                "shares": {str(self.settings.node_id): JOB_BUCKETS}}])
        shares = assignment.shares()
        return respond(request, 200, [{
            "version": assignment.version, "numberOfActiveNodes": len(shares),
            "buckets": JOB_BUCKETS, "shares": {str(n): c for n, c in sorted(shares.items())}}])
