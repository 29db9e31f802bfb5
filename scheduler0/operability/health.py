"""
The scheduler health snapshot (seed "Scheduler Health API", PRODUCT §7).

An "instance" is a callback target, C{scheme://host:port}, of type C{http} (the execution
type). Its poll status is what the executor saw on its last deliveries, its breaker is the
target's circuit breaker, and its dead letter is the summary of its executions in state
C{dead}. Field names, types and meanings are the seed's, so its C{jq} queries work as they
are.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from ..timestamps import format_time, from_seconds

EXECUTION_TYPE = "http"
DUE_WINDOW = 12
MAX_TASKS = 25


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
    @param enabled: whether the scheduler takes occurrences (False while halted).
    """

    def __init__(self, clock: Any, scheduler: Any, executor: Any,
                 dead_letters: Callable[[], Any], enabled: Callable[[], bool]) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._executor = executor
        self._reads = dead_letters
        self._enabled = enabled

    def snapshot(self) -> dict[str, Any]:
        now = self._clock.seconds()
        reads = self._reads()
        executor = self._executor
        depth = executor.queued()
        dead = reads.dead_letters_by_target()
        intervals = self._intervals_by_target()
        known_breakers = {b.target: b for b in executor.breakers}
        targets = sorted(set(executor.targets) | set(known_breakers) | set(dead))
        instances, breakers, staleness = [], [], []
        for target in targets:
            status = executor.targets.get(target)
            breaker = known_breakers.get(target)
            # a target known only from its dead letters (e.g. after a restart) has had no
            # delivery yet: its breaker is "unknown", as the seed calls it
            snap = breaker.snapshot() if breaker is not None else {
                "state": "unknown", "since": None, "lastTransition": None, "retryAt": None,
                "failureCount": 0}
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
            }
            summary = dead.get(target)
            dead_view: dict[str, Any] = {"present": summary is not None}
            if summary is not None:
                dead_view.update(
                    reason="permanent_failure" if summary["permanent"] else "max_retry_attempts",
                    firstAttempt=summary["firstAttempt"], lastAttempt=summary["lastAttempt"],
                    retryCount=summary["attempts"], count=summary["count"], nextRetry=None)
            host = urlsplit(target).netloc
            instances.append({
                "key": f"{EXECUTION_TYPE}::{target}", "type": EXECUTION_TYPE,
                "displayName": host, "instance": target, "connection": target,
                "pollStatus": poll, "breaker": breaker_view, "deadLetter": dead_view,
            })
            breakers.append({"instance": target, "type": EXECUTION_TYPE,
                             "state": snap["state"], "failures": snap["failureCount"],
                             "retryAt": breaker_view["retryAt"]})
            first_seen = status.first_failure_at if status else None
            staleness.append({
                "instance": target, "type": EXECUTION_TYPE,
                "score": staleness_score(now, last_success, first_seen, intervals.get(target)),
                "lastSuccess": poll["lastSuccess"], "lastError": _time(last_error_at),
            })
        tasks = []
        for record in reads.dead_letters(limit=MAX_TASKS):
            next_run = self._scheduler.next_fire(record["jobId"])
            tasks.append({
                "instance": record["target"], "type": EXECUTION_TYPE,
                "nextRun": _time(next_run), "lastError": record["lastError"],
                "failures": record["attempts"], "executionId": record["executionId"],
                "jobId": record["jobId"],
            })
        return {
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

    def _intervals_by_target(self) -> dict[str, float]:
        """Each target's shortest job interval, for staleness scores."""
        shortest: dict[str, float] = {}
        for plan in self._scheduler.plans.values():
            hint = plan.schedule.interval_hint()
            if hint and (plan.target not in shortest or hint < shortest[plan.target]):
                shortest[plan.target] = hint
        return shortest
