"""
The scheduler health snapshot (seed "Scheduler Health API", PRODUCT §7).

An "instance" is a callback endpoint as the breakers see it (L{endpoint_of}: the callback
URL as C{scheme://host:port/path?query}, without user info), of type C{http} (the
execution type). Its poll status is what the executor saw on its last deliveries to it,
its breaker is the endpoint's circuit breaker (or its host's, while the host's is not
closed: that is what holds it then; C{scope} says which), and its dead letter is the
summary of its executions in state C{dead}. At most L{MAX_INSTANCES} are listed, failing
ones first: breaker not closed, then a failure streak, then dead letters, then the rest,
each group by endpoint. Field names, types and meanings are the seed's, so its C{jq}
queries work as they are.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable

from ..domain import DeadLetterSummary
from ..schedule.occurrence import endpoint_of, host_of
from ..timestamps import format_time, from_seconds

EXECUTION_TYPE = "http"
DUE_WINDOW = 12
MAX_TASKS = 25
#: most instances (endpoints) listed
MAX_INSTANCES = 100

_UNKNOWN = {"state": "unknown", "since": None, "lastTransition": None, "retryAt": None,
            "failureCount": 0}
_CLOSED = {**_UNKNOWN, "state": "closed"}


def _time(seconds: float | None) -> str | None:
    return format_time(from_seconds(seconds)) if seconds is not None else None


def staleness_score(now: float, last_success: float | None, first_seen: float | None,
                    interval: float | None) -> float:
    """
    0 while the target had a success within 1.5 of its jobs' shortest interval; rising
    linearly to 1 at 5 intervals without one. A target never attempted scores 0.
    """
    reference = last_success if last_success is not None else first_seen
    if reference is None or not interval:
        return 0.0
    age = now - reference
    score = (age - 1.5 * interval) / (3.5 * interval)
    return round(min(1.0, max(0.0, score)), 3)


class HealthReport:
    """
    @param dead_letters: the L{OperationsReader} (a callable returning it).
    @param enabled: whether the scheduler takes occurrences (False while halted, and on a
        cluster follower).
    @param role: in a cluster, this node's part (C{role}: leader or follower,
        C{executing}); the snapshot then says it. None on a single node.
    """

    def __init__(self, clock: Any, scheduler: Any, executor: Any,
                 dead_letters: Callable[[], Any], enabled: Callable[[], bool],
                 max_instances: int = MAX_INSTANCES, role: Any = None) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._executor = executor
        self._reads = dead_letters
        self._enabled = enabled
        self._max_instances = max_instances
        self._role = role

    def endpoint_of_job(self, job_id: int, fallback: str) -> str:
        """The endpoint a job's callbacks go to (C{fallback} if the job is unknown)."""
        plan = self._scheduler.plans.get(job_id)
        return endpoint_of(plan.callback_url) if plan is not None else fallback

    def dead_letters_by_endpoint(self) -> dict[str, DeadLetterSummary]:
        """The dead-letter summary per endpoint: those of the jobs calling it, added up."""
        merged: dict[str, DeadLetterSummary] = {}
        for (job_id, target), summary in self._reads().dead_letters_by_job().items():
            endpoint = self.endpoint_of_job(job_id, target)
            known = merged.get(endpoint)
            merged[endpoint] = summary if known is None else known.merged(summary)
        return merged

    def breaker_view(self, endpoint: str) -> dict[str, Any]:
        """The breaker that decides whether C{endpoint} gets requests: its host's while
        that is not closed, else its own; C{scope} says which."""
        breakers = self._executor.breakers
        host = breakers.find(host_of(endpoint))
        if host is not None and host.state.value != "closed":
            return {**host.snapshot(), "scope": "host"}
        own = breakers.find(endpoint)
        if own is not None:
            return {**own.snapshot(), "scope": "endpoint"}
        if endpoint in self._executor.endpoints or host is not None:
            return {**_CLOSED, "scope": "endpoint"}
        return {**_UNKNOWN, "scope": "endpoint"}

    def snapshot(self) -> dict[str, Any]:
        now = self._clock.seconds()
        reads = self._reads()
        executor = self._executor
        depth = executor.queued()
        dead = self.dead_letters_by_endpoint()
        statuses = executor.endpoints
        known = set(statuses) | set(dead)
        held_hosts, held_endpoints = set(), set()
        for breaker in executor.breakers:
            if breaker.scope == "endpoint":
                known.add(breaker.target)
            if breaker.state.value != "closed":
                (held_hosts if breaker.scope == "host" else held_endpoints).add(breaker.target)

        # one per job at worst: rank the failing ones, fill up with the first of the rest
        rank: dict[str, int] = dict.fromkeys(held_endpoints, 0)
        if held_hosts:
            rank.update((e, 0) for e in known if host_of(e) in held_hosts)
        for endpoint, status in statuses.items():
            if status.consecutive_failures and endpoint not in rank:
                rank[endpoint] = 1
        for endpoint in dead:
            rank.setdefault(endpoint, 2)
        shown = sorted(rank, key=lambda e: (rank[e], e))[:self._max_instances]
        if len(shown) < self._max_instances:
            shown += heapq.nsmallest(self._max_instances - len(shown),
                                     (e for e in known if e not in rank))
        views = {endpoint: self.breaker_view(endpoint) for endpoint in shown}
        intervals = self._intervals_by_endpoint(set(shown))
        instances, breakers, staleness = [], [], []
        for endpoint in shown:
            status = statuses.get(endpoint)
            snap = views[endpoint]
            last_success = status.last_success if status else None
            last_error_at = status.last_error_at if status else None
            poll = {
                "lastSuccess": _time(last_success),
                "lastError": None if last_error_at is None else {
                    "at": _time(last_error_at), "message": status.last_error,
                    "category": status.last_error_category},
                "consecutiveFailures": status.consecutive_failures if status else 0,
                "firstFailureAt": _time(status.first_failure_at) if status else None,
            }
            breaker_view = {
                "state": snap["state"], "since": _time(snap["since"]),
                "lastTransition": _time(snap["lastTransition"]),
                "retryAt": _time(snap["retryAt"]), "failureCount": snap["failureCount"],
                "scope": snap["scope"],
            }
            summary = dead.get(endpoint)
            dead_view: dict[str, Any] = {"present": summary is not None}
            if summary is not None:
                dead_view.update(
                    reason="permanent_failure" if summary.permanent else "max_retry_attempts",
                    firstAttempt=summary.first_attempt, lastAttempt=summary.last_attempt,
                    retryCount=summary.attempts, count=summary.count, nextRetry=None)
            instances.append({
                "key": f"{EXECUTION_TYPE}::{endpoint}", "type": EXECUTION_TYPE,
                "displayName": endpoint.split("://", 1)[-1],
                "instance": endpoint, "connection": endpoint, "host": host_of(endpoint),
                "pollStatus": poll, "breaker": breaker_view, "deadLetter": dead_view,
            })
            breakers.append({"instance": endpoint, "type": EXECUTION_TYPE,
                             "state": snap["state"], "failures": snap["failureCount"],
                             "retryAt": breaker_view["retryAt"]})
            first_seen = status.first_failure_at if status else None
            staleness.append({
                "instance": endpoint, "type": EXECUTION_TYPE,
                "score": staleness_score(now, last_success, first_seen, intervals.get(endpoint)),
                "lastSuccess": poll["lastSuccess"], "lastError": _time(last_error_at),
            })
        tasks = []
        for record in reads.dead_letters(limit=MAX_TASKS):
            next_run = self._scheduler.next_fire(record.job_id)
            tasks.append({
                "instance": self.endpoint_of_job(record.job_id, record.target),
                "type": EXECUTION_TYPE,
                "nextRun": _time(next_run), "lastError": record.last_error,
                "failures": record.attempts, "executionId": record.id,
                "jobId": record.job_id,
            })
        snapshot = {
            "updatedAt": _time(now),
            "enabled": self._enabled(),
            "queue": {"depth": depth,
                      "retryWaiting": executor.retry_waiting(),
                      "dueWithinSeconds": self._scheduler.due_within(DUE_WINDOW),
                      "perType": {EXECUTION_TYPE: depth}},
            "deadLetter": {"count": reads.dead_letter_count(), "tasks": tasks},
            "skipped": {"total": sum(self._scheduler.skipped.values()),
                        "byReason": dict(self._scheduler.skipped),
                        "lastAt": _time(self._scheduler.last_skipped_at)},
            "breakers": breakers,
            "staleness": staleness,
            "instances": instances,
        }
        if self._role is not None:
            # a follower's queue and plans are empty because the leader executes, not
            # because nothing is due
            snapshot.update(role=self._role.role, executing=self._role.executing)
        return snapshot

    def _intervals_by_endpoint(self, endpoints: set[str]) -> dict[str, float]:
        """The shortest job interval of each of C{endpoints}, for staleness scores."""
        shortest: dict[str, float] = {}
        hosts = {host_of(endpoint) for endpoint in endpoints}
        for plan in self._scheduler.plans.values():
            if plan.target not in hosts:
                continue
            endpoint = endpoint_of(plan.callback_url)
            if endpoint not in endpoints:
                continue
            hint = plan.schedule.interval_hint()
            if hint and (endpoint not in shortest or hint < shortest[endpoint]):
                shortest[endpoint] = hint
        return shortest
