"""
The delivery outbox as a user sees it: an occurrence being delivered is listed as
'dispatched' by the executions API, and hanging executions and dead letters take the
outbox into account.

Real sqlite files in temp dirs; nodes built by L{scheduler0.node.build_node} with the
command log writing synchronously, a C{task.Clock} and the fake HTTP client of
L{tests.fakes} (its POSTs are answered by hand).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.domain import DeliveryRecord

from .harness import T0
from .ops import AUTH, FLAKY, GOOD, Ops, stamp
from .outbox_nodes import outbox


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
