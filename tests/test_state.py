"""The state machine and the command log against real sqlite files."""

from __future__ import annotations

import sqlite3

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.consensus.local import LocalCommandLog
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch, apply_command
from scheduler0.store.database import connect, ensure_schema
from scheduler0.store.service import StoreService


def fresh_db(testcase) -> sqlite3.Connection:  # type: ignore[no-untyped-def]
    conn = connect(testcase.mktemp() + ".db")
    ensure_schema(conn)
    testcase.addCleanup(conn.close)
    return conn


def job(job_id: int, project_id: int = 1) -> dict:
    """The fields of a job (the one that gets C{job_id} when created in that order: ids
    are chosen when a command is applied)."""
    return {"project_id": project_id, "spec": "@every 1m",
            "callback_url": "http://127.0.0.1:3000/cb", "data": None, "execution_type": "http",
            "timezone": "UTC", "start_date": None, "end_date": None, "paused": 0,
            "misfire_policy": "fire_once", "misfire_grace_seconds": 60}


def script() -> list[Command]:
    """A little history touching every kind of command, rejections included."""
    at = "2026-11-26T16:00:00.000Z"
    return [
        Command("c1", C.PROJECT_CREATE, at, {"project": {"id": 1, "name": "a", "description": "",
                                                       "signing_secret": "s1"}}),
        Command("c2", C.PROJECT_CREATE, at, {"project": {"id": 2, "name": "a", "description": "",
                                                       "signing_secret": "s2"}}),
        Command("c3", C.JOB_CREATE, at, {"jobs": [job(1), job(2), job(3)]}),
        Command("c4", C.JOB_CREATE, at, {"jobs": [job(4), job(5, project_id=9)]}),
        Command("c5", C.JOB_UPDATE, "2026-11-26T16:00:01.000Z",
                {"id": 2, "changes": {"spec": "*/5 * * * *", "timezone": "Europe/London"}}),
        Command("c6", C.JOB_DELETE, at, {"id": 3}),
        Command("c7", C.PROJECT_DELETE, at, {"id": 1}),
        Command("c8", C.CREDENTIAL_CREATE, at, {"credential": {
            "id": 1, "api_key": "k", "secret_hash": "h", "scopes": "read"}}),
        Command("c9", C.CREDENTIAL_UPDATE, at, {"id": 1, "changes": {"archived": 1}}),
    ]


def dump(conn: sqlite3.Connection) -> list[tuple]:
    return list(conn.iterdump())


