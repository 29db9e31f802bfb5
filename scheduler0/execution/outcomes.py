"""
What a delivery ended with, written down: its records, its breakers' counts, its
endpoint's poll status, and its retries.

Of an answer, only a 2xx is a success. Failures are retried with exponential backoff and
jitter up to C{retry_max} times; then, or at once for a permanent failure (a 4xx other
than 408/429), the occurrence is dead: its record in state C{dead} is the dead-letter
queue. Failures and dead letters are logged, rate-limited (L{FailureLog}), with their
jobs, endpoint and reason (the sentences come from L{scheduler0.execution.failures}).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from ..domain import DeliveryFinished, DeliveryOutcome, Execution
from ..schedule.occurrence import Occurrence, scheduled_text
from ..timestamps import format_time, from_seconds
from .backoff import retry_delay
from .breaker import Breakers, BreakerState
from .delivery import Delivery
from .failures import (
    ENDPOINT, HOST, PERMANENT, TRANSIENT, FailureLog, answer_message, describe)
from .lanes import Probes, probe_not_sent
from .recorder import ExecutionRecorder, ignore_failure
from .sender import Answer
from .settings import ExecutorSettings

log = Logger()


def classify_status(status: int) -> str:
    """A 4xx other than 408 and 429 will not get better by retrying; the rest may."""
    if 400 <= status < 500 and status not in (408, 429):
        return PERMANENT
    return TRANSIENT


@attrs.define(slots=True)
class EndpointStatus:
    """What the health API reports per endpoint (its "pollStatus")."""

    last_success: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    last_error_category: str | None = None
    consecutive_failures: int = 0
    first_failure_at: float | None = None
    touched: float = 0.0  # when an outcome was last seen (for forgetting quiet ones)


class RetryTimers:
    """Deliveries waiting out a retry's backoff; C{due} queues each when its wait ends.
    Once stopped none is kept: their 'retrying' records (with C{next_retry_at}) are
    resumed after a restart."""

    def __init__(self, clock: Any, due: Callable[[Delivery], None]) -> None:
        self._clock = clock
        self._due = due
        self._calls: dict[Any, int] = {}  # retry timer -> occurrences it will queue
        self._stopped = False

    def waiting(self) -> int:
        """Occurrences waiting out a retry's backoff."""
        return sum(self._calls.values())

    def schedule(self, delivery: Delivery, delay: float) -> None:
        if self._stopped:
            return

        def again() -> None:
            self._calls.pop(call, None)
            self._due(delivery)

        call = self._clock.callLater(delay, again)
        self._calls[call] = len(delivery.occurrences)

    def start(self) -> None:
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        for call in list(self._calls):
            if call.active():
                call.cancel()
        self._calls.clear()


