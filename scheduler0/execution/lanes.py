"""
Which queued delivery may start now (PRODUCT §5, isolation).

Deliveries queue per endpoint (L{endpoint_of}: the callback URL without user info) inside
a lane per host (C{scheme://host:port}). A host has at most C{per_target} requests in
flight (it bounds sockets), shared round-robin between its endpoints, and while other
endpoints of the host wait, one endpoint gets at most half of them, so a slow endpoint
cannot take all of its host's slots. An endpoint whose breaker is open has its deliveries
parked (held: recorded as 'scheduled') until the breaker lets a probe through; a host
whose breaker is open (it could not be reached) holds them all.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import attrs
from twisted.internet.defer import Deferred

from ..schedule.occurrence import host_of
from .breaker import Breakers, BreakerState, CircuitBreaker
from .delivery import Delivery
from .settings import ExecutorSettings

#: whether a started delivery is the half-open probe of (its host's breaker, its
#: endpoint's breaker)
Probes = tuple[bool, bool]


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

    def park(self, endpoint: str) -> list[Delivery]:
        """Move C{endpoint}'s queue to the parked ones; returns what it moved."""
        deliveries = self.queues.pop(endpoint)
        self.parked.setdefault(endpoint, []).extend(deliveries)
        return deliveries

    def unpark(self, endpoint: str) -> None:
        """C{endpoint}'s parked deliveries queue again, ahead of any queued since."""
        parked = self.parked.pop(endpoint, None)
        if parked:
            parked.extend(self.queues.pop(endpoint, ()))
            self.queues[endpoint] = parked

    def pass_turn(self, endpoint: str) -> None:
        """C{endpoint} goes to the back of the round-robin order."""
        self.queues[endpoint] = self.queues.pop(endpoint)

    def next(self, endpoint: str) -> Delivery:
        """Take C{endpoint}'s next delivery; then it is the next endpoint's turn."""
        deliveries = self.queues[endpoint]
        delivery = deliveries.pop(0)
        if deliveries:
            self.pass_turn(endpoint)
        else:
            del self.queues[endpoint]
        return delivery

    def drop_waiting(self) -> int:
        """Forget every delivery waiting here (queued or parked), recording nothing; the
        occurrences they carried."""
        dropped = self.queued()
        self.queues.clear()
        self.parked.clear()
        return dropped

    def knows(self, endpoint: str) -> bool:
        """Whether C{endpoint} has deliveries here (waiting or in flight)."""
        return endpoint in self.queues or endpoint in self.parked or endpoint in self.flying


def take(breaker: CircuitBreaker | None) -> bool:
    """Let a request through C{breaker}; True if it is the half-open breaker's probe."""
    if breaker is None:
        return False
    probe = breaker.state is BreakerState.HALF_OPEN
    breaker.allow()
    return probe


def probe_not_sent(breakers: Breakers, key: str, probe: bool) -> None:
    """A half-open breaker's probe never reached its receiver: it lets another through."""
    breaker = breakers.find(key)
    if probe and breaker is not None:
        breaker.probe_not_sent()


