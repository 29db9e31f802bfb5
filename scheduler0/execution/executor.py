"""
The callback executor: delivers due occurrences to their callback URLs.

Each dispatch round, occurrences with the same callback URL (and project, whose secret
signs the body) go in one POST whose body is a JSON array, split into chunks of at most
C{HTTPExecutorPayloadMaxSizeMb}. Deliveries queue per target (C{scheme://host:port}); a
target gets at most C{per_target} requests in flight and its own circuit breaker, so a
slow or dead receiver holds only its own queue. Every POST enters the delivery outbox (one
row listing its occurrences, which are then 'dispatched') before it is sent, so a crash
re-sends it with the same execution ids; its outcome records and its removal from the
outbox are one write. A POST whose outbox row could not be written (a full disk) is not
sent: it would be missing from the history and could go out twice. It goes back to its
queue, and no delivery starts until a retry of the write, after a backoff, succeeds.

Of a receiver's answer, the status decides; at most C{answer_prefix_bytes} of its body are
read (for a failure's message), then the connection is closed instead of being pooled, so
a receiver that answers gigabytes, or never stops answering, costs a few KiB.

Failures are retried with exponential backoff and jitter up to C{retry_max} times; then,
or at once for a permanent failure (a 4xx other than 408/429), the occurrence is dead:
its record in state C{dead} is the dead-letter queue.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from typing import Any, Callable, Iterable

import attrs
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError, Deferred, gatherResults, maybeDeferred, succeed)
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from ..schedule.occurrence import Occurrence, scheduled_text
from ..timestamps import format_time, from_seconds
from .backoff import retry_delay
from .breaker import Breakers, BreakerState
from .network_policy import CallbackRefused
from .recorder import ExecutionRecorder, FailureStreak, describe_failure, ignore_failure
from .signing import SIGNATURE_HEADER, signature_header

log = Logger()

TRANSIENT = "transient"
PERMANENT = "permanent"
MAX_RETRY_WAIT = 300.0
#: most characters of a receiver's answer quoted in a failure's message
ANSWER_EXCERPT_CHARS = 200


@attrs.define
class ExecutorSettings:
    timeout: float = 30.0
    retry_delay: float = 1.0
    retry_max: int = 3
    retry_cap: float = MAX_RETRY_WAIT
    max_payload_bytes: int = 2_000_000
    per_target: int = 8
    max_in_flight: int = 100
    max_queue: int = 1_000_000
    node_id: int = 1
    #: most bytes of an answer's body read; a longer body's connection is closed
    answer_prefix_bytes: int = 4096
    #: backoff of the outbox write after it failed (a full disk): first delay, most
    record_retry_delay: float = 1.0
    record_retry_cap: float = 30.0


def classify_status(status: int) -> str:
    """A 4xx other than 408 and 429 will not get better by retrying; the rest may."""
    if 400 <= status < 500 and status not in (408, 429):
        return PERMANENT
    return TRANSIENT


@attrs.define
class Delivery:
    """One POST: occurrences sharing a callback URL and project, in one chunk."""

    target: str
    url: str
    project_id: int
    chunk_id: int
    occurrences: list[Occurrence]
    held: bool = False  # recorded as 'scheduled' while waiting for an open breaker
    #: the occurrences' body items, encoded when the chunk was measured (None: encode)
    items: list[bytes] | None = None
    #: its outbox row's id
    id: str = attrs.Factory(lambda: uuid.uuid4().hex)
    #: resumed after a restart: the outbox row its occurrences are still listed in, until
    #: they are started, held or dropped (each of which takes them out of it atomically)
    replaces: str | None = None

    def release(self, occurrences: list[Occurrence]) -> list[dict]:
        """The outbox change that takes C{occurrences} out of the row this replaces."""
        if self.replaces is None or not occurrences:
            return []
        return [{"id": self.replaces, "executions": [o.execution_id for o in occurrences]}]


@attrs.define
class TargetStatus:
    """What the health API reports per target (its "pollStatus")."""

    last_success: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    last_error_category: str | None = None
    consecutive_failures: int = 0
    first_failure_at: float | None = None
    in_flight: int = 0
    queue: deque = attrs.Factory(deque)

    def queued(self) -> int:
        return sum(len(d.occurrences) for d in self.queue)


@attrs.frozen
class Answer:
    """What a receiver answered: its status and at most a prefix of its body."""

    code: int
    prefix: bytes = b""
    truncated: bool = False  # the body went on past the prefix

    def excerpt(self, limit: int = ANSWER_EXCERPT_CHARS) -> str:
        """The body's start as one printable line, for an error message."""
        text = self.prefix.decode("utf-8", errors="replace")
        text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        if len(text) > limit or (self.truncated and text):
            text = text[:limit].rstrip() + "..."
        return text


