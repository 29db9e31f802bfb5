"""
The state machine is deterministic (issue 11 item 5): replicas that apply the same commands
end with the same rows, whether the commands come in one batch, one by one, or twice.

A history touching every command kind the state machine applies (every C{_APPLIERS} entry,
each applied successfully at least once, and rejections of each kind: 404, 409, a bad field,
a malformed payload, an unknown kind) is applied to fresh sqlite files, and a canonical dump
of every table is compared. A kind added to C{_APPLIERS} fails this test until the history
below applies it: that is what keeps the test permanent.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

import attrs
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.domain.job import JOB_FIELD_NAMES, JobFields
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import (_APPLIERS, CREDENTIAL_PROJECTS_VERSION, EXCEPTION_KEY,
                                      JOB_ROWS_VERSION, RECORD_OUTCOMES_VERSION, Result,
                                      apply_batch)
from scheduler0.store.database import connect, ensure_schema
from scheduler0.timestamps import format_time, from_seconds

# every command is issued at BASE + its index in seconds (what a proposer would stamp)
BASE = 1_795_968_000  # 2026-11-29T16:00:00Z
FAR_FUTURE = "2027-01-01T00:00:00.000Z"
TARGET = "http://127.0.0.1:3000/cb"


def stamp(seconds: float) -> str:
    """An RFC 3339 UTC time C{seconds} after L{BASE}, as commands carry."""
    return format_time(from_seconds(BASE + seconds))


@attrs.frozen
class Step:
    """One command of the history and whether applying it should succeed."""

    kind: str
    payload: dict[str, Any]
    ok: bool
    version: int = 1


def job(job_id: int, project_id: int = 1) -> dict[str, Any]:
    """The fields of the job that will get C{job_id} (ids are chosen in order when a
    command is applied; the history below creates them in that order)."""
    return {"project_id": project_id, "spec": "@every 1m", "callback_url": f"{TARGET}/{job_id}",
            "data": None, "execution_type": "http", "timezone": "UTC", "start_date": None,
            "end_date": None, "paused": 0, "misfire_policy": "fire_once",
            "misfire_grace_seconds": 60}


def project(project_id: int, name: str) -> dict[str, Any]:
    """The project that will get C{project_id} if it is created (see L{job})."""
    return {"project": {"name": name, "description": "",
                        "signing_secret": f"secret-{project_id}"}}


def row(fields: dict[str, Any]) -> list[Any]:
    """A job's fields as a version-2 job creation carries them."""
    return [fields[name] for name in JOB_FIELD_NAMES]


def record(execution_id: str, job_id: int, scheduled: str, state: str,
           **extra: Any) -> dict[str, Any]:
    return {"id": execution_id, "job_id": job_id, "project_id": 1, "scheduled_time": scheduled,
            "state": state, "attempts": 1, "target": TARGET, "node_id": 1, **extra}


def occurrence(execution_id: str, job_id: int, scheduled: str, attempt: int = 1) -> list[Any]:
    return [execution_id, job_id, scheduled, attempt]


