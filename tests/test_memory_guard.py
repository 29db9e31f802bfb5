"""
The supervisor's memory guard (issue 4): no new occurrence while memory is over the limit
(with hysteresis), callbacks already under way still go out, on a node built as the daemon
builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import GOOD, MB, Ops


class MemoryGuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, max_memory_mb=100)
        p = h.project()
        self.job = h.job(p, GOOD + "/hook")

    def use(self, mb: float) -> None:
        self.h.memory = int(mb * MB)
        self.h.clock.advance(1)                             # the guard reads every second

    def test_hysteresis_between_60_and_70_percent(self) -> None:
        h = self.h
        self.use(69.9)
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        self.use(70)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("MaxMemory", state["reason"])
        self.assertIn("70%", state["reason"])
        self.assertIs(h.health()["enabled"], False)
        self.use(65)                                        # between: still halted
        self.assertEqual(h.state()["state"], "HALTED")
        self.use(60)
        self.assertEqual(h.state()["state"], "HALTED")
        self.use(59.9)
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        self.assertIs(h.health()["enabled"], True)
        self.use(69)                                        # between, from below: running
        self.assertEqual(h.state()["state"], "RUNNING")

    def test_no_new_occurrence_under_pressure_then_catch_up(self) -> None:
        h = self.h
        h.clock.advance(55)
        self.use(90)
        h.clock.advance(20)                                 # T0+60 passes: not taken
        self.assertEqual(h.http.posts, [])
        self.use(10)                                        # T0+77: resumes, fire_once
        (post,) = h.http.pending(GOOD)
        self.assertEqual(post.ids(), [execution_id(self.job["id"], T0 + 60)])
        post.answer(200)
        h.clock.advance(T0 + 120 - h.clock.seconds())
        self.assertEqual(len(h.http.pending(GOOD)), 1)

    def test_callbacks_already_in_flight_or_queued_still_go_out(self) -> None:
        h = self.h
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        self.use(80)
        post.answer(200)
        self.assertEqual(h.execution(execution_id(self.job["id"], T0 + 60))["state"],
                         "succeeded")
        # the executor is not halted by memory: a manual run still goes out
        run = h.ok("POST", f"/api/v1/jobs/{self.job['id']}/run", expect=202)
        (sent,) = h.http.pending(GOOD)
        self.assertEqual(sent.ids(), [run["executionId"]])

    def test_an_operator_halt_is_not_undone_by_the_memory_guard(self) -> None:
        h = self.h
        h.ok("POST", "/api/supervisor/halt")
        self.use(80)
        self.use(10)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("operator", state["reason"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.assertIs(h.health()["enabled"], False)
        # and an operator restart under memory pressure does not bypass the guard
        self.use(90)
        restarted = h.ok("POST", "/api/supervisor/restart")
        self.assertEqual(restarted["state"], "HALTED")
        self.assertIn("MaxMemory", restarted["reason"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.use(10)
        self.assertEqual(h.state()["state"], "RUNNING")
        self.assertEqual(len(h.http.pending(GOOD)), 1)      # fire_once catch-up

    def test_no_limit_means_no_guard(self) -> None:
        h = Ops(self, max_memory_mb=0)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.memory = 10**15
        h.clock.advance(60)
        self.assertEqual(h.state()["state"], "RUNNING")
        self.assertEqual(len(h.http.pending()), 1)
