"""
Dead letters repaired through the HTTP API (issue 4, seed "Scheduler Admin API"): retried
or deleted all at once, per target or one execution, on a node built as the daemon builds
it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import AUTH, FLAKY, GOOD, Ops


class DeadLetterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, retry_max=0)
        p = h.project()
        self.a1 = h.job(p, AUTH + "/a1")
        self.a2 = h.job(p, AUTH + "/a2")
        self.b = h.job(p, FLAKY + "/b")
        self.g = h.job(p, GOOD + "/g")

    def round(self, at: float) -> dict[str, str]:
        """Fire the round due at C{at}: auth 401, flaky 503, good 200."""
        h = self.h
        h.clock.advance(at - h.clock.seconds())
        h.answer(AUTH, 401)
        h.answer(FLAKY, 503)
        h.answer(GOOD, 200)
        return {name: execution_id(job["id"], at)
                for name, job in (("a1", self.a1), ("a2", self.a2), ("b", self.b),
                                  ("g", self.g))}

    def dead(self) -> set[str]:
        return {r.id for r in self.h.store.operations_reader.dead_letters()}

    def test_retry_everything_keeps_the_execution_ids(self) -> None:
        h = self.h
        ids = self.round(T0 + 60)
        self.assertEqual(self.dead(), {ids["a1"], ids["a2"], ids["b"]})
        self.assertEqual(h.instance(FLAKY)["deadLetter"]["reason"], "max_retry_attempts")
        before = len(h.http.posts)
        result = h.ok("POST", "/api/monitoring/dlq/retry", expect=202)
        self.assertEqual(sorted(result["retried"]), sorted([ids["a1"], ids["a2"], ids["b"]]))
        self.assertEqual(result["skipped"], [])
        resent = h.http.posts[before:]
        self.assertEqual(sorted(eid for p in resent for eid in p.ids()),
                         sorted([ids["a1"], ids["a2"], ids["b"]]))
        for post in resent:
            self.assertEqual(post.attempts(), [2])
            post.answer(200)
        for name in ("a1", "a2", "b"):
            record = h.execution(ids[name])
            self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2), name)
        s = h.health()
        self.assertEqual(s["deadLetter"], {"count": 0, "tasks": []})
        self.assertEqual(h.instance(AUTH + "/a1", s)["deadLetter"], {"present": False})
        self.assertEqual(h.instance(AUTH + "/a2", s)["deadLetter"], {"present": False})
        # nothing dead: retrying everything sends nothing
        self.assertEqual(h.ok("POST", "/api/monitoring/dlq/retry", expect=202),
                         {"retried": [], "skipped": []})
        self.assertEqual(h.http.pending(), [])

    def test_per_target_retry_and_delete_touch_only_that_target(self) -> None:
        h = self.h
        first = self.round(T0 + 60)
        h.ok("POST", "/api/monitoring/dlq/retry", expect=202)
        h.answer("", 200)
        ids = self.round(T0 + 120)
        self.assertEqual(self.dead(), {ids["a1"], ids["a2"], ids["b"]})

        before = len(h.http.posts)
        result = h.ok("POST", "/api/monitoring/dlq/flaky.test:8003/retry", expect=202)
        self.assertEqual(result, {"retried": [ids["b"]], "skipped": []})
        (post,) = h.http.posts[before:]
        self.assertEqual((post.url, post.ids(), post.attempts()), (FLAKY + "/b", [ids["b"]], [2]))
        post.answer(503)                                   # dead again (retry_max 0)
        self.assertEqual(self.dead(), {ids["a1"], ids["a2"], ids["b"]})

        deleted = h.ok("DELETE", f"/api/monitoring/dlq/{quote(AUTH, safe='')}")
        self.assertEqual(deleted, {"deleted": 2})
        self.assertEqual(self.dead(), {ids["b"]})
        for name in ("a1", "a2"):
            h.fails("GET", f"/api/v1/executions/{ids[name]}", 404)
            # earlier (succeeded) executions of that target are not dead letters: kept
            self.assertEqual(h.execution(first[name])["state"], "succeeded")
        self.assertEqual(h.execution(ids["b"])["state"], "dead")
        self.assertEqual(h.instance(AUTH + "/a1")["deadLetter"], {"present": False})
        self.assertEqual(h.instance(FLAKY)["deadLetter"]["present"], True)
        # the other form of the target works too; nothing dead left there
        self.assertEqual(h.ok("DELETE", f"/api/monitoring/dlq/{AUTH}"), {"deleted": 0})
        h.fails("DELETE", "/api/monitoring/dlq/http://nowhere.test:9", 404)
        h.fails("POST", "/api/monitoring/dlq/nowhere.test:9/retry", 404)
        self.assertEqual(self.dead(), {ids["b"]})

    def test_one_execution_retry_and_delete(self) -> None:
        h = self.h
        ids = self.round(T0 + 60)
        before = len(h.http.posts)
        result = h.ok("POST", f"/api/v1/executions/{ids['b']}/retry", expect=202)
        self.assertEqual(result, {"retried": [ids["b"]], "skipped": []})
        (post,) = h.http.posts[before:]
        self.assertEqual((post.ids(), post.attempts()), ([ids["b"]], [2]))
        self.assertEqual(self.dead(), {ids["a1"], ids["a2"]})  # dispatched, not dead
        # not dead (in flight now, or succeeded): 409; unknown: 404
        h.fails("POST", f"/api/v1/executions/{ids['b']}/retry", 409)
        h.fails("POST", f"/api/v1/executions/{ids['g']}/retry", 409)
        h.fails("POST", "/api/v1/executions/999-20261126T160100Z/retry", 404)
        post.answer(200)
        self.assertEqual(h.execution(ids["b"])["state"], "succeeded")

        self.assertIsNone(h.ok("DELETE", f"/api/v1/executions/{ids['a1']}", expect=204))
        h.fails("GET", f"/api/v1/executions/{ids['a1']}", 404)
        self.assertEqual(self.dead(), {ids["a2"]})
        h.fails("DELETE", f"/api/v1/executions/{ids['a1']}", 404)

    def test_a_paused_jobs_dead_letter_retried_by_an_operator_is_delivered(self) -> None:
        """Issue 9: an operator's explicit retry of a paused job's dead letter is sent
        (and its retries), instead of a 202 that then drops it as 'failed'."""
        h = self.h
        ids = self.round(T0 + 60)
        for job in (self.a1, self.b):
            h.ok("POST", f"/api/v1/jobs/{job['id']}/pause")
        before = len(h.http.posts)
        result = h.ok("POST", f"/api/v1/executions/{ids['b']}/retry", expect=202)
        self.assertEqual(result, {"retried": [ids["b"]], "skipped": []})
        (post,) = h.http.posts[before:]
        self.assertEqual((post.ids(), post.attempts()), ([ids["b"]], [2]))
        post.answer(200)
        self.assertEqual((h.execution(ids["b"])["state"], h.execution(ids["b"])["attempts"]),
                         ("succeeded", 2))
        # one endpoint's dead letters (its URL as the health API lists it), paused job too
        result = h.ok("POST", f"/api/monitoring/dlq/{quote(AUTH + '/a1', safe='')}/retry",
                      expect=202)
        self.assertEqual(result, {"retried": [ids["a1"]], "skipped": []})
        (post,) = h.http.pending(AUTH)
        self.assertEqual(post.url, AUTH + "/a1")
        post.answer(200)
        self.assertEqual(h.execution(ids["a1"])["state"], "succeeded")
        self.assertEqual(self.dead(), {ids["a2"]})
        # the jobs stay paused: nothing of theirs runs on schedule
        h.clock.advance(60)
        h.answer("", 200)
        self.assertEqual(h.execution(execution_id(self.b["id"], T0 + 120)), None)
        self.assertEqual(h.execution(execution_id(self.a1["id"], T0 + 120)), None)

    def test_a_paused_jobs_replay_held_by_a_breaker_is_still_delivered(self) -> None:
        h = self.h
        ids = self.round(T0 + 60)
        h.ok("POST", f"/api/v1/jobs/{self.b['id']}/pause")
        h.executor.breakers.get(FLAKY + "/b").reset()
        for _ in range(5):
            h.executor.breakers.get(FLAKY + "/b").record_failure()   # open: held
        h.ok("POST", f"/api/v1/executions/{ids['b']}/retry", expect=202)
        self.assertEqual(h.http.pending(FLAKY), [])
        self.assertEqual(h.execution(ids["b"])["state"], "scheduled")
        h.ok("POST", f"/api/monitoring/breakers/{quote(FLAKY + '/b', safe='')}/reset")
        (post,) = h.http.pending(FLAKY)
        post.answer(200)
        self.assertEqual(h.execution(ids["b"])["state"], "succeeded")

    def test_a_deleted_jobs_dead_letter_is_not_retried_and_stays_dead(self) -> None:
        h = self.h
        ids = self.round(T0 + 60)
        h.ok("DELETE", f"/api/v1/jobs/{self.b['id']}", expect=204)
        before = len(h.http.posts)
        message = h.fails("POST", f"/api/v1/executions/{ids['b']}/retry", 409)
        self.assertIn(f"job {self.b['id']}", message)
        self.assertIn("deleted", message)
        self.assertEqual(h.execution(ids["b"])["state"], "dead")
        self.assertEqual(h.http.posts[before:], [])
        # the record can still be deleted, as the message says
        h.ok("DELETE", f"/api/v1/executions/{ids['b']}", expect=204)

    def test_repairs_need_admin_or_the_right_scope(self) -> None:
        h = self.h
        ids = self.round(T0 + 60)
        rwx = h.credential(["read", "write", "execute"])
        reader = h.credential(["read"])
        h.fails("POST", "/api/monitoring/dlq/retry", 403, headers=rwx)
        h.fails("POST", f"/api/monitoring/dlq/{AUTH}/retry", 403, headers=rwx)
        h.fails("DELETE", f"/api/monitoring/dlq/{AUTH}", 403, headers=rwx)
        h.fails("POST", f"/api/v1/executions/{ids['a1']}/retry", 403, headers=reader)
        h.fails("DELETE", f"/api/v1/executions/{ids['a1']}", 403, headers=reader)
        self.assertEqual(self.dead(), {ids["a1"], ids["a2"], ids["b"]})
        self.assertEqual(h.http.pending(), [])
