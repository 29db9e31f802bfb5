"""
One bad command never fails its batch (issue 8, item 3): a command whose applier raises
something unexpected (a value sqlite cannot store, a wrong type, a bug) is rolled back to
its savepoint and rejected with a stable message, and the other commands of its batch
commit. Real sqlite files in temp dirs.
"""

from __future__ import annotations

import json
import sqlite3

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.consensus.local import LocalCommandLog
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import EXCEPTION_KEY, apply_batch
from scheduler0.store.service import StoreService

from .test_state import fresh_db, job

AT = "2026-11-26T16:00:00.000Z"
OUT_OF_RANGE = "malformed job.create command: a value is out of range"


def project(command_id: str, project_id: int) -> Command:
    return Command(command_id, C.PROJECT_CREATE, AT, {"project": {
        "name": f"p{project_id}", "description": "", "signing_secret": "s"}})


def jobs(command_id: str, *specs: dict) -> Command:
    return Command(command_id, C.JOB_CREATE, AT, {"jobs": list(specs)})


def poisoned(command_id: str = "poison", job_id: int = 99) -> Command:
    """The issue's example: misfireGraceSeconds over 2^63-1, which sqlite cannot store."""
    return jobs(command_id, dict(job(job_id), misfire_grace_seconds=2 ** 63))


def without_exception(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != EXCEPTION_KEY}


class ApplyBatchTests(SynchronousTestCase):
    def test_poisoned_command_is_rejected_and_the_rest_of_its_batch_commits(self) -> None:
        conn = fresh_db(self)
        batch = [project("p1", 1), jobs("j1", job(1)), poisoned(), jobs("j2", job(2)),
                 project("p2", 2), jobs("j3", job(3, project_id=2))]
        results = apply_batch(conn, batch)
        self.assertEqual([r["ok"] for r in results], [True, True, False, True, True, True])
        self.assertEqual(without_exception(results[2]),
                         {"ok": False, "status": 400, "error": OUT_OF_RANGE})
        self.assertIsInstance(results[2][EXCEPTION_KEY], OverflowError)
        ids = [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")]
        self.assertEqual(ids, [1, 2, 3])
        # the rejection is the command's stored result, without exception text, so a
        # resubmission (or a replica) answers exactly the same
        stored = conn.execute("SELECT result FROM applied_commands WHERE id = 'poison'")
        self.assertEqual(json.loads(stored.fetchone()[0]),
                         {"ok": False, "status": 400, "error": OUT_OF_RANGE})
        (again,) = apply_batch(conn, [poisoned()])
        self.assertEqual(again, {"ok": False, "status": 400, "error": OUT_OF_RANGE})

    def test_messages_depend_on_the_kind_of_failure_only(self) -> None:
        conn = fresh_db(self)
        batch = [
            project("p1", 1), jobs("j1", job(1)),
            # a list where sqlite wants a scalar
            jobs("wrong-type", dict(job(2), data=["not", "a", "string"])),
            # a field the applier needs is absent
            Command("missing", C.JOB_UPDATE, AT, {"id": 1}),
            # a payload shape no applier expects (a bug, not a bad value): 500, not 400
            Command("shape", C.JOB_UPDATE, AT, {"id": 1, "changes": ["spec"]}),
            jobs("j3", job(3)),
        ]
        results = [without_exception(r) for r in apply_batch(conn, batch)]
        self.assertEqual(results[2], {"ok": False, "status": 400, "error":
                                      "malformed job.create command: a value has the wrong type"})
        self.assertEqual(results[3], {"ok": False, "status": 400, "error":
                                      "malformed job.update command: a required field is missing"})
        self.assertEqual(results[4]["status"], 500)
        self.assertEqual(results[4]["error"], "malformed job.update command: it could not be "
                         "applied (an internal error; the node's log has details)")
        self.assertEqual([r["ok"] for r in results], [True, True, False, False, False, True])
        # a rejected command takes no id: the next one gets the first free one
        self.assertEqual([r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY id")], [1, 2])

    def test_a_rejected_command_leaves_no_partial_rows(self) -> None:
        conn = fresh_db(self)
        # the first two jobs insert fine; the third cannot be stored: none of the three stays
        bad = jobs("bad", job(1), job(2), dict(job(3), misfire_grace_seconds=-2 ** 70))
        results = apply_batch(conn, [project("p1", 1), bad, jobs("ok", job(4))])
        self.assertEqual([r["ok"] for r in results], [True, False, True])
        # nor any id: the job of the next command gets the first one
        self.assertEqual([r[0] for r in conn.execute("SELECT id FROM jobs")], [1])
        self.assertEqual(conn.execute(
            "SELECT last FROM sequences WHERE name = 'jobs'").fetchone()[0], 1)


class CommandLogIsolationTests(TestCase):
    """Through the writer thread: the callers of the good commands get their results."""

    def setUp(self) -> None:
        self.store = StoreService(self.mktemp())
        self.store.startService()
        self.addCleanup(self.store.stopService)

    @defer.inlineCallbacks
    def test_concurrent_writers_are_not_failed_by_a_poisoned_one(self):  # type: ignore[no-untyped-def]
        log = LocalCommandLog(self.store.path, reactor)
        yield log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        seen: list[tuple[str, bool]] = []
        log.add_observer(lambda command, result: seen.append((command.id, result["ok"])))
        yield log.submit(project("p1", 1))
        # the first submission starts a batch alone; the rest wait and go in one batch
        first = log.submit(jobs("j0", job(100)))
        rest = [jobs(f"j{i}", job(i)) for i in range(1, 21)]
        rest.insert(7, poisoned())
        pending = [log.submit(command) for command in rest]
        results = yield defer.gatherResults([first] + pending)
        outcomes = {command.id: result for command, result in zip(rest, results[1:])}
        self.assertEqual(outcomes.pop("poison"),
                         {"ok": False, "status": 400, "error": OUT_OF_RANGE})
        self.assertTrue(all(result["ok"] for result in outcomes.values()), outcomes)
        check = sqlite3.connect(self.store.path)
        self.addCleanup(check.close)
        self.assertEqual(check.execute("SELECT count(*) FROM jobs").fetchone()[0], 21)
        self.assertIn(("poison", False), seen)
        # the exception is logged with its traceback (for the developer), not answered
        logged = self.flushLoggedErrors(OverflowError)
        self.assertEqual(len(logged), 1)
        yield log.stopService()