class _BoundedBody(Protocol):
    """
    Reads at most C{limit} bytes of a response body and keeps them; C{finished} fires
    with them (and whether the body went on) at the body's end or as soon as it is known
    to be longer. A longer body is not read on: its connection is closed, so it cannot go
    back to the pool with unread data in it. Cancelling C{finished} (the deadline) closes
    it too, so a receiver that trickles its body does not hold the delivery open.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: list[bytes] = []
        self.size = 0  # bytes received, at most one read past the limit
        self.finished: Deferred = Deferred(lambda _: self._close())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def kept(self) -> bytes:
        return b"".join(self._kept)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        room = self._limit - self.size
        if room > 0:
            self._kept.append(data[:room])
        self.size += len(data)
        if self.size > self._limit:
            self._close()
            self.finished.callback((self.kept(), True))

    def connectionLost(self, reason: Any = None) -> None:
        if self.finished.called:
            return  # had enough, or cancelled at the deadline: the outcome is decided
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback((self.kept(), False))
        else:
            self.finished.errback(reason)


def _deadline_passed(result: Any, timeout: float) -> Any:
    """C{addTimeout}'s C{onTimeoutCancel}: once the deadline has cancelled the exchange,
    whatever it failed with is a timeout (a cancelled agent request fails with
    C{ResponseNeverReceived}, not C{CancelledError}, which the default conversion expects)."""
    if isinstance(result, Failure):
        return Failure(DeferredTimeout(timeout, "no answer from the callback"))
    return result


class Executor(Service):
    """
    @param http: a treq C{HTTPClient} (its C{post}); its pool bounds connections.
    @param secrets_for: C{(project id) -> [signing secrets]}, current first.
    @param is_live: whether a job still exists and is not paused (retries of a deleted or
        paused job are abandoned).
    """

    def __init__(self, clock: Any, http: Any, recorder: ExecutionRecorder, breakers: Breakers,
                 secrets_for: Callable[[int], list[str]], is_live: Callable[[int], bool],
                 settings: ExecutorSettings | None = None,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        self._http = http
        self._recorder = recorder
        self.breakers = breakers
        self._secrets_for = secrets_for
        self._is_live = is_live
        self.settings = settings or ExecutorSettings()
        self._rng = rng or random.Random()
        self.targets: dict[str, TargetStatus] = {}
        self.in_flight = 0
        self.halted = False
        self._retries: dict[Any, int] = {}  # retry timer -> occurrences it will queue
        self.counters = {"succeeded": 0, "failed": 0, "retrying": 0, "dead": 0}
        self._drained: list[Deferred] = []
        self.drain_timeout = 5.0
        self._stopping = False  # stopService was called: schedule no retries
        self._in_flight_ids: dict[str, int] = {}  # execution id -> deliveries in flight
        #: outbox writes are failing: nothing starts until this retry (a DelayedCall) runs
        self._record_retry: Any = None
        self._record_backoffs = 0  # retries of the write scheduled since it last worked
        self._record_streak = FailureStreak(clock)
        #: POSTs not sent because their outbox row could not be written
        self.unrecorded = 0
        #: sees the lateness (seconds) of the first attempts in each POST as it starts
        self.observe_first_attempts: Callable[[list[float]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False

    def stopService(self) -> Deferred:
        """Start nothing new; wait (at most C{drain_timeout}) for deliveries in flight, so
        their outcomes are recorded. Anything unfinished is re-sent after a restart."""
        Service.stopService(self)
        self.halted = True
        self._stopping = True
        for call in list(self._retries.keys()):
            if call.active():
                call.cancel()
        self._retries.clear()
        if self._record_retry is not None and self._record_retry.active():
            self._record_retry.cancel()
        self._record_retry = None
        # occurrences still queued (behind a target's limit, or halted) get a record, so
        # the recovery after a restart delivers them instead of losing them
        held = [self._hold(status) for status in self.targets.values()]
        waits = [d for d in held if d is not None]
        if self.in_flight:
            drained: Deferred = Deferred()
            self._drained.append(drained)
            drained.addTimeout(self.drain_timeout, self._clock,
                               onTimeoutCancel=lambda *_: None)
            waits.append(drained)
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addBoth(lambda _: None)

    def halt(self) -> None:
        """No delivery starts until L{resume}; those in flight finish and are recorded."""
        self.halted = True

    def resume(self) -> None:
        self.halted = False
        self._pump_all()

    def on_breaker_change(self, breaker: Any, old: BreakerState, new: BreakerState) -> None:
        if new in (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            self._pump(breaker.target)

    # -- accepting work -----------------------------------------------------------------

    def queued(self) -> int:
        return sum(status.queued() for status in self.targets.values())

    def retry_waiting(self) -> int:
        """Occurrences waiting out a retry's backoff (queued again when it ends)."""
        return sum(self._retries.values())

    @property
    def in_flight_ids(self) -> Any:
        """Execution ids being delivered now (from their outbox entry to their outcome):
        a 'dispatched' execution among them is not hanging."""
        return self._in_flight_ids.keys()

    def submit(self, occurrences: Iterable[Occurrence]) -> None:
        """One dispatch round: group, chunk and queue; start what may start."""
        groups: dict[tuple[str, int], list[Occurrence]] = {}
        for occurrence in occurrences:
            groups.setdefault((occurrence.callback_url, occurrence.project_id), []).append(
                occurrence)
        room = self.settings.max_queue - self.queued()
        touched = set()
        for (url, project_id), group in groups.items():
            if len(group) > room:
                self._refuse(group[max(room, 0):], "the dispatch queue is full (MaxQueue)")
                group = group[:max(room, 0)]
            room -= len(group)
            for chunk_id, (chunk, items) in enumerate(self._chunks(group)):
                delivery = Delivery(chunk[0].target, url, project_id, chunk_id, chunk,
                                    items=items)
                self._status(delivery.target).queue.append(delivery)
                touched.add(delivery.target)
        for target in touched:
            if self._stopping:
                self._hold(self._status(target))  # nothing starts now: keep them for a restart
            else:
                self._pump(target)

    def _chunks(self, group: list[Occurrence]) -> Iterable[tuple[list[Occurrence], list[bytes]]]:
        """Greedy chunks whose body (C{[item,item,...]}) is at most C{max_payload_bytes},
        measured exactly and with room for the attempt number to grow on retries (a retry
        re-sends the same chunk). An item larger than the limit goes alone. Each chunk comes
        with its body items, so they are encoded once."""
        limit = self.settings.max_payload_bytes
        widest_attempt = len(str(self.settings.retry_max + 1))
        chunk: list[Occurrence] = []
        items: list[bytes] = []
        size = 1  # "["; every item then adds its length and a "," or the closing "]"
        for occurrence in group:
            digits = len(str(occurrence.attempt))
            body = occurrence.body_item()
            item = len(body) + max(widest_attempt - digits, 0) + 1
            if chunk and size + item > limit:
                yield chunk, items
                chunk, items, size = [], [], 1
            chunk.append(occurrence)
            items.append(body)
            size += item
        if chunk:
            yield chunk, items

    def _status(self, target: str) -> TargetStatus:
        status = self.targets.get(target)
        if status is None:
            status = self.targets[target] = TargetStatus()
        return status

    # -- starting deliveries ------------------------------------------------------------

    def _pump_all(self) -> None:
        for target in list(self.targets):
            self._pump(target)

    def _pump(self, target: str) -> None:
        status = self._status(target)
        breaker = self.breakers.get(target)
        while (status.queue and not self.halted and self._record_retry is None
               and status.in_flight < self.settings.per_target
               and self.in_flight < self.settings.max_in_flight):
            delivery = status.queue[0]
            if not self._keep_live(delivery):
                status.queue.popleft()
                continue
            # liveness is settled first: a half-open breaker's single probe must be sent
            if not breaker.allow():
                self._hold(status)
                return
            probe = breaker.state is BreakerState.HALF_OPEN
            self._start(status, status.queue.popleft(), probe)
            if breaker.state is BreakerState.HALF_OPEN:
                self._hold(status)  # only the probe goes; the rest wait for its outcome
                return

    def _hold(self, status: TargetStatus) -> Deferred | None:
        """Persist held occurrences as 'scheduled' so a restart does not lose them."""
        records: list[dict] = []
        released: list[dict] = []
        now = format_time(from_seconds(self._clock.seconds()))
        for delivery in status.queue:
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

    def _keep_live(self, delivery: Delivery) -> bool:
        """Drop (and record) occurrences of jobs deleted or paused since they were due."""
        live = [o for o in delivery.occurrences if self._is_live(o.job_id)]
        if len(live) < len(delivery.occurrences):
            gone = [o for o in delivery.occurrences if not self._is_live(o.job_id)]
            self._abandon(gone, finished=delivery.release(gone))
            delivery.occurrences = live
            delivery.items = None
        return bool(live)

    def _start(self, status: TargetStatus, delivery: Delivery, probe: bool = False) -> None:
        status.in_flight += 1
        self.in_flight += 1
        flying = self._in_flight_ids
        for o in delivery.occurrences:
            flying[o.execution_id] = flying.get(o.execution_id, 0) + 1
        started = self._clock.seconds()
        entry = {
            "id": delivery.id, "node_id": self.settings.node_id,
            "project_id": delivery.project_id, "target": delivery.target,
            "started_at": format_time(from_seconds(started)),
            "occurrences": [[o.execution_id, o.job_id, scheduled_text(o.scheduled), o.attempt]
                            for o in delivery.occurrences],
        }
        d = self._recorder.record([], started=[entry],
                                  finished=delivery.release(delivery.occurrences))

        def recorded(_: Any) -> None:
            self._recording_works()
            if self.observe_first_attempts is not None:
                lateness = [started - o.scheduled for o in delivery.occurrences
                            if o.attempt == 1]
                if lateness:
                    self.observe_first_attempts(lateness)
            post = maybeDeferred(self._post, delivery)
            post.addBoth(self._finished, status, delivery, started, probe)

        def not_recorded(failure: Failure) -> None:
            self._not_recorded(failure, status, delivery, probe)

        d.addCallbacks(recorded, not_recorded)
        d.addErrback(lambda f: log.failure("delivery to {target} broke", f,
                                           target=delivery.target))

    # -- when the outbox cannot be written ------------------------------------------------

    def _not_recorded(self, failure: Failure, status: TargetStatus, delivery: Delivery,
                      probe: bool) -> None:
        """The outbox row was not written, so the POST is not sent: the delivery goes back
        to the head of its queue and nothing starts until a write is tried again, after a
        backoff that grows while the writes keep failing."""
        self._land(status, delivery)
        self.unrecorded += 1
        if probe:
            self.breakers.get(delivery.target).probe_not_sent()
        status.queue.appendleft(delivery)
        now = self._clock.seconds()
        if self._record_retry is None and not self._stopping:
            delay = min(self.settings.record_retry_delay * 2.0 ** min(self._record_backoffs, 30),
                        self.settings.record_retry_cap)
            self._record_backoffs += 1
            self._record_retry = self._clock.callLater(delay, self._retry_recording)
        retry_in = self._record_retry.getTime() - now if self._record_retry is not None else 0.0
        error = describe_failure(failure)[:300]
        status.last_error_at = now
        status.last_error = (f"not sent: its dispatch could not be recorded ({error}); "
                             f"next try in {retry_in:.3g} s")
        status.last_error_category = TRANSIENT
        streak = self._record_streak
        if streak.failed():
            log.error("a callback to {target} was not sent: its dispatch could not be recorded "
                      "({error}); no callback goes out unrecorded: deliveries are held and "
                      "tried again in {retry_in:.3g} s ({failures} not sent in {seconds:.0f} s, "
                      "{unlogged} not logged since the last report)", target=delivery.target,
                      error=error,
                      retry_in=retry_in, failures=streak.failures,
                      seconds=now - (streak.since or now), unlogged=streak.unlogged)
        if self._stopping:
            self._hold(status)
        self._landed()

    def _retry_recording(self) -> None:
        self._record_retry = None
        self._pump_all()

    def _recording_works(self) -> None:
        self._record_backoffs = 0
        ended = self._record_streak.succeeded()
        if ended is not None:
            log.info("dispatches are recorded again: callbacks go out after {failures} were "
                     "held over {seconds:.0f} s", failures=ended[0], seconds=ended[1])

    def _land(self, status: TargetStatus, delivery: Delivery) -> None:
        """A delivery is no longer in flight (its outcome is known, or it never went)."""
        status.in_flight -= 1
        self.in_flight -= 1
        for o in delivery.occurrences:
            left = self._in_flight_ids.pop(o.execution_id, 1) - 1
            if left:
                self._in_flight_ids[o.execution_id] = left

    def _landed(self) -> None:
        """Tell L{stopService} once nothing is in flight."""
        if self.in_flight == 0 and self._drained:
            drained, self._drained = self._drained, []
            for d in drained:
                if not d.called:
                    d.callback(None)

    def _post(self, delivery: Delivery) -> Any:
        items = delivery.items
        if items is None:
            items = [o.body_item() for o in delivery.occurrences]
        body = b"[" + b",".join(items) + b"]"
        headers = {
            "Content-Type": ["application/json"],
            "x-payload-chunk-id": [str(delivery.chunk_id)],
            "User-Agent": ["Scheduler0"],
        }
        secrets = self._secrets_for(delivery.project_id)
        if secrets:
            headers[SIGNATURE_HEADER] = [signature_header(body, secrets,
                                                          int(self._clock.seconds()))]
        # One deadline on our clock for the whole exchange (connect, answer and body), not
        # treq's timeout=, which covers only the answer, runs on the global reactor and
        # reports expiry as ResponseNeverReceived.
        # unbuffered: treq would otherwise keep the whole body in memory, whatever reads it.
        # No redirects: only a 2xx is a success, and a redirect that the agent follows (or
        # refuses) leaves its own body unread and its connection open for as long as the
        # receiver keeps it open.
        d = self._http.post(delivery.url, data=body, headers=headers, unbuffered=True,
                            allow_redirects=False)

        def read(response: Any) -> Any:
            sink = _BoundedBody(self.settings.answer_prefix_bytes)
            response.deliverBody(sink)
            return sink.finished.addCallback(lambda kept: Answer(response.code, *kept))

        d.addCallback(read)
        d.addTimeout(self.settings.timeout, self._clock, onTimeoutCancel=_deadline_passed)
        return d

    # -- outcomes -----------------------------------------------------------------------

    def _finished(self, outcome: Any, status: TargetStatus, delivery: Delivery,
                  started: float, probe: bool = False) -> None:
        self._land(status, delivery)
        now = self._clock.seconds()
        duration = round((now - started) * 1000, 1)
        breaker = self.breakers.get(delivery.target)
        # A half-open breaker is decided by its probe alone: a request started before the
        # breaker opened may finish now and must neither close nor reopen it.
        counts = probe or breaker.state is not BreakerState.HALF_OPEN
        if isinstance(outcome, Answer) and 200 <= outcome.code < 300:
            if counts:
                breaker.record_success()
            status.last_success = now
            status.consecutive_failures = 0
            status.first_failure_at = None
            self._succeeded(delivery, outcome.code, duration, started, now)
        else:
            code, message, category = self._describe(outcome)
            if counts:
                breaker.record_failure()
            status.last_error_at, status.last_error = now, message
            status.last_error_category = category
            if status.consecutive_failures == 0:
                status.first_failure_at = now
            status.consecutive_failures += 1
            self._failed(delivery, code, message, category, duration, started, now)
        self._pump(delivery.target)
        if self.in_flight < self.settings.max_in_flight:
            self._pump_all()
        self._landed()

    def _describe(self, outcome: Any) -> tuple[int | None, str, str]:
        if isinstance(outcome, Answer):
            excerpt = outcome.excerpt()
            message = f"HTTP {outcome.code}: {excerpt}" if excerpt else f"HTTP {outcome.code}"
            return outcome.code, message, classify_status(outcome.code)
        error = getattr(outcome, "value", outcome)
        if isinstance(error, (DeferredTimeout, CancelledError)):
            return None, f"no answer within {self.settings.timeout:g} s", TRANSIENT
        refused = isinstance(error, CallbackRefused)
        message = str(error) or type(error).__name__
        if not refused:
            message = f"{type(error).__name__}: {message}"
        return None, message[:500], PERMANENT if refused else TRANSIENT

    def _outcome(self, delivery: Delivery, state: str, started: float, now: float,
                 **fields: Any) -> list[dict]:
        """One outcome record per occurrence; a first attempt's also says when it was first
        sent and how late."""
        stamp = format_time(from_seconds(now))
        first = format_time(from_seconds(started))
        records = []
        for o in delivery.occurrences:
            record = self._record(o, state, stamp, attempts=o.attempt)
            record.update(fields)
            record["last_attempt_at"] = stamp
            if o.attempt == 1:
                record["first_attempt_at"] = first
                record["lateness_ms"] = round((started - o.scheduled) * 1000, 1)
            records.append(record)
        return records

    def _succeeded(self, delivery: Delivery, code: int, duration: float, started: float,
                   now: float) -> None:
        records = self._outcome(delivery, "succeeded", started, now, last_status=code,
                                duration_ms=duration)
        self.counters["succeeded"] += len(records)
        ignore_failure(self._recorder.record(records, finished=[{"id": delivery.id}],
                                             keep_trying=True))

    def _failed(self, delivery: Delivery, code: int | None, message: str, category: str,
                duration: float, started: float, now: float) -> None:
        retry: list[Occurrence] = []
        records = self._outcome(delivery, "dead", started, now, last_status=code,
                                last_error=message, error_category=category,
                                duration_ms=duration)
        for o, record in zip(delivery.occurrences, records):
            if category == TRANSIENT and o.attempt <= self.settings.retry_max:
                retry.append(o.next_attempt())
                record["state"] = "retrying"
        if retry:
            delay = retry_delay(delivery.occurrences[0].attempt, self.settings.retry_delay,
                                self.settings.retry_cap, self._rng)
            retry_at = format_time(from_seconds(now + delay))
            for record in records:
                if record["state"] == "retrying":
                    record["next_retry_at"] = retry_at
            self._schedule_retry(Delivery(delivery.target, delivery.url, delivery.project_id,
                                          delivery.chunk_id, retry), delay)
        self.counters["retrying"] += len(retry)
        self.counters["dead"] += len(records) - len(retry)
        ignore_failure(self._recorder.record(records, finished=[{"id": delivery.id}],
                                             keep_trying=True))

    def _schedule_retry(self, delivery: Delivery, delay: float) -> None:
        if self._stopping:
            # stopping: the 'retrying' record (with next_retry_at) is resumed after restart
            return

        def again() -> None:
            self._retries.pop(call, None)
            self._status(delivery.target).queue.append(delivery)
            self._pump(delivery.target)

        call = self._clock.callLater(delay, again)
        self._retries[call] = len(delivery.occurrences)

    def redeliver(self, occurrences: list[Occurrence], replaces: str,
                  dropped: list[str] = ()) -> None:  # type: ignore[assignment]
        """Deliver again what outbox row C{replaces} listed when the node stopped; each
        occurrence leaves that row when its new delivery starts, is held or is dropped.
        C{dropped}: execution ids of that row not to deliver (their job is gone)."""
        if dropped:
            ignore_failure(self._recorder.record(
                [], finished=[{"id": replaces, "executions": list(dropped)}], keep_trying=True))
        groups: dict[tuple[str, int], list[Occurrence]] = {}
        for o in occurrences:
            groups.setdefault((o.callback_url, o.project_id), []).append(o)
        for (url, project_id), group in groups.items():
            for chunk_id, (chunk, items) in enumerate(self._chunks(group)):
                delivery = Delivery(chunk[0].target, url, project_id, chunk_id, chunk,
                                    items=items, replaces=replaces)
                self._status(delivery.target).queue.append(delivery)
        if self._stopping:
            for status in self.targets.values():
                self._hold(status)
        else:
            self._pump_all()

    def retry_later(self, occurrences: list[Occurrence], delay: float) -> None:
        """Queue occurrences after C{delay} (a restart resuming a pending retry)."""
        groups: dict[tuple[str, int], list[Occurrence]] = {}
        for o in occurrences:
            groups.setdefault((o.callback_url, o.project_id), []).append(o)
        for (url, project_id), group in groups.items():
            for chunk_id, (chunk, items) in enumerate(self._chunks(group)):
                self._schedule_retry(Delivery(chunk[0].target, url, project_id, chunk_id, chunk,
                                              items=items), delay)

    def _abandon(self, occurrences: list[Occurrence], finished: list[dict] = ()) -> None:  # type: ignore[assignment]
        stamp = format_time(from_seconds(self._clock.seconds()))
        records = []
        for o in occurrences:
            record = self._record(o, "failed", stamp, attempts=o.attempt - 1)
            record["last_error"] = "the job was deleted or paused before delivery"
            records.append(record)
        self.counters["failed"] += len(records)
        ignore_failure(self._recorder.record(records, finished=finished, keep_trying=True))

    def _refuse(self, occurrences: list[Occurrence], reason: str) -> None:
        stamp = format_time(from_seconds(self._clock.seconds()))
        records = []
        for o in occurrences:
            record = self._record(o, "dead", stamp, attempts=o.attempt - 1)
            record.update(last_error=reason, error_category=TRANSIENT)
            records.append(record)
        self.counters["dead"] += len(records)
        log.warn("refused {count} occurrences: {reason}", count=len(records), reason=reason)
        ignore_failure(self._recorder.record(records, keep_trying=True))

    def _record(self, o: Occurrence, state: str, stamp: str, attempts: int) -> dict:
        return {
            "id": o.execution_id, "job_id": o.job_id, "project_id": o.project_id,
            "scheduled_time": scheduled_text(o.scheduled), "state": state,
            "attempts": attempts, "target": o.target, "node_id": self.settings.node_id,
        }
