"""
The delivery outbox: one C{deliveries} row per callback POST in flight, written before the
POST and removed in the same C{execution.record} command as its outcome records.

What a user sees of it: an occurrence being delivered is listed as 'dispatched' by the
executions API; after a crash every occurrence the outbox lists is POSTed again with the
same execution id, exactly once, and the job's schedule carries on after it; hanging
executions and dead letters take the outbox into account.

Real sqlite files in temp dirs; nodes built by L{scheduler0.node.build_node} with the
command log writing synchronously, a C{task.Clock} and the fake HTTP client of
L{tests.fakes} (its POSTs are answered by hand).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch, apply_command
from scheduler0.store.reads import ScheduleReader, StateReader
from scheduler0.domain import DeliveryRecord

from .harness import T0
from .ops import AUTH, FLAKY, GOOD, Ops, stamp
from .test_state import dump, fresh_db
from .test_state import job as job_columns
from .records import shown

AT = "2026-11-26T16:00:00.000Z"
E1, E2 = "1-20261126T160000Z", "2-20261126T160000Z"
TARGET = "http://127.0.0.1:3000"


# -- 1. the state machine -----------------------------------------------------------------


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


# -- a node over an existing data directory, with recovery --------------------------------


class Node(Ops):
    """A node restarted over the sqlite file in C{data_dir} at C{at}, built as the daemon
    builds it (retry_max 2, timeout 10); it resumes the outbox and unfinished executions
    at start. C{before_recovery} sees the node just before recovery starts."""

    def __init__(self, tc: SynchronousTestCase, data_dir: str, at: float, *,
                 before_recovery: Callable[[Node], None] | None = None) -> None:
        super().__init__(tc, retry_max=2, timeout=10, data_dir=data_dir, start=at,
                         before_recovery=before_recovery)  # type: ignore[arg-type]


def outbox(node: Ops) -> list[list]:
    """Every occurrence the outbox lists: [execution id, job id, scheduled, attempt]."""
    return [list(o) for row in node.store.schedule_reader.deliveries() for o in row.occurrences]


def crash(h: Ops) -> str:
    """Stop a node without waiting for the answers of its POSTs (a restarted L{Node}
    dies: it writes nothing more); its data directory."""
    if isinstance(h, Node):
        h.crash()
    else:
        h.close()
    return h.store.data_dir


# -- 2. reads -----------------------------------------------------------------------------


class InFlightReadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, retry_max=2, timeout=10)
        self.p1 = h.project()
        self.p2 = h.ok("POST", "/api/v1/projects", {"name": "two", "description": ""},
                       expect=201)
        self.a = h.job(self.p1, GOOD + "/a")
        self.b = h.job(self.p2, GOOD + "/b")

    def list(self, path: str = "/api/v1/executions", **query: Any) -> tuple[list, int]:
        data = self.h.ok("GET", f"{path}?{urlencode(query)}" if query else path)
        return [(e["executionId"], e["state"]) for e in data["executions"]], data["total"]

    def test_listed_as_dispatched_with_filters_totals_and_pages(self) -> None:
        """Stored and in-flight executions form one list, filtered and paged alike."""
        h, a, b = self.h, self.a, self.b
        h.clock.advance(60)
        h.answer(GOOD, 200)
        h.clock.advance(60)                                 # T0+120: both in flight
        self.assertEqual(len(h.http.pending()), 2)
        self.assertEqual(len(outbox(h)), 2)
        a1, b1 = execution_id(a["id"], T0 + 60), execution_id(b["id"], T0 + 60)
        a2, b2 = execution_id(a["id"], T0 + 120), execution_id(b["id"], T0 + 120)
        everything = [(a2, "dispatched"), (b2, "dispatched"), (a1, "succeeded"),
                      (b1, "succeeded")]
        self.assertEqual(self.list(), (everything, 4))
        for offset in range(4):
            for limit in (1, 2, 3):
                self.assertEqual(self.list(limit=limit, offset=offset),
                                 (everything[offset:offset + limit], 4), (limit, offset))
        self.assertEqual(self.list(jobId=a["id"]), ([(a2, "dispatched"), (a1, "succeeded")], 2))
        self.assertEqual(self.list(projectId=self.p2["id"]),
                         ([(b2, "dispatched"), (b1, "succeeded")], 2))
        self.assertEqual(self.list(state="dispatched"), (everything[:2], 2))
        self.assertEqual(self.list(state="succeeded"), (everything[2:], 2))
        self.assertEqual(self.list(**{"from": stamp(T0 + 90)}), (everything[:2], 2))
        self.assertEqual(self.list(to=stamp(T0 + 90)), (everything[2:], 2))
        self.assertEqual(self.list(**{"from": stamp(T0 + 120), "to": stamp(T0 + 121)},
                                   projectId=self.p1["id"], state="dispatched"),
                         ([(a2, "dispatched")], 1))
        path = f"/api/v1/jobs/{b['id']}/executions"
        self.assertEqual(self.list(path), ([(b2, "dispatched"), (b1, "succeeded")], 2))
        self.assertEqual(self.list(path, state="dispatched", limit=1), ([(b2, "dispatched")], 1))
        self.assertEqual(self.list(path, offset=1), ([(b1, "succeeded")], 2))

        one = h.ok("GET", f"/api/v1/executions/{a2}")
        self.assertEqual({k: one[k] for k in ("executionId", "jobId", "projectId", "state",
                                              "attempts", "target", "nodeId", "scheduledTime",
                                              "firstAttemptAt", "lastAttemptAt", "latenessMs")},
                         {"executionId": a2, "jobId": a["id"], "projectId": self.p1["id"],
                          "state": "dispatched", "attempts": 1, "target": GOOD, "nodeId": 1,
                          "scheduledTime": stamp(T0 + 120), "firstAttemptAt": stamp(T0 + 120),
                          "lastAttemptAt": stamp(T0 + 120), "latenessMs": 0.0})
        h.answer(GOOD + "/a", 200)
        h.answer(GOOD + "/b", 503)
        self.assertEqual(h.ok("GET", f"/api/v1/executions/{a2}")["state"], "succeeded")
        self.assertEqual(self.list(), ([(a2, "succeeded"), (b2, "retrying"), (a1, "succeeded"),
                                        (b1, "succeeded")], 4))
        self.assertEqual(outbox(h), [])
        self.assertEqual(self.list(state="dispatched"), ([], 0))

    def test_a_retry_in_flight_keeps_the_first_attempts_facts(self) -> None:
        """Attempt 2 in flight: attempts 2, but lateness and first attempt are attempt 1's."""
        h = self.h
        job = h.job(self.p1, FLAKY + "/c", spec="@every 1h")
        eid = execution_id(job["id"], T0 + 3600)
        h.clock.advance(3600.25)                            # 250 ms late
        h.answer(GOOD, 200)
        first = h.ok("GET", f"/api/v1/executions/{eid}")
        self.assertEqual((first["state"], first["attempts"], first["latenessMs"],
                          first["firstAttemptAt"]),
                         ("dispatched", 1, 250.0, stamp(T0 + 3600.25)))
        h.clock.advance(1)
        h.answer(FLAKY, 503)
        self.assertEqual(h.execution(eid)["state"], "retrying")
        h.clock.advance(10)
        (retry,) = h.http.pending(FLAKY)
        self.assertEqual(retry.attempts(), [2])
        again = h.ok("GET", f"/api/v1/executions/{eid}")
        self.assertEqual((again["state"], again["attempts"], again["latenessMs"],
                          again["firstAttemptAt"], again["lastAttemptAt"]),
                         ("dispatched", 2, 250.0, stamp(T0 + 3600.25), stamp(retry.at)))
        self.assertEqual(self.list(state="retrying"), ([], 0))
        retry.answer(200)
        done = h.execution(eid)
        self.assertEqual((done["state"], done["attempts"], done["latenessMs"],
                          done["firstAttemptAt"]), ("succeeded", 2, 250.0, stamp(T0 + 3600.25)))


    def test_a_deleted_jobs_occurrence_in_flight_leaves_the_outbox_at_once(self) -> None:
        """Deleting a job drops its outbox entries: an occurrence in flight is not left
        listed as dispatched (nor found) until its POST answers, and its late outcome is
        not recorded. (Its stored history stays: tests.test_job_history.)"""
        h, a = self.h, self.a
        h.clock.advance(60)
        eid = execution_id(a["id"], T0 + 60)
        self.assertEqual(h.ok("GET", f"/api/v1/executions/{eid}")["state"], "dispatched")
        h.ok("DELETE", f"/api/v1/jobs/{a['id']}", expect=204)
        h.fails("GET", f"/api/v1/executions/{eid}", 404)
        self.assertEqual(self.list(jobId=a["id"]), ([], 0))
        h.answer("", 200)
        h.fails("GET", f"/api/v1/executions/{eid}", 404)
        self.assertEqual(outbox(h), [])


