"""
End to end, what an operator watches and what protects the node on a real C{twistd
scheduler0} node (issue 4): the per-client rate limit (429, C{Retry-After}, the envelope,
counted by route and status) and C{/metrics} in the Prometheus text format, naming no
callback target.
"""

from __future__ import annotations

from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from .daemon import Daemon, sleep
from .operability import (
    EVERY_SECOND,
    FAST,
    HEALTH,
    OperabilityTestCase,
    call,
    job,
    reactor,
    target_of,
)
from .receiver import Receiver


class LimitsAndMetricsTests(OperabilityTestCase):
    async def test_rate_limit_answers_429_with_retry_after(self) -> None:
        node = Daemon(self, {**FAST, "RateLimitPerMinute": 5})
        await node.start()
        # a client address of its own (127.0.0.2 reaches the node on 127.0.0.1), so the
        # fixture's healthcheck polls do not spend its budget
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        other = HTTPClient(Agent(reactor, pool=pool, bindAddress=("127.0.0.2", 0)))
        peer = node.peer_headers()
        # the probes (healthcheck, /metrics) are not counted: five API calls spend the budget
        paths = ["/api/v1/healthcheck", HEALTH, "/api/v1/projects", "/metrics", HEALTH,
                 "/api/v1/healthcheck", "/api/v1/projects", "/metrics", "/api/v1/projects"]
        for n, path in enumerate(paths, 1):
            answer = await call(other, node.base_url + path, headers=peer)
            self.assertEqual(answer.code, 200, f"request {n} ({path}): {answer.body[:200]!r}")
        sixth = await call(other, node.base_url + "/api/v1/projects", headers=peer)
        self.assertEqual(sixth.code, 429, sixth.body)
        retry_after = sixth.header("retry-after")
        self.assertIsNotNone(retry_after, sixth.headers)
        self.assertTrue(retry_after.isdigit() and 1 <= int(retry_after) <= 12, retry_after)
        envelope = sixth.json()
        self.assertEqual(set(envelope), {"success", "data"})
        self.assertIs(envelope["success"], False)
        self.assertIn("RateLimitPerMinute", envelope["data"])
        self.assertEqual(sixth.header("content-type"), "application/json")
        # the budget is per client: 127.0.0.1 still gets through
        answer = await call(node.http(), node.base_url + "/api/v1/projects", headers=peer)
        self.assertEqual(answer.code, 200)
        # and the refusal is counted by route and status
        samples = await call(node.http(), node.base_url + "/metrics")
        self.assertEqual(samples.code, 200)
        counted = self.metrics_samples(samples.body.decode())
        self.assertEqual(counted[("scheduler0_api_requests_total", frozenset({
            ("route", "/api/v1/projects"), ("method", "GET"), ("status", "429")}))], 1.0)

    async def test_metrics_in_prometheus_text(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        (created,) = await client.ok("POST", "/jobs", [job(pid, receiver.url, EVERY_SECOND)],
                                     expect=201)
        await receiver.wait_hits(2, job_id=created["id"], timeout=5)
        await sleep(0.2)
        answer = await call(node.http(), node.base_url + "/metrics")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        text = answer.body.decode()
        for name in ("# TYPE scheduler0_occurrences_total counter",
                     "# TYPE scheduler0_breakers gauge",
                     "# TYPE process_resident_memory_bytes gauge",
                     "# TYPE scheduler0_occurrence_lateness_seconds histogram",
                     "# TYPE scheduler0_callback_duration_seconds histogram"):
            self.assertIn(name, text)
        samples = self.metrics_samples(text)
        delivered = len(receiver.hits)
        self.assertGreaterEqual(samples[("scheduler0_occurrences_total",
                                         frozenset({("outcome", "succeeded")}))], 2)
        self.assertLessEqual(samples[("scheduler0_occurrences_total",
                                      frozenset({("outcome", "succeeded")}))], delivered)
        self.assertEqual(samples[("scheduler0_occurrences_total",
                                  frozenset({("outcome", "dead")}))], 0)
        self.assertEqual(samples[("scheduler0_breakers", frozenset({("state", "closed")}))],
                         1.0)
        self.assertEqual(samples[("scheduler0_breakers", frozenset({("state", "open")}))], 0.0)
        self.assertNotIn(target_of(receiver), text)  # no callback target, anywhere
        self.assertGreater(samples[("process_resident_memory_bytes", frozenset())], 10 * 2**20)
        self.assertGreaterEqual(samples[("scheduler0_occurrence_lateness_seconds_count",
                                         frozenset())], 2)
        self.assertGreaterEqual(samples[("scheduler0_callback_duration_seconds_count",
                                         frozenset())], 2)
        self.assertEqual(samples[("scheduler0_scheduler_halted", frozenset())], 0.0)
        self.assertEqual(samples[("scheduler0_api_requests_total", frozenset({
            ("route", "/api/v1/jobs"), ("method", "POST"), ("status", "201")}))], 1.0)
