"""
Deleting a job keeps its execution history until retention removes it (issue 9, item 9):
an operator deletes a job and then asks what it did.

What a user sees: after C{DELETE /jobs/{id}} the job's executions are still listed by
C{GET /executions?jobId=} and C{GET /jobs/{id}/executions} (404 only when neither the job
nor any execution exists), occurrences that had not finished are recorded as failed (so
nothing resumes them and retention can prune them), its dead letters leave the dead-letter
queue (nothing to act on), its delivery outbox entries are dropped as before, and the
hourly retention pass prunes its history by age and per-job count, to the last row.

Real sqlite files in temp dirs; the command log writes synchronously; a C{task.Clock}.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.local import LocalCommandLog
from scheduler0.execution.retention import RetentionService
from scheduler0.state import commands as C
from scheduler0.state.commands import Command, new_command
from scheduler0.state.machine import apply_batch
from scheduler0.store.reads import OperationsReader, ScheduleReader, StateReader
from scheduler0.store.service import StoreService

from .harness import T0, ApiHarness
from .test_state import fresh_db, job

AT = "2026-11-26T16:00:00.000Z"
TARGET = "http://127.0.0.1:3000"
DELETED = "the job was deleted before this occurrence finished"


def record(job_id: int, minute: int, state: str, day: int = 26) -> dict:
    return {"id": f"{job_id}-{day}-{minute}", "job_id": job_id, "project_id": 1,
            "scheduled_time": f"2026-11-{day:02d}T16:{minute:02d}:00.000Z", "state": state,
            "attempts": 1, "target": TARGET, "node_id": 1,
            "next_retry_at": "2026-11-26T17:00:00.000Z" if state == "retrying" else None}


def setup(job_ids: tuple[int, ...] = (1, 2)) -> list[Command]:
    """Project 1 and jobs with C{job_ids}: ids are chosen in order when a command is
    applied, so the jobs between them are created and deleted (their ids stay used)."""
    top = max(job_ids)
    return [
        Command("p", C.PROJECT_CREATE, AT, {"project": {
            "name": "p", "description": "", "signing_secret": "s"}}),
        Command("j", C.JOB_CREATE, AT, {"jobs": [job(i) for i in range(1, top + 1)]}),
    ] + [Command(f"gap{i}", C.JOB_DELETE, AT, {"id": i})
         for i in range(1, top + 1) if i not in job_ids]


class DeleteKeepsHistoryTests(SynchronousTestCase):
    """The state machine and the reads, on one sqlite file."""

    def setUp(self) -> None:
        self.conn = conn = fresh_db(self)
        apply_batch(conn, setup())
        conn.row_factory = sqlite3.Row
        self.state = StateReader(conn)
        self.ops = OperationsReader(conn)
        self.schedule = ScheduleReader(conn)

    def apply(self, *commands: Command) -> list[dict]:
        return apply_batch(self.conn, list(commands))

    def states(self, job_id: int) -> dict[str, tuple[str, Any]]:
        executions, _, _ = self.state.executions(job_id=job_id)
        return {e.id: (e.state, e.last_error) for e in executions}

    def test_finished_rows_stay_and_unfinished_ones_are_failed(self) -> None:
        self.apply(Command("r", C.EXECUTION_RECORD, AT, {"records": [
            record(1, 1, "succeeded"), record(1, 2, "dead"), record(1, 3, "retrying"),
            record(1, 4, "scheduled"), record(1, 5, "dispatched"), record(2, 1, "retrying")]}))
        (result,) = self.apply(Command("d", C.JOB_DELETE, "2026-11-26T16:10:00.000Z",
                                       {"id": 1}))
        self.assertTrue(result["ok"], result)
        self.assertEqual(self.states(1), {
            "1-26-1": ("succeeded", None), "1-26-2": ("dead", None),
            "1-26-3": ("failed", DELETED), "1-26-4": ("failed", DELETED),
            "1-26-5": ("failed", DELETED)})
        failed = self.state.execution("1-26-3")
        self.assertEqual((failed.next_retry_at, failed.date_modified),
                         (None, "2026-11-26T16:10:00.000Z"))
        # nothing of the deleted job is resumed after a restart; the other job's is
        self.assertEqual([r.id for r in self.schedule.unfinished_executions()],
                         ["2-26-1"])
        # and nothing of it is listed as hanging
        self.assertEqual(self.ops.dispatched_before("2026-11-27T00:00:00.000Z"), [])

    def test_a_deleted_jobs_dead_letters_leave_the_queue_but_stay_listed(self) -> None:
        self.apply(Command("r", C.EXECUTION_RECORD, AT, {"records": [
            record(1, 1, "dead"), record(2, 1, "dead")]}))
        self.assertEqual(self.ops.dead_letter_count(), 2)
        self.apply(Command("d", C.JOB_DELETE, AT, {"id": 1}))
        self.assertEqual(self.ops.dead_letter_count(), 1)
        self.assertEqual([r.id for r in self.ops.dead_letters()], ["2-26-1"])
        self.assertEqual(self.ops.dead_letters_by_target()[TARGET].count, 1)
        executions, total, _ = self.state.executions(state="dead")
        self.assertEqual((sorted(e.id for e in executions), total),
                         (["1-26-1", "2-26-1"], 2))

    def test_outbox_entries_are_dropped_as_before(self) -> None:
        """A POST in flight for the deleted job leaves the outbox; the other job's
        occurrence in the same POST stays; no row is made up for the dropped one."""
        self.apply(Command("s", C.EXECUTION_RECORD, AT, {"records": [], "started": [{
            "id": "d1", "node_id": 1, "project_id": 1, "target": TARGET, "started_at": AT,
            "occurrences": [["1-x", 1, AT, 1], ["2-x", 2, AT, 1]]}]}))
        self.apply(Command("d", C.JOB_DELETE, AT, {"id": 1}))
        self.assertEqual([[list(o) for o in row.occurrences] for row in self.schedule.deliveries()],
                         [[["2-x", 2, AT, 1]]])
        self.assertIsNone(self.state.execution("1-x"))
        self.assertEqual(self.state.execution("2-x").state, "dispatched")


class ApiTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = ApiHarness(self)
        project = h.project()
        self.gone, self.kept, self.empty = h.ok("POST", "/jobs", [
            {"projectId": project["id"], "spec": "@every 1m", "callbackUrl": TARGET + "/cb"}
            for _ in range(3)], expect=201)
        records = [dict(record(self.gone["id"], m, "succeeded"), project_id=project["id"],
                        id=f"{self.gone['id']}-{m}") for m in (1, 2)]
        records.append(dict(record(self.kept["id"], 1, "succeeded"), project_id=project["id"]))
        self.successResultOf(h.commands.submit(
            new_command(C.EXECUTION_RECORD, {"records": records}, h.clock.seconds())))

    def test_history_is_listed_after_the_delete(self) -> None:
        h, gone = self.h, self.gone["id"]
        h.ok("DELETE", f"/jobs/{gone}", expect=204)
        h.ok("DELETE", f"/jobs/{self.empty['id']}", expect=204)
        self.assertEqual(h.request("GET", f"/jobs/{gone}")[0], 404)
        listed = h.ok("GET", f"/executions?jobId={gone}")
        self.assertEqual(([e["executionId"] for e in listed["executions"]], listed["total"]),
                         ([f"{gone}-2", f"{gone}-1"], 2))
        by_job = h.ok("GET", f"/jobs/{gone}/executions?limit=1")
        self.assertEqual((by_job["total"], by_job["executions"][0]["executionId"]),
                         (2, f"{gone}-2"))
        self.assertEqual(h.ok("GET", f"/executions/{gone}-1")["state"], "succeeded")
        # a deleted job without any history, and a job that never existed: 404
        for missing in (self.empty["id"], 999):
            code, envelope = h.request("GET", f"/jobs/{missing}/executions")
            self.assertEqual((code, envelope["data"]), (404, f"job {missing} does not exist"))
        # a live job without history: an empty list
        fresh = h.ok("POST", "/jobs", {"projectId": self.gone["projectId"], "spec": "@every 1m",
                                       "callbackUrl": TARGET + "/cb"}, expect=201)
        self.assertEqual(h.ok("GET", f"/jobs/{fresh['id']}/executions")["total"], 0)


class RetentionOfDeletedJobsTests(SynchronousTestCase):
    """The hourly pass walks job ids up to the highest ever used, so deleted jobs' ids
    (the highest one included) are covered; their history has no anchor to keep."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0 + 2 * 86400)                  # 2026-11-28T16:00:00Z
        self.store = StoreService(self.mktemp())
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.commands = LocalCommandLog(self.store.path, self.clock, threaded=False)
        self.successResultOf(self.commands.startService())
        self.addCleanup(lambda: self.successResultOf(self.commands.stopService()))
        rows = []
        for job_id in (1, 2, 3, 7):
            rows += [record(job_id, m, "succeeded", day=26) for m in range(3)]  # old
            rows += [record(job_id, m, "succeeded", day=28) for m in range(5)]  # recent
        rows.append(record(9, 0, "succeeded", day=26))       # only old rows
        self.submit(*setup((1, 2, 3, 7, 9)),
                    Command("r", C.EXECUTION_RECORD, AT, {"records": rows}))
        # deleted: a job in the middle, the highest id, and one with only old history
        for job_id in (3, 9):
            self.submit(Command(f"d{job_id}", C.JOB_DELETE, AT, {"id": job_id}))
        self.assertEqual(self.count(3), 8)
        self.assertEqual(self.count(9), 1)

    def submit(self, *commands: Command) -> None:
        for command in commands:
            result = self.successResultOf(self.commands.submit(command))
            self.assertTrue(result["ok"], result)

    def count(self, job_id: int) -> int:
        return self.store.reader.executions(job_id=job_id)[1]

    def run_pass(self, per_job: int) -> int:
        service = RetentionService(self.clock, self.commands, days=1, per_job=per_job,
                                   last_job_id=lambda: self.store.reader.sequence("jobs"),
                                   jobs_per_command=2, pause=0.05)
        service.startService()
        self.addCleanup(service.stopService)
        d = service.prune()
        self.clock.pump([0.05] * 10)
        return self.successResultOf(d)

    def test_by_age_to_the_last_row(self) -> None:
        self.run_pass(per_job=100)
        # live jobs lose their old rows; the deleted job 3 too; job 9 (deleted, the
        # highest id) loses its only row: no anchor is kept for a job that is gone
        self.assertEqual({j: self.count(j) for j in (1, 2, 3, 7, 9)},
                         {1: 5, 2: 5, 3: 5, 7: 5, 9: 0})

    def test_per_job_count(self) -> None:
        self.run_pass(per_job=2)
        self.assertEqual({j: self.count(j) for j in (1, 2, 3, 7, 9)},
                         {1: 2, 2: 2, 3: 2, 7: 2, 9: 0})
        newest = [e.id for e in self.store.reader.executions(job_id=3)[0]]
        self.assertEqual(newest, ["3-28-4", "3-28-3"])

    def test_the_whole_table_prune_agrees(self) -> None:
        """The unranged prune (one command) deletes exactly what the walk deletes."""
        payload = {"before": "2026-11-27T16:00:00.000Z", "keep_per_job": 2}
        whole = fresh_db(self)
        rows = [tuple(r) for r in self.store.reader._conn.execute(
            "SELECT * FROM executions ORDER BY id")]
        apply_batch(whole, setup((1, 2, 7)))
        whole.executemany(f"INSERT INTO executions VALUES ({','.join('?' * len(rows[0]))})",
                          rows)
        apply_batch(whole, [Command("x", C.EXECUTION_PRUNE, AT, payload)])
        self.run_pass(per_job=2)
        left = [tuple(r) for r in self.store.reader._conn.execute(
            "SELECT id FROM executions ORDER BY id")]
        self.assertEqual(left, [tuple(r) for r in whole.execute(
            "SELECT id FROM executions ORDER BY id")])
