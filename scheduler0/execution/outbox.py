"""
The delivery outbox, as the executor uses it. Every POST enters it (one row listing its
occurrences, which are then 'dispatched') before it is sent, so a crash re-sends it with
the same execution ids; its outcome records and its removal from the outbox are one write.

A POST whose row could not be written (a full disk) is not sent: it would be missing from
the history and could go out twice. It goes back to its queue, and L{OutboxGate} lets no
delivery start until a retry of the write, after a backoff, succeeds.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger
from twisted.python.failure import Failure

from ..domain import DeliveryRecord
from ..schedule.occurrence import scheduled_text
from ..timestamps import format_time, from_seconds
from .delivery import Delivery
from .recorder import FailureStreak, describe_failure
from .settings import ExecutorSettings

log = Logger()


def outbox_entry(delivery: Delivery, node_id: int, started: float) -> DeliveryRecord:
    """The outbox entry of C{delivery}, sent at C{started}."""
    return DeliveryRecord(
        id=delivery.id, node_id=node_id, project_id=delivery.project_id,
        target=delivery.target, started_at=format_time(from_seconds(started)),
        occurrences=[[o.execution_id, o.job_id, scheduled_text(o.scheduled), o.attempt]
                     for o in delivery.occurrences])


class OutboxGate:
    """
    Closed while outbox writes fail: nothing starts until a retry, after a backoff that
    grows while the writes keep failing, calls C{reopen}.
    """

    def __init__(self, clock: Any, settings: ExecutorSettings,
                 reopen: Callable[[], None]) -> None:
        self._clock = clock
        self._settings = settings
        self._reopen = reopen
        self._retry: Any = None  # a DelayedCall while the gate is closed
        self._backoffs = 0  # retries of the write scheduled since it last worked
        self._streak = FailureStreak(clock)
        #: POSTs not sent because their outbox row could not be written
        self.unrecorded = 0

    @property
    def closed(self) -> bool:
        return self._retry is not None

    def failed(self, failure: Failure, endpoint: str, stopping: bool) -> tuple[str, float]:
        """A POST to C{endpoint} was not sent: its row was not written. Closes the gate
        (unless C{stopping}: nothing is tried again then) and logs it, rate-limited.
        Returns the write's error and the seconds until it is tried again."""
        self.unrecorded += 1
        now = self._clock.seconds()
        if self._retry is None and not stopping:
            delay = min(self._settings.record_retry_delay * 2.0 ** min(self._backoffs, 30),
                        self._settings.record_retry_cap)
            self._backoffs += 1
            self._retry = self._clock.callLater(delay, self._retried)
        retry_in = self._retry.getTime() - now if self._retry is not None else 0.0
        error = describe_failure(failure)[:300]
        streak = self._streak
        if streak.failed():
            log.error("a callback to {endpoint} was not sent: its dispatch could not be "
                      "recorded ({error}); no callback goes out unrecorded: deliveries are held "
                      "and tried again in {retry_in:.3g} s ({failures} not sent in {seconds:.0f} "
                      "s, {unlogged} not logged since the last report)",
                      endpoint=endpoint, error=error,
                      retry_in=retry_in, failures=streak.failures,
                      seconds=now - (streak.since or now), unlogged=streak.unlogged)
        return error, retry_in

    def works(self) -> None:
        """An outbox row was written: the backoff starts over."""
        self._backoffs = 0
        ended = self._streak.succeeded()
        if ended is not None:
            log.info("dispatches are recorded again: callbacks go out after {failures} were "
                     "held over {seconds:.0f} s", failures=ended[0], seconds=ended[1])

    def stop(self) -> None:
        """No more retries of the write (the node is stopping)."""
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _retried(self) -> None:
        self._retry = None
        self._reopen()
