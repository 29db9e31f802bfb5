"""
Dead-letter summaries as typed records (issue 11 item 2): the store's operations reads
return L{DeadLetterSummary} values, and the health report adds up those of the jobs that
call one endpoint (how many, first and last attempt, most attempts, any permanent) before
giving them the health API's camelCase shape.

Real sqlite files in temp dirs; no reactor.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.domain import DeadLetterSummary
from scheduler0.operability.health import HealthReport
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.reads import OperationsReader

from .test_state import fresh_db, job

AT = "2026-11-26T16:00:00.000Z"
TARGET = "http://127.0.0.1:3000"
ENDPOINT = TARGET + "/cb"


def dead(job_id: int, minute: int, attempts: int, category: str) -> dict[str, Any]:
    """A dead execution of C{job_id}, attempted first and last at C{minute} past 16:00."""
    stamp = f"2026-11-26T16:{minute:02d}:00.000Z"
    return {"id": f"{job_id}-{minute}", "job_id": job_id, "project_id": 1,
            "scheduled_time": stamp, "state": "dead", "attempts": attempts,
            "target": TARGET, "node_id": 1, "error_category": category,
            "first_attempt_at": stamp, "last_attempt_at": stamp}


class DeadLetterSummaryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.conn = conn = fresh_db(self)
        results = apply_batch(conn, [
            Command("p", C.PROJECT_CREATE, AT, {"project": {
                "name": "p", "description": "", "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, AT, {"jobs": [job(1), job(2)]}),
            Command("r", C.EXECUTION_RECORD, AT, {"records": [
                dead(1, 1, 3, "transient"), dead(1, 5, 2, "transient"),
                dead(2, 3, 1, "permanent")]}),
        ])
        self.assertTrue(all(r["ok"] for r in results), results)
        conn.row_factory = sqlite3.Row
        self.ops = OperationsReader(conn)

    def test_per_target(self) -> None:
        self.assertEqual(self.ops.dead_letters_by_target(), {TARGET: DeadLetterSummary(
            count=3, first_attempt="2026-11-26T16:01:00.000Z",
            last_attempt="2026-11-26T16:05:00.000Z", attempts=3, permanent=True)})

    def test_per_job(self) -> None:
        self.assertEqual(self.ops.dead_letters_by_job(), {
            (1, TARGET): DeadLetterSummary(
                count=2, first_attempt="2026-11-26T16:01:00.000Z",
                last_attempt="2026-11-26T16:05:00.000Z", attempts=3, permanent=False),
            (2, TARGET): DeadLetterSummary(
                count=1, first_attempt="2026-11-26T16:03:00.000Z",
                last_attempt="2026-11-26T16:03:00.000Z", attempts=1, permanent=True)})

    def test_health_adds_up_the_jobs_of_one_endpoint(self) -> None:
        plans = {1: SimpleNamespace(callback_url=ENDPOINT),
                 2: SimpleNamespace(callback_url=ENDPOINT)}
        health = HealthReport(clock=None, scheduler=SimpleNamespace(plans=plans),
                              executor=None, dead_letters=lambda: self.ops,
                              enabled=lambda: True)
        self.assertEqual(health.dead_letters_by_endpoint(), {ENDPOINT: DeadLetterSummary(
            count=3, first_attempt="2026-11-26T16:01:00.000Z",
            last_attempt="2026-11-26T16:05:00.000Z", attempts=3, permanent=True)})

    def test_merged_keeps_known_times_over_missing_ones(self) -> None:
        never = DeadLetterSummary(count=1, first_attempt=None, last_attempt=None, attempts=0,
                                  permanent=False)
        once = DeadLetterSummary(count=2, first_attempt=AT, last_attempt=AT, attempts=1,
                                 permanent=False)
        self.assertEqual(never.merged(once), DeadLetterSummary(
            count=3, first_attempt=AT, last_attempt=AT, attempts=1, permanent=False))
        self.assertEqual(never.merged(never).first_attempt, None)
