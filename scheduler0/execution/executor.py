"""
The callback executor: delivers due occurrences to their callback URLs.

Each dispatch round, occurrences with the same callback URL (and project, whose secret
signs the body) go in one POST whose body is a JSON array, split into chunks of at most
C{HTTPExecutorPayloadMaxSizeMb}. Every POST enters the delivery outbox (one row listing
its occurrences, which are then 'dispatched') before it is sent, so a crash re-sends it
with the same execution ids; its outcome records and its removal from the outbox are one
write. A POST whose outbox row could not be written (a full disk) is not sent: it would be
missing from the history and could go out twice. It goes back to its queue, and no
delivery starts until a retry of the write, after a backoff, succeeds.

Isolation (PRODUCT §5). Deliveries queue per endpoint (L{endpoint_of}: the callback URL
without user info) inside a lane per host (C{scheme://host:port}). A host has at most
C{per_target} requests in flight (it bounds sockets), shared round-robin between its
endpoints, and while other endpoints of the host wait, one endpoint gets at most half of
them, so a slow endpoint cannot take all of its host's slots. An endpoint that fails
(5xx, 4xx, no answer) opens its own breaker and only its deliveries are held; a host that
cannot be reached (refused, unknown, TLS) opens the host's breaker, which holds them all.

Of a receiver's answer, the status decides; at most C{answer_prefix_bytes} of its body are
read (for a failure's message), then the connection is closed instead of being pooled, so
a receiver that answers gigabytes, or never stops answering, costs a few KiB. A request
that dies on a reused connection before any byte of the answer (the receiver had closed
it) is sent again at once on a fresh connection: no attempt and no failure is counted.

Failures are retried with exponential backoff and jitter up to C{retry_max} times; then,
or at once for a permanent failure (a 4xx other than 408/429), the occurrence is dead:
its record in state C{dead} is the dead-letter queue. Failures and dead letters are
logged, rate-limited (L{FailureLog}), with their jobs, endpoint and reason.
"""

from __future__ import annotations

import random
import uuid
from typing import Any, Callable, Iterable

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.protocol import Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from ..schedule.occurrence import Occurrence, endpoint_of, host_of, scheduled_text
from ..timestamps import format_time, from_seconds
from .backoff import retry_delay
from .breaker import Breakers, BreakerState, CircuitBreaker
from .failures import (
    ENDPOINT, HOST, PERMANENT, TRANSIENT, FailureLog, answer_message, describe,
    died_unanswered)
from .recorder import ExecutionRecorder, FailureStreak, describe_failure, ignore_failure
from .signing import SIGNATURE_HEADER, signature_header

log = Logger()

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
    #: an endpoint quiet (and not failing) for this long is forgotten: its poll status
    #: and idle breaker go, so a node whose jobs come and go does not keep them forever
    forget_after: float = 86_400.0


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
    #: decides which of its jobs are still to be sent instead of the executor's
    #: C{is_live}: an operator's replay sends a paused job's occurrences too
    live: Callable[[int], bool] | None = None
    #: the endpoint it goes to (its breaker and queue)
    endpoint: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.endpoint = endpoint_of(self.url)

    def release(self, occurrences: list[Occurrence]) -> list[dict]:
        """The outbox change that takes C{occurrences} out of the row this replaces."""
        if self.replaces is None or not occurrences:
            return []
        return [{"id": self.replaces, "executions": [o.execution_id for o in occurrences]}]


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


@attrs.define
class HostLane:
    """
    The deliveries of one host (C{scheme://host:port}). C{queues}: per endpoint, in
    round-robin order, those ready to go; C{parked}: per endpoint, those held by its open
    breaker (recorded as 'scheduled') until it lets a probe through.
    """

    queues: dict[str, list[Delivery]] = attrs.Factory(dict)
    parked: dict[str, list[Delivery]] = attrs.Factory(dict)
    flying: dict[str, int] = attrs.Factory(dict)  # endpoint -> deliveries in flight
    in_flight: int = 0

    def queued(self) -> int:
        return sum(len(d.occurrences) for waiting in (self.queues, self.parked)
                   for deliveries in waiting.values() for d in deliveries)

    def waiting(self) -> Iterable[Delivery]:
        for waiting in (self.queues, self.parked):
            for deliveries in waiting.values():
                yield from deliveries

    def add(self, delivery: Delivery, first: bool = False) -> None:
        """Queue C{delivery} (at the head of its endpoint's queue if C{first}); an
        endpoint whose deliveries are parked gets it parked with them."""
        waiting = self.parked if delivery.endpoint in self.parked else self.queues
        deliveries = waiting.setdefault(delivery.endpoint, [])
        if first:
            deliveries.insert(0, delivery)
        else:
            deliveries.append(delivery)


