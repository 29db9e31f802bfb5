"""
The delivery outbox in the state machine: one C{deliveries} row per callback POST in
flight, written before the POST and removed in the same C{execution.record} command as its
outcome records; applying the same command twice changes nothing.

Real sqlite files in temp dirs.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.state import commands as C
from scheduler0.state import machine
from scheduler0.state.commands import Command
from scheduler0.state.machine import (_APPLIERS, RECORD_OUTCOMES_VERSION, apply_batch,
                                      apply_command)
from scheduler0.store.reads import ScheduleReader, StateReader

from .test_state import dump, fresh_db
from .test_state import job as job_columns
from .records import shown


AT = "2026-11-26T16:00:00.000Z"
E1, E2 = "1-20261126T160000Z", "2-20261126T160000Z"
TARGET = "http://127.0.0.1:3000"


def record_cmd(cid: str, **payload: Any) -> Command:
    return Command(cid, C.EXECUTION_RECORD, AT, {"records": [], **payload})


def entry(delivery_id: str, *occurrences: tuple[str, int, int]) -> dict:
    return {"id": delivery_id, "node_id": 1, "project_id": 1, "target": TARGET,
            "started_at": AT, "occurrences": [[eid, job_id, AT, attempt]
                                              for eid, job_id, attempt in occurrences]}


def outcome(eid: str, job_id: int, state: str = "succeeded") -> dict:
    return {"id": eid, "job_id": job_id, "project_id": 1, "scheduled_time": AT, "state": state,
            "attempts": 1, "target": TARGET, "node_id": 1, "last_status": 200}


class OutboxStateMachineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.conn = conn = fresh_db(self)
        apply_batch(conn, [
            Command("p", C.PROJECT_CREATE, AT, {"project": {
                "id": 1, "name": "p", "description": "", "signing_secret": "s"}}),
            Command("j", C.JOB_CREATE, AT, {"jobs": [job_columns(1), job_columns(2)]})])
        conn.row_factory = sqlite3.Row
        self.state, self.schedule = StateReader(conn), ScheduleReader(conn)

    def apply(self, command: Command) -> dict:
        (result,) = apply_batch(self.conn, [command])
        return result

    def outbox(self) -> dict[str, list]:
        return {row.id: [list(o) for o in row.occurrences] for row in self.schedule.deliveries()}

    def test_started_then_finished_some_then_row_deleted_when_emptied(self) -> None:
        """Each occurrence leaves the outbox on its own; an emptied row disappears."""
        self.assertTrue(self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1),
                                                                    (E2, 2, 1))]))["ok"])
        self.assertEqual(self.outbox(), {"d1": [[E1, 1, AT, 1], [E2, 2, AT, 1]]})
        self.assertEqual(shown(self.state.execution(E1))["state"], "dispatched")
        self.apply(record_cmd("f1", finished=[{"id": "d1", "executions": [E1]}]))
        self.assertEqual(self.outbox(), {"d1": [[E2, 2, AT, 1]]})
        # released first attempt: its start and lateness stay on its row, which whatever
        # released it (an outcome, a hold, a new delivery) then updates in the same command
        released = shown(self.state.execution(E1))
        self.assertEqual((released["firstAttemptAt"], released["latenessMs"]), (AT, 0.0))
        self.apply(record_cmd("f2", finished=[{"id": "d1", "executions": [E2]}]))
        self.assertEqual(self.outbox(), {})
        self.assertEqual(self.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0], 0)

    def test_finished_all_removes_the_row_and_unknown_ids_are_ignored(self) -> None:
        """A POST's outcome removes its whole row, and only that row."""
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1)), entry("d2", (E2, 2, 1))]))
        result = self.apply(record_cmd("f", finished=[{"id": "d1"}, {"id": "gone"},
                                                      {"id": "gone", "executions": [E2]}]))
        self.assertTrue(result["ok"], result)
        self.assertEqual(self.outbox(), {"d2": [[E2, 2, AT, 1]]})

    def test_records_and_finished_commit_together(self) -> None:
        """Outcome and outbox removal are one write: never one without the other."""
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1), (E2, 2, 1))]))
        # a bad record rejects the whole command: the outbox row stays as it was
        bad = outcome(E1, 1)
        del bad["state"]
        result = self.apply(record_cmd("bad", records=[bad], finished=[{"id": "d1"}]))
        self.assertFalse(result["ok"])
        self.assertEqual(self.outbox(), {"d1": [[E1, 1, AT, 1], [E2, 2, AT, 1]]})
        self.assertEqual(shown(self.state.execution(E1))["state"], "dispatched")
        # a bad outbox entry rejects its records too
        result = self.apply(record_cmd("bad2", records=[outcome(E1, 1)],
                                       started=[{"id": "d9"}]))
        self.assertFalse(result["ok"])
        self.assertEqual(shown(self.state.execution(E1))["state"], "dispatched")
        # a good one: both at once
        result = self.apply(record_cmd("ok", records=[outcome(E1, 1), outcome(E2, 2, "dead")],
                                       finished=[{"id": "d1"}]))
        self.assertEqual(result, {"ok": True, "count": 2})
        self.assertEqual(self.outbox(), {})
        self.assertEqual((shown(self.state.execution(E1))["state"], shown(self.state.execution(E2))["state"]),
                         ("succeeded", "dead"))

    def test_release_and_restart_in_one_command(self) -> None:
        """A re-sent occurrence moves from the old row to the new one in one write."""
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1), (E2, 2, 1))]))
        self.apply(record_cmd("m", started=[entry("d2", (E1, 1, 2))],
                              finished=[{"id": "d1", "executions": [E1]}]))
        self.assertEqual(self.outbox(), {"d1": [[E2, 2, AT, 1]], "d2": [[E1, 1, AT, 2]]})
        self.assertEqual(shown(self.state.execution(E1))["attempts"], 2)

    def test_same_command_id_twice_changes_nothing(self) -> None:
        """A replayed log entry must not resurrect a delivery that has finished."""
        started = record_cmd("s", started=[entry("d1", (E1, 1, 1), (E2, 2, 1))])
        release = record_cmd("r", finished=[{"id": "d1", "executions": [E1]}])
        self.apply(started)
        self.apply(release)
        self.apply(record_cmd("f", records=[outcome(E2, 2)], finished=[{"id": "d1"}]))
        before = dump(self.conn)
        self.assertEqual(apply_command(self.conn, started), {"ok": True, "count": 0})
        self.assertEqual([r["ok"] for r in apply_batch(self.conn, [started, release])],
                         [True, True])
        self.assertEqual(dump(self.conn), before)
        self.assertEqual(self.outbox(), {})


