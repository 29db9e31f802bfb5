"""
The callback executor (PRODUCT §7 breakers): targets are isolated from each other, by a
per-target concurrency limit and by breakers that hold a target's deliveries, let one
probe through and deliver what they held. A C{task.Clock} and a fake HTTP client.
"""

from __future__ import annotations

from scheduler0.execution.breaker import BreakerState
from scheduler0.execution.executor import Executor
from scheduler0.schedule.occurrence import Occurrence

from .executor_fixtures import DeliveryCase


class TargetIsolationTests(DeliveryCase):
    """Targets are isolated: per-target concurrency, and a breaker that holds one target's
    deliveries."""

    def test_per_target_concurrency(self) -> None:
        executor = self.executor(per_target=2)
        slow = self.jobs("http://slow.test", range(1, 6))
        fast = self.jobs("http://fast.test", range(11, 14))
        executor.submit(slow + fast)
        self.assertEqual(len(self.http.to("http://slow.test")), 2)
        self.assertEqual(len(self.http.to("http://fast.test")), 2)
        self.assertEqual(executor.targets["http://slow.test:80"].in_flight, 2)
        self.assertEqual(executor.targets["http://slow.test:80"].queued(), 3)
        for _ in range(3):  # the fast target proceeds while the slow one holds two
            self.http.pending("http://fast.test")[0].answer(200)
        self.assertEqual(self.http.pending("http://fast.test"), [])
        for o in fast:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
        more = self.jobs("http://fast.test", [14, 15])
        executor.submit(more)
        for post in self.http.pending("http://fast.test"):
            post.answer(200)
        for o in more:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
        self.assertEqual(len(self.http.to("http://slow.test")), 2)
        for o in slow[2:]:
            self.assertIsNone(self.store.record(o.execution_id))  # still queued
        self.http.pending("http://slow.test")[0].answer(200)
        self.assertEqual(len(self.http.to("http://slow.test")), 3)
        self.assertEqual(len(self.http.pending("http://slow.test")), 2)

    def trip(self, executor: Executor, url: str, ids: range) -> list[Occurrence]:
        """Jobs on one endpoint, each in its own POST; the first five fail: the endpoint's
        breaker opens."""
        tripping = self.separately(executor, self.jobs(url, ids, own_url=False))
        for post in self.http.pending(url)[:5]:
            post.answer(500)
        return tripping

    def separately(self, executor: Executor, occurrences: list[Occurrence]) -> list[Occurrence]:
        """Submit each occurrence on its own (its own round, so its own POST)."""
        for o in occurrences:
            executor.submit([o])
        return occurrences

    def test_breaker_holds_then_one_probe_then_delivers_the_held(self) -> None:
        executor = self.executor(retry_max=0)
        url = "http://flaky.test/hook"
        tripped = self.trip(executor, url, range(1, 6))
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        self.assertIs(breaker.state, BreakerState.OPEN)
        for o in tripped:
            self.assertEqual(self.store.state(o.execution_id), "dead")
        held = self.separately(executor, self.jobs(url, range(6, 9), own_url=False))
        other = self.jobs("http://fine.test", [20])
        executor.submit(other)
        self.assertEqual(len(self.http.to(url)), 5, "posted to an open breaker")
        for o in held:
            self.assertRecord(o.execution_id, state="scheduled", attempts=0)
        self.assertEqual(len(self.http.pending("http://fine.test")), 1)  # others unaffected
        self.assertEqual(executor.queued(), 3)
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds() - 0.01)
        self.assertEqual(self.http.pending(url), [])
        self.clock.advance(0.02)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN)
        (probe,) = self.http.pending(url)
        self.assertEqual(probe.ids(), [held[0].execution_id])
        for o in held[1:]:
            self.assertEqual(self.store.state(o.execution_id), "scheduled")
        probe.answer(200)
        self.assertIs(breaker.state, BreakerState.CLOSED)
        rest = self.http.pending(url)
        self.assertEqual(sorted(p.ids()[0] for p in rest),
                         sorted(o.execution_id for o in held[1:]))
        for post in rest:
            post.answer(200)
        for o in held:
            self.assertRecord(o.execution_id, state="succeeded", attempts=1)
        self.assertEqual(executor.queued(), 0)

    def test_a_failed_probe_reopens_and_nothing_held_is_lost(self) -> None:
        executor = self.executor(retry_max=0)
        url = "http://flaky.test/hook"
        self.trip(executor, url, range(1, 6))
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        held = self.separately(executor, self.jobs(url, range(6, 9), own_url=False))
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = self.http.pending(url)
        probe.answer(503)
        self.assertIs(breaker.state, BreakerState.OPEN)
        self.assertEqual(self.store.state(held[0].execution_id), "dead")  # retry_max 0
        self.assertEqual(self.http.pending(url), [])
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = self.http.pending(url)
        self.assertEqual(probe.ids(), [held[1].execution_id])
        probe.answer(200)
        (last,) = self.http.pending(url)
        last.answer(200)
        for o in held[1:]:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    def test_a_stale_outcome_does_not_decide_a_half_open_breaker(self) -> None:
        # Requests started while the breaker was closed can finish after it went half-open;
        # only the probe's outcome may close or reopen it.
        executor = self.executor(retry_max=0, per_target=8)
        url = "http://flaky.test/hook"
        self.trip(executor, url, range(1, 8))
        stale = self.http.pending(url)
        self.assertEqual(len(stale), 2)
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        held = self.separately(executor, self.jobs(url, [8, 9], own_url=False))
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = [p for p in self.http.pending(url) if p not in stale]
        stale[0].answer(500)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN, "a stale failure reopened it")
        stale[1].answer(200)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN, "a stale success closed it")
        self.assertEqual(self.http.pending(url), [probe])
        probe.answer(200)
        self.assertIs(breaker.state, BreakerState.CLOSED)
        (last,) = self.http.pending(url)
        self.assertEqual(last.ids(), [held[1].execution_id])
        last.answer(200)
        for o in held:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