@attrs.frozen
class Answer:
    """What a receiver answered: its status and at most a prefix of its body."""

    code: int
    prefix: bytes = b""
    truncated: bool = False  # the body went on past the prefix
    location: str | None = None  # a redirect's target (never followed)

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


def _location(response: Any) -> str | None:
    """A redirect's C{Location}, for its failure message (never followed)."""
    headers = getattr(response, "headers", None)
    values = headers.getRawHeaders(b"location") if headers is not None else None
    return values[0].decode("latin-1") if values else None


def _deadline_passed(result: Any, timeout: float) -> Any:
    """C{addTimeout}'s C{onTimeoutCancel}: once the deadline has cancelled the exchange,
    whatever it failed with is a timeout (a cancelled agent request fails with
    C{ResponseNeverReceived}, not C{CancelledError}, which the default conversion expects)."""
    if isinstance(result, Failure):
        return Failure(DeferredTimeout(timeout, "no answer from the callback"))
    return result


class Executor(Service):
    """
    @param http: a treq C{HTTPClient} (its C{post}); its pool bounds connections. If it
        has a C{post_fresh} too (L{scheduler0.execution.connections.CallbackHTTP}), that
        sends on a new connection: the re-send of a request whose pooled connection had
        been closed by the receiver.
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
        #: per host: its deliveries waiting and in flight
        self.targets: dict[str, HostLane] = {}
        #: per endpoint: what its deliveries ended with (the health API's poll status)
        self.endpoints: dict[str, EndpointStatus] = {}
        self.in_flight = 0
        self.halted = False
        self._retries: dict[Any, int] = {}  # retry timer -> occurrences it will queue
        self.counters = {"succeeded": 0, "failed": 0, "retrying": 0, "dead": 0}
        #: requests sent again at once because their pooled connection had been closed
        self.stale_retries = 0
        self._drained: list[Deferred] = []
        self.drain_timeout = 5.0
        self._stopping = False  # stopService was called: schedule no retries
        #: the drain timed out: deliveries still in flight were cancelled, and their
        #: outcome is not recorded (their outbox row re-sends them after a restart)
        self._abandoned = False
        self._posts: set[Deferred] = set()  # the POSTs in flight
        self._in_flight_ids: dict[str, int] = {}  # execution id -> deliveries in flight
        #: outbox writes are failing: nothing starts until this retry (a DelayedCall) runs
        self._record_retry: Any = None
        self._record_backoffs = 0  # retries of the write scheduled since it last worked
        self._record_streak = FailureStreak(clock)
        self._failure_log = FailureLog(clock)
        self._swept_at = clock.seconds()
        #: POSTs not sent because their outbox row could not be written
        self.unrecorded = 0
        #: sees the lateness (seconds) of the first attempts in each POST as it starts
        self.observe_first_attempts: Callable[[list[float]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False
        self._abandoned = False

    def stopService(self) -> Deferred:
        """Start nothing new; wait (at most C{drain_timeout}) for deliveries in flight, so
        their outcomes are recorded. Those still unanswered then are cancelled without a
        record: their outbox row sends them again (same execution ids) after a restart."""
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
        # occurrences still queued (behind a host's limit, or halted) get a record, so
        # the recovery after a restart delivers them instead of losing them
        held = [self._hold(lane) for lane in self.targets.values()]
        waits = [d for d in held if d is not None]
        if self.in_flight:
            drained: Deferred = Deferred()
            self._drained.append(drained)
            give_up = self._clock.callLater(self.drain_timeout, self._abandon_in_flight)
            drained.addBoth(lambda result: give_up.cancel() if give_up.active() else None)
            waits.append(drained)
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addBoth(lambda _: None)

    def _abandon_in_flight(self) -> None:
        """The drain timed out: cancel what is still in flight, recording nothing, so no
        outcome is written (or fails to be) while the node closes its store."""
        self._abandoned = True
        if self.in_flight:
            log.info("stopping: {count} callbacks still unanswered after {seconds:g} s are "
                     "cancelled; they are sent again after a restart", count=self.in_flight,
                     seconds=self.drain_timeout)
        for post in list(self._posts):
            post.cancel()
        # a delivery whose outbox row is still being written may never hear back (the
        # command log is about to stop): the stop does not wait for it either
        drained, self._drained = self._drained, []
        for d in drained:
            if not d.called:
                d.callback(None)

    def halt(self) -> None:
        """No delivery starts until L{resume}; those in flight finish and are recorded."""
        self.halted = True

    def resume(self) -> None:
        self.halted = False
        self._pump_all()

    def on_breaker_change(self, breaker: Any, old: BreakerState, new: BreakerState) -> None:
        """A breaker lets requests through again: an endpoint's parked deliveries queue
        again, and its host's lane is pumped (which sends a half-open breaker's probe)."""
        if new not in (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            return
        host = host_of(breaker.target)
        lane = self.targets.get(host)
        if lane is None:
            return
        if breaker.target != host:
            parked = lane.parked.pop(breaker.target, None)
            if parked:
                parked.extend(lane.queues.pop(breaker.target, ()))
                lane.queues[breaker.target] = parked
        self._pump(host)

    # -- accepting work -----------------------------------------------------------------

    def queued(self) -> int:
        return sum(lane.queued() for lane in self.targets.values())

    def retry_waiting(self) -> int:
        """Occurrences waiting out a retry's backoff (queued again when it ends)."""
        return sum(self._retries.values())

    @property
    def in_flight_ids(self) -> Any:
        """Execution ids being delivered now (from their outbox entry to their outcome):
        a 'dispatched' execution among them is not hanging."""
        return self._in_flight_ids.keys()

    def submit(self, occurrences: Iterable[Occurrence],
               live: Callable[[int], bool] | None = None) -> None:
        """One dispatch round: group, chunk and queue; start what may start. C{live}
        replaces C{is_live} for these occurrences (and their retries): an operator's
        replay of a paused job's dead letter is sent all the same."""
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
                                    items=items, live=live)
                self._enqueue(delivery)
                touched.add(delivery.target)
        for target in touched:
            if self._stopping:
                self._hold(self._lane(target))  # nothing starts now: keep them for a restart
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

    def _lane(self, target: str) -> HostLane:
        lane = self.targets.get(target)
        if lane is None:
            lane = self.targets[target] = HostLane()
        return lane

    def _enqueue(self, delivery: Delivery, first: bool = False) -> None:
        lane = self._lane(delivery.target)
        lane.add(delivery, first)
        if delivery.endpoint in lane.parked and not delivery.held:
            self._hold_deliveries([delivery])  # its breaker is open: held at once

    def _endpoint_status(self, endpoint: str) -> EndpointStatus:
        status = self.endpoints.get(endpoint)
        if status is None:
            status = self.endpoints[endpoint] = EndpointStatus()
        status.touched = self._clock.seconds()
        return status

    # -- starting deliveries ------------------------------------------------------------

    def _pump_all(self) -> None:
        for target in list(self.targets):
            self._pump(target)

    def _may_start(self, lane: HostLane) -> bool:
        return (not self.halted and self._record_retry is None
                and lane.in_flight < self.settings.per_target
                and self.in_flight < self.settings.max_in_flight)

    def _pump(self, target: str) -> None:
        """Start what the host's lane may start: endpoints take turns; an endpoint whose
        breaker is open is parked (held); a half-open breaker lets its one probe go."""
        lane = self.targets.get(target)
        if lane is None:
            return
        share = max(1, (self.settings.per_target + 1) // 2)
        passed = 0  # endpoints passed over in a row for having their share in flight
        while lane.queues and self._may_start(lane):
            host = self.breakers.find(target)
            if host is not None and not host.ready():
                self._hold(lane)
                return
            endpoint = next(iter(lane.queues))
            deliveries = lane.queues[endpoint]
            breaker = self.breakers.find(endpoint)
            if breaker is not None and not breaker.ready():
                del lane.queues[endpoint]
                lane.parked.setdefault(endpoint, []).extend(deliveries)
                self._hold_deliveries(deliveries)
                continue
            if lane.flying.get(endpoint, 0) >= share and passed < len(lane.queues) - 1:
                lane.queues[endpoint] = lane.queues.pop(endpoint)  # its turn comes later
                passed += 1
                continue
            passed = 0
            delivery = deliveries.pop(0)
            if deliveries:
                lane.queues[endpoint] = lane.queues.pop(endpoint)  # the next endpoint's turn
            else:
                del lane.queues[endpoint]
            if not self._keep_live(delivery):
                continue
            # liveness is settled first: a half-open breaker's single probe must be sent
            probes = (self._take(host), self._take(breaker))
            self._start(lane, delivery, probes)
            if host is not None and host.state is BreakerState.HALF_OPEN:
                self._hold(lane)  # only the host's probe goes; the rest wait for it
                return

    @staticmethod
    def _take(breaker: CircuitBreaker | None) -> bool:
        """Let a request through C{breaker}; True if it is the half-open breaker's probe."""
        if breaker is None:
            return False
        probe = breaker.state is BreakerState.HALF_OPEN
        breaker.allow()
        return probe

    def _hold(self, lane: HostLane) -> Deferred | None:
        """Persist a lane's waiting occurrences as 'scheduled' so a restart does not lose
        them."""
        return self._hold_deliveries(list(lane.waiting()))

    def _hold_deliveries(self, deliveries: Iterable[Delivery]) -> Deferred | None:
        records: list[dict] = []
        released: list[dict] = []
        now = format_time(from_seconds(self._clock.seconds()))
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

    def _keep_live(self, delivery: Delivery) -> bool:
        """Drop (and record) occurrences of jobs deleted or paused since they were due (of
        jobs deleted, for an operator's replay)."""
        is_live = delivery.live or self._is_live
        live = [o for o in delivery.occurrences if is_live(o.job_id)]
        if len(live) < len(delivery.occurrences):
            gone = [o for o in delivery.occurrences if not is_live(o.job_id)]
            reason = ("the job was deleted before delivery" if delivery.live is not None
                      else "the job was deleted or paused before delivery")
            self._abandon(gone, reason, finished=delivery.release(gone))
            delivery.occurrences = live
            delivery.items = None
        return bool(live)

    def _start(self, lane: HostLane, delivery: Delivery,
               probes: tuple[bool, bool] = (False, False)) -> None:
        lane.in_flight += 1
        lane.flying[delivery.endpoint] = lane.flying.get(delivery.endpoint, 0) + 1
        self._endpoint_status(delivery.endpoint)  # known (to the health API) from now on
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
            if self._abandoned:  # stopped meanwhile: the outbox row re-sends it later
                self._land(lane, delivery)
                self._landed()
                return
            if self.observe_first_attempts is not None:
                lateness = [started - o.scheduled for o in delivery.occurrences
                            if o.attempt == 1]
                if lateness:
                    self.observe_first_attempts(lateness)
            post = maybeDeferred(self._post, delivery)
            self._posts.add(post)
            post.addBoth(self._sent, post)
            post.addBoth(self._finished, lane, delivery, started, probes)

        def not_recorded(failure: Failure) -> None:
            self._not_recorded(failure, lane, delivery, probes)

        d.addCallbacks(recorded, not_recorded)
        d.addErrback(lambda f: log.failure("delivery to {endpoint} broke", f,
                                           endpoint=delivery.endpoint))

    def _sent(self, outcome: Any, post: Deferred) -> Any:
        self._posts.discard(post)
        return outcome

    # -- when the outbox cannot be written ------------------------------------------------

    def _not_recorded(self, failure: Failure, lane: HostLane, delivery: Delivery,
                      probes: tuple[bool, bool]) -> None:
        """The outbox row was not written, so the POST is not sent: the delivery goes back
        to the head of its queue and nothing starts until a write is tried again, after a
        backoff that grows while the writes keep failing."""
        self._land(lane, delivery)
        if self._abandoned:  # the node stopped meanwhile: writes are expected to fail
            self._landed()
            return
        self.unrecorded += 1
        for probe, key in zip(probes, (delivery.target, delivery.endpoint)):
            breaker = self.breakers.find(key)
            if probe and breaker is not None:
                breaker.probe_not_sent()
        self._enqueue(delivery, first=True)
        now = self._clock.seconds()
        if self._record_retry is None and not self._stopping:
            delay = min(self.settings.record_retry_delay * 2.0 ** min(self._record_backoffs, 30),
                        self.settings.record_retry_cap)
            self._record_backoffs += 1
            self._record_retry = self._clock.callLater(delay, self._retry_recording)
        retry_in = self._record_retry.getTime() - now if self._record_retry is not None else 0.0
        error = describe_failure(failure)[:300]
        status = self._endpoint_status(delivery.endpoint)
        status.last_error_at = now
        status.last_error = (f"not sent: its dispatch could not be recorded ({error}); "
                             f"next try in {retry_in:.3g} s")
        status.last_error_category = TRANSIENT
        streak = self._record_streak
        if streak.failed():
            log.error("a callback to {endpoint} was not sent: its dispatch could not be "
                      "recorded ({error}); no callback goes out unrecorded: deliveries are held "
                      "and tried again in {retry_in:.3g} s ({failures} not sent in {seconds:.0f} "
                      "s, {unlogged} not logged since the last report)",
                      endpoint=delivery.endpoint, error=error,
                      retry_in=retry_in, failures=streak.failures,
                      seconds=now - (streak.since or now), unlogged=streak.unlogged)
        if self._stopping:
            self._hold(lane)
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

    def _land(self, lane: HostLane, delivery: Delivery) -> None:
        """A delivery is no longer in flight (its outcome is known, or it never went)."""
        lane.in_flight -= 1
        left = lane.flying.pop(delivery.endpoint, 1) - 1
        if left:
            lane.flying[delivery.endpoint] = left
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
        # One deadline on our clock for the whole exchange (connect, answer and body, and
        # the re-send of a stale connection's request), not treq's timeout=, which covers
        # only the answer, runs on the global reactor and reports expiry as
        # ResponseNeverReceived.
        # unbuffered: treq would otherwise keep the whole body in memory, whatever reads it.
        # No redirects: only a 2xx is a success, and a redirect that the agent follows (or
        # refuses) leaves its own body unread and its connection open for as long as the
        # receiver keeps it open.
        def send(post: Callable[..., Deferred]) -> Deferred:
            return post(delivery.url, data=body, headers=headers, unbuffered=True,
                        allow_redirects=False)

        def stale(failure: Failure) -> Any:
            # the receiver closed the pooled connection before answering: nothing was
            # answered, so this is no failure; the same request goes again, at once, on a
            # new connection (same execution ids: a receiver that did process it can tell)
            if not died_unanswered(failure):
                return failure
            self.stale_retries += 1
            return send(getattr(self._http, "post_fresh", self._http.post))

        def read(response: Any) -> Any:
            sink = _BoundedBody(self.settings.answer_prefix_bytes)
            response.deliverBody(sink)
            location = _location(response) if 300 <= response.code < 400 else None
            return sink.finished.addCallback(
                lambda kept: Answer(response.code, *kept, location=location))

        d = send(self._http.post)
        d.addErrback(stale)
        d.addCallback(read)
        d.addTimeout(self.settings.timeout, self._clock, onTimeoutCancel=_deadline_passed)
        return d

    # -- outcomes -----------------------------------------------------------------------

    def _finished(self, outcome: Any, lane: HostLane, delivery: Delivery,
                  started: float, probes: tuple[bool, bool] = (False, False)) -> None:
        self._land(lane, delivery)
        if self._abandoned:
            # cancelled at the end of the drain: no outcome, no breaker change; the outbox
            # row still lists it, so a restart sends it again
            self._landed()
            return
        now = self._clock.seconds()
        duration = round((now - started) * 1000, 1)
        host_probe, endpoint_probe = probes
        status = self._endpoint_status(delivery.endpoint)
        if isinstance(outcome, Answer) and 200 <= outcome.code < 300:
            self._count(delivery.target, host_probe, success=True)
            self._count(delivery.endpoint, endpoint_probe, success=True)
            status.last_success = now
            status.consecutive_failures = 0
            status.first_failure_at = None
            self._succeeded(delivery, outcome.code, duration, started, now)
        else:
            code, message, category, scope = self._describe(outcome, delivery.target)
            if scope == HOST:
                # the host could not be reached: its breaker counts it, and whatever this
                # endpoint's breaker was waiting for (a probe) is still to be learnt
                self._count(delivery.target, host_probe, success=False)
                breaker = self.breakers.find(delivery.endpoint)
                if endpoint_probe and breaker is not None:
                    breaker.probe_not_sent()
            else:
                self._count(delivery.endpoint, endpoint_probe, success=False)
                if code is not None:  # the host answered: it is reachable
                    self._count(delivery.target, host_probe, success=True)
                elif host_probe:
                    host = self.breakers.find(delivery.target)
                    if host is not None:
                        host.probe_not_sent()
            status.last_error_at, status.last_error = now, message
            status.last_error_category = category
            if status.consecutive_failures == 0:
                status.first_failure_at = now
            status.consecutive_failures += 1
            self._failed(delivery, code, message, category, duration, started, now)
        self._pump(delivery.target)
        if self.in_flight < self.settings.max_in_flight:
            self._pump_all()
        self._sweep(now)
        self._landed()

    def _count(self, key: str, probe: bool, success: bool) -> None:
        """An outcome for C{key}'s breaker (created on its first failure). A half-open
        breaker is decided by its probe alone: a request started before the breaker
        opened may finish now and must neither close nor reopen it."""
        breaker = self.breakers.find(key) if success else self.breakers.get(key)
        if breaker is None or not (probe or breaker.state is not BreakerState.HALF_OPEN):
            return
        if success:
            breaker.record_success()
        else:
            breaker.record_failure()

    def _sweep(self, now: float) -> None:
        """Forget endpoints quiet for C{forget_after} (at most every tenth of it)."""
        forget_after = self.settings.forget_after
        if now - self._swept_at < forget_after / 10:
            return
        self._swept_at = now
        for endpoint, status in list(self.endpoints.items()):
            if status.consecutive_failures or now - status.touched < forget_after:
                continue
            lane = self.targets.get(host_of(endpoint))
            if lane is not None and (endpoint in lane.queues or endpoint in lane.parked
                                     or endpoint in lane.flying):
                continue
            breaker = self.breakers.find(endpoint)
            if breaker is not None and not breaker.idle:
                continue
            del self.endpoints[endpoint]
            self.breakers.forget(endpoint)

    def _describe(self, outcome: Any, target: str) -> tuple[int | None, str, str, str]:
        """C{(HTTP status or None, message, category, scope)} of a failed delivery."""
        if isinstance(outcome, Answer):
            message = answer_message(outcome.code, outcome.excerpt(), outcome.location)
            return outcome.code, message, classify_status(outcome.code), ENDPOINT
        message, category, scope = describe(outcome, target, self.settings.timeout)
        if "unexpectedly" in message and isinstance(outcome, Failure):
            log.failure("a callback to {target} failed unexpectedly", outcome,
                        level=LogLevel.error, target=target)
        return None, message, category, scope

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
        delay = None
        if retry:
            delay = retry_delay(delivery.occurrences[0].attempt, self.settings.retry_delay,
                                self.settings.retry_cap, self._rng)
            retry_at = format_time(from_seconds(now + delay))
            for record in records:
                if record["state"] == "retrying":
                    record["next_retry_at"] = retry_at
            self._schedule_retry(Delivery(delivery.target, delivery.url, delivery.project_id,
                                          delivery.chunk_id, retry, live=delivery.live), delay)
        dead = len(records) - len(retry)
        self.counters["retrying"] += len(retry)
        self.counters["dead"] += dead
        self._log_failure(delivery, message, len(retry), delay, dead)
        ignore_failure(self._recorder.record(records, finished=[{"id": delivery.id}],
                                             keep_trying=True))

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

    def _schedule_retry(self, delivery: Delivery, delay: float) -> None:
        if self._stopping:
            # stopping: the 'retrying' record (with next_retry_at) is resumed after restart
            return

        def again() -> None:
            self._retries.pop(call, None)
            self._enqueue(delivery)
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
                self._enqueue(Delivery(chunk[0].target, url, project_id, chunk_id, chunk,
                                       items=items, replaces=replaces))
        if self._stopping:
            for lane in self.targets.values():
                self._hold(lane)
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

    def _abandon(self, occurrences: list[Occurrence], reason: str,
                 finished: list[dict] = ()) -> None:  # type: ignore[assignment]
        stamp = format_time(from_seconds(self._clock.seconds()))
        records = []
        for o in occurrences:
            record = self._record(o, "failed", stamp, attempts=o.attempt - 1)
            record["last_error"] = reason
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