class Outcomes:
    """
    Turns what happened to deliveries into execution records (and retries, breaker
    counts, poll statuses). C{endpoints} is the health API's poll status per endpoint;
    C{counters} count occurrences by outcome.
    """

    def __init__(self, clock: Any, recorder: ExecutionRecorder, breakers: Breakers,
                 retries: RetryTimers, settings: ExecutorSettings,
                 rng: random.Random) -> None:
        self._clock = clock
        self._recorder = recorder
        self._breakers = breakers
        self._retries = retries
        self._settings = settings
        self._rng = rng
        self.endpoints: dict[str, EndpointStatus] = {}
        self.counters = {"succeeded": 0, "failed": 0, "retrying": 0, "dead": 0}
        self._failure_log = FailureLog(clock)
        self._swept_at = clock.seconds()

    def status(self, endpoint: str) -> EndpointStatus:
        """C{endpoint}'s poll status (known to the health API from now on)."""
        status = self.endpoints.get(endpoint)
        if status is None:
            status = self.endpoints[endpoint] = EndpointStatus()
        status.touched = self._clock.seconds()
        return status

    # -- a POST's outcome ---------------------------------------------------------------

    def finished(self, outcome: Any, delivery: Delivery, started: float,
                 probes: Probes) -> None:
        """C{outcome} (an L{Answer} or a failure) of C{delivery}'s POST, sent at
        C{started}: its breakers count it, its records are written, failures retried."""
        now = self._clock.seconds()
        duration = round((now - started) * 1000, 1)
        host_probe, endpoint_probe = probes
        status = self.status(delivery.endpoint)
        if isinstance(outcome, Answer) and 200 <= outcome.code < 300:
            self._count(delivery.target, host_probe, success=True)
            self._count(delivery.endpoint, endpoint_probe, success=True)
            status.last_success = now
            status.consecutive_failures = 0
            status.first_failure_at = None
            self._succeeded(delivery, outcome.code, duration)
            return
        code, message, category, scope = self._describe(outcome, delivery.target)
        if scope == HOST:
            # the host could not be reached: its breaker counts it, and whatever this
            # endpoint's breaker was waiting for (a probe) is still to be learnt
            self._count(delivery.target, host_probe, success=False)
            probe_not_sent(self._breakers, delivery.endpoint, endpoint_probe)
        else:
            self._count(delivery.endpoint, endpoint_probe, success=False)
            if code is not None:  # the host answered: it is reachable
                self._count(delivery.target, host_probe, success=True)
            else:
                probe_not_sent(self._breakers, delivery.target, host_probe)
        status.last_error_at, status.last_error = now, message
        status.last_error_category = category
        if status.consecutive_failures == 0:
            status.first_failure_at = now
        status.consecutive_failures += 1
        self._failed(delivery, code, message, category, duration, now)

    def _count(self, key: str, probe: bool, success: bool) -> None:
        """An outcome for C{key}'s breaker (created on its first failure). A half-open
        breaker is decided by its probe alone: a request started before the breaker
        opened may finish now and must neither close nor reopen it."""
        breaker = self._breakers.find(key) if success else self._breakers.get(key)
        if breaker is None or not (probe or breaker.state is not BreakerState.HALF_OPEN):
            return
        if success:
            breaker.record_success()
        else:
            breaker.record_failure()

    def _describe(self, outcome: Any, target: str) -> tuple[int | None, str, str, str]:
        """C{(HTTP status or None, message, category, scope)} of a failed delivery."""
        if isinstance(outcome, Answer):
            message = answer_message(outcome.code, outcome.excerpt(), outcome.location)
            return outcome.code, message, classify_status(outcome.code), ENDPOINT
        message, category, scope = describe(outcome, target, self._settings.timeout)
        if "unexpectedly" in message and isinstance(outcome, Failure):
            log.failure("a callback to {target} failed unexpectedly", outcome,
                        level=LogLevel.error, target=target)
        return None, message, category, scope

    def _succeeded(self, delivery: Delivery, code: int, duration: float) -> None:
        self.counters["succeeded"] += len(delivery.occurrences)
        ignore_failure(self._recorder.record_outcome(
            DeliveryOutcome(delivery.id, "succeeded", self._stamp(), duration, status=code),
            len(delivery.occurrences)))

    def _failed(self, delivery: Delivery, code: int | None, message: str, category: str,
                duration: float, now: float) -> None:
        retry: list[Occurrence] = []
        dead: list[str] = []
        for o in delivery.occurrences:
            if category == TRANSIENT and o.attempt <= self._settings.retry_max:
                retry.append(o.next_attempt())
            else:
                dead.append(o.execution_id)
        delay = retry_at = None
        if retry:
            delay = retry_delay(delivery.occurrences[0].attempt, self._settings.retry_delay,
                                self._settings.retry_cap, self._rng)
            retry_at = format_time(from_seconds(now + delay))
            self._retries.schedule(delivery.retry(retry), delay)
        self.counters["retrying"] += len(retry)
        self.counters["dead"] += len(dead)
        self._log_failure(delivery, message, len(retry), delay, len(dead))
        outcome = DeliveryOutcome(
            delivery.id, "retrying" if retry else "dead", self._stamp(), duration,
            status=code, error=message, category=category, next_retry_at=retry_at,
            dead=dead if retry else ())
        ignore_failure(self._recorder.record_outcome(outcome, len(delivery.occurrences)))

    def _log_failure(self, delivery: Delivery, message: str, retrying: int,
                     delay: float | None, dead: int) -> None:
        """A failed POST in the log, rate-limited (L{FailureLog}): its endpoint, jobs,
        attempt, reason and what happens next."""
        unlogged = self._failure_log.allow(delivery.endpoint)
        if unlogged is None:
            return
        jobs = sorted({o.job_id for o in delivery.occurrences})
        shown = ", ".join(map(str, jobs[:10])) + (f" and {len(jobs) - 10} more"
                                                  if len(jobs) > 10 else "")
        outcomes = []
        if retrying:
            outcomes.append(f"{retrying} retried in {delay:.3g} s")
        if dead:
            outcomes.append(f"{dead} dead-lettered")
        more = (f" ({unlogged} more delivery failures were not logged)" if unlogged else "")
        attempt = delivery.occurrences[0].attempt if delivery.occurrences else 0
        log.warn("callback to {endpoint} failed (attempt {attempt}, jobs {jobs}): {reason}; "
                 "{outcome}{more}", endpoint=delivery.endpoint, attempt=attempt,
                 jobs=shown, job_ids=jobs[:100], reason=message,
                 outcome=" and ".join(outcomes), dead=dead, retrying=retrying,
                 unlogged=unlogged, more=more)

    # -- before or instead of a POST ----------------------------------------------------

    def held(self, deliveries: Iterable[Delivery]) -> Deferred | None:
        """Record waiting deliveries as 'scheduled' (once each), so a restart does not lose
        them; they leave the outbox row they were resumed from."""
        records: list[Execution] = []
        released: list[DeliveryFinished] = []
        now = self._stamp()
        for delivery in deliveries:
            if not delivery.held:
                delivery.held = True
                records.extend(self._record(o, "scheduled", now, attempts=o.attempt - 1)
                               for o in delivery.occurrences)
                released.extend(delivery.release(delivery.occurrences))
                delivery.replaces = None  # the 'scheduled' records stand for them now
                delivery.items = None  # held maybe for long: encode again when sent
        if records:
            return ignore_failure(self._recorder.record(records, finished=released,
                                                        keep_trying=True))
        return None

    def not_sent(self, endpoint: str, error: str, retry_in: float) -> None:
        """A POST to C{endpoint} was not sent: its dispatch could not be recorded."""
        status = self.status(endpoint)
        status.last_error_at = self._clock.seconds()
        status.last_error = (f"not sent: its dispatch could not be recorded ({error}); "
                             f"next try in {retry_in:.3g} s")
        status.last_error_category = TRANSIENT

    def abandon(self, occurrences: list[Occurrence], reason: str,
                finished: list[DeliveryFinished] = ()) -> None:  # type: ignore[assignment]
        """Occurrences not sent because their job went (state C{failed})."""
        stamp = self._stamp()
        records = []
        for o in occurrences:
            records.append(self._record(o, "failed", stamp, attempts=o.attempt - 1,
                                        last_error=reason))
        self.counters["failed"] += len(records)
        ignore_failure(self._recorder.record(records, finished=finished, keep_trying=True))

    def refuse(self, occurrences: list[Occurrence], reason: str) -> None:
        """Occurrences refused before they were queued: dead at once."""
        stamp = self._stamp()
        records = []
        for o in occurrences:
            records.append(self._record(o, "dead", stamp, attempts=o.attempt - 1,
                                        last_error=reason, error_category=TRANSIENT))
        self.counters["dead"] += len(records)
        log.warn("refused {count} occurrences: {reason}", count=len(records), reason=reason)
        ignore_failure(self._recorder.record(records, keep_trying=True))

    # -- forgetting ---------------------------------------------------------------------

    def sweep(self, now: float, busy: Callable[[str], bool]) -> None:
        """Forget endpoints quiet for C{forget_after} (at most every tenth of it): their
        poll status and idle breaker. C{busy}: whether an endpoint has deliveries waiting
        or in flight (it is kept)."""
        forget_after = self._settings.forget_after
        if now - self._swept_at < forget_after / 10:
            return
        self._swept_at = now
        for endpoint, status in list(self.endpoints.items()):
            if status.consecutive_failures or now - status.touched < forget_after:
                continue
            if busy(endpoint):
                continue
            breaker = self._breakers.find(endpoint)
            if breaker is not None and not breaker.idle:
                continue
            del self.endpoints[endpoint]
            self._breakers.forget(endpoint)

    def _stamp(self) -> str:
        return format_time(from_seconds(self._clock.seconds()))

    def _record(self, o: Occurrence, state: str, stamp: str, attempts: int,
                **fields: Any) -> Execution:
        """C{o}'s record in C{state}, with the other C{fields} known now."""
        return Execution(id=o.execution_id, job_id=o.job_id, project_id=o.project_id,
                         scheduled_time=scheduled_text(o.scheduled), state=state,
                         attempts=attempts, target=o.target, node_id=self._settings.node_id,
                         **fields)
