"""Tests for scheduler0.operability.metrics: hooks, scrape-time readings, route labels."""

from __future__ import annotations

import base64
from typing import Any

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from treq.testing import StubTreq

from scheduler0.api.app import Api
from scheduler0.execution.breaker import BreakerState
from scheduler0.operability.metrics import ROUTE_WORDS, Metrics, route_of

from .harness import PEER_PASSWORD, PEER_USER, ApiHarness


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render and parse: {(sample name, sorted labels): value}."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain"), content_type
    samples = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


@attrs.define
class FakeBreaker:
    target: str
    state: BreakerState


@attrs.define
class FakeExecutor:
    queue: int = 0
    in_flight: int = 0
    breakers: list[FakeBreaker] = attrs.Factory(list)
    waiting: int = 0

    def queued(self) -> int:
        return self.queue

    def retry_waiting(self) -> int:
        return self.waiting


@attrs.define
class FakeScheduler:
    plans: dict[int, Any] = attrs.Factory(dict)
    halted: bool = False
    due: dict[float, int] = attrs.Factory(dict)
    next_fires: int = 0
    skipped: dict[str, int] = attrs.Factory(lambda: {"late": 0, "downtime": 0})

    def due_within(self, seconds: float) -> int:
        return self.due.get(seconds, -1)  # -1: asked about another horizon than 12 s

    def pending(self) -> int:
        return self.next_fires


class HookTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.metrics = Metrics()

    def test_own_registry(self) -> None:
        """Each instance has its own registry, so two never share a count."""
        other = Metrics()
        self.assertIsNot(self.metrics.registry, other.registry)
        self.metrics.occurrence_finished("succeeded")
        self.assertEqual(
            value(scrape(other), "scheduler0_occurrences_total", outcome="succeeded"), 0.0)
        given = CollectorRegistry()
        self.assertIs(Metrics(given).registry, given)

    def test_occurrences_by_outcome(self) -> None:
        before = scrape(self.metrics)
        for outcome in ("succeeded", "retrying", "dead", "failed"):
            self.assertEqual(value(before, "scheduler0_occurrences_total", outcome=outcome),
                             0.0)
        self.metrics.occurrence_finished("succeeded", 3)
        self.metrics.occurrence_finished("succeeded")
        self.metrics.occurrence_finished("dead", 2)
        after = scrape(self.metrics)
        self.assertEqual(value(after, "scheduler0_occurrences_total", outcome="succeeded"), 4.0)
        self.assertEqual(value(after, "scheduler0_occurrences_total", outcome="dead"), 2.0)
        self.assertEqual(value(after, "scheduler0_occurrences_total", outcome="retrying"), 0.0)
        self.assertEqual(value(after, "scheduler0_occurrences_total", outcome="failed"), 0.0)

    def test_unknown_outcome_dropped(self) -> None:
        """A typo in a caller is logged, never raised into the executor, never a series."""
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.metrics.occurrence_finished("exploded")
        samples = scrape(self.metrics)
        self.assertIsNone(value(samples, "scheduler0_occurrences_total", outcome="exploded"))
        self.assertTrue(any(e.get("outcome") == "exploded" for e in events))

    def test_lateness_histogram(self) -> None:
        self.metrics.observe_lateness(0.02)
        self.metrics.observe_lateness(4.0)
        self.metrics.observe_lateness(-1.0)  # started early: counts as on time
        samples = scrape(self.metrics)
        name = "scheduler0_occurrence_lateness_seconds"
        self.assertEqual(value(samples, name + "_count"), 3.0)
        self.assertAlmostEqual(value(samples, name + "_sum"), 4.02)
        self.assertEqual(value(samples, name + "_bucket", le="0.01"), 1.0)
        self.assertEqual(value(samples, name + "_bucket", le="0.025"), 2.0)
        self.assertEqual(value(samples, name + "_bucket", le="2.5"), 2.0)
        self.assertEqual(value(samples, name + "_bucket", le="5.0"), 3.0)
        self.assertEqual(value(samples, name + "_bucket", le="300.0"), 3.0)
        self.assertEqual(value(samples, name + "_bucket", le="+Inf"), 3.0)

    def test_callback_duration_histogram(self) -> None:
        self.metrics.observe_callback_duration(0.004)
        self.metrics.observe_callback_duration(45.0)
        samples = scrape(self.metrics)
        name = "scheduler0_callback_duration_seconds"
        self.assertEqual(value(samples, name + "_count"), 2.0)
        self.assertEqual(value(samples, name + "_bucket", le="0.005"), 1.0)
        self.assertEqual(value(samples, name + "_bucket", le="30.0"), 1.0)
        self.assertEqual(value(samples, name + "_bucket", le="60.0"), 2.0)
        self.assertAlmostEqual(value(samples, name + "_sum"), 45.004)

    def test_api_requests(self) -> None:
        route = route_of(b"/api/v1/jobs/17")
        self.metrics.api_request(route, "GET", 200)
        self.metrics.api_request(route, "get", 200)
        self.metrics.api_request(route_of(b"/api/v1/jobs/18"), "DELETE", 404)
        self.metrics.api_request(route_of(b"/wp-login.php"), "BREW", 429)
        samples = scrape(self.metrics)
        name = "scheduler0_api_requests_total"
        self.assertEqual(value(samples, name, route="/api/v1/jobs/{id}", method="GET",
                               status="200"), 2.0)
        self.assertEqual(value(samples, name, route="/api/v1/jobs/{id}", method="DELETE",
                               status="404"), 1.0)
        self.assertEqual(value(samples, name, route="other", method="other", status="429"),
                         1.0)

    def test_route_labels_capped(self) -> None:
        """Routes' words in shapes no route has still make distinct labels; past
        max_routes they are 'other', so the series count stays bounded whatever a scanner
        sends."""
        metrics = Metrics(max_routes=3)
        for word in ("jobs/run", "run/jobs", "pause/pause", "dlq/halt", "rotate"):
            metrics.api_request(route_of(b"/api/v1/" + word.encode()), "GET", 404)
        metrics.api_request(route_of(b"/api/v1/jobs/run"), "GET", 404)  # already known
        samples = scrape(metrics)
        routes = {dict(labels)["route"]: v for (name, labels), v in samples.items()
                  if name == "scheduler0_api_requests_total"}
        self.assertEqual(routes, {"/api/v1/jobs/run": 2.0, "/api/v1/run/jobs": 1.0,
                                  "/api/v1/pause/pause": 1.0, "other": 2.0})

    def test_process_metrics(self) -> None:
        samples = scrape(self.metrics)
        self.assertGreater(value(samples, "process_resident_memory_bytes"), 0)
        self.assertIn("python_info", names(samples))


class BoundCollectorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.metrics = Metrics()
        self.scheduler = FakeScheduler(plans={1: object(), 2: object(), 3: object()},
                                       due={12: 2}, next_fires=3)
        self.executor = FakeExecutor(queue=5, in_flight=2, breakers=[
            FakeBreaker("http://a:80", BreakerState.CLOSED),
            FakeBreaker("http://b:80", BreakerState.OPEN)])
        self.dead = 7
        self.raft: dict[str, str] = {"state": "Leader", "term": "4", "commit_index": "99",
                                     "applied_index": "98", "last_log_index": "100",
                                     "fsm_pending": "1", "num_peers": "2"}

    def bind(self, raft: bool = True) -> None:
        self.metrics.bind(self.scheduler, self.executor, lambda: self.dead,
                          (lambda: self.raft) if raft else None)

    def test_unbound_has_no_state(self) -> None:
        self.assertNotIn("scheduler0_queue_depth", names(scrape(self.metrics)))

    def test_reads_live_values_each_scrape(self) -> None:
        self.bind()
        first = scrape(self.metrics)
        self.assertEqual(value(first, "scheduler0_queue_depth"), 5.0)
        self.assertEqual(value(first, "scheduler0_retries_waiting"), 0.0)
        self.assertEqual(value(first, "scheduler0_due_within_12s"), 2.0)
        self.assertEqual(value(first, "scheduler0_dead_letters"), 7.0)
        self.assertEqual(value(first, "scheduler0_executions_in_flight"), 2.0)
        self.assertEqual(value(first, "scheduler0_jobs_planned"), 3.0)
        self.assertEqual(value(first, "scheduler0_jobs_pending"), 3.0)
        self.assertEqual(value(first, "scheduler0_scheduler_halted"), 0.0)

        self.executor.queue, self.executor.in_flight = 40, 0
        self.executor.waiting = 6
        self.scheduler.due[12] = 9
        self.scheduler.plans.pop(1)
        self.scheduler.next_fires = 1
        self.scheduler.halted = True
        self.dead = 11
        second = scrape(self.metrics)
        self.assertEqual(value(second, "scheduler0_queue_depth"), 40.0)
        self.assertEqual(value(second, "scheduler0_retries_waiting"), 6.0)
        self.assertEqual(value(second, "scheduler0_due_within_12s"), 9.0)
        self.assertEqual(value(second, "scheduler0_dead_letters"), 11.0)
        self.assertEqual(value(second, "scheduler0_executions_in_flight"), 0.0)
        self.assertEqual(value(second, "scheduler0_jobs_planned"), 2.0)
        self.assertEqual(value(second, "scheduler0_jobs_pending"), 1.0)
        self.assertEqual(value(second, "scheduler0_scheduler_halted"), 1.0)

    def test_skipped_occurrences_by_reason(self) -> None:
        """Occurrences a misfire policy did not run are a counter a user can alert on."""
        self.bind()
        first = scrape(self.metrics)
        self.assertEqual(value(first, "scheduler0_occurrences_skipped_total", reason="late"), 0.0)
        self.scheduler.skipped.update(late=120, downtime=3)
        second = scrape(self.metrics)
        self.assertEqual(value(second, "scheduler0_occurrences_skipped_total", reason="late"),
                         120.0)
        self.assertEqual(
            value(second, "scheduler0_occurrences_skipped_total", reason="downtime"), 3.0)

    def test_breakers(self) -> None:
        """Hosts counted by their worst breaker state (the host's own or an endpoint's)."""
        self.executor.breakers.append(FakeBreaker("http://a:80/hook", BreakerState.HALF_OPEN))
        self.bind()
        first = scrape(self.metrics)
        self.assertEqual(value(first, "scheduler0_breakers", state="closed"), 0.0)
        self.assertEqual(value(first, "scheduler0_breakers", state="half_open"), 1.0)
        self.assertEqual(value(first, "scheduler0_breakers", state="open"), 1.0)
        self.assertEqual(value(first, "scheduler0_endpoint_breakers_not_closed"), 1.0)

        self.executor.breakers[1].state = BreakerState.HALF_OPEN
        self.executor.breakers[2].state = BreakerState.CLOSED
        self.executor.breakers.append(FakeBreaker("https://c:443", BreakerState.OPEN))
        second = scrape(self.metrics)
        self.assertEqual(value(second, "scheduler0_breakers", state="half_open"), 1.0)
        self.assertEqual(value(second, "scheduler0_breakers", state="open"), 1.0)
        self.assertEqual(value(second, "scheduler0_breakers", state="closed"), 1.0)
        self.assertEqual(value(second, "scheduler0_endpoint_breakers_not_closed"), 0.0)

    def test_no_callback_target_in_any_series(self) -> None:
        """Issue 10 item 6: an anonymous /metrics caller learns no tenant's callback
        targets, whatever state their breakers are in: no label names a target, and no host
        appears anywhere in the body."""
        self.executor.breakers += [
            FakeBreaker("https://billing.internal.example:8443/hooks/invoices",
                        BreakerState.OPEN),
            FakeBreaker("http://10.1.2.3:80", BreakerState.HALF_OPEN)]
        self.bind()
        body = self.metrics.render()[0].decode()
        for host in ("billing.internal.example", "10.1.2.3", "http://a:80", "http://b:80"):
            self.assertNotIn(host, body)
        labels = {name for (_, sample_labels) in scrape(self.metrics)
                  for name, _ in sample_labels}
        self.assertFalse(labels & {"target", "host", "endpoint", "url", "instance"}, labels)

    def test_raft(self) -> None:
        self.bind()
        first = scrape(self.metrics)
        self.assertEqual(value(first, "scheduler0_raft_is_leader"), 1.0)
        self.assertEqual(value(first, "scheduler0_raft_term"), 4.0)
        self.assertEqual(value(first, "scheduler0_raft_commit_index"), 99.0)
        self.assertEqual(value(first, "scheduler0_raft_applied_index"), 98.0)
        self.assertEqual(value(first, "scheduler0_raft_last_log_index"), 100.0)
        self.assertEqual(value(first, "scheduler0_raft_fsm_pending"), 1.0)
        self.assertEqual(value(first, "scheduler0_raft_num_peers"), 2.0)

        self.raft = {"state": "Follower", "term": "5", "commit_index": "unknown"}
        second = scrape(self.metrics)
        self.assertEqual(value(second, "scheduler0_raft_is_leader"), 0.0)
        self.assertEqual(value(second, "scheduler0_raft_term"), 5.0)
        self.assertNotIn("scheduler0_raft_commit_index", names(second))

    def test_no_raft(self) -> None:
        self.bind(raft=False)
        samples = scrape(self.metrics)
        self.assertFalse({n for n in names(samples) if n.startswith("scheduler0_raft")})
        self.assertEqual(value(samples, "scheduler0_queue_depth"), 5.0)

    def test_failing_reader(self) -> None:
        """One broken reading is left out; the rest of the scrape still works."""
        def broken() -> int:
            raise RuntimeError("database is locked")

        self.metrics.bind(self.scheduler, self.executor, broken)
        samples = scrape(self.metrics)
        self.assertNotIn("scheduler0_dead_letters", names(samples))
        self.assertEqual(value(samples, "scheduler0_queue_depth"), 5.0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_rebind_replaces(self) -> None:
        self.bind()
        self.metrics.bind(self.scheduler, FakeExecutor(queue=1), lambda: 0)
        samples = scrape(self.metrics)
        self.assertEqual(value(samples, "scheduler0_queue_depth"), 1.0)
        self.assertNotIn("scheduler0_raft_is_leader", names(samples))


class RouteOfTests(SynchronousTestCase):
    def test_shapes(self) -> None:
        cases = {
            b"/api/v1/jobs": "/api/v1/jobs",
            b"/api/v1/jobs/": "/api/v1/jobs",
            b"/api/v1/jobs/17": "/api/v1/jobs/{id}",
            b"/api/v1/jobs/17/executions": "/api/v1/jobs/{id}/executions",
            b"/api/v1/jobs/17/executions?limit=5": "/api/v1/jobs/{id}/executions",
            b"/api/v1/executions/7-20261126T160500Z": "/api/v1/executions/{id}",
            b"/api/v1/executions/7-20261126T160500.250Z": "/api/v1/executions/{id}",
            b"/api/v1/projects/3/signing-secret/rotate":
                "/api/v1/projects/{id}/signing-secret/rotate",
            b"/api/v1/healthcheck": "/api/v1/healthcheck",
            b"/api/monitoring/scheduler/health": "/api/monitoring/scheduler/health",
            b"/api/monitoring/breakers/http%3A%2F%2Fa%3A80/reset":
                "/api/monitoring/breakers/{id}/reset",
            b"/api/supervisor/state": "/api/supervisor/state",
            b"/metrics": "/metrics",
            b"/metrics?x=1": "/metrics",
        }
        for path, route in cases.items():
            self.assertEqual(route_of(path), route, path)

    def test_cardinality_protection(self) -> None:
        cases = [
            b"/", b"", b"/wp-login.php", b"/admin", b"/api", b"/api/v2/jobs",
            b"/api/v1", b"/metrics/extra", b"/.env", b"/api/other/thing",
            b"/api/v1/" + b"/".join([b"a"] * 9),
        ]
        for path in cases:
            self.assertEqual(route_of(path), "other", path)
        # anything that is not a plain word collapses, whatever its bytes
        self.assertEqual(route_of(b"/api/v1/jobs/\xff\xfe"), "/api/v1/jobs/{id}")
        self.assertEqual(route_of(b"/api/v1/jobs/../../etc"), "/api/v1/jobs/{id}/{id}/{id}")
        self.assertEqual(route_of(b"/api/v1/" + b"x" * 500), "/api/v1/{id}")
        distinct = {route_of(b"/api/v1/jobs/%d" % n) for n in range(1000)}
        distinct |= {route_of(b"/scan/%d/x" % n) for n in range(1000)}
        self.assertEqual(distinct, {"/api/v1/jobs/{id}", "other"})

    def test_no_target_or_name_in_route_labels(self) -> None:
        """Issue 10 item 6: a callback URL given as a monitoring target, unencoded, leaves
        none of its host or path words in the label (they used to, being plain words)."""
        cases = {
            b"/api/monitoring/dlq/http://127.0.0.1:9/billing-webhook/retry":
                "/api/monitoring/dlq/{id}/{id}/{id}/retry",
            b"/api/monitoring/breakers/https://hooks/invoices/reset":
                "/api/monitoring/breakers/{id}/{id}/{id}/reset",
            b"/api/monitoring/dlq/payroll": "/api/monitoring/dlq/{id}",
            b"/api/v1/projects/acme-secret-project": "/api/v1/projects/{id}",
        }
        for path, route in cases.items():
            self.assertEqual(route_of(path), route, path)

    def test_route_words_are_the_api_routes_words(self) -> None:
        """Every literal word of the API's routes keeps its place in a label (a new route
        must add its words to ROUTE_WORDS, or its requests would all count as {id})."""
        # the dashboard's files (/ui/) are no API route: their requests count as "other"
        words = {segment for rule in Api.app.url_map.iter_rules()
                 if rule.rule.split("/")[1] != "ui"
                 for segment in rule.rule.split("/") if segment and "<" not in segment}
        self.assertEqual(ROUTE_WORDS | {"api", "v1", "monitoring", "supervisor", "metrics"},
                         words)


class MetricsAuthTests(SynchronousTestCase):
    """C{MetricsAuth}: none leaves /metrics open (it shows no target anyway); basic wants
    the node's AuthUsername/AuthPassword, which is what Prometheus' basic_auth sends."""

    def stub(self, metrics_auth: str) -> StubTreq:
        return ApiHarness(self, metrics_auth=metrics_auth).stub

    def get(self, stub: StubTreq, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        d = stub.get("http://node.test/metrics", headers=headers)
        stub.flush()
        response = self.successResultOf(d)
        return response.code, response.headers, self.successResultOf(response.content())

    def test_none_answers_anyone(self) -> None:
        code, _, body = self.get(self.stub("none"), {})
        self.assertEqual(code, 200)
        self.assertIn(b"scheduler0_occurrences_total", body)

    def test_basic_wants_the_node_credentials(self) -> None:
        stub = self.stub("basic")
        right = basic(PEER_USER, PEER_PASSWORD)
        for headers in ({}, {"Authorization": basic(PEER_USER, "wrong")},
                        {"Authorization": basic("other", PEER_PASSWORD)},
                        {"Authorization": "Bearer key:secret"},
                        {"Authorization": "Basic %%%"},
                        {"x-api-key": "k", "x-secret-key": "s"}):
            code, response_headers, body = self.get(stub, headers)
            self.assertEqual(code, 401, headers)
            self.assertNotIn(b"scheduler0_", body)
            self.assertEqual(response_headers.getRawHeaders("www-authenticate"),
                             ['Basic realm="scheduler0 metrics"'])
        for headers in ({"Authorization": right}, {"Authorization": right, "X-Peer": "cmd"}):
            code, _, body = self.get(stub, headers)
            self.assertEqual(code, 200, headers)
            self.assertIn(b"scheduler0_occurrences_total", body)
