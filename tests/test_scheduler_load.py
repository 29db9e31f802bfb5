"""
Tests for scheduler0.schedule.service under load: ten thousand jobs in one round, the
tick budget, the heap kept compact, a stream of writes that does not postpone what is due,
and jobs that cannot be planned that do not stop the timer.

Everything runs on a L{Clock} (L{tests.scheduler_harness.Harness}): no real reactor, no
sleeps.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule import service as service_module
from scheduler0.schedule.occurrence import Occurrence
from scheduler0.schedule.service import MISFIRE_TOLERANCE
from scheduler0.schedule.spec import FireTimeCache

from .scheduler_harness import HOUR, MINUTE, T0, Harness, every, job


class ManyJobsTests(SynchronousTestCase):
    def test_ten_thousand_jobs_share_one_round_and_croniter_work(self) -> None:
        self.patch(service_module, "TICK_BUDGET", 20_000)
        cache = FireTimeCache()
        n = 10_000
        h = Harness([job(i, "*/5 * * * *") for i in range(1, n + 1)], fire_times=cache)
        h.start()
        self.assertLessEqual(cache.misses, 2)
        before = cache.misses
        h.advance_to(T0 + 5 * MINUTE)
        self.assertEqual(len(h.rounds), 1)
        self.assertEqual(sorted(o.job_id for o in h.rounds[0]), list(range(1, n + 1)))
        self.assertEqual(set(h.fired()), {T0 + 5 * MINUTE})
        # one croniter search for "after 16:05:00", not one per job
        self.assertLessEqual(cache.misses - before, 2)
        h.take()
        h.advance_to(T0 + 10 * MINUTE, step=MINUTE)
        self.assertEqual(len(h.fired()), n)
        self.assertLessEqual(cache.misses - before, 4)

    def assertBurst(self, h: Harness, n: int, when: float, budget: int) -> None:
        fired = h.occurrences
        self.assertEqual(sorted(o.job_id for o in fired), list(range(1, n + 1)))  # once each
        self.assertEqual({o.scheduled for o in fired}, {when})
        self.assertTrue(all(len(r) <= budget for r in h.rounds))

    def test_tick_budget_splits_a_burst_within_the_same_instant(self) -> None:
        self.patch(service_module, "TICK_BUDGET", 100)
        n = 1_050
        h = Harness([job(i, "*/5 * * * *", policy="fire_all") for i in range(1, n + 1)]).start()
        h.advance_to(T0 + 5 * MINUTE - 1, step=MINUTE)
        self.assertEqual(h.occurrences, [])
        h.clock.advance(1)  # Clock.advance also runs the callLater(0) follow-up turns
        h.clock.advance(0)
        self.assertEqual(h.now, T0 + 5 * MINUTE)
        self.assertEqual(len(h.rounds), 11)
        self.assertBurst(h, n, T0 + 5 * MINUTE, 100)
        h.take()
        h.advance_to(T0 + 10 * MINUTE, step=MINUTE)
        self.assertBurst(h, n, T0 + 10 * MINUTE, 100)

    def test_real_tick_budget(self) -> None:
        n = service_module.TICK_BUDGET * 2 + 10
        h = Harness([job(i, "@every 1m", policy="skip") for i in range(1, n + 1)]).start()
        h.advance_to(T0 + MINUTE)
        self.assertEqual(len(h.rounds), 3)
        self.assertBurst(h, n, T0 + MINUTE, service_module.TICK_BUDGET)

    def test_backlog_from_the_budget_is_not_a_misfire(self) -> None:
        # Work through a burst takes real time; a follow-up turn that runs more than
        # MISFIRE_TOLERANCE after the instant must still fire, even with the skip policy.
        self.patch(service_module, "TICK_BUDGET", 10)
        n = 35
        h = Harness([job(i, "@every 1h", policy="skip") for i in range(1, n + 1)]).start()

        def slow_dispatch(occurrences: list[Occurrence]) -> None:
            h.rounds.append(occurrences)
            h.clock.rightNow += 0.8  # each turn takes 0.8 s of real time

        h.scheduler._dispatch = slow_dispatch
        h.advance_to(T0 + HOUR, step=MINUTE)
        self.assertEqual(len(h.rounds), 4)
        self.assertGreater(h.now - (T0 + HOUR), 2 * MISFIRE_TOLERANCE)
        self.assertBurst(h, n, T0 + HOUR, 10)
        # the burst is over: a later stall is a misfire again
        h.rounds.clear()
        h.scheduler._dispatch = h.rounds.append
        h.clock.advance(HOUR + 30 - (h.now - (T0 + HOUR)))
        self.assertEqual(h.now, T0 + 2 * HOUR + 30)
        self.assertEqual(h.occurrences, [])
        self.assertEqual(h.scheduler.next_fire(1), T0 + 3 * HOUR)


class HeapHygieneTests(SynchronousTestCase):
    def test_many_updates_of_one_job(self) -> None:
        h = Harness([job(1, "@every 1m"), job(2, "@every 1h")]).start()
        for i in range(1000):
            h.update(1, spec="@every 1m" if i % 2 else "@every 2m", data=f"v{i}")
            self.assertLessEqual(len(h.scheduler._heap), 4)
        h.advance_to(T0 + 10 * MINUTE, step=1)
        self.assertEqual(h.fired(1), every(T0 + MINUTE, T0 + 10 * MINUTE, MINUTE))

    def test_stale_entries_are_compacted(self) -> None:
        # each update moves the fire earlier, so stale entries sink instead of surfacing
        h = Harness([job(1, "@every 1m"), job(2, "@every 1h")]).start()
        sizes = []
        for i in range(3000):
            h.update(1, spec=f"@every {3000 - i}m")
            sizes.append(len(h.scheduler._heap))
        self.assertLessEqual(max(sizes), 2 * len(h.scheduler.plans) + 1024 + 1)
        self.assertEqual(h.scheduler.next_fire(1), T0 + MINUTE)
        h.advance_to(T0 + 5 * MINUTE, step=1)
        self.assertEqual(h.fired(1), every(T0 + MINUTE, T0 + 5 * MINUTE, MINUTE))

    def test_deletes_and_pauses_leave_no_live_entries(self) -> None:
        h = Harness([job(i, "@every 1m") for i in range(1, 101)]).start()
        for i in range(1, 51):
            h.delete(i)
        for i in range(51, 101):
            h.update(i, paused=True)
        h.advance_to(T0 + HOUR, step=MINUTE)
        self.assertEqual(h.fired(), [])
        self.assertEqual(h.scheduler._heap, [])
        self.assertEqual(h.clock.getDelayedCalls(), [])


class DueTimerUnderWritesTests(SynchronousTestCase):
    """
    Issue 8: under a stream of applied API writes (each handed back in its own reactor
    turn, each re-arming the scheduler's timer) a due fire must not be pushed behind the
    next write, turn after turn: the scheduler starved while the API was saturated.
    """

    def test_a_stream_of_writes_does_not_postpone_due_occurrences(self) -> None:
        self.patch(service_module, "TICK_BUDGET", 1)  # a burst spread over follow-up turns
        h = Harness([job(i, "@every 1m", policy="skip") for i in (1, 2, 3)]
                    + [job(9, "@every 1h")]).start()
        dispatched_at_write: list[int] = []
        writes = 100

        def applied_write() -> None:
            # the command log hands back the next result in the next turn ...
            dispatched_at_write.append(len(h.occurrences))
            if len(dispatched_at_write) < writes:
                h.clock.callLater(0, applied_write)
            # ... after the observers saw this one
            h.update(9, data=f"v{len(dispatched_at_write)}")

        h.advance_to(T0 + MINUTE - 0.5)
        h.clock.callLater(0.6, applied_write)
        # one long turn (requests being served) carries the clock past the due time
        h.clock.advance(0.8)
        self.assertEqual(len(dispatched_at_write), writes)
        self.assertEqual(sorted(o.job_id for o in h.occurrences), [1, 2, 3])
        # every due occurrence went out within the first few writes, not after the stream
        self.assertEqual(dispatched_at_write[3], 3, dispatched_at_write[:10])


class UnplannableJobTests(SynchronousTestCase):
    """A job whose next fire cannot be computed is logged and left out; the rest run."""

    def test_a_stored_job_that_cannot_be_read_does_not_stop_the_start(self) -> None:
        h = Harness([job(1, "this is no spec"), job(2, "@every 1m")]).start()
        self.assertEqual(len(self.flushLoggedErrors()), 1)
        self.assertFalse(h.scheduler.knows(1))
        h.advance_to(T0 + 2 * MINUTE, step=1)
        self.assertEqual(h.fired(2), [T0 + MINUTE, T0 + 2 * MINUTE])

    def test_a_failing_next_fire_does_not_stop_the_timer(self) -> None:
        h = Harness([job(1, "* * * * *"), job(2, "@every 1m")]).start()

        def broken(*args: Any) -> None:
            raise OverflowError("date value out of range")

        h.scheduler._fire_times.next_fire = broken  # type: ignore[method-assign]
        h.advance_to(T0 + 3 * MINUTE, step=1)
        self.assertEqual(len(self.flushLoggedErrors(OverflowError)), 1)
        self.assertEqual(h.fired(1), [T0 + MINUTE])  # due before the failure: delivered
        self.assertEqual(h.fired(2), [T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE])
        self.assertIsNone(h.scheduler.next_fire(1))