class StateMachineTests(SynchronousTestCase):
    def test_rejections_are_results_and_change_nothing(self) -> None:
        conn = fresh_db(self)
        results = apply_batch(conn, script())
        self.assertEqual([r["ok"] for r in results],
                         [True, False, True, False, True, True, False, True, True])
        self.assertEqual(results[1]["status"], 409)
        self.assertEqual(results[3], {"ok": False, "status": 400, "error":
                                      "jobs[1].projectId: project 9 does not exist"})
        self.assertEqual(results[6]["status"], 409)
        # the rejected batch stored none of its jobs, not even the valid first one
        ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]
        self.assertEqual(ids, [1, 2])

    def test_applying_is_deterministic(self) -> None:
        one, two = fresh_db(self), fresh_db(self)
        apply_batch(one, script())
        for command in script():
            apply_batch(two, [command])
        self.assertEqual(dump(one), dump(two))
        row = one.execute("SELECT spec, timezone, date_modified FROM jobs WHERE id = 2").fetchone()
        self.assertEqual(tuple(row), ("*/5 * * * *", "Europe/London", "2026-11-26T16:00:01.000Z"))

    def test_same_command_id_twice_changes_nothing(self) -> None:
        conn = fresh_db(self)
        apply_batch(conn, script())
        before = dump(conn)
        again = apply_batch(conn, script())
        self.assertEqual(dump(conn), before)
        self.assertEqual([r["ok"] for r in again],
                         [True, False, True, False, True, True, False, True, True])
        # a resubmitted create with the same id answers its original result...
        self.assertEqual(apply_command(conn, script()[0]), {"ok": True, "id": 1})
        # ...while a new command creating the same job gets ids never handed out before
        (highest,) = conn.execute("SELECT max(last) FROM sequences WHERE name = 'jobs'").fetchone()
        again = Command("c10", C.JOB_CREATE, "2026-11-26T16:00:00.000Z", {"jobs": [job(1)]})
        self.assertEqual(apply_batch(conn, [again])[0],
                         {"ok": True, "count": 1, "first_id": highest + 1})

    def test_commands_proposed_at_once_never_share_an_id(self) -> None:
        """Two nodes proposing at once: ids are chosen when each command is applied, in
        log order, so both get their own, and so does every replica."""
        def proposed(command_id: str) -> list[Command]:
            return [Command(f"{command_id}-p", C.PROJECT_CREATE, "2026-11-26T16:00:00.000Z",
                            {"project": {"name": command_id, "description": "",
                                         "signing_secret": "s"}}),
                    Command(f"{command_id}-j", C.JOB_CREATE, "2026-11-26T16:00:00.000Z",
                            {"jobs": [job(0), job(0)]})]
        log = [c for pair in zip(proposed("a"), proposed("b")) for c in pair]
        one, two = fresh_db(self), fresh_db(self)
        results = apply_batch(one, log)
        self.assertEqual([r.get("id", r.get("first_id")) for r in results], [1, 2, 1, 3])
        for command in log:
            apply_batch(two, [command])
        self.assertEqual(dump(one), dump(two))

    def test_unknown_command_is_rejected(self) -> None:
        conn = fresh_db(self)
        (result,) = apply_batch(conn, [Command("x", "job.explode", "2026-11-26T16:00:00Z", {})])
        self.assertEqual((result["ok"], result["status"]), (False, 400))

    def test_command_round_trips_through_json(self) -> None:
        for command in script():
            self.assertEqual(Command.from_json(command.to_json()), command)


class LocalCommandLogTests(TestCase):
    """The writer thread, with the real reactor."""

    def setUp(self) -> None:
        self.store = StoreService(self.mktemp())
        self.store.startService()
        self.addCleanup(self.store.stopService)

    @defer.inlineCallbacks
    def test_concurrent_submissions_are_applied_in_order_and_observed(self):  # type: ignore[no-untyped-def]
        log = LocalCommandLog(self.store.path, reactor, max_batch=7)
        yield log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        seen: list[str] = []
        log.add_observer(lambda command, result: seen.append(command.id))
        commands = [Command(f"p{i}", C.PROJECT_CREATE, "2026-11-26T16:00:00.000Z",
                            {"project": {"id": i, "name": f"p{i}", "description": "",
                                         "signing_secret": "s"}})
                    for i in range(1, 51)]
        results = yield defer.gatherResults([log.submit(c) for c in commands])
        self.assertEqual([r["id"] for r in results], list(range(1, 51)))
        self.assertEqual(seen, [c.id for c in commands])
        projects, total = self.store.reader.projects(100, 0)
        self.assertEqual(total, 50)
        yield log.stopService()

    @defer.inlineCallbacks
    def test_stop_drains_pending_writes_then_refuses(self):  # type: ignore[no-untyped-def]
        from scheduler0.consensus.interface import NotAccepting

        log = LocalCommandLog(self.store.path, reactor)
        yield log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        pending = [log.submit(Command(f"q{i}", C.PROJECT_CREATE, "2026-11-26T16:00:00.000Z",
                                      {"project": {"id": i, "name": f"q{i}", "description": "",
                                                   "signing_secret": "s"}}))
                   for i in range(1, 21)]
        yield log.stopService()
        results = yield defer.gatherResults(pending)
        self.assertTrue(all(r["ok"] for r in results))
        self.assertEqual(self.store.reader.projects(1, 0)[1], 20)
        yield self.assertFailure(log.submit(script()[0]), NotAccepting)


    @defer.inlineCallbacks
    def test_execution_records_go_ahead_of_waiting_api_writes(self):  # type: ignore[no-untyped-def]
        """
        Issue 8: a callback waits for its outbox entry to be written; API writes queued
        before it must not delay it. It is applied in the next batch, first, and its
        result is handed back before theirs (which go one per reactor turn): only the
        writes already in the writer's hands (a batch of 64) may be answered before it.
        """
        log = LocalCommandLog(self.store.path, reactor, max_batch=64)
        yield log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        answered: list[str] = []

        def project(i: int) -> Command:
            return Command(f"api{i}", C.PROJECT_CREATE, "2026-11-26T16:00:00.000Z",
                           {"project": {"id": i, "name": f"api{i}", "description": "",
                                        "signing_secret": "s"}})

        writes = [log.submit(project(i)) for i in range(1, 201)]
        yield deferLater(reactor, 0, lambda: None)  # the API's writes reach the applier
        self.assertEqual(log.applier.waiting, 200 - 64)  # the first 64 are being written
        record = log.submit(Command("outbox", C.EXECUTION_RECORD, "2026-11-26T16:00:00.000Z",
                                    {"records": []}))
        for i, d in enumerate(writes, 1):
            d.addCallback(lambda _, i=i: answered.append(f"api{i}"))
        record.addCallback(lambda _: answered.append("outbox"))
        yield defer.gatherResults(writes + [record])
        self.assertLessEqual(answered.index("outbox"), 64, answered[:70])
        self.assertEqual(answered[-136:], [f"api{i}" for i in range(65, 201)])

    @defer.inlineCallbacks
    def test_execution_records_are_not_refused_for_the_api_backlog(self):  # type: ignore[no-untyped-def]
        from scheduler0.consensus.interface import NotAccepting

        log = LocalCommandLog(self.store.path, reactor, max_pending=5)
        yield log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        writes = [log.submit(Command(f"w{i}", C.PROJECT_CREATE, "2026-11-26T16:00:00.000Z",
                                     {"project": {"id": i, "name": f"w{i}", "description": "",
                                                  "signing_secret": "s"}}))
                  for i in range(1, 7)]
        # five wait (they reach the applier together, in the next reactor turn): the
        # sixth is refused
        yield self.assertFailure(writes.pop(), NotAccepting)
        result = yield log.submit(Command("r", C.EXECUTION_RECORD, "2026-11-26T16:00:00.000Z",
                                          {"records": []}))
        self.assertTrue(result["ok"])
        yield defer.gatherResults(writes)


