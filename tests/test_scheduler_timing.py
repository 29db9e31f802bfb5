"""
Tests for scheduler0.schedule.service: when occurrences are dispatched (PRODUCT.md section
5) for C{@every}, cron across DST, start and end dates and C{@at}, as the clock moves in
small steps or big jumps (the misfire policies).

Everything runs on a L{Clock} (L{tests.scheduler_harness.Harness}): no real reactor, no
sleeps.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.service import MISFIRE_TOLERANCE

from .scheduler_harness import DAY, HOUR, MINUTE, T0, Harness, every, job, ts


class EveryMinuteTests(SynchronousTestCase):
    def test_small_steps_fire_each_slot_once_at_its_own_time(self) -> None:
        # 0.7 s never lands on a slot exactly: the occurrence still carries the slot's time
        for step in (0.7, 1.0, 10.0):
            h = Harness([job(1, "@every 1m")]).start()
            self.assertEqual(h.scheduler.next_fire(1), T0 + MINUTE)
            h.advance_to(T0 + 5 * MINUTE + 30, step=step)
            self.assertEqual(h.fired(1), every(T0 + MINUTE, T0 + 5 * MINUTE, MINUTE), step)
            self.assertEqual(h.scheduler.next_fire(1), T0 + 6 * MINUTE)

    def test_one_jump_within_tolerance_fires_the_slot(self) -> None:
        h = Harness([job(1, "@every 1m", policy="skip")]).start()
        h.advance_to(T0 + MINUTE + MISFIRE_TOLERANCE / 2)
        self.assertEqual(h.fired(1), [T0 + MINUTE])

    def test_one_big_jump_follows_the_misfire_policy(self) -> None:
        # the reactor "stalls" 60.5 minutes: slots +1m .. +60m are all more than 1 s late
        late_by = 30
        expected = {
            "skip": [],
            "fire_once": [T0 + 60 * MINUTE],
            "fire_all": every(T0 + MINUTE, T0 + 60 * MINUTE, MINUTE),
        }
        for policy, missed in expected.items():
            h = Harness([job(1, "@every 1m", policy=policy, grace=600)]).start()
            h.advance_to(T0 + HOUR + late_by)
            self.assertEqual(h.take(), missed, policy)
            self.assertEqual(h.scheduler.next_fire(1), T0 + 61 * MINUTE, policy)
            h.advance_to(T0 + 62 * MINUTE, step=1)
            self.assertEqual(h.take(), [T0 + 61 * MINUTE, T0 + 62 * MINUTE], policy)

    def test_big_jump_landing_on_a_slot_fires_it_on_time(self) -> None:
        for policy, missed in [("skip", []), ("fire_once", [T0 + 59 * MINUTE]),
                               ("fire_all", every(T0 + MINUTE, T0 + 59 * MINUTE, MINUTE))]:
            h = Harness([job(1, "@every 1m", policy=policy, grace=600)]).start()
            h.advance_to(T0 + HOUR)
            self.assertEqual(h.take(), missed + [T0 + HOUR], policy)

    def test_fire_once_outside_grace_fires_nothing(self) -> None:
        h = Harness([job(1, "@every 1h", policy="fire_once", grace=60)]).start()
        h.advance_to(T0 + HOUR + 5 * MINUTE)
        self.assertEqual(h.take(), [])
        h.advance_to(T0 + 2 * HOUR, step=MINUTE)
        self.assertEqual(h.take(), [T0 + 2 * HOUR])


class CronTests(SynchronousTestCase):
    def test_every_five_minutes(self) -> None:
        h = Harness([job(7, "*/5 * * * *")]).start()
        h.advance_to(T0 + 12 * MINUTE, step=30)
        self.assertEqual(h.fired(7), [T0 + 5 * MINUTE, T0 + 10 * MINUTE])
        self.assertEqual([o.execution_id for o in h.occurrences],
                         ["7-20261126T160500Z", "7-20261126T161000Z"])
        self.assertEqual(h.scheduler.next_fire(7), T0 + 15 * MINUTE)

    def test_spring_forward_gap_fires_once_after_the_gap(self) -> None:
        created = ts(2027, 3, 13, 12, 0)
        h = Harness([job(1, "30 2 * * *", created, zone="America/New_York")],
                    now=created).start()
        h.advance_to(ts(2027, 3, 16, 0, 0), step=5 * MINUTE)
        # 02:30 does not exist on 2027-03-14: 03:00 EDT (07:00Z), then 02:30 EDT (06:30Z)
        self.assertEqual(h.fired(1), [ts(2027, 3, 14, 7, 0), ts(2027, 3, 15, 6, 30)])

    def test_fall_back_overlap_fires_once(self) -> None:
        created = ts(2027, 11, 6, 12, 0)
        h = Harness([job(1, "30 1 * * *", created, zone="America/New_York")],
                    now=created).start()
        h.advance_to(ts(2027, 11, 9, 0, 0), step=5 * MINUTE)
        # 01:30 happens twice on 2027-11-07: first (EDT, 05:30Z) only; then 01:30 EST (06:30Z)
        self.assertEqual(h.fired(1), [ts(2027, 11, 7, 5, 30), ts(2027, 11, 8, 6, 30)])


class BoundsTests(SynchronousTestCase):
    def test_start_and_end_dates(self) -> None:
        h = Harness([job(1, "@every 10m", start=T0 + HOUR, end=T0 + 2 * HOUR),
                     job(2, "*/5 * * * *", start=T0 + 12 * MINUTE, end=T0 + 30 * MINUTE)]).start()
        self.assertEqual(h.scheduler.next_fire(1), T0 + HOUR)
        self.assertEqual(h.scheduler.next_fire(2), T0 + 15 * MINUTE)
        self.assertEqual(h.scheduler.pending(), 2)
        h.advance_to(T0 + 4 * HOUR, step=MINUTE)
        self.assertEqual(h.fired(1), every(T0 + HOUR, T0 + 2 * HOUR, 10 * MINUTE))
        self.assertEqual(h.fired(2), every(T0 + 15 * MINUTE, T0 + 30 * MINUTE, 5 * MINUTE))
        self.assertEqual(h.scheduler.pending(), 0)
        self.assertIsNone(h.scheduler.next_fire(1))
        self.assertIsNone(h.scheduler.next_fire(2))

    def test_at_fires_once_then_has_no_next_fire(self) -> None:
        h = Harness([job(1, "@at 2026-11-26T16:30:00Z"), job(2, "@every 1h")]).start()
        self.assertEqual(h.scheduler.pending(), 2)
        self.assertEqual(h.scheduler.due_within(30 * MINUTE), 1)
        self.assertEqual(h.scheduler.due_within(30 * MINUTE - 1), 0)
        h.advance_to(T0 + 3 * DAY, step=MINUTE)
        self.assertEqual(h.fired(1), [T0 + 30 * MINUTE])
        self.assertIsNone(h.scheduler.next_fire(1))
        self.assertEqual(h.scheduler.pending(), 1)
