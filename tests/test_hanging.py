"""
Hanging executions (issue 4): a callback with no answer after timeout x attempts is listed
by the API and resolved by an operator (complete or rerun), on a node built as the daemon
builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.domain import Execution
from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import GOOD, Ops, stamp


class HangingTests(SynchronousTestCase):
    def setUp(self) -> None:
        # hanging after JobExecutionTimeout 10 s x (JobExecutionRetryMax 1 + 1) = 20 s
        self.h = h = Ops(self, retry_max=1, timeout=10)
        p = h.project()
        self.job = h.job(p, GOOD + "/hook", spec="@every 1h")

    def lost(self, scheduled: float, attempts: int = 1) -> str:
        """A 'dispatched' record whose outcome was never recorded (the node lost it)."""
        eid = execution_id(self.job["id"], scheduled)
        now = stamp(self.h.clock.seconds())
        self.successResultOf(self.h.recorder.record([Execution(
            id=eid, job_id=self.job["id"], project_id=self.job["projectId"],
            scheduled_time=stamp(scheduled), state="dispatched", attempts=attempts,
            target=GOOD, node_id=1, first_attempt_at=now, last_attempt_at=now)]))
        return eid

    def hanging(self) -> list[str]:
        data = self.h.ok("GET", "/api/supervisor/hanging")
        self.assertEqual(data["hangingAfterSeconds"], 20)
        self.assertEqual(data["total"], len(data["executions"]))
        return [e["executionId"] for e in data["executions"]]

    def resolve(self, eid: str, body: Any, expect: int = 200) -> Any:
        if expect >= 400:
            return self.h.fails("POST", f"/api/supervisor/hanging/{eid}/resolve", expect,
                                body=body)
        return self.h.ok("POST", f"/api/supervisor/hanging/{eid}/resolve", body)

    def test_listed_after_timeout_times_attempts(self) -> None:
        h = self.h
        first = self.lost(T0 - 7200)
        second = self.lost(T0 - 3600, attempts=2)
        h.clock.advance(19.9)
        self.assertEqual(self.hanging(), [])
        h.clock.advance(0.2)
        self.assertEqual(self.hanging(), [first, second])

    def test_resolve_complete(self) -> None:
        h = self.h
        eid = self.lost(T0 - 3600)
        h.clock.advance(21)
        self.assertEqual(self.hanging(), [eid])
        self.assertEqual(self.resolve(eid, {"action": "complete"}), {"completed": [eid]})
        record = h.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 1))
        self.assertEqual(self.hanging(), [])
        self.assertEqual(h.http.posts, [])                  # nothing re-sent
        self.assertEqual(h.scheduler.next_fire(self.job["id"]), T0 + 3600)
        self.resolve(eid, {"action": "complete"}, 409)      # no longer hanging

    def test_resolve_rerun_sends_the_same_execution_again(self) -> None:
        h = self.h
        eid = self.lost(T0 - 3600)
        h.clock.advance(21)
        self.assertEqual(self.resolve(eid, {"action": "rerun"}),
                         {"retried": [eid], "skipped": []})
        (post,) = h.http.pending(GOOD)
        self.assertEqual((post.ids(), post.attempts()), ([eid], [2]))
        self.assertEqual(post.items()[0]["scheduledTime"], stamp(T0 - 3600))
        self.assertEqual(self.hanging(), [])                # in flight, freshly dispatched
        post.answer(200)
        record = h.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        self.assertEqual(self.hanging(), [])

    def test_bad_requests(self) -> None:
        h = self.h
        eid = self.lost(T0 - 3600)
        h.clock.advance(21)
        fresh = self.lost(T0 - 1800)                        # dispatched just now
        for body in ({"action": "delete"}, {}, ["complete"], {"action": None}):
            self.assertIn("complete", self.resolve(eid, body, 400))
        h.fails("POST", f"/api/supervisor/hanging/{eid}/resolve", 400)  # no body
        self.resolve(fresh, {"action": "complete"}, 409)
        self.resolve(fresh, {"action": "rerun"}, 409)
        self.resolve("999-20261126T150000Z", {"action": "complete"}, 404)
        self.assertEqual(self.hanging(), [eid])
        self.assertEqual(h.execution(eid)["state"], "dispatched")
        self.assertEqual(h.http.posts, [])

    def test_a_delivery_in_flight_within_its_deadline_is_not_hanging(self) -> None:
        h = self.h
        h.clock.advance(3600)
        (post,) = h.http.pending(GOOD)
        h.clock.advance(9.9)                                # its own deadline is 10 s
        self.assertEqual(self.hanging(), [])
        h.clock.advance(0.2)                                # timed out: retrying, not hanging
        eid = execution_id(self.job["id"], T0 + 3600)
        self.assertEqual(h.execution(eid)["state"], "retrying")
        h.clock.advance(100)
        (retry,) = h.http.pending(GOOD)
        retry.answer(200)
        self.assertEqual(self.hanging(), [])


class HangingInFlightTests(SynchronousTestCase):
    def test_a_delivery_in_flight_is_never_listed(self) -> None:
        # the 'dispatched' record is durable at once but acknowledged 15 s later (a slow
        # commit): the POST starts then, and is in flight past the 20 s hanging threshold
        h = Ops(self, retry_max=1, timeout=10, record_delay=15)
        p = h.project()
        job = h.job(p, GOOD + "/hook", spec="@every 1h")
        h.clock.advance(3600)                               # fires; the record is slow
        self.assertEqual(h.http.pending(), [])
        h.clock.advance(15)                                 # acknowledged: the POST starts
        (post,) = h.http.pending(GOOD)
        eid = execution_id(job["id"], T0 + 3600)
        h.clock.advance(6)                                  # 21 s after the dispatch record
        self.assertEqual(h.execution(eid)["state"], "dispatched")
        self.assertFalse(post.deferred.called)
        listed = [e["executionId"] for e in h.ok("GET", "/api/supervisor/hanging")["executions"]]
        self.assertNotIn(eid, listed)
