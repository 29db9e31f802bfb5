"""
Repairs an operator makes by API instead of by SQL: replay or drop dead letters, reset a
breaker, and resolve a hanging execution (dispatched, outcome never recorded).

A replayed or re-run occurrence keeps its execution id, so a receiver that already saw it
can tell.
"""

from __future__ import annotations

from typing import Any, Callable

from ..execution.recorder import ExecutionRecorder
from ..execution.recovery import occurrence_from_record
from ..state import commands as C
from ..state.commands import new_command
from ..store.reads import Record
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
                 commands: Any, reads: Callable[[], Any], executions: Callable[[str], Record | None],
                 hanging_after: float, node_id: int = 1) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._executor = executor
        self._recorder = recorder
        self._commands = commands
        self._reads = reads
        self._execution = executions
        self.hanging_after = hanging_after
        self._node_id = node_id

    # -- breakers ---------------------------------------------------------------------

    def resolve_target(self, instance: str) -> str:
        """Accept a target as C{scheme://host:port}, C{http::scheme://host:port} (a health
        C{key}) or plain C{host:port}."""
        if instance.startswith("http::"):
            instance = instance[len("http::"):]
        known = set(self._executor.targets) | {b.target for b in self._executor.breakers}
        known |= set(self._reads().dead_letters_by_target())
        if instance in known:
            return instance
        matches = [t for t in known if t.split("://", 1)[-1] == instance]
        if len(matches) == 1:
            return matches[0]
        raise RepairError(404, f"no callback target {instance!r} is known; targets look like "
                               "http://host:port (see GET /api/monitoring/scheduler/health)")

    def reset_breaker(self, instance: str) -> dict:
        target = self.resolve_target(instance)
        breaker = self._executor.breakers.get(target)
        breaker.reset()  # closing it lets the executor deliver what the target held
        return {"instance": target, "breaker": breaker.snapshot()["state"]}

    # -- dead letters -----------------------------------------------------------------

    def retry_dead(self, instance: str | None = None) -> dict:
        target = self.resolve_target(instance) if instance is not None else None
        records = self._reads().dead_letters(target)
        return self._replay(records, "dead letters")

    def retry_execution(self, execution_id: str) -> dict:
        record = self._require(execution_id)
        if record["state"] != "dead":
            raise RepairError(409, f"execution {execution_id} is {record['state']}, not dead; "
                                   "only dead-lettered executions are retried by hand")
        return self._replay([record], "dead letter")

    def _replay(self, records: list[Record], what: str) -> dict:
        occurrences, skipped = [], []
        for record in records:
            plan = self._scheduler.plans.get(record["jobId"])
            if plan is None:
                skipped.append(record["executionId"])
                continue
            occurrences.append(occurrence_from_record(record, plan, record["attempts"] + 1))
        if occurrences:
            self._executor.submit(occurrences)
        return {"retried": [o.execution_id for o in occurrences], "skipped": skipped}

    def delete_dead(self, instance: str) -> Any:
        target = self.resolve_target(instance)
        ids = [r["executionId"] for r in self._reads().dead_letters(target)]
        return self._delete(ids)

    def delete_execution(self, execution_id: str) -> Any:
        record = self._require(execution_id)
        if record["state"] not in ("dead", "succeeded", "failed"):
            raise RepairError(409, f"execution {execution_id} is {record['state']}; only "
                                   "finished or dead executions can be deleted")
        return self._delete([execution_id])

    def _delete(self, ids: list[str]) -> Any:
        command = new_command(C.EXECUTION_DELETE, {"ids": ids}, self._clock.seconds())
        return self._commands.submit(command).addCallback(lambda result: {
            "deleted": result.get("deleted", 0)})

    # -- hanging executions -----------------------------------------------------------

    def hanging(self) -> list[Record]:
        cutoff = format_time(from_seconds(self._clock.seconds() - self.hanging_after))
        in_flight = getattr(self._executor, "in_flight_ids", set())
        return [r for r in self._reads().dispatched_before(cutoff)
                if r["executionId"] not in in_flight]

    def resolve(self, execution_id: str, action: Any) -> Any:
        if action not in (COMPLETE, RERUN):
            raise RepairError(400, f'action: must be "{COMPLETE}" (record it done; the job '
                                   f'continues with its next occurrence) or "{RERUN}" (run '
                                   'that same scheduled time again)')
        hanging = {r["executionId"]: r for r in self.hanging()}
        record = hanging.get(execution_id)
        if record is None:
            self._require(execution_id)
            raise RepairError(409, f"execution {execution_id} is not hanging")
        stamp = format_time(from_seconds(self._clock.seconds()))
        row = {
            "id": record["executionId"], "job_id": record["jobId"],
            "project_id": record["projectId"], "scheduled_time": record["scheduledTime"],
            "state": "succeeded", "attempts": record["attempts"], "target": record["target"],
            "node_id": self._node_id, "last_error": "resolved as complete by an operator",
            "last_attempt_at": stamp,
        }
        # it leaves the delivery outbox in the same write that records what replaces it
        released = ([{"id": record["deliveryId"], "executions": [execution_id]}]
                    if record.get("deliveryId") else [])
        if action == RERUN:
            # held ('scheduled') until the new delivery starts: durable all the way
            row.update(state="scheduled", last_error=None, last_attempt_at=None)
            d = self._recorder.record([row], finished=released)
            return d.addCallback(lambda _: self._replay([record], "hanging execution"))
        d = self._recorder.record([row], finished=released)
        return d.addCallback(lambda _: {"completed": [execution_id]})

    def _require(self, execution_id: str) -> Record:
        record = self._execution(execution_id)
        if record is None:
            raise RepairError(404, f"execution {execution_id} does not exist")
        return record
