"""
After a restart, occurrences that were held, dispatched or waiting for a retry when the
node stopped are delivered again, with the same execution id: receivers deduplicate on it.
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
                 plans: Callable[[], dict[int, Any]], executor: Any) -> None:
        self._clock = clock
        self._unfinished = unfinished
        self._plans = plans
        self._executor = executor

    def startService(self) -> None:
        Service.startService(self)
        now_list, later = occurrences_to_resume(self._unfinished(), self._plans(),
                                                self._clock.seconds())
        if now_list or later:
            log.info("resuming {now} unfinished occurrences now and {later} at their retry time",
                     now=len(now_list), later=len(later))
        if now_list:
            self._executor.submit(now_list)
        for occurrence, delay in later:
            self._executor.retry_later([occurrence], delay)