# -- 3. crash and restart -----------------------------------------------------------------


class RestartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, retry_max=2, timeout=10)
        self.p = h.project()

    def test_resent_once_with_the_same_id_then_the_schedule_goes_on(self) -> None:
        """A POST without an outcome is sent again after a restart, and only once."""
        h = self.h
        job = h.job(self.p, GOOD + "/a")                    # @every 1m, fire_once, grace 60
        eid = execution_id(job["id"], T0 + 60)
        h.http.store = SimpleNamespace(record=h.execution)  # what the POST was sent after
        h.clock.advance(60)
        (lost,) = h.http.pending(GOOD)
        self.assertEqual(lost.seen[eid]["state"], "dispatched")  # durable before the POST
        self.assertEqual(outbox(h), [[eid, job["id"], stamp(T0 + 60), 1]])
        # within the grace period: without the outbox in its last scheduled times, the
        # scheduler would fire 16:01 a second time
        node = Node(self, crash(h), T0 + 90)
        (post,) = node.http.posts
        self.assertEqual((post.url, post.ids(), post.attempts()), (lost.url, [eid], [2]))
        self.assertEqual(post.items()[0]["scheduledTime"], stamp(T0 + 60))
        self.assertEqual(node.scheduler.next_fire(job["id"]), T0 + 120)
        self.assertEqual(outbox(node), [[eid, job["id"], stamp(T0 + 60), 2]])
        self.assertEqual(node.execution(eid)["state"], "dispatched")
        post.answer(200)
        self.assertEqual(outbox(node), [])
        record = node.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        node.clock.advance(30)
        self.assertEqual([(p.ids(), p.attempts()) for p in node.http.pending()],
                         [([execution_id(job["id"], T0 + 120)], [1])])
        self.assertEqual(len(node.http.posts), 2)

    def test_the_first_attempts_facts_survive_a_crash(self) -> None:
        """firstAttemptAt and latenessMs say when the occurrence was first sent, crash or
        not (as the 'dispatched' row written before each POST used to keep them)."""
        h = self.h
        job = h.job(self.p, GOOD + "/a")
        eid = execution_id(job["id"], T0 + 60)
        h.clock.advance(60.25)                              # sent 250 ms late
        node = Node(self, crash(h), T0 + 90)
        node.answer(GOOD, 200)
        record = node.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        self.assertEqual((record["firstAttemptAt"], record["latenessMs"]),
                         (stamp(T0 + 60.25), 250.0))

    def test_a_retry_in_flight_is_resent_once_with_the_next_attempt(self) -> None:
        """Stored 'retrying' and listed in the outbox: one POST, attempt 3, not two."""
        h = self.h
        job = h.job(self.p, FLAKY + "/f", spec="@every 1h")
        eid = execution_id(job["id"], T0 + 3600)
        h.clock.advance(3600)
        h.answer(FLAKY, 503)
        h.clock.advance(10)
        (retry,) = h.http.pending(FLAKY)
        self.assertEqual(retry.attempts(), [2])
        node = Node(self, crash(h), T0 + 3700)
        (post,) = node.http.posts
        self.assertEqual((post.ids(), post.attempts()), ([eid], [3]))
        shown = node.execution(eid)
        self.assertEqual((shown["state"], shown["attempts"], shown["firstAttemptAt"]),
                         ("dispatched", 3, stamp(T0 + 3600)))
        post.answer(200)
        self.assertEqual(node.execution(eid)["state"], "succeeded")
        self.assertEqual(outbox(node), [])
        node.clock.advance(60)
        self.assertEqual(len(node.http.posts), 1)

    def test_an_occurrence_of_a_deleted_job_is_dropped(self) -> None:
        """A job deleted while its POST was in flight is not called back after a restart;
        the other occurrence of that POST is."""
        h = self.h
        keep = h.job(self.p, GOOD + "/shared")
        gone = h.job(self.p, GOOD + "/shared")
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        kept, dropped = (execution_id(j["id"], T0 + 60) for j in (keep, gone))
        self.assertEqual(sorted(post.ids()), sorted([kept, dropped]))
        h.ok("DELETE", f"/api/v1/jobs/{gone['id']}", expect=204)
        # the deleted job's occurrence leaves the outbox at once; the other stays in flight
        self.assertEqual(outbox(h), [[kept, keep["id"], stamp(T0 + 60), 1]])
        node = Node(self, crash(h), T0 + 90)
        (post,) = node.http.posts
        self.assertEqual((post.ids(), post.attempts()), ([kept], [2]))
        self.assertEqual(outbox(node), [[kept, keep["id"], stamp(T0 + 60), 2]])
        self.assertIsNone(node.execution(dropped))
        post.answer(200)
        self.assertEqual(outbox(node), [])
        self.assertEqual(node.execution(kept)["state"], "succeeded")
        self.assertIsNone(node.execution(dropped))

    def lost(self, *urls: str) -> tuple[str, list[str]]:
        """Jobs at C{urls} fire at T0+60 and the node crashes with their POSTs in flight."""
        jobs = [self.h.job(self.p, url) for url in urls]
        self.h.clock.advance(60)
        self.assertEqual(len(outbox(self.h)), len(urls))
        return crash(self.h), [execution_id(j["id"], T0 + 60) for j in jobs]

    def assertSentOnceMore(self, node: Node, ids: list[str]) -> None:
        sent = sorted((eid, p.attempts()[0]) for p in node.http.posts for eid in p.ids())
        self.assertEqual(sent, sorted((eid, 2) for eid in ids))
        node.answer("", 200)
        self.assertEqual(outbox(node), [])
        for eid in ids:
            self.assertEqual((node.execution(eid)["state"], node.execution(eid)["attempts"]),
                             ("succeeded", 2))

    def test_halted_then_stopped_before_the_resend_keeps_them_for_the_next_start(self) -> None:
        """Halted from the start, then stopped: held 'scheduled'; sent once next time."""
        data_dir, ids = self.lost(GOOD + "/a", FLAKY + "/b")
        second = Node(self, data_dir, T0 + 70, before_recovery=lambda n: n.executor.halt())
        self.assertEqual(second.http.posts, [])
        self.assertEqual(sorted(o[0] for o in outbox(second)), sorted(ids))  # queued
        second.close()                                      # graceful: held

        def held(node: Node) -> None:
            self.assertEqual(outbox(node), [])
            for eid in ids:
                self.assertEqual(node.execution(eid)["state"], "scheduled")

        third = Node(self, data_dir, T0 + 80, before_recovery=held)
        self.assertSentOnceMore(third, ids)

    def test_halted_then_crashed_before_the_resend_keeps_them_in_the_outbox(self) -> None:
        """A crash while the re-send waits leaves the outbox as it was; sent once later."""
        data_dir, ids = self.lost(GOOD + "/a", FLAKY + "/b")
        second = Node(self, data_dir, T0 + 70, before_recovery=lambda n: n.executor.halt())
        self.assertEqual(sorted((o[0], o[3]) for o in outbox(second)),
                         sorted((eid, 1) for eid in ids))
        crash(second)
        third = Node(self, data_dir, T0 + 80)
        self.assertSentOnceMore(third, ids)

    def test_breaker_open_at_the_resend_holds_them_durably(self) -> None:
        """An open breaker holds the re-send as 'scheduled' (leaving the outbox in the same
        write): a crash then loses nothing and sends nothing twice."""
        data_dir, ids = self.lost(GOOD + "/a", GOOD + "/b")

        def trip(node: Node) -> None:
            for _ in range(5):
                node.breakers.get(GOOD).record_failure()

        second = Node(self, data_dir, T0 + 70, before_recovery=trip)
        self.assertEqual(second.http.posts, [])
        self.assertEqual(outbox(second), [])
        for eid in ids:
            self.assertEqual(second.execution(eid)["state"], "scheduled")
        crash(second)
        third = Node(self, data_dir, T0 + 80)
        self.assertSentOnceMore(third, ids)


