"""
Circuit breakers (PRODUCT §5, §7), per callback endpoint and per host.

A receiver that keeps failing gets no requests for a while instead of tying up connections
and retries that others need; then one probe finds out whether it is back. Isolation is
per endpoint (C{scheme://host:port/path?query}, see L{endpoint_of}): an endpoint that
answers 5xx or 4xx, or not in time, opens its own breaker and holds only its own
deliveries. A host that cannot be reached at all (refused, unknown name, connect timeout,
TLS) opens the host's breaker (keyed C{scheme://host:port}), which holds all its endpoints.

    closed    --(failure; consecutive failures reach threshold)-->  open
    open      --(backoff elapses: clock.callLater)-------------->  half_open
    half_open --(the one probe succeeds)------------------------>  closed
    half_open --(the one probe fails)--------------------------->  open, with the delay doubled
    any       --(reset)----------------------------------------->  closed

The machine is a small explicit class rather than Automat: C{allow()} returns a value and
C{on_change} listeners (the executor) call C{allow()} from inside a transition, which
Automat's typed machines refuse for inputs that return something.

Outcomes that arrive while no transition is defined for them are stale: requests started
while the breaker was closed may finish after it opened. A failure then only raises
C{failure_count}; a success changes nothing (the probe decides).

Breakers are created on the first failure (a healthy endpoint needs none), so a node with
tens of thousands of callback URLs keeps breakers only for those that fail.
"""

from __future__ import annotations

import enum
import random
from typing import Any, Callable, Iterator

from twisted.logger import Logger

from ..schedule.occurrence import host_of
from .backoff import retry_delay

log = Logger()


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


OnChange = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