class RetentionTests(SynchronousTestCase):
    """execution.prune bounds the executions table without losing what must stay."""

    def record(self, job_id: int, minute: int, state: str) -> dict:
        return {"id": f"{job_id}-{minute}", "job_id": job_id, "project_id": 1,
                "scheduled_time": f"2026-11-26T16:{minute:02d}:00.000Z", "state": state,
                "attempts": 1, "target": "http://127.0.0.1:3000", "node_id": 1}

    def test_prune_by_age_and_per_job(self) -> None:
        conn = fresh_db(self)
        at = "2026-11-26T16:00:00.000Z"
        setup = [
            Command("p", C.PROJECT_CREATE, at, {"project": {"id": 1, "name": "a", "description": "",
                                                           "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, at, {"jobs": [job(1), job(2)]}),
            Command("r", C.EXECUTION_RECORD, at, {"records": [
                self.record(1, m, "succeeded") for m in range(10)
            ] + [self.record(1, 10, "retrying"), self.record(2, 0, "succeeded")]}),
        ]
        apply_batch(conn, setup)
        # the dead-letter of job 1 at minute 1 replaces that succeeded row (same id)
        apply_batch(conn, [Command("d", C.EXECUTION_RECORD, at,
                                   {"records": [self.record(1, 1, "dead")]})])
        (result,) = apply_batch(conn, [Command("x", C.EXECUTION_PRUNE, at, {
            "before": "2026-11-26T16:05:00.000Z", "keep_per_job": 3})])
        self.assertTrue(result["ok"])
        left = {(r[0], r[1]) for r in conn.execute("SELECT id, state FROM executions")}
        # job 1: the finished rows before 16:05 are old (the dead letter too); of the rest
        # the newest 3 rows stay, and the unfinished (retrying) one is never pruned
        self.assertEqual(left, {("1-8", "succeeded"), ("1-9", "succeeded"),
                                ("1-10", "retrying"),
                                # job 2's only (newest) record is its anchor: kept though old
                                ("2-0", "succeeded")})
        self.assertEqual(result["deleted"], 8)

    def test_records_of_a_deleted_job_are_dropped(self) -> None:
        """A deleted job's history is kept as it was at the delete (its unfinished row
        recorded failed); an outcome arriving later changes nothing and adds nothing."""
        conn = fresh_db(self)
        at = "2026-11-26T16:00:00.000Z"
        apply_batch(conn, [
            Command("p", C.PROJECT_CREATE, at, {"project": {"id": 1, "name": "a", "description": "",
                                                           "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, at, {"jobs": [job(1)]}),
            Command("r", C.EXECUTION_RECORD, at, {"records": [self.record(1, 0, "dispatched")]}),
            Command("d", C.JOB_DELETE, "2026-11-26T16:00:05.000Z", {"id": 1}),
            Command("r2", C.EXECUTION_RECORD, at, {"records": [
                self.record(1, 0, "succeeded"), self.record(1, 1, "succeeded")]}),
        ])
        rows = [tuple(r) for r in conn.execute(
            "SELECT id, state, last_error, date_modified FROM executions")]
        self.assertEqual(rows, [("1-0", "failed",
                                 "the job was deleted before this occurrence finished",
                                 "2026-11-26T16:00:05.000Z")])

    def test_later_record_keeps_first_attempt_facts(self) -> None:
        conn = fresh_db(self)
        at = "2026-11-26T16:00:00.000Z"
        first = dict(self.record(1, 0, "dispatched"), lateness_ms=12.5,
                     first_attempt_at="2026-11-26T16:00:00.012Z")
        apply_batch(conn, [
            Command("p", C.PROJECT_CREATE, at, {"project": {"id": 1, "name": "a", "description": "",
                                                           "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, at, {"jobs": [job(1)]}),
            Command("r", C.EXECUTION_RECORD, at, {"records": [first]}),
            Command("r2", C.EXECUTION_RECORD, "2026-11-26T16:00:01.000Z", {"records": [
                dict(self.record(1, 0, "succeeded"), last_status=200, duration_ms=4.0)]}),
        ])
        row = conn.execute("SELECT state, lateness_ms, first_attempt_at, last_status, "
                           "duration_ms, date_created, date_modified FROM executions").fetchone()
        self.assertEqual(tuple(row), ("succeeded", 12.5, "2026-11-26T16:00:00.012Z", 200, 4.0,
                                      "2026-11-26T16:00:00.000Z", "2026-11-26T16:00:01.000Z"))


class RetentionServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        from twisted.internet.defer import succeed
        from twisted.internet.task import Clock

        from scheduler0.execution.retention import RetentionService

        self.submitted: list[Command] = []
        submitted = self.submitted

        class Log:
            def submit(self, command: Command):  # type: ignore[no-untyped-def]
                submitted.append(command)
                return succeed({"ok": True, "deleted": 10, "commands": 0})

        self.clock = Clock()
        self.clock.advance(1795708800)  # 2026-11-26T16:00:00Z
        self.last_job_id = 1200
        self.service = RetentionService(self.clock, Log(), days=7, per_job=100,
                                        last_job_id=lambda: self.last_job_id,
                                        jobs_per_command=500, pause=0.05)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def test_prunes_every_hour_in_job_ranges_with_pauses_between(self) -> None:
        self.assertEqual(self.submitted, [])
        self.clock.advance(3600)
        (first,) = self.submitted                   # one command, then a pause
        self.assertEqual(first.kind, C.EXECUTION_PRUNE)
        self.assertEqual(first.payload_json(), {"before": "2026-11-19T17:00:00.000Z",
                                         "keep_per_job": 100, "jobs": [1, 501],
                                         "commands_before": "2026-11-25T17:00:00.000Z"})
        self.clock.advance(0.05)
        self.clock.advance(0.05)
        self.assertEqual([list(c.payload.jobs) for c in self.submitted],
                         [[1, 501], [501, 1001], [1001, 1501]])
        self.assertNotIn("commands_before", self.submitted[1].payload_json())
        self.clock.advance(1)
        self.assertEqual(len(self.submitted), 3)   # the pass covered job ids 1..1200
        self.clock.advance(3600)
        self.assertEqual(len(self.submitted), 4)   # the next pass has begun
        self.clock.pump([0.05, 0.05])
        self.assertEqual(len(self.submitted), 6)

    def test_a_pass_stops_with_the_service(self) -> None:
        self.clock.advance(3600)
        self.service.stopService()
        self.clock.advance(10)
        self.assertEqual(len(self.submitted), 1)


class RangedRetentionTests(SynchronousTestCase):
    """Pruning in job-id ranges deletes exactly what one whole-table prune deletes."""

    def fill(self) -> sqlite3.Connection:
        conn = fresh_db(self)
        at = "2026-11-26T16:00:00.000Z"
        record = RetentionTests.record
        rows = []
        for job_id in (1, 2, 3, 7):
            for minute in range(12):
                state = "retrying" if (job_id, minute) == (1, 11) else (
                    "dead" if minute % 5 == 1 else "succeeded")
                rows.append(record(None, job_id, minute, state))  # type: ignore[arg-type]
        apply_batch(conn, [
            Command("p", C.PROJECT_CREATE, at, {"project": {"id": 1, "name": "a", "description": "",
                                                           "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, at, {"jobs": [job(i) for i in (1, 2, 3, 7)]}),
            Command("r", C.EXECUTION_RECORD, at, {"records": rows}),
        ])
        return conn

    def left(self, conn: sqlite3.Connection) -> set:
        return {tuple(r) for r in conn.execute("SELECT id, state FROM executions")}

    def test_ranges_match_the_whole_table(self) -> None:
        at = "2026-11-26T17:00:00.000Z"
        bounds = {"before": "2026-11-26T16:04:00.000Z", "keep_per_job": 5}
        whole = self.fill()
        (expected,) = apply_batch(whole, [Command("x", C.EXECUTION_PRUNE, at, bounds)])
        ranged = self.fill()
        results = apply_batch(ranged, [
            Command(f"x{low}", C.EXECUTION_PRUNE, at, {**bounds, "jobs": [low, low + 2]})
            for low in (1, 3, 5, 7)])
        self.assertEqual(self.left(ranged), self.left(whole))
        self.assertEqual(sum(r["deleted"] for r in results), expected["deleted"])
        # job 1 keeps its 5 newest (one of them unfinished); nothing unfinished goes
        self.assertEqual(sorted(i for i, _ in self.left(whole) if i.startswith("1-")),
                         sorted(f"1-{m}" for m in (7, 8, 9, 10, 11)))

    def test_old_applied_command_ids_are_forgotten(self) -> None:
        conn = self.fill()
        (result,) = apply_batch(conn, [Command("x", C.EXECUTION_PRUNE, "2026-11-27T17:00:00.000Z", {
            "before": "2026-11-19T17:00:00.000Z", "keep_per_job": 100, "jobs": [1, 501],
            "commands_before": "2026-11-26T17:00:00.000Z"})])
        self.assertEqual(result["commands"], 3)
        ids = [r[0] for r in conn.execute("SELECT id FROM applied_commands")]
        self.assertEqual(ids, ["x"])
        # a forgotten id applies again like a new command: harmless for these kinds, and
        # nothing resubmits a day-old command
        (again,) = apply_batch(conn, [Command("p", C.PROJECT_CREATE, "2026-11-27T17:00:01.000Z",
                                              {"project": {"id": 1, "name": "a",
                                                           "description": "",
                                                           "signing_secret": "s"}})])
        self.assertFalse(again["ok"])


class RetentionPassTests(SynchronousTestCase):
    def test_a_pass_of_one_command_answered_at_once_ends_cleanly(self) -> None:
        """A small node's pass is one command; a command log that answers at once (as a
        synchronous one does) ends it before prune() returns, and prune() still hands
        back its Deferred, fired with the count, ready for the next pass."""
        from twisted.internet.defer import succeed
        from twisted.internet.task import Clock

        from scheduler0.execution.retention import RetentionService

        class Log:
            def submit(self, command: Command):  # type: ignore[no-untyped-def]
                return succeed({"ok": True, "deleted": 3, "commands": 0})

        service = RetentionService(Clock(), Log(), days=7, per_job=100, last_job_id=lambda: 50)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(self.successResultOf(service.prune()), 3)
        self.assertEqual(self.successResultOf(service.prune()), 3)
