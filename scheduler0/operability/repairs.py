"""
Repairs an operator makes by API instead of by SQL: replay or drop dead letters, reset a
breaker, and resolve a hanging execution (dispatched, outcome never recorded).

A replayed or re-run occurrence keeps its execution id, so a receiver that already saw it
can tell. It is sent even if its job is paused (the operator asked for it); a deleted
job's is not sent: retrying one execution of it is refused (409) and the record stays.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

import attrs

from ..domain import DeliveryFinished, Execution
from ..execution.recorder import ExecutionRecorder
from ..execution.recovery import occurrence_from_record
from ..schedule.occurrence import endpoint_of, host_of, target_of
from ..state.commands import issue
from ..state.payloads import DeleteExecutions
from ..timestamps import format_time, from_seconds

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
    """

    def __init__(self, clock: Any, scheduler: Any, executor: Any, recorder: ExecutionRecorder,
                 commands: Any, reads: Callable[[], Any],
                 executions: Callable[[str], Execution | None],
                 hanging_after: float, node_id: int = 1, role: Any = None) -> None:
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
                if endpoint in self._known_endpoints():
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
        return endpoint_of(plan.callback_url) if plan is not None else None

    # -- breakers ---------------------------------------------------------------------

    def reset_breaker(self, instance: str) -> dict:
        """Close a breaker: an endpoint's, or a host's and all of its endpoints'. Closing
        it lets the executor deliver what it held. The answer's C{breaker} is the state
        that now decides the instance (a host breaker still open holds an endpoint)."""
        self._executing("resetting a breaker")
        kind, key = self.resolve_instance(instance)
        breakers = self._executor.breakers
        if kind == "host":
            for breaker in breakers.of_host(key):
                breaker.reset()
            host = breakers.find(key)
            if host is not None:
                host.reset()
            return {"instance": key, "breaker": "closed"}
        own = breakers.find(key)
        if own is not None:
            own.reset()
        host = breakers.find(host_of(key))
        state = host.state.value if host is not None else "closed"
        return {"instance": key, "breaker": state}

    # -- dead letters -----------------------------------------------------------------

    def _dead_letters(self, instance: str | None) -> list[Execution]:
        if instance is None:
            return self._reads().dead_letters()
        kind, key = self.resolve_instance(instance)
        records = self._reads().dead_letters(host_of(key))
        if kind == "endpoint":
            records = [r for r in records if self._endpoint_of_job(r.job_id) == key]
        return records

    def retry_dead(self, instance: str | None = None) -> dict:
        """Send every dead letter (of one endpoint or host) again; those of a job deleted
        since are listed as C{skipped} and stay dead."""
        self._executing("retrying dead letters")
        return self._replay(self._dead_letters(instance), "dead letters")

    def retry_execution(self, execution_id: str) -> dict:
        record = self._require(execution_id)
        if record.state != "dead":
            raise RepairError(409, f"execution {execution_id} is {record.state}, not dead; "
                                   "only dead-lettered executions are retried by hand")
        self._executing("retrying a dead letter")
        self._require_job(record)
        return self._replay([record], "dead letter")

    def _require_job(self, record: Execution) -> None:
        if record.job_id not in self._scheduler.plans:
            raise RepairError(409, f"job {record.job_id} of execution "
                                   f"{record.id} was deleted, so it is not sent "
                                   "again; the record stays as it is (delete it with DELETE "
                                   f"/api/v1/executions/{record.id})")

    def _replay(self, records: list[Execution], what: str) -> dict:
        """Deliver C{records} again (same execution ids), even if their job is paused: an
        operator asked for it. A deleted job's are skipped (and stay as they are)."""
        plans = self._scheduler.plans
        occurrences, skipped = [], []
        for record in records:
            plan = plans.get(record.job_id)
            if plan is None:
                skipped.append(record.id)
                continue
            occurrences.append(occurrence_from_record(record, plan, record.attempts + 1))
        if occurrences:
            self._executor.submit(occurrences, live=lambda job_id: job_id in plans)
        return {"retried": [o.execution_id for o in occurrences], "skipped": skipped}

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
        command = issue(DeleteExecutions(ids=ids), self._clock.seconds())
        return self._commands.submit(command).addCallback(lambda result: {
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
            self._executing("running a hanging execution again")
            self._require_job(record)
            # held ('scheduled') until the new delivery starts: durable all the way
            row = attrs.evolve(row, state="scheduled", last_error=None, last_attempt_at=None)
            d = self._recorder.record([row], finished=released)
            return d.addCallback(lambda _: self._replay([record], "hanging execution"))
        d = self._recorder.record([row], finished=released)
        return d.addCallback(lambda _: {"completed": [execution_id]})

    def _executing(self, what: str) -> None:
        """Refuse (503, naming the leader) what only the executing node can do: this one
        has no plans, breakers or deliveries to act on."""
        if self._role is not None:
            self._role.refuse_if_standing_by(what)

    def _require(self, execution_id: str) -> Execution:
        record = self._execution(execution_id)
        if record is None:
            raise RepairError(404, f"execution {execution_id} does not exist")
        return record
