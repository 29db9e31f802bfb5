"""
Tests for scheduler0.schedule.service: when occurrences are dispatched (PRODUCT.md section 5).

Everything runs on a L{Clock}: no real reactor, no sleeps. Each test builds a
L{SchedulerService} over an in-memory job store and records every dispatched round.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule import service as service_module
from scheduler0.schedule.occurrence import Occurrence, execution_id
from scheduler0.schedule.service import MAX_CATCH_UP, MISFIRE_TOLERANCE, SchedulerService
from scheduler0.schedule.spec import FireTimeCache
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.timestamps import format_time

from .records import job_of

UTC = timezone.utc

#: 2026-11-26T16:00:00Z
T0 = 1795708800.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def iso(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


def job(job_id: int, spec: str, created: float = T0, *, zone: str = "UTC",
        start: float | None = None, end: float | None = None, paused: bool = False,
        policy: str = "skip", grace: int = 3600, project: int = 1,
        url: str = "http://receiver.example:8080/hook") -> dict[str, Any]:
    """A job in the API's shape (L{tests.records.job_of} makes it a L{Job})."""
    return {
        "id": job_id, "projectId": project, "spec": spec, "callbackUrl": url,
        "data": f"payload-{job_id}", "executionType": "http", "timezone": zone,
        "startDate": iso(start) if start is not None else None,
        "endDate": iso(end) if end is not None else None,
        "paused": paused, "misfirePolicy": policy, "misfireGraceSeconds": grace,
        "dateCreated": iso(created), "dateModified": iso(created),
    }


_command_ids = itertools.count(1)


def command(kind: str, payload: dict, now: float) -> Command:
    return Command(id=f"c{next(_command_ids)}", kind=kind, issued_at=iso(now), payload=payload)


class Harness:
    """A scheduler over a dict of job records, on a Clock, recording dispatched rounds."""

    def __init__(self, records: list[dict] = (), last: dict[int, float] | None = None,
                 now: float = T0, fire_times: FireTimeCache | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(now)
        self.store: dict[int, dict] = {r["id"]: dict(r) for r in records}
        self.last = {k: iso(v) for k, v in (last or {}).items()}
        self.rounds: list[list[Occurrence]] = []
        self.scheduler = SchedulerService(
            clock=self.clock,
            load=lambda: ([job_of(r) for r in self.store.values()], dict(self.last)),
            job_records=lambda ids: [job_of(self.store[i]) for i in ids if i in self.store],
            dispatch=self.rounds.append,
            fire_times=fire_times,
        )

    def start(self) -> "Harness":
        self.scheduler.startService()
        return self

    @property
    def now(self) -> float:
        return self.clock.seconds()

    @property
    def occurrences(self) -> list[Occurrence]:
        return [o for r in self.rounds for o in r]

    def fired(self, job_id: int | None = None) -> list[float]:
        """Scheduled times dispatched so far (of one job, or of all)."""
        return [o.scheduled for o in self.occurrences if job_id is None or o.job_id == job_id]

    def take(self) -> list[float]:
        """Scheduled times dispatched since the last take."""
        times = self.fired()
        self.rounds.clear()
        return times

    def advance_to(self, when: float, step: float | None = None) -> None:
        """Move the clock to `when`, in one jump or in increments of `step`."""
        if step is None:
            self.clock.advance(when - self.now)
            return
        while self.now + step < when:
            self.clock.advance(step)
        self.clock.advance(when - self.now)

    # -- the command log -----------------------------------------------------------------

    def create(self, record: dict, ok: bool = True) -> None:
        self.store[record["id"]] = dict(record)
        row = {"id": record["id"], "project_id": record["projectId"], "spec": record["spec"],
               "callback_url": record["callbackUrl"], "data": record["data"],
               "execution_type": record["executionType"], "timezone": record["timezone"],
               "start_date": record["startDate"], "end_date": record["endDate"],
               "paused": int(record["paused"]), "misfire_policy": record["misfirePolicy"],
               "misfire_grace_seconds": record["misfireGraceSeconds"]}
        # the job's dateCreated is the command's timestamp, as when the API creates it
        created = command(C.JOB_CREATE, {"jobs": [row]}, self.now)
        self.store[record["id"]]["dateCreated"] = created.issued_at
        self.scheduler.observe(created, {"ok": True, "count": 1, "first_id": record["id"]}
                               if ok else {"ok": False, "status": 400})

    def update(self, job_id: int, ok: bool = True, **changes: Any) -> None:
        if ok:
            self.store[job_id].update(changes)
            self.store[job_id]["dateModified"] = iso(self.now)
        self.scheduler.observe(command(C.JOB_UPDATE, {"id": job_id, "changes": changes},
                                       self.now),
                               {"ok": True} if ok else {"ok": False, "status": 400})

    def delete(self, job_id: int, ok: bool = True) -> None:
        if ok:
            del self.store[job_id]
        self.scheduler.observe(command(C.JOB_DELETE, {"id": job_id}, self.now),
                               {"ok": True} if ok else {"ok": False, "status": 404})


def every(start: float, stop: float, step: float) -> list[float]:
    """start, start+step, ... up to and including stop."""
    count = int(round((stop - start) / step))
    return [start + i * step for i in range(count + 1)]


# ------------------------------------------------------------------------------- 1. @every


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


# ------------------------------------------------------------------------------- 2. cron + DST


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


# ------------------------------------------------------------------------------- 3. bounds, @at


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


# ------------------------------------------------------------------------------- 4. many jobs


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


# ------------------------------------------------------------------------------- 5. observe()


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


# ------------------------------------------------------------------------------- 6. restart


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


# ------------------------------------------------------------------------------- 7. halt


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


# ------------------------------------------------------------------------------- 8. run_now


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


# ------------------------------------------------------------------------------- 9. ids


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


# ------------------------------------------------------------------------------- 10. heap


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


# ------------------------------------------------------------------------------- 9. under load


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
