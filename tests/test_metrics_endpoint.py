"""
/metrics on a whole node (issue 4): what a Prometheus scrape reads after real traffic, on
a node built as the daemon builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .ops import AUTH, FLAKY, GOOD, Ops, SLOW, scrape, value


class MetricsTests(SynchronousTestCase):
    def test_metrics(self) -> None:
        h = Ops(self, retry_max=2)
        p = h.project()
        h.job(p, GOOD + "/ok")
        h.job(p, AUTH + "/a")
        for i in range(5):
            h.job(p, f"{FLAKY}/f/{i}")
        h.job(p, SLOW + "/s")
        h.job(p, GOOD + "/at", spec="@at 2026-11-26T16:01:10Z")
        h.fails("GET", "/api/monitoring/scheduler/health", 401, headers={})
        h.clock.advance(60)
        self.assertEqual(len(h.http.pending()), 8)
        h.clock.advance(0.25)
        h.answer(GOOD, 200)
        h.answer(AUTH, 401)
        h.refuse(FLAKY)                         # 5 refused: the flaky host's breaker opens
        h.clock.advance(1.5)                    # its 5 retries are held

        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="dead"), 1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="retrying"), 5)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="failed"), 0)
        # lateness: the 8 first attempts went out on time
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 8)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_sum"), 0)
        # durations: 7 answered after 0.25 s
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 7)
        self.assertAlmostEqual(value(m, "scheduler0_callback_duration_seconds_sum"), 1.75)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_bucket", le="0.1"), 0)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_bucket", le="0.25"), 7)
        self.assertEqual(value(m, "scheduler0_queue_depth"), 5)
        self.assertEqual(value(m, "scheduler0_due_within_12s"), 1)   # the @at at 16:01:10
        self.assertEqual(value(m, "scheduler0_dead_letters"), 1)
        self.assertEqual(value(m, "scheduler0_executions_in_flight"), 1)  # the slow one
        self.assertEqual(value(m, "scheduler0_breakers", state="open"), 1)
        self.assertEqual(value(m, "scheduler0_breakers", state="closed"), 3)
        self.assertEqual(value(m, "scheduler0_endpoint_breakers_not_closed"), 0)
        self.assertEqual(value(m, "scheduler0_scheduler_halted"), 0)
        self.assertEqual(value(m, "scheduler0_jobs_planned"), 9)
        # the health answer agrees with the metrics
        s = h.health()
        self.assertEqual((s["queue"]["depth"], s["queue"]["dueWithinSeconds"],
                          s["deadLetter"]["count"]), (5, 1, 1))
        # API requests by route, method and status
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/api/v1/jobs",
                               method="POST", status="201"), 9)
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/api/v1/projects",
                               method="POST", status="201"), 1)
        self.assertEqual(value(m, "scheduler0_api_requests_total",
                               route="/api/monitoring/scheduler/health", method="GET",
                               status="401"), 1)
        self.assertIsNone(value(m, "scheduler0_api_requests_total", route="/metrics",
                                method="GET", status="200"))
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/metrics",
                               method="GET", status="200"), 1)
        self.assertEqual(value(m, "scheduler0_api_requests_total",
                               route="/api/monitoring/scheduler/health", method="GET",
                               status="200"), 1)
        # process metrics
        self.assertGreater(value(m, "process_resident_memory_bytes"), 0)
        self.assertIsNotNone(value(m, "process_cpu_seconds_total"))
        self.assertIn("python_info", {name for name, _ in m})
        # halting shows
        h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(value(scrape(h), "scheduler0_scheduler_halted"), 1)

    def test_one_duration_per_post_and_one_lateness_per_occurrence(self) -> None:
        """Three jobs on one URL go in one POST: the callback-duration histogram counts
        POSTs, the lateness histogram and the outcome counter count occurrences."""
        h = Ops(self)
        p = h.project()
        for _ in range(3):
            h.job(p, GOOD + "/same")
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        self.assertEqual(len(post.ids()), 3)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 3)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 0)
        h.clock.advance(0.5)
        post.answer(200)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 1)
        self.assertAlmostEqual(value(m, "scheduler0_callback_duration_seconds_sum"), 0.5)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 3)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 3)

    def test_lateness_of_a_catch_up(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.ok("POST", "/api/supervisor/halt")
        h.clock.advance(90)
        h.ok("POST", "/api/supervisor/restart")          # 16:01:00 caught up 30 s late
        h.answer(GOOD, 200)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 1)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_sum"), 30)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_bucket", le="10.0"),
                         0)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_bucket", le="30.0"),
                         1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 1)
