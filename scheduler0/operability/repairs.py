"""
Repairs an operator makes by API instead of by SQL: replay or drop dead letters, reset a
breaker, and resolve a hanging execution (dispatched, outcome never recorded).

A replayed or re-run occurrence keeps its execution id, so a receiver that already saw it
can tell. It is sent even if its job is paused (the operator asked for it); a deleted
job's is not sent: retrying one execution of it is refused (409) and the record stays.

In a cluster any node takes these repairs: a retry or a rerun is an C{execution.request}
command and a breaker reset a C{breaker.reset} command, proposed through C{propose} and
acted on by the node(s) they concern when they observe them
(L{scheduler0.execution.requests}). What is read to choose them (dead letters, hanging
executions, jobs) is the replicated store, the same on every node.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, ensureDeferred

from ..domain import DeliveryFinished, Execution
from ..execution.recorder import ExecutionRecorder
from ..execution.requests import reset_breakers
from ..schedule.occurrence import endpoint_of, host_of, target_of
from ..state.commands import issue
from ..state.payloads import (RERUN_HANGING, RETRY_DEAD, DeleteExecutions, Payload,
                              RequestDeliveries, ResetBreaker)
from ..timestamps import format_time, from_seconds

#: occurrences per execution.request command (a retry of every dead letter is many)
REQUEST_CHUNK = 1000
COMPLETE = "complete"
RERUN = "rerun"


class RepairError(Exception):
    """The repair cannot be done; C{status} says why (404 unknown, 409 wrong state)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Repairs:
    """
    @param hanging_after: seconds after which a dispatched execution without an outcome is
        hanging: C{JobExecutionTimeout × (JobExecutionRetryMax + 1)}.
    @param role: in a cluster (L{ClusterRole}), None on a single node: a cluster node may
        not know an instance another node delivers to, so it takes any well-formed one.
    @param propose: submits a payload's command and fires with its result applied on this
        node (the API's command facade); by default straight to C{commands}.
    @param jobs: reads a job from the store (None when it does not exist).
    """

    def __init__(self, clock: Any, scheduler: Any, executor: Any, recorder: ExecutionRecorder,
                 commands: Any, reads: Callable[[], Any],
                 executions: Callable[[str], Execution | None],
                 hanging_after: float, node_id: int = 1, role: Any = None,
                 propose: Callable[[Payload], Deferred] | None = None,
                 jobs: Callable[[int], Any] | None = None) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._executor = executor
        self._recorder = recorder
        self._commands = commands
        self._reads = reads
        self._execution = executions
        self.hanging_after = hanging_after
        self._node_id = node_id
        #: in a cluster, whether this node executes (L{ClusterRole}); None on a single node
        self._role = role
        self._propose = propose or self._submit
        #: most occurrences one execution.request command carries
        self.request_chunk = REQUEST_CHUNK
        self._jobs = jobs or (lambda job_id: None)

    # -- instances: endpoints and hosts -----------------------------------------------

    def resolve_instance(self, instance: str) -> tuple[str, str]:
        """
        C{("endpoint", endpoint)} or C{("host", scheme://host:port)} for an instance as an
        operator names it: an endpoint URL (with a path; percent-encoded or not, as the
        health API lists it, its C{http::} key prefix allowed), a host
        C{scheme://host:port}, or just C{host:port}.
        """
        if instance.startswith("http::"):
            instance = instance[len("http::"):]
        if "://" not in instance and ":/" in instance:
            instance = instance.replace(":/", "://", 1)  # a path merged the double slash
        if "://" in instance:
            parts = urlsplit(instance)
            if parts.path or parts.query:
                endpoint = endpoint_of(instance)
                if self._role is not None or endpoint in self._known_endpoints():
                    return "endpoint", endpoint
                raise RepairError(404, f"no callback endpoint {instance!r} is known; "
                                       "endpoints are listed as instances by GET "
                                       "/api/monitoring/scheduler/health")
            instance = target_of(instance) if parts.port is None else instance
        known = self._known_hosts()
        if instance in known:
            return "host", instance
        matches = [t for t in known if t.split("://", 1)[-1] == instance]
        if len(matches) == 1:
            return "host", matches[0]
        if self._role is not None and "://" in instance:
            return "host", target_of(instance)  # another node may deliver to it
        raise RepairError(404, f"no callback target {instance!r} is known; give an endpoint "
                               "URL as the health API lists it, or a host as "
                               "http://host:port (see GET /api/monitoring/scheduler/health)")

    def resolve_target(self, instance: str) -> str:
        """The host (C{scheme://host:port}) of an instance, however it is named."""
        return host_of(self.resolve_instance(instance)[1])

    def _known_hosts(self) -> set[str]:
        known = set(self._executor.targets) | {b.host for b in self._executor.breakers}
        known |= set(self._reads().dead_letters_by_target())
        return known

    def _known_endpoints(self) -> set[str]:
        known = set(self._executor.endpoints)
        known |= {b.target for b in self._executor.breakers if b.scope == "endpoint"}
        known |= {endpoint_of(plan.callback_url) for plan in self._scheduler.plans.values()}
        return known

    def _endpoint_of_job(self, job_id: int) -> str | None:
        plan = self._scheduler.plans.get(job_id)
        if plan is not None:
            return endpoint_of(plan.callback_url)
        job = self._jobs(job_id)  # planned on the node that owns it, stored everywhere
        return endpoint_of(job.fields.callback_url) if job is not None else None

    # -- breakers ---------------------------------------------------------------------

    def reset_breaker(self, instance: str) -> Deferred:
        """Close a breaker: an endpoint's, or a host's and all of its endpoints', on every
        node (each keeps its own: a C{breaker.reset} command they all observe). Closing it
        lets the executor deliver what it held. The answer's C{breaker} is the state that
        now decides the instance on this node (a host breaker still open holds an
        endpoint)."""
        kind, key = self.resolve_instance(instance)

        def answer(_: Any) -> dict:
            # this node observed the command before its result came back: read, not reset
            breakers = self._executor.breakers
            host = breakers.find(host_of(key))
            state = "closed" if kind == "host" or host is None else host.state.value
            return {"instance": key, "breaker": state}
        return self._propose(ResetBreaker(scope=kind, key=key)).addCallback(answer)

    def reset_here(self, kind: str, key: str) -> str:
        """Reset this node's breaker only (what observing a C{breaker.reset} does)."""
        return reset_breakers(self._executor.breakers, kind, key)

    # -- dead letters -----------------------------------------------------------------

    def _dead_letters(self, instance: str | None) -> list[Execution]:
        if instance is None:
            return self._reads().dead_letters()
        kind, key = self.resolve_instance(instance)
        records = self._reads().dead_letters(host_of(key))
        if kind == "endpoint":
            records = [r for r in records if self._endpoint_of_job(r.job_id) == key]
        return records

    def retry_dead(self, instance: str | None = None) -> Deferred:
        """Send every dead letter (of one endpoint or host) again; those of a job deleted
        since are listed as C{skipped} and stay dead."""
        return self._replay(self._dead_letters(instance), RETRY_DEAD)

    def retry_execution(self, execution_id: str) -> Deferred:
        record = self._require(execution_id)
        if record.state != "dead":
            raise RepairError(409, f"execution {execution_id} is {record.state}, not dead; "
                                   "only dead-lettered executions are retried by hand")
        self._require_job(record)
        return self._replay([record], RETRY_DEAD)

    def _require_job(self, record: Execution) -> None:
        if record.job_id not in self._scheduler.plans and self._jobs(record.job_id) is None:
            raise RepairError(409, f"job {record.job_id} of execution "
                                   f"{record.id} was deleted, so it is not sent "
                                   "again; the record stays as it is (delete it with DELETE "
                                   f"/api/v1/executions/{record.id})")

    def _replay(self, records: list[Execution], reason: str,
                finished: list[DeliveryFinished] = ()) -> Deferred:  # type: ignore[assignment]
        """Ask the cluster to deliver C{records} again (same execution ids), even if their
        job is paused: an operator asked for it. A deleted job's are skipped (and stay as
        they are). The job's owner delivers them when it observes the command."""
        return ensureDeferred(self._request(records, reason, finished))

    async def _request(self, records: list[Execution], reason: str,
                       finished: list[DeliveryFinished]) -> dict:
        """One command per L{request_chunk} records, one after the other: a retry of every
        dead letter is a series of small log entries, each applied in a short transaction."""
        retried: list[str] = []
        skipped: list[str] = []
        for start in range(0, len(records), self.request_chunk):
            chunk = records[start:start + self.request_chunk]
            result = await self._propose(RequestDeliveries(
                reason=reason, finished=finished if start == 0 else (), node_id=self._node_id,
                occurrences=[(r.id, r.job_id, r.scheduled_time, r.attempts, r.target)
                             for r in chunk]))
            retried.extend(result.get("requested", ()))
            skipped.extend(result.get("skipped", ()))
        return {"retried": retried, "skipped": skipped}

    def _submit(self, payload: Payload) -> Deferred:
        """Propose C{payload} straight to the command log (no API facade: tests, tools);
        a rejection becomes a L{RepairError}."""
        def checked(result: dict) -> dict:
            if not result.get("ok"):
                raise RepairError(result.get("status", 500), result.get("error", "rejected"))
            return result
        return self._commands.submit(issue(payload, self._clock.seconds())).addCallback(checked)

    def delete_dead(self, instance: str) -> Any:
        ids = [r.id for r in self._dead_letters(instance)]
        return self._delete(ids)

    def delete_execution(self, execution_id: str) -> Any:
        record = self._require(execution_id)
        if record.state not in ("dead", "succeeded", "failed"):
            raise RepairError(409, f"execution {execution_id} is {record.state}; only "
                                   "finished or dead executions can be deleted")
        return self._delete([execution_id])

    def _delete(self, ids: list[str]) -> Any:
        return self._propose(DeleteExecutions(ids=ids)).addCallback(lambda result: {
            "deleted": result.get("deleted", 0)})

    # -- hanging executions -----------------------------------------------------------

    def hanging(self) -> list[tuple[Execution, str | None]]:
        """Hanging executions, each with the id of the delivery in the outbox it belongs
        to (None for a 'dispatched' record without one)."""
        cutoff = format_time(from_seconds(self._clock.seconds() - self.hanging_after))
        in_flight = getattr(self._executor, "in_flight_ids", set())
        return [(r, delivery) for r, delivery in self._reads().dispatched_before(cutoff)
                if r.id not in in_flight]

    def resolve(self, execution_id: str, action: Any) -> Any:
        if action not in (COMPLETE, RERUN):
            raise RepairError(400, f'action: must be "{COMPLETE}" (record it done; the job '
                                   f'continues with its next occurrence) or "{RERUN}" (run '
                                   'that same scheduled time again)')
        hanging = {r.id: (r, delivery) for r, delivery in self.hanging()}
        found = hanging.get(execution_id)
        if found is None:
            self._require(execution_id)
            raise RepairError(409, f"execution {execution_id} is not hanging")
        record, delivery_id = found
        stamp = format_time(from_seconds(self._clock.seconds()))
        row = Execution(
            id=record.id, job_id=record.job_id, project_id=record.project_id,
            scheduled_time=record.scheduled_time, state="succeeded",
            attempts=record.attempts, target=record.target, node_id=self._node_id,
            last_error="resolved as complete by an operator", last_attempt_at=stamp)
        # it leaves the delivery outbox in the same write that records what replaces it
        released = ([DeliveryFinished(id=delivery_id, executions=[execution_id])]
                    if delivery_id else [])
        if action == RERUN:
            self._require_job(record)
            # held ('scheduled') until the new delivery starts, out of the outbox in the same
            # write: durable all the way, delivered by the job's owner
            return self._replay([record], RERUN_HANGING, finished=released)
        d = self._recorder.record([row], finished=released)
        return d.addCallback(lambda _: {"completed": [execution_id]})

    def _require(self, execution_id: str) -> Execution:
        record = self._execution(execution_id)
        if record is None:
            raise RepairError(404, f"execution {execution_id} does not exist")
        return record
