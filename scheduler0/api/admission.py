"""
Admission of API requests to the reactor, a bounded slice per reactor turn.

The reactor serves every readable connection in one turn before it runs its timers. With
hundreds of clients each sending a read that costs a few milliseconds (an executions page,
the health snapshot), one turn took seconds, and the scheduler's timer, the writer's results
and the callbacks waiting on them all waited behind it: deliveries ran seconds late
(issue 8). Here each turn renders requests for at most C{budget} seconds; the rest wait, in
arrival order, for the following turns, so timers run between slices. The API slows down
under saturation; the scheduler does not.

Probes (C{/api/v1/healthcheck}, C{/metrics}) are cheap and must answer a load balancer or
Prometheus at once: they are never queued.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

log = Logger()

#: Seconds of request rendering per reactor turn.
TURN_BUDGET = 0.02
#: Paths answered at once, whatever the load.
PROBES = frozenset({b"/api/v1/healthcheck", b"/metrics"})


class AdmissionResource(Resource):
    """
    Wraps the API's resource: renders a request at once while this turn's budget lasts,
    else queues it for a later turn.

    @param clock: C{IReactorTime}; a C{callLater(0)} marks the start of the next turn.
    @param timer: measures rendering time (C{time.perf_counter}; tests swap it).
    """

    isLeaf = True

    def __init__(self, wrapped: IResource, clock: Any, budget: float = TURN_BUDGET,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._clock = clock
        self._budget = budget
        self._timer = timer
        self._spent = 0.0
        self._next_turn: Any = None
        self._waiting: deque[Any] = deque()
        self._gone: set[Any] = set()  # waiting requests whose client left
        #: requests rendered after waiting for a later turn (for tests and curiosity)
        self.deferred_count = 0

    def render(self, request: Any) -> Any:
        if request.path in PROBES:
            return self._wrapped.render(request)
        self._start_turn()
        if not self._waiting and self._spent < self._budget:
            return self._timed(request)
        self._waiting.append(request)
        # a client that leaves while waiting (its connection lost) is skipped
        request.notifyFinish().addErrback(lambda _: self._gone.add(request))
        return NOT_DONE_YET

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _start_turn(self) -> None:
        """The first render of a turn schedules the marker of the next one."""
        if self._next_turn is None or not self._next_turn.active():
            self._next_turn = self._clock.callLater(0, self._turn)

    def _turn(self) -> None:
        self._next_turn = None
        self._spent = 0.0
        while self._waiting and self._spent < self._budget:
            request = self._waiting.popleft()
            if request in self._gone:
                self._gone.discard(request)
                continue
            self.deferred_count += 1
            body = self._timed(request)
            if body is not NOT_DONE_YET:
                request.write(body)
                request.finish()
        if self._waiting:
            self._start_turn()

    def _timed(self, request: Any) -> Any:
        started = self._timer()
        try:
            return self._wrapped.render(request)
        finally:
            self._spent += self._timer() - started