# -- 4. hanging executions ----------------------------------------------------------------


class OutboxHangingTests(SynchronousTestCase):
    """Outbox rows no executor has in flight (a node that died mid-POST, say)."""

    def setUp(self) -> None:
        # hanging after 10 s x (1 + 1) = 20 s
        self.h = h = Ops(self, retry_max=1, timeout=10)
        p = h.project()
        self.j1 = h.job(p, GOOD + "/hook", spec="@every 1h")
        self.j2 = h.job(p, GOOD + "/hook", spec="@every 1h")
        self.e1 = execution_id(self.j1["id"], T0 - 3600)
        self.e2 = execution_id(self.j2["id"], T0 - 3600)
        self.successResultOf(h.recorder.record([], started=[DeliveryRecord(
            id="lost", node_id=1, project_id=p["id"], target=GOOD,
            started_at=stamp(T0), occurrences=[
                [self.e1, self.j1["id"], stamp(T0 - 3600), 1],
                [self.e2, self.j2["id"], stamp(T0 - 3600), 1]])]))

    def hanging(self) -> list[str]:
        data = self.h.ok("GET", "/api/supervisor/hanging")
        self.assertEqual(data["total"], len(data["executions"]))
        for record in data["executions"]:
            self.assertNotIn("deliveryId", record)
            self.assertEqual(record["state"], "dispatched")
        return [e["executionId"] for e in data["executions"]]

    def resolve(self, eid: str, action: str) -> Any:
        return self.h.ok("POST", f"/api/supervisor/hanging/{eid}/resolve", {"action": action})

    def test_listed_after_the_threshold(self) -> None:
        """Listed once past the threshold, without the internal deliveryId."""
        self.h.clock.advance(19.9)
        self.assertEqual(self.hanging(), [])
        self.h.clock.advance(0.2)
        self.assertEqual(sorted(self.hanging()), sorted([self.e1, self.e2]))

    def test_complete_records_success_and_leaves_the_rest_of_the_post(self) -> None:
        """complete: succeeded, out of the outbox; the POST's other occurrence untouched."""
        h = self.h
        h.clock.advance(21)
        self.assertEqual(self.resolve(self.e1, "complete"), {"completed": [self.e1]})
        record = h.execution(self.e1)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 1))
        self.assertEqual(outbox(h), [[self.e2, self.j2["id"], stamp(T0 - 3600), 1]])
        self.assertEqual(h.execution(self.e2)["state"], "dispatched")
        self.assertEqual(self.hanging(), [self.e2])
        h.fails("POST", f"/api/supervisor/hanging/{self.e1}/resolve", 409,
                body={"action": "complete"})
        self.assertEqual(self.resolve(self.e2, "complete"), {"completed": [self.e2]})
        self.assertEqual(h.store.schedule_reader.deliveries(), [])
        self.assertEqual(self.hanging(), [])
        self.assertEqual(h.http.posts, [])

    def test_rerun_sends_it_again_and_it_is_no_longer_hanging(self) -> None:
        """rerun: the same execution POSTed again (attempt 2); not hanging meanwhile."""
        h = self.h
        h.clock.advance(21)
        self.assertEqual(self.resolve(self.e1, "rerun"), {"retried": [self.e1], "skipped": []})
        (post,) = h.http.pending(GOOD)
        self.assertEqual((post.ids(), post.attempts()), ([self.e1], [2]))
        self.assertEqual(self.hanging(), [self.e2])
        self.assertEqual(sorted(outbox(h)), sorted([
            [self.e1, self.j1["id"], stamp(T0 - 3600), 2],
            [self.e2, self.j2["id"], stamp(T0 - 3600), 1]]))
        post.answer(200)
        record = h.execution(self.e1)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        self.assertEqual(outbox(h), [[self.e2, self.j2["id"], stamp(T0 - 3600), 1]])
        self.assertEqual(self.hanging(), [self.e2])