def history() -> list[Step]:
    """Every command kind, with successes and rejections, in an order that makes sense."""
    s1, s2, s3 = stamp(-3600), stamp(-1800), stamp(-60)
    return [
        # projects
        Step(C.PROJECT_CREATE, project(1, "alpha"), True),
        Step(C.PROJECT_CREATE, project(2, "beta"), True),
        Step(C.PROJECT_CREATE, project(3, "alpha"), False),  # name taken: 409
        Step(C.PROJECT_UPDATE, {"id": 1, "changes": {"name": "alpha2", "description": "d",
                                                     "signing_secret": "ignored"}}, True),
        Step(C.PROJECT_UPDATE, {"id": 2, "changes": {"name": "alpha2"}}, False),  # 409
        Step(C.PROJECT_UPDATE, {"id": 99, "changes": {"description": "x"}}, False),  # 404
        Step(C.PROJECT_ROTATE_SECRET, {"id": 1, "secret": "secret-1b",
                                       "previous_expires": FAR_FUTURE}, True),
        Step(C.PROJECT_ROTATE_SECRET, {"id": 1, "secret": "secret-1c",
                                       "previous_expires": FAR_FUTURE}, True),
        Step(C.PROJECT_ROTATE_SECRET, {"id": 2, "secret": "secret-2b",
                                       "previous_expires": FAR_FUTURE}, True),
        Step(C.PROJECT_ROTATE_SECRET, {"id": 99, "secret": "x",
                                       "previous_expires": FAR_FUTURE}, False),  # 404
        Step(C.PROJECT_ROTATE_SECRET, {"id": 1}, False),  # malformed: no secret
        # jobs
        Step(C.JOB_CREATE, {"jobs": [job(1), job(2), job(3), job(4, project_id=2)]}, True),
        Step(C.JOB_CREATE, {"jobs": [job(5), job(6, project_id=9)]}, False),  # no project 9
        Step(C.JOB_CREATE, {"jobs": [dict(job(5), spec=None)]}, False),  # a constraint: 409
        Step(C.JOB_UPDATE, {"id": 2, "changes": {"spec": "*/5 * * * *", "paused": 1,
                                                 "timezone": "Europe/London"}}, True),
        Step(C.JOB_UPDATE, {"id": 2, "changes": {"project_id": 9}}, False),
        Step(C.JOB_UPDATE, {"id": 99, "changes": {"paused": 1}}, False),
        # version 2: each job an array of its fields
        Step(C.JOB_CREATE, {"jobs": [row(job(5)), row(job(6))]}, True, JOB_ROWS_VERSION),
        Step(C.JOB_CREATE, {"jobs": [row(job(7))[:-1]]}, False, JOB_ROWS_VERSION),  # short
        # credentials, both payload versions
        Step(C.CREDENTIAL_CREATE, {"credential": {"api_key": "k1",
                                                  "secret_hash": "h1", "scopes": "read"}}, True),
        Step(C.CREDENTIAL_CREATE, {"credential": {
            "api_key": "k2", "secret_hash": "h2", "scopes": "read,write",
            "project_ids": [2, 1]}}, True, CREDENTIAL_PROJECTS_VERSION),
        Step(C.CREDENTIAL_CREATE, {"credential": {
            "api_key": "k3", "secret_hash": "h3", "scopes": "read",
            "project_ids": [9]}}, False, CREDENTIAL_PROJECTS_VERSION),
        Step(C.CREDENTIAL_CREATE, {"credential": {"api_key": "k1",
                                                  "secret_hash": "h", "scopes": "read"}}, False),
        Step(C.CREDENTIAL_CREATE, {"credential": {"api_key": "k5"}}, False),  # malformed
        Step(C.CREDENTIAL_CREATE, {"credential": {}}, False, 99),  # unknown version
        Step(C.CREDENTIAL_UPDATE, {"id": 1, "changes": {"archived": 1, "api_key": "no"}}, True),
        Step(C.CREDENTIAL_UPDATE, {"id": 2, "changes": {"project_ids": [2]}}, True,
             CREDENTIAL_PROJECTS_VERSION),
        Step(C.CREDENTIAL_UPDATE, {"id": 2, "changes": {"project_ids": []}}, False,
             CREDENTIAL_PROJECTS_VERSION),
        Step(C.CREDENTIAL_UPDATE, {"id": 99, "changes": {"archived": 1}}, False),
        Step(C.CREDENTIAL_DELETE, {"id": 1}, True),
        Step(C.CREDENTIAL_DELETE, {"id": 1}, False),  # already gone: 404
        # executions and the delivery outbox
        Step(C.EXECUTION_RECORD, {"started": [
            {"id": "d1", "node_id": 1, "project_id": 1, "target": TARGET, "started_at": s3,
             "occurrences": [occurrence("e1", 1, s2), occurrence("e2", 2, s2)]},
            {"id": "d2", "node_id": 1, "project_id": 1, "target": TARGET, "started_at": s3,
             "occurrences": [occurrence("e3", 3, s2)]}]}, True),
        Step(C.EXECUTION_RECORD, {
            "finished": [{"id": "d1", "executions": ["e1"]}],
            "records": [record("e1", 1, s2, "succeeded", last_status=200, duration_ms=12.5),
                        record("e0", 1, s1, "succeeded", last_status=200),
                        record("e-old", 1, stamp(-7200), "failed", last_error="boom"),
                        record("e9", 99, s2, "succeeded")]}, True),  # job 99: dropped
        Step(C.EXECUTION_RECORD, {
            "finished": [{"id": "d1"}],
            "records": [record("e2", 2, s2, "retrying", attempts=2, next_retry_at=stamp(600),
                               last_status=500, error_category="http")]}, True),
        # a POST's outcome: its entry's occurrences get records (e3's retries are spent)
        Step(C.EXECUTION_RECORD, {"outcomes": [
            ["d2", "retrying", stamp(5), 9.5, 503, "unavailable", "http", stamp(700), ["e3"]],
            ["no-such-delivery", "succeeded", stamp(5), 1.0, 200]]}, True,
             RECORD_OUTCOMES_VERSION),
        Step(C.EXECUTION_RECORD, {"records": [{"id": "e4"}]}, False),  # malformed
        Step(C.EXECUTION_DELETE, {"ids": ["e-old", "no-such-execution"]}, True),
        Step(C.EXECUTION_DELETE, {}, False),  # malformed: no ids
        Step(C.EXECUTION_PRUNE, {"before": stamp(0), "keep_per_job": 1, "jobs": [1, 2]}, True),
        # forgets no command (all were issued later), so replaying the history is a no-op
        Step(C.EXECUTION_PRUNE, {"before": stamp(0), "keep_per_job": 5,
                                 "commands_before": stamp(-86400)}, True),
        Step(C.EXECUTION_PRUNE, {"keep_per_job": 1}, False),  # malformed: no before
        # deliveries an operator asked for: records chosen by the proposer, applied alike
        Step(C.EXECUTION_REQUEST, {"reason": "run", "node_id": 2, "occurrences": [
            ["1-run", 1, stamp(-30), 0, TARGET], ["99-run", 99, stamp(-30), 0, TARGET]]},
             True),  # job 99: skipped
        Step(C.EXECUTION_REQUEST, {"reason": "run", "node_id": 1, "occurrences": [
            ["1-run", 1, stamp(-30), 0, TARGET]]}, False),  # the id exists: 409
        Step(C.EXECUTION_REQUEST, {"reason": "retry", "node_id": 1, "occurrences": [
            ["e0", 1, s1, 1, TARGET]]}, True),  # not dead: skipped
        Step(C.EXECUTION_REQUEST, {"reason": "rerun", "node_id": 1, "occurrences": [
            ["e3", 3, s2, 1, TARGET]], "finished": [{"id": "d2", "executions": ["e3"]}]},
             True),
        Step(C.EXECUTION_REQUEST, {"reason": "again", "occurrences": []}, False),
        Step(C.EXECUTION_REQUEST, {"reason": "run"}, False),  # malformed
        Step(C.EXECUTION_REQUEST, {"reason": "run", "occurrences": [["1-x", 1]]}, False),
        Step(C.BREAKER_RESET, {"scope": "host", "key": TARGET}, True),
        Step(C.BREAKER_RESET, {"scope": "planet", "key": TARGET}, False),
        # job and project deletes: the outbox entry of job 3 goes, e2 is failed by its delete
        Step(C.JOB_DELETE, {"id": 3}, True),
        Step(C.JOB_DELETE, {"id": 2}, True),
        Step(C.JOB_DELETE, {"id": 99}, False),
        Step(C.PROJECT_DELETE, {"id": 2}, False),  # still has job 4: 409
        Step(C.JOB_DELETE, {"id": 4}, True),
        Step(C.PROJECT_DELETE, {"id": 2}, True),  # with its previous secret
        Step(C.PROJECT_DELETE, {"id": 99}, False),
        # a delivery still in flight at the end: the outbox is compared too
        Step(C.EXECUTION_RECORD, {"started": [
            {"id": "d3", "node_id": 2, "project_id": 1, "target": TARGET, "started_at": stamp(90),
             "occurrences": [occurrence("e5", 1, stamp(60))]}]}, True),
        # the supervisor
        Step(C.SUPERVISOR_SET, {"halted": True, "reason": "maintenance", "at": stamp(100)}, True),
        Step(C.SUPERVISOR_SET, {"halted": "yes"}, False),
        Step(C.SUPERVISOR_SET, {"halted": False, "reason": None}, True),
        # the cluster's member list: the first leader's seed, a change, a refused one
        Step(C.CLUSTER_MEMBERS, {"seed": True, "members": [
            {"node_id": n, "raft_address": f"10.0.0.{n}:7070",
             "client_address": f"http://10.0.0.{n}:9090", "suffrage": "Voter"}
            for n in (1, 2, 3)]}, True),
        Step(C.CLUSTER_MEMBERS, {"members": [
            {"node_id": 1, "raft_address": "10.0.0.1:7070",
             "client_address": "http://10.0.0.1:9090", "suffrage": "Voter"},
            {"node_id": 2, "raft_address": "10.0.0.2:7070",
             "client_address": "http://10.0.0.2:9090", "suffrage": "Nonvoter"}]}, True),
        Step(C.CLUSTER_MEMBERS, {"members": [
            {"node_id": 1, "raft_address": "10.0.0.1:7070",
             "client_address": "http://10.0.0.1:9090", "suffrage": "Nonvoter"}]}, False),
        # the leader's assignment of job buckets: each from the version before it
        Step(C.CLUSTER_ASSIGN, {"revision": 1, "owners": [2, 3] * 128}, True),
        Step(C.CLUSTER_ASSIGN, {"revision": 1, "owners": [3] * 256}, False),  # stale: 409
        Step(C.CLUSTER_ASSIGN, {"revision": 2, "owners": [2] * 255}, False),  # too short
        Step(C.CLUSTER_ASSIGN, {"revision": 2, "owners": [2, 3, 4, 0] * 64}, True),
        Step("job.frobnicate", {"id": 1}, False),  # unknown kind
    ]


