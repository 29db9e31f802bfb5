"""
Tests for scheduler0.schedule.service: a restart (PRODUCT.md section 5): the misfire
policies for what was missed, execution ids that are the same across instances, and the
count of skipped occurrences after a stall or a downtime.

Everything runs on a L{Clock} (L{tests.scheduler_harness.Harness}): no real reactor, no
sleeps.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.schedule.service import MAX_CATCH_UP

from .scheduler_harness import DAY, HOUR, MINUTE, T0, Harness, every, job


class RestartTests(SynchronousTestCase):
    def test_every_keeps_its_phase(self) -> None:
        h = Harness([job(1, "@every 3d", policy="fire_all")], last={1: T0 + 3 * DAY},
                    now=T0 + 4 * DAY).start()
        self.assertEqual(h.fired(), [])
        self.assertEqual(h.scheduler.next_fire(1), T0 + 6 * DAY)
        h.advance_to(T0 + 8 * DAY, step=HOUR)
        self.assertEqual(h.fired(1), [T0 + 6 * DAY])

    def restart(self, policy: str, grace: int = 3600) -> Harness:
        # hourly job, last run at +1h, node back at +10h30m: +2h .. +10h were missed
        return Harness([job(1, "@every 1h", policy=policy, grace=grace)],
                       last={1: T0 + HOUR}, now=T0 + 10.5 * HOUR).start()

    def test_skip(self) -> None:
        h = self.restart("skip")
        self.assertEqual(h.take(), [])
        h.advance_to(T0 + 12 * HOUR, step=MINUTE)
        self.assertEqual(h.take(), [T0 + 11 * HOUR, T0 + 12 * HOUR])

    def test_fire_once_within_grace(self) -> None:
        h = self.restart("fire_once", grace=3600)
        self.assertEqual(h.take(), [T0 + 10 * HOUR])
        h.advance_to(T0 + 12 * HOUR, step=MINUTE)
        self.assertEqual(h.take(), [T0 + 11 * HOUR, T0 + 12 * HOUR])

    def test_fire_once_older_than_grace(self) -> None:
        h = self.restart("fire_once", grace=29 * 60)
        self.assertEqual(h.take(), [])
        h.advance_to(T0 + 12 * HOUR, step=MINUTE)
        self.assertEqual(h.take(), [T0 + 11 * HOUR, T0 + 12 * HOUR])

    def test_fire_all_in_order(self) -> None:
        h = self.restart("fire_all")
        self.assertEqual(len(h.rounds), 1)
        self.assertEqual(h.take(), every(T0 + 2 * HOUR, T0 + 10 * HOUR, HOUR))
        h.advance_to(T0 + 12 * HOUR, step=MINUTE)
        self.assertEqual(h.take(), [T0 + 11 * HOUR, T0 + 12 * HOUR])

    def test_fire_all_is_capped(self) -> None:
        h = Harness([job(1, "@every 1m", policy="fire_all")], last={1: T0},
                    now=T0 + 2000 * MINUTE + 30).start()
        self.assertEqual(h.take(), every(T0 + MINUTE, T0 + MAX_CATCH_UP * MINUTE, MINUTE))
        self.assertEqual(h.scheduler.next_fire(1), T0 + 2001 * MINUTE)
        h.advance_to(T0 + 2002 * MINUTE, step=1)
        self.assertEqual(h.take(), [T0 + 2001 * MINUTE, T0 + 2002 * MINUTE])

    def test_never_ran_counts_from_creation(self) -> None:
        h = Harness([job(1, "@every 1h", policy="fire_all")], now=T0 + 3.5 * HOUR).start()
        self.assertEqual(h.take(), [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR])


class ExecutionIdTests(SynchronousTestCase):
    def test_same_ids_across_instances(self) -> None:
        records = [job(1, "@every 1m", policy="fire_all"), job(2, "*/2 * * * *")]
        a = Harness(records).start()
        b = Harness(records).start()
        for h in (a, b):
            h.advance_to(T0 + 6 * MINUTE, step=1)
        ids_a = [o.execution_id for o in a.occurrences]
        self.assertEqual(ids_a, [o.execution_id for o in b.occurrences])
        self.assertEqual(len(set(ids_a)), 9)
        self.assertIn("1-20261126T160100Z", ids_a)
        self.assertEqual(ids_a, [execution_id(o.job_id, o.scheduled) for o in a.occurrences])

    def test_catch_up_after_restart_reuses_the_ids(self) -> None:
        records = [job(1, "@every 1m", policy="fire_all")]
        before = Harness(records).start()
        before.advance_to(T0 + 3 * MINUTE, step=1)
        before.scheduler.stopService()
        # the first run (+1m) was recorded, the rest were in flight when the node died
        after = Harness(records, last={1: T0 + MINUTE}, now=T0 + 3 * MINUTE + 30).start()
        self.assertEqual([o.execution_id for o in after.occurrences],
                         [o.execution_id for o in before.occurrences][1:])


class SkippedOccurrenceTests(SynchronousTestCase):
    """What a misfire policy does not run is counted by reason and logged, rate-limited."""

    def setUp(self) -> None:
        self.events: list[dict] = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def skip_lines(self) -> list[dict]:
        return [e for e in self.events if "skipped {count}" in e.get("log_format", "")]

    def test_stall_counts_late_skips_exactly_for_every(self) -> None:
        h = Harness([job(1, "@every 1m", policy="skip"),
                     job(2, "@every 1m", policy="fire_once", grace=600)]).start()
        h.advance_to(T0 + 10 * MINUTE + 30)  # the reactor stalled for 10.5 minutes
        self.assertEqual(h.take(), [T0 + 10 * MINUTE])  # job 2's one catch-up run
        self.assertEqual(h.scheduler.skipped, {"late": 10 + 9, "downtime": 0})
        self.assertEqual(h.scheduler.last_skipped_at, h.now)
        lines = self.skip_lines()
        self.assertEqual([(e["count"], e["reason"]) for e in lines], [(19, "late")])

    def test_restart_after_downtime_counts_downtime(self) -> None:
        h = Harness([job(1, "*/5 * * * *", policy="fire_all"),
                     job(2, "@every 1m", policy="skip")],
                    last={1: T0, 2: T0}, now=T0 + HOUR).start()
        # fire_all runs the eleven slots of job 1 missed before now (now's is on time)
        self.assertEqual(len(h.take()), 11)
        self.assertEqual(h.scheduler.skipped, {"late": 0, "downtime": 59})

    def test_log_lines_are_rate_limited(self) -> None:
        h = Harness([job(1, "@every 1s", policy="skip")]).start()
        for _ in range(30):  # thirty stalls of 3 s within 90 s
            h.clock.advance(3)
        lines = self.skip_lines()
        # one line at the first skip, then at most one per SKIP_LOG_INTERVAL (10 s)
        self.assertLessEqual(len(lines), 10)
        self.assertGreaterEqual(len(lines), 8)
        # each line tells how many since the previous one; stopping logs the rest, so
        # together the lines account for every skip
        h.scheduler.stopService()
        self.assertEqual(sum(e["count"] for e in self.skip_lines()),
                         h.scheduler.skipped["late"])