# -- 5. dead letters ----------------------------------------------------------------------


class OutboxDeadLetterTests(SynchronousTestCase):
    def test_a_dead_letter_being_replayed_is_not_dead_while_in_flight(self) -> None:
        """Replaying a dead letter takes it off the DLQ until its new outcome is known."""
        h = Ops(self, retry_max=0)
        job = h.job(h.project(), AUTH + "/a", spec="@every 1h")
        eid = execution_id(job["id"], T0 + 3600)
        h.clock.advance(3600)
        h.answer(AUTH, 401)

        def dead() -> list[str]:
            return [r.id for r in h.store.operations_reader.dead_letters()]

        self.assertEqual(dead(), [eid])
        h.ok("POST", f"/api/v1/executions/{eid}/retry", expect=202)
        (post,) = h.http.pending(AUTH)
        self.assertEqual(dead(), [])
        self.assertEqual(h.health()["deadLetter"], {"count": 0, "tasks": []})
        self.assertEqual(h.instance(AUTH)["deadLetter"], {"present": False})
        self.assertEqual(h.ok("GET", "/api/v1/executions?state=dead")["total"], 0)
        self.assertEqual(h.ok("GET", f"/api/v1/executions/{eid}")["state"], "dispatched")
        # nothing to replay twice
        self.assertEqual(h.ok("POST", "/api/monitoring/dlq/retry", expect=202),
                         {"retried": [], "skipped": []})
        h.fails("POST", f"/api/v1/executions/{eid}/retry", 409)
        self.assertEqual(len(h.http.pending()), 1)
        post.answer(401)                                    # dead again
        self.assertEqual(dead(), [eid])
        self.assertEqual(h.health()["deadLetter"]["count"], 1)
        self.assertEqual(outbox(h), [])
