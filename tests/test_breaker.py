"""Tests for scheduler0.execution.breaker: every transition, driven by a fake clock."""

from __future__ import annotations

import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.breaker import Breakers, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
TARGET = "http://receiver:8080"


class Midpoint(random.Random):
    """Jitter factor exactly 1, so delays are the nominal ones."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


class BreakerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.changes: list[tuple[BreakerState, BreakerState, float]] = []

    def breaker(self, rng: random.Random | None = None, **kwargs: object) -> CircuitBreaker:
        def on_change(breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
            self.assertEqual(breaker.state, new)  # listeners see the new state already
            self.changes.append((old, new, self.clock.seconds()))

        return CircuitBreaker(TARGET, self.clock, rng or Midpoint(0), on_change=on_change,
                              **kwargs)  # type: ignore[arg-type]

    def trip(self, breaker: CircuitBreaker, failures: int = 5) -> None:
        for _ in range(failures):
            self.assertTrue(breaker.allow())
            breaker.record_failure()

    def to_half_open(self, breaker: CircuitBreaker) -> None:
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        self.assertIs(breaker.state, HALF_OPEN)


class ClosedTests(BreakerTestCase):
    def test_initial(self) -> None:
        breaker = self.breaker()
        self.assertIs(breaker.state, CLOSED)
        self.assertEqual(breaker.target, TARGET)
        self.assertEqual(breaker.snapshot(), {"state": "closed", "since": 1000.0,
                                              "lastTransition": None, "retryAt": None,
                                              "failureCount": 0})
        self.assertTrue(breaker.allow())
        self.assertTrue(breaker.allow())

    def test_opens_at_threshold(self) -> None:
        breaker = self.breaker()
        self.trip(breaker, 4)
        self.assertIs(breaker.state, CLOSED)
        self.assertEqual(breaker.failure_count, 4)
        self.assertEqual(self.changes, [])
        self.clock.advance(3)
        breaker.record_failure()
        self.assertIs(breaker.state, OPEN)
        self.assertFalse(breaker.allow())
        self.assertEqual(self.changes, [(CLOSED, OPEN, 1003.0)])
        self.assertEqual(breaker.snapshot(), {"state": "open", "since": 1003.0,
                                              "lastTransition": 1003.0, "retryAt": 1008.0,
                                              "failureCount": 5})
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1008.0])

    def test_custom_threshold(self) -> None:
        breaker = self.breaker(threshold=2)
        self.trip(breaker, 1)
        self.assertIs(breaker.state, CLOSED)
        breaker.record_failure()
        self.assertIs(breaker.state, OPEN)

    def test_success_resets_count(self) -> None:
        breaker = self.breaker()
        self.trip(breaker, 4)
        breaker.record_success()
        self.assertEqual(breaker.failure_count, 0)
        self.trip(breaker, 4)
        self.assertIs(breaker.state, CLOSED)
        breaker.record_failure()
        self.assertIs(breaker.state, OPEN)

    def test_threshold_must_be_positive(self) -> None:
        self.assertRaises(ValueError, self.breaker, threshold=0)


class OpenTests(BreakerTestCase):
    def test_half_open_after_delay(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.clock.advance(4.999)
        self.assertIs(breaker.state, OPEN)
        self.assertFalse(breaker.allow())
        self.clock.advance(0.001)
        self.assertIs(breaker.state, HALF_OPEN)
        self.assertEqual(self.changes, [(CLOSED, OPEN, 1000.0), (OPEN, HALF_OPEN, 1005.0)])
        self.assertEqual(breaker.snapshot(), {"state": "half_open", "since": 1005.0,
                                              "lastTransition": 1005.0, "retryAt": None,
                                              "failureCount": 5})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stale_outcomes_do_not_transition(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        breaker.record_failure()
        breaker.record_success()
        self.assertIs(breaker.state, OPEN)
        self.assertEqual(breaker.failure_count, 6)
        self.assertEqual(breaker.retry_at, 1005.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(len(self.changes), 1)

    def test_first_delay_jitter_bounds(self) -> None:
        delays = set()
        for seed in range(40):
            self.clock = Clock()
            breaker = self.breaker(random.Random(seed))
            self.trip(breaker)
            assert breaker.retry_at is not None
            delays.add(breaker.retry_at)
        self.assertTrue(all(4.0 <= d <= 6.0 for d in delays), delays)
        self.assertGreater(len(delays), 30)


class HalfOpenTests(BreakerTestCase):
    def test_exactly_one_probe(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.to_half_open(breaker)
        self.assertTrue(breaker.allow())
        self.assertFalse(breaker.allow())
        self.assertFalse(breaker.allow())
        self.assertIs(breaker.state, HALF_OPEN)

    def test_outcomes_before_the_probe_are_ignored(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.to_half_open(breaker)
        breaker.record_success()
        breaker.record_failure()
        self.assertIs(breaker.state, HALF_OPEN)
        self.assertTrue(breaker.allow())
        self.assertFalse(breaker.allow())

    def test_probe_success_closes(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.to_half_open(breaker)
        self.assertTrue(breaker.allow())
        self.clock.advance(2)
        breaker.record_success()
        self.assertIs(breaker.state, CLOSED)
        self.assertTrue(breaker.allow())
        self.assertTrue(breaker.allow())
        self.assertEqual(breaker.snapshot(), {"state": "closed", "since": 1007.0,
                                              "lastTransition": 1007.0, "retryAt": None,
                                              "failureCount": 0})
        self.assertEqual(self.changes, [(CLOSED, OPEN, 1000.0), (OPEN, HALF_OPEN, 1005.0),
                                        (HALF_OPEN, CLOSED, 1007.0)])
        # the count starts over: it takes a full threshold again, and the delay is the base
        self.trip(breaker, 4)
        self.assertIs(breaker.state, CLOSED)
        breaker.record_failure()
        self.assertEqual(breaker.retry_at, 1007.0 + 5.0)

    def test_probe_failure_reopens_with_doubled_delay(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.to_half_open(breaker)
        self.assertTrue(breaker.allow())
        breaker.record_failure()
        self.assertIs(breaker.state, OPEN)
        self.assertFalse(breaker.allow())
        self.assertEqual(breaker.retry_at, 1005.0 + 10.0)
        self.assertEqual(breaker.failure_count, 6)
        self.assertEqual(self.changes, [(CLOSED, OPEN, 1000.0), (OPEN, HALF_OPEN, 1005.0),
                                        (HALF_OPEN, OPEN, 1005.0)])
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [1015.0])

    def test_delays_double_up_to_cap(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        delays = []
        for _ in range(9):
            assert breaker.retry_at is not None
            delays.append(breaker.retry_at - self.clock.seconds())
            self.to_half_open(breaker)
            self.assertTrue(breaker.allow())
            breaker.record_failure()
        self.assertEqual(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300])

    def test_delay_jitter_bounds(self) -> None:
        breaker = self.breaker(random.Random(3))
        self.trip(breaker)
        nominal = [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]
        ratios = []
        for expected in nominal:
            assert breaker.retry_at is not None
            delay = breaker.retry_at - self.clock.seconds()
            self.assertTrue(0.8 * expected <= delay <= 1.2 * expected, (expected, delay))
            ratios.append(delay / expected)
            self.to_half_open(breaker)
            self.assertTrue(breaker.allow())
            breaker.record_failure()
        self.assertGreater(len(set(ratios)), 5)  # jittered, not constant

    def test_custom_delays(self) -> None:
        breaker = self.breaker(threshold=1, base_delay=1.0, max_delay=3.0)
        self.trip(breaker, 1)
        self.assertEqual(breaker.retry_at, 1001.0)
        self.to_half_open(breaker)
        breaker.allow()
        breaker.record_failure()
        self.assertEqual(breaker.retry_at, 1001.0 + 2.0)
        self.to_half_open(breaker)
        breaker.allow()
        breaker.record_failure()
        self.assertEqual(breaker.retry_at, 1003.0 + 3.0)

    def test_listener_may_take_the_probe(self) -> None:
        taken: list[bool] = []
        breaker = CircuitBreaker(TARGET, self.clock, Midpoint(0),
                                 on_change=lambda b, old, new: taken.append(b.allow()))
        self.trip(breaker)
        self.to_half_open(breaker)
        self.assertEqual(taken, [False, True])
        self.assertFalse(breaker.allow())
        breaker.record_success()
        self.assertIs(breaker.state, CLOSED)


class ResetTests(BreakerTestCase):
    def test_reset_open_cancels_timer(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(1)
        breaker.reset()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(breaker.snapshot(), {"state": "closed", "since": 1001.0,
                                              "lastTransition": 1001.0, "retryAt": None,
                                              "failureCount": 0})
        self.clock.advance(1000)
        self.assertIs(breaker.state, CLOSED)
        self.assertEqual(self.changes, [(CLOSED, OPEN, 1000.0), (OPEN, CLOSED, 1001.0)])
        # the delay starts over from the base too
        self.trip(breaker)
        self.assertEqual(breaker.retry_at, 2001.0 + 5.0)

    def test_reset_half_open(self) -> None:
        breaker = self.breaker()
        self.trip(breaker)
        self.to_half_open(breaker)
        self.assertTrue(breaker.allow())
        breaker.reset()
        self.assertIs(breaker.state, CLOSED)
        self.assertTrue(breaker.allow())
        self.assertTrue(breaker.allow())
        self.assertEqual(self.changes[-1], (HALF_OPEN, CLOSED, 1005.0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reset_closed_clears_count_without_transition(self) -> None:
        breaker = self.breaker()
        self.trip(breaker, 4)
        breaker.reset()
        self.assertEqual(breaker.failure_count, 0)
        self.assertEqual(self.changes, [])
        self.assertIsNone(breaker.last_transition)
        self.trip(breaker, 4)
        self.assertIs(breaker.state, CLOSED)


class ListenerErrorTests(BreakerTestCase):
    def test_failing_listener_does_not_break_the_breaker(self) -> None:
        def broken(b: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
            raise RuntimeError("listener bug")

        breaker = CircuitBreaker(TARGET, self.clock, Midpoint(0), on_change=broken)
        self.trip(breaker)
        self.assertIs(breaker.state, OPEN)
        self.clock.advance(5)
        self.assertIs(breaker.state, HALF_OPEN)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)


class BreakersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.changes: list[tuple[str, BreakerState, BreakerState]] = []
        self.breakers = Breakers(self.clock, Midpoint(0), threshold=2, base_delay=1.0,
                                 max_delay=4.0,
                                 on_change=lambda b, old, new: self.changes.append(
                                     (b.target, old, new)))

    def test_one_per_target(self) -> None:
        a = self.breakers.get("http://a:80")
        self.assertIs(self.breakers.get("http://a:80"), a)
        b = self.breakers.get("http://b:80")
        self.assertIsNot(a, b)
        self.assertEqual(sorted(x.target for x in self.breakers), ["http://a:80", "http://b:80"])
        self.assertEqual(len(self.breakers), 2)

    def test_settings_and_listener_apply(self) -> None:
        a = self.breakers.get("http://a:80")
        b = self.breakers.get("http://b:80")
        a.record_failure()
        a.record_failure()
        self.assertIs(a.state, OPEN)
        self.assertIs(b.state, CLOSED)
        self.assertEqual(a.retry_at, 1.0)
        self.assertEqual(self.changes, [("http://a:80", CLOSED, OPEN)])

    def test_listener_set_later(self) -> None:
        breakers = Breakers(self.clock, Midpoint(0), threshold=1)
        a = breakers.get("http://a:80")
        seen: list[BreakerState] = []
        breakers.on_change = lambda b, old, new: seen.append(new)
        a.record_failure()
        self.assertEqual(seen, [OPEN])

    def test_reset(self) -> None:
        self.assertFalse(self.breakers.reset("http://unknown:80"))
        a = self.breakers.get("http://a:80")
        a.record_failure()
        a.record_failure()
        self.assertTrue(self.breakers.reset("http://a:80"))
        self.assertIs(a.state, CLOSED)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.changes[-1], ("http://a:80", OPEN, CLOSED))

    def test_endpoints_and_hosts(self) -> None:
        """Endpoint breakers (a URL with a path) and host breakers (scheme://host:port)
        live side by side; a host's endpoints are found by its target."""
        host = self.breakers.get("http://a:80")
        hook = self.breakers.get("http://a:80/hook")
        other = self.breakers.get("http://a:80/other?x=1")
        self.breakers.get("http://b:80/hook")
        self.assertEqual((host.scope, hook.scope), ("host", "endpoint"))
        self.assertEqual((host.host, hook.host, other.host), ("http://a:80",) * 3)
        self.assertEqual(sorted(b.target for b in self.breakers.of_host("http://a:80")),
                         ["http://a:80/hook", "http://a:80/other?x=1"])
        self.assertIs(self.breakers.find("http://a:80/hook"), hook)
        self.assertIsNone(self.breakers.find("http://c:80/hook"))
        self.assertEqual(len(self.breakers), 4)  # find creates nothing

    def test_forget_drops_only_an_idle_breaker(self) -> None:
        hook = self.breakers.get("http://a:80/hook")
        hook.record_failure()
        self.breakers.forget("http://a:80/hook")        # a failure counted: kept
        self.assertIs(self.breakers.find("http://a:80/hook"), hook)
        hook.record_failure()                          # open (threshold 2)
        self.breakers.forget("http://a:80/hook")
        self.assertIs(self.breakers.find("http://a:80/hook"), hook)
        hook.reset()
        self.breakers.forget("http://a:80/hook")        # closed, nothing counted: gone
        self.assertIsNone(self.breakers.find("http://a:80/hook"))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReadyTests(BreakerTestCase):
    def test_ready_does_not_take_the_probe(self) -> None:
        breaker = self.breaker()
        self.assertTrue(breaker.ready())
        self.trip(breaker)
        self.assertFalse(breaker.ready())
        self.to_half_open(breaker)
        self.assertTrue(breaker.ready())
        self.assertTrue(breaker.ready())               # asking twice takes nothing
        self.assertTrue(breaker.allow())               # the probe
        self.assertFalse(breaker.ready())
        self.assertFalse(breaker.allow())
