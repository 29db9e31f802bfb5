"""
The health snapshot through the HTTP API (issue 4, seed "Scheduler Health API"), on a node
built as the daemon builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .health_queries import (
    BREAKERS_NOT_CLOSED,
    DEAD_LETTERS,
    FAILURE_STREAK,
    RECENT_ERRORS,
    STALE,
    run_jq,
)
from .ops import AUTH, FLAKY, GOOD, Ops, Shape, scrape, stamp, value


class HealthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Ops(self, retry_max=2)
        self.shape = Shape(self)
        self.p = self.h.project()

    def test_retries_waiting_out_their_backoff_are_counted(self) -> None:
        """An operator sees occurrences that failed and wait for their retry, not an empty
        queue, until the retry queues and sends them."""
        h = self.h
        for _ in range(3):
            h.job(self.p, FLAKY + "/r")
        h.clock.advance(60)
        h.answer(FLAKY, 503)                        # one POST of 3, retried after ~1 s
        queue = h.health()["queue"]
        self.assertEqual((queue["depth"], queue["retryWaiting"]), (0, 3))
        self.assertEqual(value(scrape(h), "scheduler0_retries_waiting"), 3)
        h.clock.advance(2)                          # the backoff ends: sent again
        self.assertEqual(len(h.http.pending(FLAKY)), 1)
        self.assertEqual(h.health()["queue"]["retryWaiting"], 0)

    def test_empty_snapshot(self) -> None:
        s = self.h.health()
        self.shape.snapshot(s)
        self.assertEqual(s["updatedAt"], stamp(T0))
        self.assertIs(s["enabled"], True)
        self.assertEqual(s["queue"], {"depth": 0, "retryWaiting": 0, "dueWithinSeconds": 0,
                                      "perType": {"http": 0}})
        self.assertEqual(s["deadLetter"], {"count": 0, "tasks": []})
        self.assertEqual((s["breakers"], s["staleness"], s["instances"]), ([], [], []))

    def test_a_permanent_and_a_transient_receiver(self) -> None:
        h = self.h
        good = h.job(self.p, GOOD + "/hook")
        auth = h.job(self.p, AUTH + "/hook")
        flaky = h.job(self.p, FLAKY + "/hook")
        h.clock.advance(60)
        fired = T0 + 60
        self.assertEqual(len(h.http.pending()), 3)
        h.answer(GOOD, 200)
        h.answer(AUTH, 401)
        h.answer(FLAKY, 503)

        s = h.health()
        self.shape.snapshot(s)
        self.assertEqual(s["updatedAt"], stamp(fired))
        # one instance per endpoint, the failing ones first
        self.assertEqual([i["instance"] for i in s["instances"]],
                         [AUTH + "/hook", FLAKY + "/hook", GOOD + "/hook"])

        ok = h.instance(GOOD, s)
        self.assertEqual(ok["key"], "http::http://good.test:8001/hook")
        self.assertEqual(ok["displayName"], "good.test:8001/hook")
        self.assertEqual(ok["host"], GOOD)
        self.assertEqual(ok["pollStatus"], {"lastSuccess": stamp(fired), "lastError": None,
                                            "consecutiveFailures": 0, "firstFailureAt": None})
        self.assertEqual(ok["breaker"]["state"], "closed")
        self.assertEqual(ok["breaker"]["failureCount"], 0)
        self.assertEqual(ok["deadLetter"], {"present": False})

        perm = h.instance(AUTH, s)
        self.assertEqual(perm["pollStatus"], {
            "lastSuccess": None,
            "lastError": {"at": stamp(fired), "message": "HTTP 401: ok", "category": "permanent"},
            "consecutiveFailures": 1, "firstFailureAt": stamp(fired)})
        self.assertEqual(perm["deadLetter"]["present"], True)
        self.assertEqual(perm["deadLetter"]["reason"], "permanent_failure")
        self.assertEqual(perm["deadLetter"]["retryCount"], 1)
        self.assertEqual(perm["deadLetter"]["firstAttempt"], stamp(fired))
        self.assertEqual(perm["deadLetter"]["lastAttempt"], stamp(fired))
        self.assertEqual(perm["breaker"]["failureCount"], 1)
        self.assertEqual(perm["breaker"]["state"], "closed")

        trans = h.instance(FLAKY, s)
        self.assertEqual(trans["pollStatus"]["lastError"],
                         {"at": stamp(fired), "message": "HTTP 503: ok", "category": "transient"})
        self.assertEqual(trans["deadLetter"], {"present": False})  # retrying, not dead
        self.assertEqual(s["deadLetter"]["count"], 1)
        (task,) = s["deadLetter"]["tasks"]
        self.assertEqual(task["instance"], AUTH + "/hook")
        self.assertEqual(task["type"], "http")
        self.assertEqual(task["lastError"], "HTTP 401: ok")
        self.assertEqual(task["failures"], 1)
        self.assertEqual(task["nextRun"], stamp(T0 + 120))
        self.assertEqual(task["executionId"], execution_id(auth["id"], fired))

        # the transient one is retried (same execution id) until JobExecutionRetryMax is spent
        for _ in range(2):
            h.clock.advance(3)
            (post,) = h.answer(FLAKY, 503)
        flaky_id = execution_id(flaky["id"], fired)
        self.assertEqual([(p.ids(), p.attempts()) for p in h.http.to(FLAKY)],
                         [([flaky_id], [1]), ([flaky_id], [2]), ([flaky_id], [3])])
        s = h.health()
        self.shape.snapshot(s)
        trans = h.instance(FLAKY, s)
        self.assertEqual(trans["pollStatus"]["consecutiveFailures"], 3)
        self.assertEqual(trans["pollStatus"]["firstFailureAt"], stamp(fired))
        self.assertEqual(trans["pollStatus"]["lastError"]["at"], stamp(post.at))
        self.assertEqual(trans["pollStatus"]["lastError"]["category"], "transient")
        self.assertEqual(trans["deadLetter"]["present"], True)
        self.assertEqual(trans["deadLetter"]["reason"], "max_retry_attempts")
        self.assertEqual(trans["deadLetter"]["retryCount"], 3)
        self.assertEqual(trans["breaker"]["failureCount"], 3)
        self.assertEqual(trans["breaker"]["state"], "closed")
        self.assertEqual(h.instance(AUTH, s)["deadLetter"]["reason"], "permanent_failure")
        self.assertEqual(s["deadLetter"]["count"], 2)
        self.assertEqual({t["instance"] for t in s["deadLetter"]["tasks"]},
                         {AUTH + "/hook", FLAKY + "/hook"})
        self.assertEqual(h.execution(flaky_id)["state"], "dead")
        self.assertEqual(h.execution(execution_id(good["id"], fired))["state"], "succeeded")

        # the transient receiver recovers: the failure streak resets
        h.clock.advance(T0 + 120 - h.clock.seconds())
        h.answer(FLAKY, 200)
        trans = h.instance(FLAKY)
        self.assertEqual(trans["pollStatus"]["consecutiveFailures"], 0)
        self.assertIsNone(trans["pollStatus"]["firstFailureAt"])
        self.assertEqual(trans["pollStatus"]["lastSuccess"], stamp(T0 + 120))
        self.assertEqual(trans["breaker"]["failureCount"], 0)

    def test_at_most_100_instances_failing_ones_first(self) -> None:
        """Instances are endpoints, so there can be one per job: the list is bounded, and
        the failing ones come first, so the seed's jq queries still find them."""
        h = self.h
        h.ok("POST", "/api/v1/jobs", [
            {"projectId": self.p["id"], "spec": "@every 1m", "callbackUrl": f"{GOOD}/ok/{n}"}
            for n in range(110)], expect=201)
        h.job(self.p, FLAKY + "/zz")
        h.job(self.p, AUTH + "/zz")
        h.clock.advance(60)
        h.answer(FLAKY, 503)
        h.answer(AUTH, 401)
        while h.http.pending(GOOD):                 # eight at a time (the host's limit)
            h.answer(GOOD, 200)
        s = h.health()
        self.shape.snapshot(s)
        listed = [i["instance"] for i in s["instances"]]
        self.assertEqual(len(listed), 100)
        self.assertEqual(listed[:2], [AUTH + "/zz", FLAKY + "/zz"])
        self.assertEqual(listed[2:], sorted(f"{GOOD}/ok/{n}" for n in range(110))[:98])
        self.assertEqual([b["instance"] for b in s["breakers"]], listed)

    def test_dead_letter_tasks_are_capped_at_25(self) -> None:
        h = self.h
        jobs = h.ok("POST", "/api/v1/jobs", [
            {"projectId": self.p["id"], "spec": "@every 1m", "callbackUrl": AUTH + "/hook"}
            for _ in range(30)], expect=201)
        h.clock.advance(60)
        h.answer(AUTH, 401)
        s = h.health()
        self.shape.snapshot(s)
        self.assertEqual(s["deadLetter"]["count"], 30)
        self.assertEqual(len(s["deadLetter"]["tasks"]), 25)
        ids = {execution_id(j["id"], T0 + 60) for j in jobs}
        self.assertLessEqual({t["executionId"] for t in s["deadLetter"]["tasks"]}, ids)
        dead = h.instance(AUTH, s)["deadLetter"]
        self.assertEqual((dead["present"], dead["reason"], dead["count"]),
                         (True, "permanent_failure", 30))

    def test_due_within_12_seconds(self) -> None:
        h = self.h
        for path in ("/a", "/b", "/c"):
            h.job(self.p, GOOD + path)          # next at T0+60
        h.job(self.p, GOOD + "/hourly", spec="@every 1h")
        h.clock.advance(47.9)                   # T0+60 is 12.1 s away
        self.assertEqual(h.health()["queue"]["dueWithinSeconds"], 0)
        h.clock.advance(0.2)                    # 11.9 s away
        self.assertEqual(h.health()["queue"]["dueWithinSeconds"], 3)
        h.clock.advance(12)                     # fired; the next is 60 s away
        self.assertEqual(h.health()["queue"]["dueWithinSeconds"], 0)

    def test_queue_depth_counts_held_occurrences(self) -> None:
        h = self.h
        for i in range(5):
            h.job(self.p, f"{FLAKY}/hook/{i}")
        h.clock.advance(60)
        h.refuse(FLAKY)                         # 5 refused: the host's breaker opens
        h.clock.advance(1.5)                    # the retries come due and are held
        s = h.health()
        self.assertEqual(s["queue"]["depth"], 5)
        self.assertEqual(s["queue"]["perType"], {"http": 5})
        self.assertEqual(h.http.pending(), [])

    def test_enabled_is_false_while_halted(self) -> None:
        h = self.h
        h.job(self.p, GOOD + "/hook")
        self.assertIs(h.health()["enabled"], True)
        h.ok("POST", "/api/supervisor/halt")
        self.assertIs(h.health()["enabled"], False)
        h.ok("POST", "/api/supervisor/restart")
        self.assertIs(h.health()["enabled"], True)

    def test_staleness_score(self) -> None:
        h = self.h
        h.job(self.p, GOOD + "/hook")           # every 60 s
        h.job(self.p, AUTH + "/hook", spec="@every 2m")
        h.clock.advance(60)
        h.answer(GOOD, 200)
        h.ok("POST", "/api/supervisor/halt")    # nothing more goes out
        scores = {x["instance"]: x["score"] for x in h.health()["staleness"]}
        self.assertEqual(scores, {GOOD + "/hook": 0.0})   # the 2-minute job has not fired
        h.clock.advance(90)                     # 1.5 intervals: still fresh
        (item,) = h.health()["staleness"]
        self.assertEqual((item["instance"], item["score"]), (GOOD + "/hook", 0.0))
        h.clock.advance(105)                    # halfway from 1.5 to 5 intervals
        (item,) = h.health()["staleness"]
        self.assertEqual((item["instance"], item["score"]), (GOOD + "/hook", 0.5))
        self.assertEqual(item["lastSuccess"], stamp(T0 + 60))
        self.assertIsNone(item["lastError"])
        h.clock.advance(105)                    # 5 intervals
        self.assertEqual(h.health()["staleness"][0]["score"], 1.0)
        h.clock.advance(1000)
        self.assertEqual(h.health()["staleness"][0]["score"], 1.0)

    def test_health_needs_read(self) -> None:
        h = self.h
        reader = h.credential(["read"])
        writer = h.credential(["write"])
        self.assertIs(h.health(headers=reader)["enabled"], True)
        h.fails("GET", "/api/monitoring/scheduler/health", 401, headers={})
        h.fails("GET", "/api/monitoring/scheduler/health", 403, headers=writer)
        bad = {"x-api-key": reader["x-api-key"], "x-secret-key": "wrong"}
        h.fails("GET", "/api/monitoring/scheduler/health", 401, headers=bad)

    def test_the_seed_jq_queries_work_unchanged(self) -> None:
        # through libjq (the jq package): runs everywhere, no system binary, no skip
        h = self.h
        h.job(self.p, GOOD + "/hook")
        h.job(self.p, AUTH + "/hook")
        h.job(self.p, FLAKY + "/fine")          # a healthy endpoint of the flaky host
        for i in range(5):                      # five POSTs to one endpoint (five projects)
            h.job(h.project(f"flaky {i}"), FLAKY + "/hook")
        h.clock.advance(60)
        h.answer(GOOD, 200)
        h.answer(AUTH, 401)
        h.answer(FLAKY + "/hook", 503)
        h.answer(FLAKY + "/fine", 200)
        h.ok("POST", "/api/supervisor/halt")
        h.clock.advance(250)
        body = json.dumps(h.health())

        auth, flaky = f"http::{AUTH}/hook", f"http::{FLAKY}/hook"
        errors = run_jq(RECENT_ERRORS, body)
        self.assertEqual(sorted(e["key"] for e in errors), [auth, flaky])
        dead = run_jq(DEAD_LETTERS, body)
        self.assertEqual(dead, [{"key": auth, "reason": "permanent_failure", "retryCount": 1}])
        not_closed = run_jq(BREAKERS_NOT_CLOSED, body)
        self.assertEqual([b["key"] for b in not_closed], [flaky])
        self.assertIn(not_closed[0]["breaker"]["state"], ("open", "half_open"))
        self.assertEqual(not_closed[0]["breaker"]["scope"], "endpoint")
        stale = run_jq(STALE, body)
        self.assertEqual(sorted(x["instance"] for x in stale),
                         [AUTH + "/hook", FLAKY + "/fine", FLAKY + "/hook", GOOD + "/hook"])
        streaks = run_jq(FAILURE_STREAK, body)
        self.assertEqual(sorted((x["key"], x["failures"]) for x in streaks),
                         [(auth, 1), (flaky, 5)])
