"""
After a restart, occurrences that were held, dispatched or waiting for a retry when the
node stopped are delivered again, with the same execution id: receivers deduplicate on it.
Dispatched ones are those the delivery outbox still lists (and, from data written before
the outbox existed, records in state 'dispatched').
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger

from ..domain import DeliveryRecord, Execution
from ..schedule.occurrence import Occurrence
from ..timestamps import parse_time

log = Logger()


def occurrence_again(execution_id: str, scheduled_time: str, plan: Any,
                     attempt: int) -> Occurrence:
    """The occurrence an execution stands for, to deliver again (same id)."""
    return Occurrence(
        execution_id=execution_id, job_id=plan.job_id, project_id=plan.project_id,
        scheduled=parse_time(scheduled_time).timestamp(),
        callback_url=plan.callback_url, target=plan.target, payload=plan.payload,
        attempt=max(1, attempt),
    )


def occurrence_from_record(record: Execution, plan: Any, attempt: int) -> Occurrence:
    """The occurrence an execution record stands for, to deliver again (same id)."""
    return occurrence_again(record.id, record.scheduled_time, plan, attempt)


def occurrences_to_resume(records: list[Execution], plans: dict[int, Any],
                          now: float) -> tuple[list[Occurrence], list[tuple[Occurrence, float]]]:
    """Split unfinished records into occurrences to send now and retries to wait for."""
    now_list: list[Occurrence] = []
    later: list[tuple[Occurrence, float]] = []
    for record in records:
        plan = plans.get(record.job_id)
        if plan is None:
            continue
        # `attempts` counts the attempts already made (a held occurrence has made none)
        occurrence = occurrence_from_record(record, plan, record.attempts + 1)
        retry_at = record.next_retry_at
        if record.state == "retrying" and retry_at and parse_time(retry_at).timestamp() > now:
            later.append((occurrence, parse_time(retry_at).timestamp() - now))
        else:
            now_list.append(occurrence)
    return now_list, later


class RecoveryService(Service):
    """
    Runs once at each start, after the scheduler has planned every job.

    @param planned: a Deferred firing once the scheduler has planned every job (a cluster
        node that started owning jobs plans a budget per reactor turn): the plans are what
        re-sent occurrences are rebuilt from.
    @param owns: whether this node delivers a job's occurrences: the outbox entries and
        records of jobs another node owns are left to it (not dropped as if the job were
        gone).
    @param finishes_its_own: whether the node that wrote an outbox entry will finish that
        POST itself (another live owner: it records its outcome), so it is not sent again.
    """

    def __init__(self, clock: Any, unfinished: Callable[[], list[Execution]],
                 plans: Callable[[], dict[int, Any]], executor: Any,
                 outbox: Callable[[], list[DeliveryRecord]] = list,
                 planned: Callable[[], Deferred] = lambda: succeed(None),
                 owns: Callable[[int], bool] = lambda job_id: True,
                 finishes_its_own: Callable[[int], bool] = lambda node_id: False) -> None:
        self._finishes_its_own = finishes_its_own
        self._clock = clock
        self._unfinished = unfinished
        self._plans = plans
        self._executor = executor
        self._outbox = outbox
        self._planned = planned
        self._owns = owns
        self._waiting: Deferred | None = None
        #: whether this run has read the store yet: until then requests observed by
        #: L{scheduler0.execution.requests} are left to it
        self.recovered = False
        #: the requested ('scheduled') executions this run resumed, so an observer that
        #: sees their command only after the store was read does not send them twice
        self.resumed: set[tuple[str, int]] = set()  # (execution id, attempt)

    def startService(self) -> None:
        Service.startService(self)
        self.recovered = False
        self.resumed = set()
        waiting = self._waiting = self._planned()
        waiting.addCallback(lambda _: self._recover() if self.running else None)
        waiting.addErrback(lambda failure: failure.trap(CancelledError))

    def stopService(self) -> None:
        Service.stopService(self)
        self.recovered = False
        self.resumed = set()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()

    def _recover(self) -> None:
        self._waiting = None
        plans = self._plans()
        outbox = self._outbox()
        # an occurrence the outbox lists was sent after whatever its stored record says
        listed = {o[0] for delivery in outbox for o in delivery.occurrences}
        resent = 0
        for delivery in outbox:
            if self._finishes_its_own(delivery.node_id):
                continue
            resend, dropped = [], []
            for execution_id, job_id, scheduled_time, attempt in delivery.occurrences:
                if not self._owns(job_id):
                    continue  # its owner re-sends it
                plan = plans.get(job_id)
                if plan is None:
                    dropped.append(execution_id)
                    continue
                resend.append(occurrence_again(execution_id, scheduled_time, plan,
                                               attempt + 1))
            if not resend and not dropped:
                continue
            resent += len(resend)
            if resend or dropped:
                self._executor.redeliver(resend, replaces=delivery.id, dropped=dropped)
        unfinished = [r for r in self._unfinished()
                      if r.id not in listed and self._owns(r.job_id)]
        self.resumed = {(r.id, r.attempts + 1) for r in unfinished if r.state == "scheduled"}
        self.recovered = True
        now_list, later = occurrences_to_resume(unfinished, plans, self._clock.seconds())
        if now_list or later or resent:
            log.info("resuming {now} unfinished occurrences now ({resent} of them sent before "
                     "the stop without a known outcome) and {later} at their retry time",
                     now=len(now_list) + resent, resent=resent, later=len(later))
        if now_list:
            self._executor.submit(now_list)
        for occurrence, delay in later:
            self._executor.retry_later([occurrence], delay)
