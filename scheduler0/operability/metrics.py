"""
Prometheus metrics (PRODUCT §7): fires, lateness, failures, queue depth, breaker states, Raft.

Each L{Metrics} owns its own C{CollectorRegistry}, never prometheus-client's global one, so
tests and several nodes in one process do not collide.

Two kinds of numbers:
  - events (occurrence outcomes, lateness, callback durations, API requests) are counted as
    they happen, through the hook methods the executor and the API call;
  - state (queue depth, breakers, jobs planned, Raft) is read from the live objects at
    scrape time by the collector L{bind} registers, so it can never drift from the truth.

Label values come from bounded sets only (outcomes, normalised routes, known methods,
status codes, breaker states), so a scanner cannot make the series count grow without
bound. And none names a callback target, a job, a project or anything a request path held:
C{/metrics} may be open to anyone who reaches the API (C{MetricsAuth: none}), while
which receivers fail is per-tenant detail that belongs to the authenticated health API.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, PlatformCollector,
    ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.logger import Logger

from ..domain import DeliveryOutcome, Execution
from ..schedule.occurrence import host_of

log = Logger()

OUTCOMES = ("succeeded", "retrying", "dead", "failed")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    120.0, 300.0)
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# breaker state -> its badness, so a host's worst state is the max() over its breakers
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}

OTHER = "other"
ID = "{id}"
MAX_ROUTES = 256      # distinct route labels kept; any later new route is counted as 'other'
_MAX_SEGMENTS = 8
_PREFIXES = (("api", "v1"), ("api", "monitoring"), ("api", "supervisor"))
#: the literal words of the node's routes (tests check the API's against it): any other
#: segment of a path, a word or not, is a parameter (an id, a target URL's pieces, a typo)
#: and becomes {id}, so no label ever repeats a host, a callback path or a name
ROUTE_WORDS = frozenset({
    "breakers", "credentials", "dlq", "executions", "halt", "hanging", "health",
    "healthcheck", "jobs", "openapi.json", "pause", "projects", "reset", "resolve",
    "restart", "resume",
    "retry", "rotate", "run", "scheduler", "signing-secret", "state",
    # the cluster-management API
    "cluster", "list-nodes", "add-node", "remove-node", "add-self", "remove-self",
    "promote-node", "demote-node", "transfer-leadership", "force-rebuild", "reset-raft",
    "dump", "schedule-queue", "job-executions-cache", "job-queues", "job-queue-versions",
})

# Raft statistics (hashicorp-style, values are strings) exported as gauges when numeric
_RAFT_GAUGES = {
    "term": "Current Raft term.",
    "commit_index": "Highest log index known to be committed.",
    "applied_index": "Highest log index applied to the state machine.",
    "last_log_index": "Highest index in this node's log.",
    "fsm_pending": "Committed entries waiting to be applied.",
    "num_peers": "Other voting members this node knows.",
    "connected_peers": "Other voting members this node has a Raft connection with.",
}


def route_of(path: bytes) -> str:
    """
    The low-cardinality route label for a request path.

    Only paths under C{/api/v1/}, C{/api/monitoring/}, C{/api/supervisor/} and C{/metrics}
    keep their shape; in them a segment that is not one of the routes' words
    (L{ROUTE_WORDS}: numbers, execution ids like C{7-20261126T160500Z}, targets, a
    callback URL's host and path words, ...) becomes C{{id}}. Anything else (the bare
    prefixes included), or anything deeper than 8 segments, is C{other}. The query string
    is ignored.
    """
    text = path.split(b"?", 1)[0].decode("utf-8", "replace")
    segments = [s for s in text.split("/") if s]
    if segments == ["metrics"]:
        return "/metrics"
    if not 2 < len(segments) <= _MAX_SEGMENTS or tuple(segments[:2]) not in _PREFIXES:
        return OTHER
    shaped = segments[:2] + [s if s in ROUTE_WORDS else ID for s in segments[2:]]
    return "/" + "/".join(shaped)


class Metrics:
    """
    The node's metrics. The executor and the API call the hooks; L{bind} attaches the live
    objects read at scrape time; L{render} produces the C{/metrics} body.

    @param max_routes: distinct route labels kept for API requests; later new ones are
        counted as C{other} (the route shape is bounded, but unknown words under a known
        prefix are not).
    """

    def __init__(self, registry: CollectorRegistry | None = None,
                 max_routes: int = MAX_ROUTES) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._max_routes = max_routes
        self._routes: set[str] = set()
        self._bound: _StateCollector | None = None
        self._occurrences = Counter(
            "scheduler0_occurrences", "Occurrence attempts finished, by outcome.",
            ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self._occurrences.labels(outcome)  # present as 0 before the first one
        self._lateness = Histogram(
            "scheduler0_occurrence_lateness_seconds",
            "Seconds between an occurrence's scheduled time and its first delivery attempt.",
            buckets=LATENESS_BUCKETS, registry=self.registry)
        self._callback = Histogram(
            "scheduler0_callback_duration_seconds",
            "Seconds a callback POST took, from send to response or error.",
            buckets=CALLBACK_BUCKETS, registry=self.registry)
        self._requests = Counter(
            "scheduler0_api_requests", "HTTP API requests answered.",
            ["route", "method", "status"], registry=self.registry)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    # -- event hooks --------------------------------------------------------------------

    def occurrence_finished(self, outcome: str, count: int = 1) -> None:
        """Count C{count} occurrences that ended an attempt with C{outcome} (one of
        L{OUTCOMES}). An unknown outcome is logged and dropped: metrics must never break
        the delivery they measure."""
        if outcome not in OUTCOMES:
            log.warn("metrics: unknown occurrence outcome {outcome!r} ignored", outcome=outcome)
            return
        if count > 0:
            self._occurrences.labels(outcome).inc(count)

    def observe_lateness(self, seconds: float) -> None:
        """Record a first attempt's lateness. An early start counts as 0 so the histogram's
        sum stays monotonic, as Prometheus' rate() expects."""
        self._lateness.observe(max(0.0, seconds))

    def observe_first_attempts(self, lateness: list[float]) -> None:
        """The lateness of first attempts as a POST starts (the executor's hook)."""
        for seconds in lateness:
            self._lateness.observe(max(0.0, seconds))

    def observe_callback_duration(self, seconds: float) -> None:
        self._callback.observe(max(0.0, seconds))

    def api_request(self, route: str, method: str, status: int) -> None:
        """Count an answered request. C{route} should come from L{route_of}; methods outside
        the standard set and routes past C{max_routes} are counted as C{other}."""
        if route not in self._routes:
            if len(self._routes) >= self._max_routes:
                route = OTHER
            else:
                self._routes.add(route)
        method = method.upper() if method.upper() in METHODS else OTHER
        self._requests.labels(route, method, str(int(status))).inc()

    # -- state read at scrape time -------------------------------------------------------

    def bind(self, scheduler: Any, executor: Any, dead_letters: Callable[[], int],
             raft_state: Callable[[], dict] | None = None) -> None:
        """
        Read these at every scrape (binding again replaces the previous binding):

          - C{scheduler0_queue_depth}: occurrences waiting in the executor's queues;
          - C{scheduler0_retries_waiting}: occurrences waiting out a retry backoff;
          - C{scheduler0_due_within_12s}: jobs whose next fire is within 12 s;
          - C{scheduler0_dead_letters}: C{dead_letters()}, occurrences in state dead;
          - C{scheduler0_executions_in_flight}: callback POSTs in flight;
          - C{scheduler0_breakers{state}}: how many callback hosts (C{scheme://host:port})
            are in each state, a host's state being the worst of its own breaker and its
            endpoints' (all three states always present); which hosts is per-tenant detail
            that only the authenticated health API shows, so no series names one;
          - C{scheduler0_endpoint_breakers_not_closed}: endpoints whose own breaker is open
            or half_open;
          - C{scheduler0_jobs_planned} and C{scheduler0_jobs_pending} (planned with a next
            fire), C{scheduler0_scheduler_halted} (1 or 0);
          - C{scheduler0_occurrences_skipped_total{reason}}: occurrences a misfire policy did
            not run (C{late} or C{downtime});
          - with C{raft_state} (the command log's C{status()}): C{scheduler0_raft_is_leader}
            and C{scheduler0_raft_<term|commit_index|applied_index|last_log_index|
            fsm_pending|num_peers>} for those that are present and numeric.

        A reader that raises is logged and its metric left out of that scrape, so one broken
        reading does not fail the whole scrape.
        """
        if self._bound is not None:
            self.registry.unregister(self._bound)
        self._bound = _StateCollector(scheduler, executor, dead_letters, raft_state)
        self.registry.register(self._bound)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type (the classic text format, which is
        what C{generate_latest} writes and every Prometheus version reads)."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


