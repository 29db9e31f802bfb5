"""
Planning the whole store a budget per reactor turn (a cluster node that becomes leader: Raft
must keep ticking while it plans), and what waits for it (recovery).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.recovery import RecoveryService

from .scheduler_harness import MINUTE, T0, Harness, job


class BudgetedPlanningTests(SynchronousTestCase):
    def harness(self, count: int, **kwargs: object) -> Harness:
        return Harness([job(i, "@every 1m") for i in range(1, count + 1)], plan_budget=10,
                       **kwargs)  # type: ignore[arg-type]

    def test_the_store_is_planned_a_budget_per_turn_and_every_job_fires(self) -> None:
        h = self.harness(25).start()
        planned = h.scheduler.when_planned()
        self.assertEqual(len(h.scheduler.plans), 10)   # the rest waits for the next turns
        self.assertNoResult(planned)
        h.clock.advance(0)   # the next turns (a Clock runs the turns each one schedules)
        self.successResultOf(planned)
        self.assertEqual(len(h.scheduler.plans), 25)
        self.successResultOf(h.scheduler.when_planned())  # at once, once planned
        h.advance_to(T0 + MINUTE)
        self.assertEqual(sorted(o.job_id for o in h.occurrences), list(range(1, 26)))

    def test_a_job_deleted_or_changed_while_the_pass_runs_is_not_planned_from_its_old_row(
            self) -> None:
        h = self.harness(25).start()
        # applied between two turns: the pass read the store before them
        h.delete(15)
        h.update(16, spec="@every 2m")
        h.clock.advance(0)
        h.clock.advance(0)
        self.assertNotIn(15, h.scheduler.plans)
        self.assertEqual(h.scheduler.plans[16].schedule.text, "@every 2m")

    def test_stopping_drops_the_rest_of_the_pass(self) -> None:
        h = self.harness(25).start()
        h.scheduler.stopService()
        h.clock.advance(0)
        h.clock.advance(0)
        self.assertEqual(len(h.scheduler.plans), 10)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class RecoveryWaitsForThePlansTests(SynchronousTestCase):
    def test_recovery_looks_at_the_plans_only_once_every_job_is_planned(self) -> None:
        h = Harness([job(i, "@every 1m") for i in range(1, 26)], plan_budget=10)
        seen: list[int] = []

        def unfinished() -> list:
            seen.append(len(h.scheduler.plans))
            return []

        recovery = RecoveryService(h.clock, unfinished, lambda: h.scheduler.plans,
                                   executor=None, planned=h.scheduler.when_planned)
        h.start()
        recovery.startService()
        self.assertEqual(seen, [])
        h.clock.advance(0)
        h.clock.advance(0)
        self.assertEqual(seen, [25])

    def test_a_recovery_stopped_before_the_plans_are_made_does_nothing(self) -> None:
        h = Harness([job(i, "@every 1m") for i in range(1, 26)], plan_budget=10)
        seen: list[int] = []
        recovery = RecoveryService(h.clock, lambda: seen.append(1) or [],
                                   lambda: h.scheduler.plans, executor=None,
                                   planned=h.scheduler.when_planned)
        h.start()
        recovery.startService()
        recovery.stopService()
        h.clock.advance(0)
        h.clock.advance(0)
        self.assertEqual(seen, [])
        self.assertEqual(len(h.scheduler.plans), 25)
