"""
Tests for scheduler0.schedule.service: how the scheduler follows changes (PRODUCT.md
section 5): jobs created, updated, paused and deleted through the command log, the state
replaced, halt and resume, and "run now".

Everything runs on a L{Clock} (L{tests.scheduler_harness.Harness}): no real reactor, no
sleeps.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .scheduler_harness import HOUR, MINUTE, T0, Harness, every, iso, job


class ObserveTests(SynchronousTestCase):
    def test_created_job_fires_at_its_first_due_time(self) -> None:
        h = Harness([]).start()
        h.advance_to(T0 + 10)
        h.create(job(1, "@every 1m", created=T0 + 10))
        self.assertTrue(h.scheduler.knows(1))
        self.assertEqual(h.scheduler.next_fire(1), T0 + 70)
        h.advance_to(T0 + 200, step=1)  # nothing but time passing
        self.assertEqual(h.fired(1), [T0 + 70, T0 + 130, T0 + 190])

    def test_created_job_earlier_than_the_armed_timer(self) -> None:
        h = Harness([job(1, "@every 1h")]).start()
        h.create(job(2, "@every 1m"))
        h.advance_to(T0 + MINUTE)
        self.assertEqual(h.fired(2), [T0 + MINUTE])

    def test_update_replans_at_once(self) -> None:
        h = Harness([job(1, "@every 1h")]).start()
        h.advance_to(T0 + 90, step=1)
        self.assertEqual(h.scheduler.next_fire(1), T0 + HOUR)
        h.update(1, spec="@every 1m")
        self.assertEqual(h.scheduler.next_fire(1), T0 + 2 * MINUTE)
        h.advance_to(T0 + HOUR, step=1)
        self.assertEqual(h.fired(1), every(T0 + 2 * MINUTE, T0 + HOUR, MINUTE))

    def test_update_in_the_instant_of_a_fire_does_not_fire_it_again(self) -> None:
        h = Harness([job(1, "@every 1m")]).start()
        h.advance_to(T0 + MINUTE)
        self.assertEqual(h.fired(1), [T0 + MINUTE])
        h.update(1, data="changed")
        h.clock.advance(0)
        h.advance_to(T0 + 2 * MINUTE, step=1)
        self.assertEqual(h.fired(1), [T0 + MINUTE, T0 + 2 * MINUTE])

    def test_pause_and_unpause_without_catch_up(self) -> None:
        h = Harness([job(1, "@every 1m", policy="fire_all")]).start()
        h.advance_to(T0 + 90, step=1)
        h.update(1, paused=True)
        self.assertFalse(h.scheduler.knows(1))
        self.assertIsNone(h.scheduler.next_fire(1))
        self.assertEqual(h.scheduler.pending(), 0)
        h.advance_to(T0 + 2 * HOUR + 30, step=MINUTE)
        self.assertEqual(h.fired(1), [T0 + MINUTE])
        h.update(1, paused=False)
        self.assertTrue(h.scheduler.knows(1))
        self.assertEqual(h.scheduler.next_fire(1), T0 + 121 * MINUTE)
        h.advance_to(T0 + 123 * MINUTE, step=1)
        self.assertEqual(h.fired(1), [T0 + MINUTE, T0 + 121 * MINUTE, T0 + 122 * MINUTE,
                                      T0 + 123 * MINUTE])

    def test_delete_stops_the_next_occurrence(self) -> None:
        h = Harness([job(1, "@every 1m"), job(2, "@every 1m")]).start()
        h.advance_to(T0 + 119, step=1)
        h.delete(1)
        self.assertNotIn(1, h.scheduler.plans)
        self.assertFalse(h.scheduler.knows(1))
        h.advance_to(T0 + HOUR, step=1)
        self.assertEqual(h.fired(1), [T0 + MINUTE])
        self.assertEqual(h.fired(2), every(T0 + MINUTE, T0 + HOUR, MINUTE))

    def test_rejected_commands_change_nothing(self) -> None:
        h = Harness([job(1, "@every 1m"), job(2, "@every 1m")]).start()
        plans = dict(h.scheduler.plans)
        h.create(job(3, "@every 1m"), ok=False)
        h.store[2]["spec"] = "@every 1h"  # even if the store says otherwise
        h.update(2, ok=False, spec="@every 1h")
        h.delete(1, ok=False)
        self.assertEqual(h.scheduler.plans, plans)
        self.assertNotIn(3, h.scheduler.plans)
        h.advance_to(T0 + 3 * MINUTE, step=1)
        self.assertEqual(h.fired(1), every(T0 + MINUTE, T0 + 3 * MINUTE, MINUTE))
        self.assertEqual(h.fired(2), every(T0 + MINUTE, T0 + 3 * MINUTE, MINUTE))
        self.assertEqual(h.fired(3), [])


class StateReplacedTests(SynchronousTestCase):
    """A snapshot installed (or a node caught up from scratch) replaces the store under the
    scheduler: it plans again from what the store now says."""

    def test_plans_follow_the_replaced_state(self) -> None:
        h = Harness([job(1, "@every 1m"), job(2, "@every 1h")]).start()
        h.advance_to(T0 + MINUTE)
        self.assertEqual(h.take(), [T0 + MINUTE])
        # the new state: job 1 gone, job 2 every 2 minutes (from its creation), job 3 new
        del h.store[1]
        h.store[2]["spec"] = "@every 2m"
        h.store[3] = job(3, "@every 1m", created=T0 + MINUTE)
        h.last = {2: iso(T0 + MINUTE)}
        h.scheduler.reload()
        self.assertEqual(sorted(h.scheduler.plans), [2, 3])
        h.advance_to(T0 + 4 * MINUTE, step=1)
        self.assertEqual(sorted((o.job_id, o.scheduled) for o in h.occurrences),
                         [(2, T0 + 2 * MINUTE), (2, T0 + 4 * MINUTE), (3, T0 + 2 * MINUTE),
                          (3, T0 + 3 * MINUTE), (3, T0 + 4 * MINUTE)])

    def test_a_stopped_scheduler_forgets_and_plans_nothing(self) -> None:
        h = Harness([job(1, "@every 1m")]).start()
        h.scheduler.stopService()
        h.scheduler.reload()
        self.assertEqual(h.scheduler.plans, {})
        h.advance_to(T0 + 3 * MINUTE, step=1)
        self.assertEqual(h.fired(), [])


class HaltTests(SynchronousTestCase):
    def test_halt_and_resume(self) -> None:
        expected = {
            "skip": [],
            "fire_once": [T0 + 181 * MINUTE],
            "fire_all": every(T0 + 2 * MINUTE, T0 + 181 * MINUTE, MINUTE),
        }
        for policy, catch_up in expected.items():
            h = Harness([job(1, "@every 1m", policy=policy, grace=600)]).start()
            h.advance_to(T0 + 90, step=1)
            self.assertEqual(h.take(), [T0 + MINUTE])
            h.scheduler.halt()
            self.assertTrue(h.scheduler.halted)
            h.advance_to(T0 + 3 * HOUR + 90, step=10)
            self.assertEqual(h.take(), [], policy)
            h.scheduler.resume()
            self.assertFalse(h.scheduler.halted)
            self.assertEqual(h.take(), catch_up, policy)
            h.advance_to(T0 + 184 * MINUTE, step=1)
            self.assertEqual(h.take(), every(T0 + 182 * MINUTE, T0 + 184 * MINUTE, MINUTE),
                             policy)

    def test_observe_while_halted_does_not_fire(self) -> None:
        h = Harness([job(1, "@every 1m")]).start()
        h.scheduler.halt()
        h.create(job(2, "@every 1m"))
        h.update(1, spec="@every 2m")
        h.advance_to(T0 + HOUR, step=MINUTE)
        self.assertEqual(h.fired(), [])


class RunNowTests(SynchronousTestCase):
    def test_run_now_is_an_extra_occurrence(self) -> None:
        h = Harness([job(1, "@every 1m")]).start()
        h.advance_to(T0 + 30.25)
        extra = h.scheduler.run_now(1)
        assert extra is not None
        self.assertEqual(h.rounds, [[extra]])
        self.assertEqual(extra.job_id, 1)
        self.assertEqual(extra.execution_id, "1-20261126T160030.250Z")
        h.advance_to(T0 + 3 * MINUTE, step=1)
        self.assertEqual(h.fired(1), [T0 + 30.25] + every(T0 + MINUTE, T0 + 3 * MINUTE, MINUTE))
        ids = [o.execution_id for o in h.occurrences]
        self.assertEqual(len(set(ids)), len(ids))

    def test_run_now_at_a_slot_instant_has_its_own_id(self) -> None:
        # a run-now in the very second a slot fires must not share the slot's execution id,
        # or receivers that deduplicate would drop one of the two
        h = Harness([job(1, "*/5 * * * *")]).start()
        h.advance_to(T0 + 5 * MINUTE)
        regular = h.occurrences[0]
        extra = h.scheduler.run_now(1)
        assert extra is not None
        self.assertNotEqual(extra.execution_id, regular.execution_id)
        self.assertEqual(h.scheduler.next_fire(1), T0 + 10 * MINUTE)
        h.advance_to(T0 + 10 * MINUTE, step=1)
        self.assertEqual(h.fired(1)[-1], T0 + 10 * MINUTE)
        self.assertEqual(len(h.occurrences), 3)

    def test_run_now_twice_in_one_millisecond_gives_two_ids(self) -> None:
        # two clicks of "run" within a millisecond are two runs: with one execution id a
        # deduplicating receiver would run the job once
        h = Harness([job(1, "@every 1m")]).start()
        h.advance_to(T0 + 30.25)
        ids = [h.scheduler.run_now(1).execution_id for _ in range(3)]
        self.assertEqual(ids, ["1-20261126T160030.250Z", "1-20261126T160030.251Z",
                               "1-20261126T160030.252Z"])
        h.advance_to(T0 + 30.5)
        self.assertEqual(h.scheduler.run_now(1).execution_id, "1-20261126T160030.500Z")

    def test_unknown_job(self) -> None:
        h = Harness([job(1, "@every 1m")]).start()
        self.assertIsNone(h.scheduler.run_now(99))
        self.assertEqual(h.rounds, [])