def commands(steps: Iterable[Step]) -> list[Command]:
    """The steps as commands with stable ids, each issued a second after the one before."""
    return [Command(f"c{i}", step.kind, stamp(i), step.payload, step.version)
            for i, step in enumerate(steps)]


def fresh_db(testcase: SynchronousTestCase) -> sqlite3.Connection:
    """A new database file of the current schema in the test's temp directory."""
    conn = connect(testcase.mktemp() + ".db")
    ensure_schema(conn)
    testcase.addCleanup(conn.close)
    return conn


def canonical_dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted: what two replicas must agree on, whatever the row order."""
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {table: sorted((tuple(row) for row in conn.execute(f'SELECT * FROM "{table}"')),
                          key=repr)
            for table in tables}


def answers(results: list[Result]) -> list[Result]:
    """Results as a client sees them (the exception kept for the log is not one of them)."""
    return [{k: v for k, v in result.items() if k != EXCEPTION_KEY} for result in results]


class DeterminismTests(SynchronousTestCase):
    def test_the_history_applies_every_command_kind_successfully(self) -> None:
        """A kind (or payload version) added to the state machine must be added above."""
        results = apply_batch(fresh_db(self), commands(history()))
        applied = {(step.kind, step.version)
                   for step, result in zip(history(), results) if result["ok"]}
        self.assertEqual(set(_APPLIERS) - applied, set(),
                         "command kinds the determinism history does not apply")

    def test_every_step_succeeds_or_is_rejected_as_expected(self) -> None:
        """Keeps the history meaningful: a step that stops doing what it says is noticed."""
        steps = history()
        results = apply_batch(fresh_db(self), commands(steps))
        for index, (step, result) in enumerate(zip(steps, results)):
            self.assertEqual(result["ok"], step.ok, f"step {index} ({step.kind}): {result}")

    def test_every_command_round_trips_through_json_to_the_same_database(self) -> None:
        """What a replicated log carries is a command's JSON: read back, each well-formed
        command is typed again, equal to the one written, and applies the same."""
        original = commands(history())
        carried = [Command.from_json(command.to_json()) for command in original]
        for step, before, after in zip(history(), original, carried):
            self.assertEqual(after, before, step.kind)
            if step.ok:
                self.assertFalse(isinstance(after.payload, dict), step.kind)
        self.assertEqual(answers(apply_batch(fresh_db(self), carried)),
                         answers(apply_batch(fresh_db(self), original)))
        first, second = fresh_db(self), fresh_db(self)
        apply_batch(first, original)
        apply_batch(second, carried)
        self.assertEqual(canonical_dump(second), canonical_dump(first))

    def test_the_history_leaves_rows_in_every_table_it_touches(self) -> None:
        """So that comparing dumps compares something."""
        dump = canonical_dump(self.applied_in_one_batch()[0])
        for table in ("applied_commands", "sequences", "projects", "previous_signing_secrets",
                      "jobs", "executions", "deliveries", "credentials", "supervisor",
                      "cluster_members"):
            self.assertTrue(dump[table], f"{table} is empty")

    def test_one_batch_and_one_command_at_a_time_give_the_same_database(self) -> None:
        one, batch_results = self.applied_in_one_batch()
        two = fresh_db(self)
        single_results = [result for command in commands(history())
                          for result in apply_batch(two, [command])]
        self.assertEqual(canonical_dump(one), canonical_dump(two))
        self.assertEqual(answers(batch_results), answers(single_results))

    def test_replaying_the_history_changes_nothing_and_answers_the_same(self) -> None:
        conn, first = self.applied_in_one_batch()
        before = canonical_dump(conn)
        again = apply_batch(conn, commands(history()))
        self.assertEqual(canonical_dump(conn), before)
        self.assertEqual(answers(again), answers(first))
        self.assertEqual(canonical_dump(conn), canonical_dump(self.applied_in_one_batch()[0]))

    def applied_in_one_batch(self) -> tuple[sqlite3.Connection, list[Result]]:
        conn = fresh_db(self)
        return conn, apply_batch(conn, commands(history()))


class JobRowTests(SynchronousTestCase):
    def test_a_job_row_holds_every_field_in_order_and_reads_back_the_same(self) -> None:
        fields = JobFields(7, "*/5 * * * *", f"{TARGET}/7", "opaque", "http", "Europe/Paris",
                           "2026-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z", True,
                           "skip", 30)
        self.assertEqual(fields.to_row(), [getattr(fields, n) for n in JOB_FIELD_NAMES])
        self.assertEqual(JobFields.from_row(fields.to_row()), fields)
        with self.assertRaises(TypeError):
            JobFields.from_row(fields.to_row()[:-1])