class CircuitBreaker:
    """
    @ivar failure_count: consecutive failures (reset by a success while closed, a successful
        probe, or L{reset}).
    @ivar since: clock time the current state began (creation time until the first change).
    @ivar last_transition: clock time of the last transition, None if there was none.
    @ivar retry_at: while open, the clock time it goes half_open; otherwise None.
    """

    def __init__(self, target: str, clock: Any, rng: random.Random, threshold: int = 5,
                 base_delay: float = 5.0, max_delay: float = 300.0,
                 on_change: OnChange | None = None) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, not {threshold}")
        self.target = target
        self._clock = clock
        self._rng = rng
        self._threshold = threshold
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._on_change = on_change
        self.state = BreakerState.CLOSED
        self.failure_count = 0
        self.since: float = clock.seconds()
        self.last_transition: float | None = None
        self.retry_at: float | None = None
        self._openings = 0          # consecutive openings without a success: sets the delay
        self._probing = False       # half_open: the probe has been let through
        self._timer: Any = None     # open: the DelayedCall that moves to half_open

    @property
    def host(self) -> str:
        """The target (C{scheme://host:port}) this breaker's endpoint or host belongs to."""
        return host_of(self.target)

    @property
    def scope(self) -> str:
        """C{"host"} for a host's breaker, C{"endpoint"} for an endpoint's."""
        return "host" if self.target == self.host else "endpoint"

    # -- inputs -------------------------------------------------------------------------

    def ready(self) -> bool:
        """Would L{allow} let a request through now? (Without taking the probe.)"""
        return self.state is BreakerState.CLOSED or (
            self.state is BreakerState.HALF_OPEN and not self._probing)

    def allow(self) -> bool:
        """May a request start now? In half_open, True exactly once (the probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        if self.state is BreakerState.CLOSED:
            self.failure_count = 0
        elif self.state is BreakerState.HALF_OPEN and self._probing:
            self._close()

    def record_failure(self) -> None:
        self.failure_count += 1
        if self.state is BreakerState.CLOSED:
            if self.failure_count >= self._threshold:
                self._open()
        elif self.state is BreakerState.HALF_OPEN and self._probing:
            self._open()

    def probe_not_sent(self) -> None:
        """The request L{allow} let through as the probe did not go out (the executor
        could not record its dispatch): the next request allowed is the probe."""
        if self.state is BreakerState.HALF_OPEN:
            self._probing = False

    def reset(self) -> None:
        """Operator override: closed now, counters cleared, no pending half-open timer."""
        self._close()

    # -- reporting ----------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The C{breaker} object of the health API (PRODUCT §7)."""
        return {"state": self.state.value, "since": self.since,
                "lastTransition": self.last_transition, "retryAt": self.retry_at,
                "failureCount": self.failure_count}

    @property
    def idle(self) -> bool:
        """Closed with no failure counted: it says nothing a fresh breaker would not."""
        return self.state is BreakerState.CLOSED and self.failure_count == 0

    # -- transitions --------------------------------------------------------------------

    def _open(self) -> None:
        self._openings += 1
        delay = retry_delay(self._openings, self._base_delay, self._max_delay, self._rng)
        self._cancel_timer()
        self._timer = self._clock.callLater(delay, self._half_open)
        self._move(BreakerState.OPEN, retry_at=self._clock.seconds() + delay)
        log.warn("circuit for {target} open after {failures} consecutive failures; "
                 "probing again in {delay:.1f} s", target=self.target,
                 failures=self.failure_count, delay=delay)

    def _half_open(self) -> None:
        self._timer = None
        self._move(BreakerState.HALF_OPEN, retry_at=None)

    def _close(self) -> None:
        self._cancel_timer()
        self.failure_count = 0
        self._openings = 0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, retry_at=None)
            log.info("circuit for {target} closed", target=self.target)

    def _move(self, new: BreakerState, retry_at: float | None) -> None:
        # Every field is consistent before listeners run: they may call allow() at once.
        old = self.state
        now = self._clock.seconds()
        self.state = new
        self.since = self.last_transition = now
        self.retry_at = retry_at
        self._probing = False
        if self._on_change is not None:
            try:
                self._on_change(self, old, new)
            except Exception:
                log.failure("breaker listener failed on {target} {old} -> {new}",
                            target=self.target, old=old.value, new=new.value)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class Breakers:
    """
    The breakers of every endpoint and host that has one, by key (an endpoint URL or a
    C{scheme://host:port}); L{get} creates one on first use, L{find} does not.
    """

    def __init__(self, clock: Any, rng: random.Random, threshold: int = 5,
                 base_delay: float = 5.0, max_delay: float = 300.0,
                 on_change: OnChange | None = None) -> None:
        self._clock = clock
        self._rng = rng
        self._threshold = threshold
        self._base_delay = base_delay
        self._max_delay = max_delay
        self.on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            breaker = self._breakers[target] = CircuitBreaker(
                target, self._clock, self._rng, self._threshold, self._base_delay,
                self._max_delay, on_change=self._changed)
        return breaker

    def find(self, key: str) -> CircuitBreaker | None:
        """The breaker of C{key} if it has one (none means closed, nothing counted)."""
        return self._breakers.get(key)

    def of_host(self, target: str) -> list[CircuitBreaker]:
        """The breakers of C{target}'s endpoints (not the host's own)."""
        return [b for key, b in self._breakers.items()
                if key != target and host_of(key) == target]

    def forget(self, key: str) -> None:
        """Drop an idle breaker (its endpoint has been quiet for long)."""
        breaker = self._breakers.get(key)
        if breaker is not None and breaker.idle:  # closed: no timer is pending
            del self._breakers[key]

    def _changed(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        # Looked up per call so a listener set after construction (the executor, which
        # needs the registry first) still hears every transition.
        if self.on_change is not None:
            self.on_change(breaker, old, new)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def reset(self, target: str) -> bool:
        """Close C{target}'s breaker; False if no breaker exists for it."""
        breaker = self._breakers.get(target)
        if breaker is None:
            return False
        breaker.reset()
        return True