class _StateCollector:
    """A custom collector: reads the live objects each time the registry is collected."""

    def __init__(self, scheduler: Any, executor: Any, dead_letters: Callable[[], int],
                 raft_state: Callable[[], dict] | None) -> None:
        self._scheduler = scheduler
        self._executor = executor
        self._dead_letters = dead_letters
        self._raft_state = raft_state

    def collect(self) -> Iterator[Metric]:
        readers: list[Callable[[], Iterable[Metric]]] = [
            lambda: [_gauge("scheduler0_queue_depth",
                            "Occurrences queued in the executor, not yet sent.",
                            self._executor.queued())],
            lambda: [_gauge("scheduler0_retries_waiting",
                            "Occurrences waiting out a retry backoff before they queue again.",
                            self._executor.retry_waiting())],
            lambda: [_gauge("scheduler0_due_within_12s",
                            "Jobs whose next fire is within 12 seconds.",
                            self._scheduler.due_within(12))],
            lambda: [_gauge("scheduler0_dead_letters",
                            "Occurrences in the dead-letter queue (state dead).",
                            self._dead_letters())],
            lambda: [_gauge("scheduler0_executions_in_flight",
                            "Callback POSTs sent and not yet answered.",
                            self._executor.in_flight)],
            self._breakers,
            lambda: [_gauge("scheduler0_jobs_planned", "Jobs the scheduler has a plan for.",
                            len(self._scheduler.plans))],
            lambda: [_gauge("scheduler0_jobs_pending", "Planned jobs that have a next fire.",
                            self._scheduler.pending())],
            lambda: [_gauge("scheduler0_scheduler_halted",
                            "1 while the scheduler is halted by the supervisor, else 0.",
                            1 if self._scheduler.halted else 0)],
            self._skipped,
        ]
        if self._raft_state is not None:
            readers.append(self._raft)
        for read in readers:
            try:
                metrics = list(read())
            except Exception:
                log.failure("metrics: a reading failed; left out of this scrape")
                continue
            yield from metrics

    def _skipped(self) -> Iterable[Metric]:
        skipped = CounterMetricFamily(
            "scheduler0_occurrences_skipped",
            "Occurrences not run by their job's misfire policy, by reason: late (the scheduler "
            "ran more than 1 s behind) or downtime (due while the node was down or halted).",
            labels=["reason"])
        for reason, count in sorted(self._scheduler.skipped.items()):
            skipped.add_metric([reason], count)
        return [skipped]

    def _breakers(self) -> Iterable[Metric]:
        # Counted per host, each in the worst state among its own breaker and its
        # endpoints'. No series per host or endpoint: the hosts a node calls are its
        # tenants' business, and /metrics may be unauthenticated.
        worst: dict[str, int] = dict.fromkeys(getattr(self._executor, "targets", ()), 0)
        for breaker in self._executor.breakers:
            host = host_of(breaker.target)
            value = BREAKER_VALUES[breaker.state.value]
            if value >= worst.get(host, 0):
                worst[host] = value
        counts = dict.fromkeys(BREAKER_VALUES, 0)
        names = {value: state for state, value in BREAKER_VALUES.items()}
        for value in worst.values():
            counts[names[value]] += 1
        by_state = GaugeMetricFamily(
            "scheduler0_breakers", "Callback targets whose worst breaker is in each state.",
            labels=["state"])
        for state, count in counts.items():
            by_state.add_metric([state], count)
        open_endpoints = sum(1 for b in self._executor.breakers
                             if b.state.value != "closed" and host_of(b.target) != b.target)
        return [by_state,
                _gauge("scheduler0_endpoint_breakers_not_closed",
                       "Callback endpoints whose own breaker is open or half_open.",
                       open_endpoints)]

    def _raft(self) -> Iterable[Metric]:
        assert self._raft_state is not None
        stats = self._raft_state()
        leader = str(stats.get("state", "")).lower() == "leader"
        yield _gauge("scheduler0_raft_is_leader", "1 if this node is the Raft leader, else 0.",
                     1 if leader else 0)
        for key, documentation in _RAFT_GAUGES.items():
            try:
                value = float(stats[key])
            except (KeyError, TypeError, ValueError):
                continue
            yield _gauge(f"scheduler0_raft_{key}", documentation, value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


_FINISHED = frozenset(OUTCOMES)


def record_observer(metrics: "Metrics") -> Callable[[list[Execution]], None]:
    """Feed execution records (as the recorder queues them) into the metrics: outcomes and
    callback durations. The executor records one POST's outcomes per call, and they share
    its duration: it is observed once per POST, not once per occurrence in it."""

    def observe(records: list[Execution]) -> None:
        outcomes: dict[str, int] = {}
        durations = set()
        for record in records:
            state = record.state
            if state in _FINISHED:
                outcomes[state] = outcomes.get(state, 0) + 1
                duration = record.duration_ms
                if duration is not None:
                    durations.add(duration)
        for duration in durations:
            metrics.observe_callback_duration(duration / 1000)
        for state, count in outcomes.items():
            metrics.occurrence_finished(state, count)

    return observe


def outcome_observer(metrics: "Metrics") -> Callable[[DeliveryOutcome, int], None]:
    """Feed each POST's outcome (as the recorder queues it) into the metrics: how its
    C{occurrences} ended, and its duration, once per POST."""

    def observe(outcome: DeliveryOutcome, occurrences: int) -> None:
        metrics.observe_callback_duration(outcome.duration_ms / 1000)
        dead = len(outcome.dead)
        if outcome.state in _FINISHED and occurrences > dead:
            metrics.occurrence_finished(outcome.state, occurrences - dead)
        if dead:
            metrics.occurrence_finished("dead", dead)

    return observe