LATER = "2026-11-26T16:00:01.250Z"  # a POST's outcome known 1.25 s after AT
RETRY_AT = "2026-11-26T16:00:31.250Z"


def outcome_cmd(cid: str, *outcomes: list) -> Command:
    return Command(cid, C.EXECUTION_RECORD, AT, {"outcomes": list(outcomes)},
                   RECORD_OUTCOMES_VERSION)


class PostOutcomeTests(SynchronousTestCase):
    """
    A POST's outcome travels as one entry (its delivery id and result), whatever the number
    of occurrences it carried: the state machine writes each occurrence's record from the
    outbox entry. That is what every node of a cluster applies.
    """

    setUp = OutboxStateMachineTests.setUp
    apply = OutboxStateMachineTests.apply
    outbox = OutboxStateMachineTests.outbox

    def test_every_occurrence_of_the_entry_gets_its_record(self) -> None:
        self.apply(record_cmd("s", started=[
            {**entry("d1", (E1, 1, 1), (E2, 2, 3)), "started_at": "2026-11-26T16:00:00.040Z"}]))
        result = self.apply(outcome_cmd("o", ["d1", "succeeded", LATER, 12.5, 200]))
        self.assertEqual(result, {"ok": True, "count": 2})
        self.assertEqual(self.outbox(), {})
        first, third = shown(self.state.execution(E1)), shown(self.state.execution(E2))
        self.assertEqual(
            {k: first[k] for k in ("state", "attempts", "lastStatus", "durationMs",
                                   "latenessMs", "firstAttemptAt", "lastAttemptAt", "target")},
            {"state": "succeeded", "attempts": 1, "lastStatus": 200, "durationMs": 12.5,
             "latenessMs": 40.0, "firstAttemptAt": "2026-11-26T16:00:00.040Z",
             "lastAttemptAt": LATER, "target": TARGET})
        # a third attempt says nothing of the first one's start or lateness
        self.assertEqual((third["state"], third["attempts"], third["latenessMs"]),
                         ("succeeded", 3, None))

    def test_a_failure_retries_some_and_dead_letters_the_spent(self) -> None:
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1), (E2, 2, 4))]))
        self.apply(outcome_cmd("o", ["d1", "retrying", LATER, 30000.0, None,
                                     "timed out after 30 s", "timeout", RETRY_AT, [E2]]))
        retrying, dead = shown(self.state.execution(E1)), shown(self.state.execution(E2))
        self.assertEqual((retrying["state"], retrying["nextRetryAt"], retrying["lastError"]),
                         ("retrying", RETRY_AT, "timed out after 30 s"))
        self.assertEqual((dead["state"], dead["nextRetryAt"], dead["errorCategory"]),
                         ("dead", None, "timeout"))

    def test_an_entry_taken_over_or_a_deleted_job_records_nothing(self) -> None:
        """A new leader's delivery took the occurrences over (the entry is gone): that
        delivery records them. A job deleted meanwhile gets no record."""
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1), (E2, 2, 1))]))
        self.apply(record_cmd("m", started=[entry("d2", (E1, 1, 2))],
                              finished=[{"id": "d1", "executions": [E1]}]))
        self.apply(Command("del", C.JOB_DELETE, AT, {"id": 2}))
        result = self.apply(outcome_cmd("o", ["d1", "succeeded", LATER, 5.0, 204],
                                        ["no-such-delivery", "dead", LATER, 1.0, 410]))
        self.assertTrue(result["ok"], result)
        # E1 is d2's now: still in flight with its second attempt
        self.assertEqual(shown(self.state.execution(E1))["state"], "dispatched")
        self.assertEqual(self.outbox(), {"d2": [[E1, 1, AT, 2]]})

    def test_an_older_release_refuses_the_command_rather_than_drop_outcomes(self) -> None:
        """A release without the outcome's applier rejects it whole: the entry stays for a
        restart to re-send, rather than leaving the outbox with no record written."""
        self.apply(record_cmd("s", started=[entry("d1", (E1, 1, 1))]))
        older = {key: applier for key, applier in _APPLIERS.items()
                 if key != (C.EXECUTION_RECORD, RECORD_OUTCOMES_VERSION)}
        self.patch(machine, "_APPLIERS", older)
        result = self.apply(outcome_cmd("o", ["d1", "succeeded", LATER, 5.0, 204]))
        self.assertFalse(result["ok"])
        self.assertEqual(self.outbox(), {"d1": [[E1, 1, AT, 1]]})