class Lanes:
    """
    The host lanes and their slots: queues deliveries, starts what may start now, counts
    what is in flight.

    @param can_start: whether anything may start at all (not halted, the outbox is writable).
    @param hold: records waiting deliveries as 'scheduled' (an open breaker holds them).
    @param keep_live: drops a delivery's occurrences whose job is gone; False if none is
        left to send.
    @param start: sends a delivery (after L{launch}ing it) with its L{Probes}.
    """

    def __init__(self, breakers: Breakers, settings: ExecutorSettings,
                 can_start: Callable[[], bool],
                 hold: Callable[[Iterable[Delivery]], Deferred | None],
                 keep_live: Callable[[Delivery], bool],
                 start: Callable[[HostLane, Delivery, Probes], None]) -> None:
        self._breakers = breakers
        self._settings = settings
        self._can_start = can_start
        self._hold = hold
        self._keep_live = keep_live
        self._start = start
        #: per host: its deliveries waiting and in flight
        self.targets: dict[str, HostLane] = {}
        self.in_flight = 0
        self._in_flight_ids: dict[str, int] = {}  # execution id -> deliveries in flight

    # -- waiting ------------------------------------------------------------------------

    def queued(self) -> int:
        return sum(lane.queued() for lane in self.targets.values())

    @property
    def in_flight_ids(self) -> Any:
        """Execution ids being delivered now (from their outbox entry to their outcome)."""
        return self._in_flight_ids.keys()

    def lane(self, target: str) -> HostLane:
        lane = self.targets.get(target)
        if lane is None:
            lane = self.targets[target] = HostLane()
        return lane

    def enqueue(self, delivery: Delivery, first: bool = False) -> None:
        lane = self.lane(delivery.target)
        lane.add(delivery, first)
        if delivery.endpoint in lane.parked and not delivery.held:
            self._hold([delivery])  # its breaker is open: held at once

    def hold(self, lane: HostLane) -> Deferred | None:
        """Persist a lane's waiting occurrences as 'scheduled' so a restart does not lose
        them."""
        return self._hold(list(lane.waiting()))

    def hold_all(self) -> list[Deferred]:
        """L{hold} every lane; the writes under way."""
        held = [self.hold(lane) for lane in self.targets.values()]
        return [d for d in held if d is not None]

    def drop_waiting(self) -> int:
        """Forget every delivery waiting (queued or parked), recording nothing; the
        occurrences they carried."""
        return sum(lane.drop_waiting() for lane in self.targets.values())

    def knows(self, endpoint: str) -> bool:
        """Whether C{endpoint} has deliveries waiting or in flight."""
        lane = self.targets.get(host_of(endpoint))
        return lane is not None and lane.knows(endpoint)

    # -- starting -----------------------------------------------------------------------

    def reopened(self, breaker: CircuitBreaker) -> None:
        """C{breaker} lets requests through again: an endpoint's parked deliveries queue
        again, and its host's lane is pumped (which sends a half-open breaker's probe)."""
        host = host_of(breaker.target)
        lane = self.targets.get(host)
        if lane is None:
            return
        if breaker.target != host:
            lane.unpark(breaker.target)
        self.pump(host)

    def pump_all(self) -> None:
        for target in list(self.targets):
            self.pump(target)

    def _may_start(self, lane: HostLane) -> bool:
        return (self._can_start() and lane.in_flight < self._settings.per_target
                and self.in_flight < self._settings.max_in_flight)

    def pump(self, target: str) -> None:
        """Start what the host's lane may start: endpoints take turns; an endpoint whose
        breaker is open is parked (held); a half-open breaker lets its one probe go."""
        lane = self.targets.get(target)
        if lane is None:
            return
        share = max(1, (self._settings.per_target + 1) // 2)
        passed = 0  # endpoints passed over in a row for having their share in flight
        while lane.queues and self._may_start(lane):
            host = self._breakers.find(target)
            if host is not None and not host.ready():
                self.hold(lane)
                return
            endpoint = next(iter(lane.queues))
            breaker = self._breakers.find(endpoint)
            if breaker is not None and not breaker.ready():
                self._hold(lane.park(endpoint))
                continue
            if lane.flying.get(endpoint, 0) >= share and passed < len(lane.queues) - 1:
                lane.pass_turn(endpoint)  # its turn comes later
                passed += 1
                continue
            passed = 0
            delivery = lane.next(endpoint)
            if not self._keep_live(delivery):
                continue
            # liveness is settled first: a half-open breaker's single probe must be sent
            probes = (take(host), take(breaker))
            self._start(lane, delivery, probes)
            if host is not None and host.state is BreakerState.HALF_OPEN:
                self.hold(lane)  # only the host's probe goes; the rest wait for it
                return

    # -- in flight ----------------------------------------------------------------------

    def launch(self, lane: HostLane, delivery: Delivery) -> None:
        """C{delivery} takes its slots: its host's, its endpoint's share, the node's."""
        lane.in_flight += 1
        lane.flying[delivery.endpoint] = lane.flying.get(delivery.endpoint, 0) + 1
        self.in_flight += 1
        flying = self._in_flight_ids
        for o in delivery.occurrences:
            flying[o.execution_id] = flying.get(o.execution_id, 0) + 1

    def land(self, lane: HostLane, delivery: Delivery) -> None:
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
