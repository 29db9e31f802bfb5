"""
After a restart, occurrences that were held, dispatched or waiting for a retry when the
node stopped are delivered again, with the same execution id: receivers deduplicate on it.
Dispatched ones are those the delivery outbox still lists (and, from data written before
the outbox existed, records in state 'dispatched').
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.logger import Logger

from ..schedule.occurrence import Occurrence
from ..store.reads import Record
from ..timestamps import parse_time

log = Logger()


def occurrence_from_record(record: Record, plan: Any, attempt: int) -> Occurrence:
    """The occurrence an execution record stands for, to deliver again (same id)."""
    return Occurrence(
        execution_id=record["executionId"], job_id=plan.job_id, project_id=plan.project_id,
        scheduled=parse_time(record["scheduledTime"]).timestamp(),
        callback_url=plan.callback_url, target=plan.target, payload=plan.payload,
        attempt=max(1, attempt),
    )


def occurrences_to_resume(records: list[Record], plans: dict[int, Any],
                          now: float) -> tuple[list[Occurrence], list[tuple[Occurrence, float]]]:
    """Split unfinished records into occurrences to send now and retries to wait for."""
    now_list: list[Occurrence] = []
    later: list[tuple[Occurrence, float]] = []
    for record in records:
        plan = plans.get(record["jobId"])
        if plan is None:
            continue
        # `attempts` counts the attempts already made (a held occurrence has made none)
        occurrence = occurrence_from_record(record, plan, record["attempts"] + 1)
        retry_at = record["nextRetryAt"]
        if record["state"] == "retrying" and retry_at and parse_time(retry_at).timestamp() > now:
            later.append((occurrence, parse_time(retry_at).timestamp() - now))
        else:
            now_list.append(occurrence)
    return now_list, later


class RecoveryService(Service):
    """Runs once at start, after the scheduler has planned every job."""

    def __init__(self, clock: Any, unfinished: Callable[[], list[Record]],
                 plans: Callable[[], dict[int, Any]], executor: Any,
                 outbox: Callable[[], list[Record]] = list) -> None:
        self._clock = clock
        self._unfinished = unfinished
        self._plans = plans
        self._executor = executor
        self._outbox = outbox

    def startService(self) -> None:
        Service.startService(self)
        plans = self._plans()
        outbox = self._outbox()
        # an occurrence the outbox lists was sent after whatever its stored record says
        listed = {entry[0] for row in outbox for entry in row["occurrences"]}
        resent = 0
        for row in outbox:
            resend, dropped = [], []
            for execution_id, job_id, scheduled, attempt in row["occurrences"]:
                plan = plans.get(job_id)
                if plan is None:
                    dropped.append(execution_id)
                    continue
                record = {"executionId": execution_id, "scheduledTime": scheduled}
                resend.append(occurrence_from_record(record, plan, attempt + 1))
            resent += len(resend)
            self._executor.redeliver(resend, replaces=row["id"], dropped=dropped)
        unfinished = [r for r in self._unfinished() if r["executionId"] not in listed]
        now_list, later = occurrences_to_resume(unfinished, plans, self._clock.seconds())
        if now_list or later or resent:
            log.info("resuming {now} unfinished occurrences now ({resent} of them sent before "
                     "the stop without a known outcome) and {later} at their retry time",
                     now=len(now_list) + resent, resent=resent, later=len(later))
        if now_list:
            self._executor.submit(now_list)
        for occurrence, delay in later:
            self._executor.retry_later([occurrence], delay)
