"""
The callback executor: delivers due occurrences to their callback URLs.

Each dispatch round, occurrences are packed into deliveries (L{pack}: one POST per callback
URL and project, chunked by size), queued in their host's lane (L{Lanes}: per-endpoint
queues, slots, breakers), written to the outbox before they are sent (L{OutboxGate}),
sent (L{CallbackSender}) and what they ended with recorded, retried or dead-lettered
(L{Outcomes}). This module wires those together and owns the service's life: start, halt,
resume, and the drain on stop.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..domain import DeliveryFinished
from ..schedule.occurrence import Occurrence
from .breaker import Breakers, BreakerState
from .delivery import Delivery, pack
from .lanes import HostLane, Lanes, Probes, probe_not_sent
from .outbox import OutboxGate, outbox_entry
from .outcomes import EndpointStatus, Outcomes, RetryTimers
from .recorder import ExecutionRecorder, ignore_failure
from .sender import CallbackSender
from .settings import ExecutorSettings

__all__ = ["Executor", "ExecutorSettings"]

log = Logger()


class Executor(Service):
    """
    @param http: a treq C{HTTPClient} (see L{CallbackSender}).
    @param secrets_for: C{(project id) -> [signing secrets]}, current first.
    @param is_live: whether a job still exists and is not paused (retries of a deleted or
        paused job are abandoned).
    """

    def __init__(self, clock: Any, http: Any, recorder: ExecutionRecorder, breakers: Breakers,
                 secrets_for: Callable[[int], list[str]], is_live: Callable[[int], bool],
                 settings: ExecutorSettings | None = None,
                 rng: random.Random | None = None) -> None:
        self._clock = clock
        self._recorder = recorder
        self.breakers = breakers
        self._is_live = is_live
        self.settings = settings or ExecutorSettings()
        self._sender = CallbackSender(clock, http, secrets_for, self.settings)
        self._retries = RetryTimers(clock, self._retry_due)
        self._outcomes = Outcomes(clock, recorder, breakers, self._retries, self.settings,
                                  rng or random.Random())
        self._outbox = OutboxGate(clock, self.settings, reopen=self._pump_all)
        self._lanes = Lanes(breakers, self.settings, can_start=self._can_start,
                            hold=self._outcomes.held, keep_live=self._keep_live,
                            start=self._start)
        self.halted = False
        self._drained: list[Deferred] = []
        self.drain_timeout = 5.0
        self._stopping = False  # stopService was called: schedule no retries
        #: the drain timed out: deliveries still in flight were cancelled, and their
        #: outcome is not recorded (their outbox row re-sends them after a restart)
        self._abandoned = False
        #: the node stopped leading its cluster: the next stop forgets what waits
        self._standing_down = False
        self._posts: set[Deferred] = set()  # the POSTs in flight
        #: sees the lateness (seconds) of the first attempts in each POST as it starts
        self.observe_first_attempts: Callable[[list[float]], None] | None = None

    # -- what the node, the health API and the metrics read -----------------------------

    @property
    def targets(self) -> dict[str, HostLane]:
        """Per host: its deliveries waiting and in flight."""
        return self._lanes.targets

    @property
    def endpoints(self) -> dict[str, EndpointStatus]:
        """Per endpoint: what its deliveries ended with (the health API's poll status)."""
        return self._outcomes.endpoints

    @property
    def counters(self) -> dict[str, int]:
        return self._outcomes.counters

    @property
    def in_flight(self) -> int:
        return self._lanes.in_flight

    @property
    def in_flight_ids(self) -> Any:
        """Execution ids being delivered now (from their outbox entry to their outcome):
        a 'dispatched' execution among them is not hanging."""
        return self._lanes.in_flight_ids

    @property
    def stale_retries(self) -> int:
        """Requests sent again at once because their pooled connection had been closed."""
        return self._sender.stale_retries

    @property
    def unrecorded(self) -> int:
        """POSTs not sent because their outbox row could not be written."""
        return self._outbox.unrecorded

    def queued(self) -> int:
        return self._lanes.queued()

    def retry_waiting(self) -> int:
        """Occurrences waiting out a retry's backoff (queued again when it ends)."""
        return self._retries.waiting()

    # -- lifecycle ----------------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False
        self._standing_down = False
        self._retries.start()
        self._abandoned = False

    def stopService(self) -> Deferred:
        """Start nothing new; wait (at most C{drain_timeout}) for deliveries in flight, so
        their outcomes are recorded. Those still unanswered then are cancelled without a
        record: their outbox row sends them again (same execution ids) after a restart."""
        Service.stopService(self)
        self.halted = True
        self._stopping = True
        self._retries.stop()
        self._outbox.stop()
        if self._standing_down:
            dropped = self._lanes.drop_waiting()
            if dropped:
                log.info("standing down (this node's share of the jobs changed): {count} "
                         "waiting occurrences are left to their owners, who plan them from "
                         "the store", count=dropped)
            waits = []
        else:
            # occurrences still queued (behind a host's limit, or halted) get a record, so
            # the recovery after a restart delivers them instead of losing them
            waits = self._lanes.hold_all()
        if self.in_flight:
            drained: Deferred = Deferred()
            self._drained.append(drained)
            give_up = self._clock.callLater(self.drain_timeout, self._abandon_in_flight)
            drained.addBoth(lambda result: give_up.cancel() if give_up.active() else None)
            waits.append(drained)
        if not waits:
            return succeed(None)
        return gatherResults(waits, consumeErrors=True).addBoth(lambda _: None)

    def _set_aside(self, lane: HostLane) -> None:
        """While stopping, what waits in C{lane}: held (recorded for the restart), or, when
        standing down as leader, forgotten (the new leader has it: L{stand_down})."""
        if self._standing_down:
            lane.drop_waiting()
        else:
            self._lanes.hold(lane)

    def stand_down(self) -> None:
        """
        This node stopped leading its cluster: its next stop forgets what waits (queued,
        parked behind a breaker) instead of recording it as held. The new leader plans
        those slots from the replicated store (its misfire rules) and re-sends the outbox
        with the same execution ids; a 'scheduled' record written now could land after the
        new leader recorded the slot's outcome, and undo it. Callbacks in flight may finish:
        their outcome is the truth.
        """
        self._standing_down = True

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

    def _landed(self) -> None:
        """Tell L{stopService} once nothing is in flight."""
        if self.in_flight == 0 and self._drained:
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
        """A breaker lets requests through again: what it held may go."""
        if new in (BreakerState.HALF_OPEN, BreakerState.CLOSED):
            self._lanes.reopened(breaker)

    # -- accepting work -----------------------------------------------------------------

    def submit(self, occurrences: Iterable[Occurrence],
               live: Callable[[int], bool] | None = None) -> None:
        """One dispatch round: pack and queue; start what may start. C{live} replaces
        C{is_live} for these occurrences (and their retries): an operator's replay of a
        paused job's dead letter is sent all the same."""
        deliveries, overflow = self._pack(
            occurrences, room=self.settings.max_queue - self.queued(), live=live)
        for refused in overflow:
            self._outcomes.refuse(refused, "the dispatch queue is full (MaxQueue)")
        for delivery in deliveries:
            self._lanes.enqueue(delivery)
        for target in {delivery.target for delivery in deliveries}:
            if self._stopping:  # nothing starts now: keep them for a restart
                self._set_aside(self._lanes.lane(target))
            else:
                self._lanes.pump(target)

    def redeliver(self, occurrences: list[Occurrence], replaces: str,
                  dropped: list[str] = ()) -> None:  # type: ignore[assignment]
        """Deliver again what outbox row C{replaces} listed when the node stopped; each
        occurrence leaves that row when its new delivery starts, is held or is dropped.
        C{dropped}: execution ids of that row not to deliver (their job is gone)."""
        if dropped:
            ignore_failure(self._recorder.record(
                [], finished=[DeliveryFinished(replaces, dropped)], keep_trying=True))
        for delivery in self._pack(occurrences, replaces=replaces)[0]:
            self._lanes.enqueue(delivery)
        if self._stopping:
            for lane in list(self._lanes.targets.values()):
                self._set_aside(lane)
        else:
            self._pump_all()

    def retry_later(self, occurrences: list[Occurrence], delay: float) -> None:
        """Queue occurrences after C{delay} (a restart resuming a pending retry)."""
        for delivery in self._pack(occurrences)[0]:
            self._retries.schedule(delivery, delay)

    def _pack(self, occurrences: Iterable[Occurrence], room: int | None = None,
              **fields: Any) -> tuple[list[Delivery], list[list[Occurrence]]]:
        # a retry re-sends the same chunk: leave room for the widest attempt number
        return pack(occurrences, self.settings.max_payload_bytes, self.settings.retry_max + 1,
                    room=room, **fields)

    def _retry_due(self, delivery: Delivery) -> None:
        self._lanes.enqueue(delivery)
        self._lanes.pump(delivery.target)

    # -- starting deliveries ------------------------------------------------------------

    def _can_start(self) -> bool:
        """Whether any delivery may start (the lanes decide which)."""
        return not self.halted and not self._outbox.closed

    def _pump_all(self) -> None:
        self._lanes.pump_all()

    def _keep_live(self, delivery: Delivery) -> bool:
        """Drop (and record) occurrences of jobs deleted or paused since they were due (of
        jobs deleted, for an operator's replay)."""
        is_live = delivery.live or self._is_live
        live = [o for o in delivery.occurrences if is_live(o.job_id)]
        if len(live) < len(delivery.occurrences):
            gone = [o for o in delivery.occurrences if not is_live(o.job_id)]
            reason = ("the job was deleted before delivery" if delivery.live is not None
                      else "the job was deleted or paused before delivery")
            self._outcomes.abandon(gone, reason, finished=delivery.release(gone))
            delivery.occurrences = live
            delivery.items = None
        return bool(live)

    def _start(self, lane: HostLane, delivery: Delivery, probes: Probes) -> None:
        """Write C{delivery}'s outbox row, then send it."""
        self._lanes.launch(lane, delivery)
        self._outcomes.status(delivery.endpoint)  # known (to the health API) from now on
        started = self._clock.seconds()
        entry = outbox_entry(delivery, self.settings.node_id, started)
        d = self._recorder.record([], started=[entry],
                                  finished=delivery.release(delivery.occurrences))

        def recorded(_: Any) -> None:
            self._outbox.works()
            if self._abandoned:  # stopped meanwhile: the outbox row re-sends it later
                self._lanes.land(lane, delivery)
                self._landed()
                return
            if self.observe_first_attempts is not None:
                lateness = [started - o.scheduled for o in delivery.occurrences
                            if o.attempt == 1]
                if lateness:
                    self.observe_first_attempts(lateness)
            post = maybeDeferred(self._sender.post, delivery)
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

    def _not_recorded(self, failure: Failure, lane: HostLane, delivery: Delivery,
                      probes: Probes) -> None:
        """The outbox row was not written, so the POST is not sent: the delivery goes back
        to the head of its queue and nothing starts until the gate reopens."""
        self._lanes.land(lane, delivery)
        if self._abandoned:  # the node stopped meanwhile: writes are expected to fail
            self._landed()
            return
        for probe, key in zip(probes, (delivery.target, delivery.endpoint)):
            probe_not_sent(self.breakers, key, probe)
        self._lanes.enqueue(delivery, first=True)
        error, retry_in = self._outbox.failed(failure, delivery.endpoint, self._stopping)
        self._outcomes.not_sent(delivery.endpoint, error, retry_in)
        if self._stopping:
            self._set_aside(lane)
        self._landed()

    # -- outcomes -----------------------------------------------------------------------

    def _finished(self, outcome: Any, lane: HostLane, delivery: Delivery,
                  started: float, probes: Probes) -> None:
        self._lanes.land(lane, delivery)
        if self._abandoned:
            # cancelled at the end of the drain: no outcome, no breaker change; the outbox
            # row still lists it, so a restart sends it again
            self._landed()
            return
        self._outcomes.finished(outcome, delivery, started, probes)
        self._lanes.pump(delivery.target)
        if self.in_flight < self.settings.max_in_flight:
            self._pump_all()
        self._outcomes.sweep(self._clock.seconds(), busy=self._lanes.knows)
        self._landed()
