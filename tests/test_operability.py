"""
Operability through the HTTP API (issue 4, seeds "Scheduler Health API" and "Scheduler
Admin API"): the health snapshot, breakers and dead letters repaired by API, the
supervisor (halt, restart, memory guard), hanging executions and /metrics.

Each node is built by L{scheduler0.node.build_node}, as the daemon builds it (real sqlite
store, the command log writing synchronously, the API behind the site's GuardResource), on
a C{task.Clock}, with a fake callback HTTP client whose answers the tests fire by hand.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.site import GuardResource
from scheduler0.domain import Execution
from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import format_time, from_seconds

from treq.testing import StubTreq

from .harness import (
    SECRET_KEY,
    T0,
    crash_node,
    in_process_node,
    key_headers,
    peer_headers,
    start_node,
    stop_node,
)
from .fakes import FakeHTTP, Post, SlowRecordsWriter
from .health_queries import (
    BREAKERS_NOT_CLOSED,
    DEAD_LETTERS,
    FAILURE_STREAK,
    RECENT_ERRORS,
    STALE,
    run_jq,
)
from .records import shown

NODE = "http://node.test"
MB = 2**20
GOOD = "http://good.test:8001"
AUTH = "http://auth.test:8002"     # answers 401: permanent
FLAKY = "http://flaky.test:8003"   # answers 503: transient
SLOW = "http://slow.test:8004"     # never answers
RFC3339 = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def stamp(seconds: float) -> str:
    return format_time(from_seconds(seconds))


def seconds_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the node, in process -----------------------------------------------------------------


class Ops:
    """
    One node built by L{scheduler0.node.build_node} (L{in_process_node}), its API driven
    through StubTreq behind the site's GuardResource; its callbacks go to a L{FakeHTTP}
    whose answers the tests fire by hand, its memory guard reads C{self.memory}.

    @param record_delay: the scheduler's writes (execution records, outbox entries) are
        durable at once but acknowledged this many seconds later (a slow commit path).
    """

    def __init__(self, testcase: SynchronousTestCase, *, retry_max: int = 2,
                 timeout: float = 10.0, retry_delay: float = 1.0, max_memory_mb: int = 0,
                 record_delay: float = 0.0, data_dir: str | None = None,
                 start: float = T0, secret_key: str = SECRET_KEY,
                 before_recovery: Callable[[Ops], None] | None = None) -> None:
        self.tc = testcase
        self.clock = clock = Clock()
        clock.advance(start)
        self.http = FakeHTTP(clock)
        self.memory = 0  # bytes, what the guard reads
        self.node = in_process_node(
            clock, data_dir or testcase.mktemp(), http=self.http,
            writer=SlowRecordsWriter(clock, record_delay) if record_delay else None,
            read_memory=lambda: self.memory, rng=random.Random(20261126),
            secret_key=secret_key, job_execution_retry_max=retry_max,
            job_execution_timeout=timeout, job_execution_retry_delay=retry_delay,
            max_memory=max_memory_mb)
        node = self.node
        self.store, self.commands, self.breakers = node.store, node.commands, node.breakers
        self.recorder, self.executor, self.scheduler = node.recorder, node.executor, node.scheduler
        self.supervisor, self.guard, self.repairs = node.supervisor, node.guard, node.repairs
        self.metrics, self.api = node.metrics, node.api
        self.closed = False
        start_node(node, {node.recovery: lambda: before_recovery(self)}
                   if before_recovery is not None else None)
        self.stub = StubTreq(GuardResource(self.api.resource(), None, self.metrics))
        testcase.addCleanup(self.close)

    def close(self) -> None:
        """Stop as on SIGTERM, without waiting for the callbacks in flight."""
        if not self.closed:
            self.closed = True
            stop_node(self.tc, self.node, self.clock)

    def crash(self) -> None:
        """The process dies: nothing more is written (see L{crash_node})."""
        if not self.closed:
            self.closed = True
            crash_node(self.tc, self.node)

    # -- HTTP ---------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        """(status, decoded JSON or raw text or None, response headers)."""
        hdrs = dict(peer_headers() if headers is None else headers)
        hdrs.setdefault("Content-Type", "application/json")
        data = json.dumps(body).encode() if body is not None else None
        d = self.stub.request(method, NODE + path, data=data, headers=hdrs)
        self.stub.flush()
        response = self.tc.successResultOf(d)
        content = self.tc.successResultOf(response.content())
        if not content:
            return response.code, None, response.headers
        try:
            return response.code, json.loads(content), response.headers
        except ValueError:
            return response.code, content.decode(), response.headers

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        code, envelope, _ = self.call(method, path, body)
        self.tc.assertEqual(code, expect, envelope)
        if envelope is None:
            return None
        self.tc.assertEqual(envelope["success"], True)
        return envelope["data"]

    def fails(self, method: str, path: str, expect: int, body: Any = None,
              headers: dict[str, str] | None = None) -> str:
        code, envelope, _ = self.call(method, path, body, headers)
        self.tc.assertEqual(code, expect, envelope)
        self.tc.assertEqual(envelope["success"], False, envelope)
        return envelope["data"]

    def project(self, name: str = "ops") -> dict:
        return self.ok("POST", "/api/v1/projects", {"name": name, "description": "d"},
                       expect=201)

    def job(self, project: dict, url: str, spec: str = "@every 1m", **fields: Any) -> dict:
        return self.ok("POST", "/api/v1/jobs", {"projectId": project["id"], "spec": spec,
                                                "callbackUrl": url, **fields}, expect=201)

    def credential(self, scopes: list[str]) -> dict[str, str]:
        return key_headers(self.ok("POST", "/api/v1/credentials", {"scopes": scopes},
                                   expect=201))

    def health(self, headers: dict[str, str] | None = None) -> dict:
        code, snapshot, response_headers = self.call(
            "GET", "/api/monitoring/scheduler/health", headers=headers)
        self.tc.assertEqual(code, 200, snapshot)
        self.tc.assertEqual(response_headers.getRawHeaders("content-type"),
                            ["application/json"])
        return snapshot

    def instance(self, target: str, snapshot: dict | None = None) -> dict:
        """The instance (endpoint) C{target}, or a host's only endpoint."""
        snapshot = snapshot if snapshot is not None else self.health()
        found = [i for i in snapshot["instances"] if i["instance"] == target]
        if not found:
            found = [i for i in snapshot["instances"] if i["host"] == target]
        (one,) = found
        return one

    def state(self) -> dict:
        return self.ok("GET", "/api/supervisor/state")

    def execution(self, eid: str) -> dict | None:
        """The execution as the API shows it (None if there is none)."""
        return shown(self.store.reader.execution(eid))

    # -- callbacks ----------------------------------------------------------------------

    def answer(self, prefix: str, code: int) -> list[Post]:
        """Answer every POST to C{prefix} in flight now."""
        posts = self.http.pending(prefix)
        for post in posts:
            post.answer(code)
        return posts

    def refuse(self, prefix: str) -> list[Post]:
        """Fail every POST to C{prefix} in flight now as a refused connection (the host
        cannot be reached)."""
        posts = self.http.pending(prefix)
        for post in posts:
            post.fail(ConnectionRefusedError("Connection refused"))
        return posts

    def sent_ids(self, prefix: str = "") -> list[str]:
        return [eid for post in self.http.to(prefix) for eid in post.ids()]


# -- checks on the seed's shape -----------------------------------------------------------


class Shape:
    """Assertions that a health snapshot has every field of the seed with its type."""

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.tc = testcase

    def time(self, value: Any, nullable: bool = True) -> None:
        if value is None:
            self.tc.assertTrue(nullable, "a required timestamp is null")
            return
        self.tc.assertIsInstance(value, str)
        self.tc.assertRegex(value, RFC3339)
        seconds_of(value)

    def integer(self, value: Any) -> None:
        self.tc.assertIs(type(value), int, value)
        self.tc.assertGreaterEqual(value, 0)

    def snapshot(self, s: dict) -> None:
        tc = self.tc
        tc.assertLessEqual({"updatedAt", "enabled", "queue", "deadLetter", "breakers",
                            "staleness", "instances"}, set(s))
        self.time(s["updatedAt"], nullable=False)
        tc.assertIs(type(s["enabled"]), bool)
        tc.assertLessEqual({"depth", "retryWaiting", "dueWithinSeconds", "perType"},
                           set(s["queue"]))
        self.integer(s["queue"]["depth"])
        self.integer(s["queue"]["retryWaiting"])
        self.integer(s["queue"]["dueWithinSeconds"])
        tc.assertIsInstance(s["queue"]["perType"], dict)
        for kind, count in s["queue"]["perType"].items():
            tc.assertIsInstance(kind, str)
            self.integer(count)
        self.integer(s["deadLetter"]["count"])
        tc.assertIsInstance(s["deadLetter"]["tasks"], list)
        tc.assertLessEqual(len(s["deadLetter"]["tasks"]), 25)
        for task in s["deadLetter"]["tasks"]:
            tc.assertLessEqual({"instance", "type", "nextRun", "lastError", "failures"},
                               set(task))
            tc.assertIsInstance(task["instance"], str)
            tc.assertEqual(task["type"], "http")
            self.time(task["nextRun"])
            tc.assertIsInstance(task["lastError"], str)
            self.integer(task["failures"])
        for breaker in s["breakers"]:
            tc.assertLessEqual({"instance", "type", "state", "failures", "retryAt"},
                               set(breaker))
            tc.assertIn(breaker["state"], ("closed", "open", "half_open", "unknown"))
            self.integer(breaker["failures"])
            self.time(breaker["retryAt"])
        for item in s["staleness"]:
            tc.assertLessEqual({"instance", "type", "score", "lastSuccess", "lastError"},
                               set(item))
            tc.assertIsInstance(item["score"], (int, float))
            tc.assertTrue(0.0 <= item["score"] <= 1.0, item)
            self.time(item["lastSuccess"])
            self.time(item["lastError"])
        tc.assertIsInstance(s["instances"], list)
        for instance in s["instances"]:
            self.instance(instance)
        # legacy arrays summarise the same instances
        targets = [i["instance"] for i in s["instances"]]
        tc.assertEqual([b["instance"] for b in s["breakers"]], targets)
        tc.assertEqual([x["instance"] for x in s["staleness"]], targets)

    def instance(self, i: dict) -> None:
        tc = self.tc
        tc.assertLessEqual({"key", "type", "displayName", "instance", "connection",
                            "pollStatus", "breaker", "deadLetter"}, set(i))
        tc.assertEqual(i["type"], "http")
        tc.assertEqual(i["key"], f"http::{i['instance']}")
        tc.assertRegex(i["instance"], r"\Ahttps?://[^/]+:\d+/")
        tc.assertEqual(i["host"], i["instance"][:i["instance"].index("/", 8)])
        tc.assertEqual(i["connection"], i["instance"])
        tc.assertEqual(i["displayName"], i["instance"].split("://", 1)[1])
        poll = i["pollStatus"]
        tc.assertLessEqual({"lastSuccess", "lastError", "consecutiveFailures",
                            "firstFailureAt"}, set(poll))
        self.time(poll["lastSuccess"])
        if poll["lastError"] is not None:
            tc.assertEqual(set(poll["lastError"]), {"at", "message", "category"})
            self.time(poll["lastError"]["at"], nullable=False)
            tc.assertIsInstance(poll["lastError"]["message"], str)
            tc.assertIn(poll["lastError"]["category"], ("transient", "permanent"))
        self.integer(poll["consecutiveFailures"])
        self.time(poll["firstFailureAt"])
        tc.assertEqual(poll["firstFailureAt"] is None, poll["consecutiveFailures"] == 0)
        breaker = i["breaker"]
        tc.assertLessEqual({"state", "since", "lastTransition", "retryAt", "failureCount"},
                           set(breaker))
        tc.assertIn(breaker["state"], ("closed", "open", "half_open", "unknown"))
        tc.assertIn(breaker["scope"], ("endpoint", "host"))
        for key in ("since", "lastTransition", "retryAt"):
            self.time(breaker[key])
        self.integer(breaker["failureCount"])
        dead = i["deadLetter"]
        tc.assertIs(type(dead["present"]), bool)
        if dead["present"]:
            tc.assertLessEqual({"reason", "firstAttempt", "lastAttempt", "retryCount",
                                "nextRetry"}, set(dead))
            tc.assertIn(dead["reason"], ("max_retry_attempts", "permanent_failure"))
            self.time(dead["firstAttempt"])
            self.time(dead["lastAttempt"])
            self.integer(dead["retryCount"])
            self.time(dead["nextRetry"])


# -- 1. health ----------------------------------------------------------------------------


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


# -- 2. breakers --------------------------------------------------------------------------


class BreakerTests(SynchronousTestCase):
    def test_closed_open_half_open_closed_watched_through_health(self) -> None:
        h = Ops(self, retry_max=2)
        # one endpoint, five POSTs a round (one per project)
        jobs = [h.job(h.project(f"p{i}"), f"{FLAKY}/hook") for i in range(5)]
        h.clock.advance(60)
        fired = T0 + 60
        posts = h.http.pending(FLAKY)
        self.assertEqual(len(posts), 5)
        self.assertEqual(h.instance(FLAKY)["breaker"]["state"], "closed")
        for n, post in enumerate(posts, 1):
            post.answer(503)
            breaker = h.instance(FLAKY)["breaker"]
            if n < 5:
                self.assertEqual((breaker["state"], breaker["failureCount"]), ("closed", n))
        # open after 5 consecutive failures
        snapshot = h.health()
        Shape(self).snapshot(snapshot)
        breaker = h.instance(FLAKY, snapshot)["breaker"]
        self.assertEqual(breaker["state"], "open")
        self.assertEqual(breaker["failureCount"], 5)
        self.assertEqual(breaker["since"], stamp(fired))
        self.assertEqual(breaker["lastTransition"], stamp(fired))
        retry_at = seconds_of(breaker["retryAt"])
        self.assertTrue(fired + 4 <= retry_at <= fired + 6, breaker)  # 5 s +- 20 % jitter
        (legacy,) = snapshot["breakers"]
        self.assertEqual((legacy["state"], legacy["failures"], legacy["retryAt"]),
                         ("open", 5, breaker["retryAt"]))

        # the retries come due while it is open: held, nothing is sent
        h.clock.advance(1.5)
        self.assertEqual(h.http.pending(), [])
        self.assertEqual(h.health()["queue"]["depth"], 5)
        for job in jobs:
            self.assertEqual(h.execution(execution_id(job["id"], fired))["state"], "scheduled")
        h.clock.advance(retry_at - h.clock.seconds() - 0.05)
        self.assertEqual(h.instance(FLAKY)["breaker"]["state"], "open")
        self.assertEqual(h.http.pending(), [])

        # half_open after the delay: exactly one probe goes out
        h.clock.advance(0.1)
        breaker = h.instance(FLAKY)["breaker"]
        self.assertEqual(breaker["state"], "half_open")
        self.assertEqual(seconds_of(breaker["since"]), seconds_of(breaker["lastTransition"]))
        self.assertGreater(seconds_of(breaker["since"]), fired)
        (probe,) = h.http.pending(FLAKY)
        self.assertEqual(probe.attempts(), [2])
        self.assertEqual(h.health()["queue"]["depth"], 4)

        # the probe succeeds: closed, and what was held is delivered
        probe.answer(200)
        breaker = h.instance(FLAKY)["breaker"]
        self.assertEqual((breaker["state"], breaker["failureCount"], breaker["retryAt"]),
                         ("closed", 0, None))
        self.assertEqual(breaker["since"], stamp(h.clock.seconds()))
        held = h.http.pending(FLAKY)
        self.assertEqual(len(held), 4)
        for post in held:
            self.assertEqual(post.attempts(), [2])
            post.answer(200)
        for job in jobs:
            record = h.execution(execution_id(job["id"], fired))
            self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        s = h.health()
        self.assertEqual(s["queue"]["depth"], 0)
        self.assertEqual(h.instance(FLAKY, s)["pollStatus"]["consecutiveFailures"], 0)
        self.assertEqual(s["deadLetter"]["count"], 0)

    def test_reset_closes_an_open_host_breaker(self) -> None:
        h = Ops(self, retry_max=0)
        p = h.project()
        tripping = [h.job(p, f"{FLAKY}/trip/{i}", spec="@every 1h") for i in range(5)]
        waiting = h.job(p, f"{FLAKY}/waiting", spec="@every 1h")
        forms = [FLAKY, quote(FLAKY, safe=""), "flaky.test:8003", f"http::{FLAKY}"]
        for form in forms:
            h.clock.advance(1)
            for job in tripping:
                h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
            h.refuse(FLAKY)                                  # the host cannot be reached
            breaker = h.instance(FLAKY + "/trip/0")["breaker"]
            self.assertEqual((breaker["state"], breaker["scope"]), ("open", "host"))
            run = h.ok("POST", f"/api/v1/jobs/{waiting['id']}/run", expect=202)
            self.assertEqual(h.http.pending(), [])          # held by the open breaker
            self.assertEqual(h.health()["queue"]["depth"], 1)
            result = h.ok("POST", f"/api/monitoring/breakers/{form}/reset")
            self.assertEqual(result, {"instance": FLAKY, "breaker": "closed"})
            breaker = h.instance(FLAKY + "/trip/0")["breaker"]
            self.assertEqual((breaker["state"], breaker["failureCount"], breaker["retryAt"]),
                             ("closed", 0, None), form)
            (post,) = h.http.pending(FLAKY)                  # the held one goes at once
            self.assertEqual(post.ids(), [run["executionId"]])
            post.answer(200)
            self.assertEqual(h.execution(run["executionId"])["state"], "succeeded")

    def test_reset_closes_an_open_endpoint_breaker(self) -> None:
        """An endpoint's breaker is reset by its URL as the health API lists it (percent-
        encoded or not); the host's other endpoints were never held."""
        h = Ops(self, retry_max=0)
        p = h.project()
        tripping = h.job(p, f"{FLAKY}/trip", spec="@every 1h")
        other = h.job(p, f"{FLAKY}/other", spec="@every 1h")
        endpoint = FLAKY + "/trip"
        forms = [quote(endpoint, safe=""), endpoint, f"http::{endpoint}",
                 quote(f"http::{endpoint}", safe="")]
        for form in forms:
            for _ in range(5):                              # five POSTs, five failures
                h.clock.advance(0.01)
                h.ok("POST", f"/api/v1/jobs/{tripping['id']}/run", expect=202)
            h.answer(endpoint, 503)
            breaker = h.instance(endpoint)["breaker"]
            self.assertEqual((breaker["state"], breaker["scope"]), ("open", "endpoint"))
            # /metrics: the host counted in its worst state; no host or URL as a label
            m = scrape(h)
            self.assertEqual(value(m, "scheduler0_breakers", state="open"), 1)
            self.assertEqual(value(m, "scheduler0_endpoint_breakers_not_closed"), 1)
            self.assertEqual([k for k in m if "target" in dict(k[1])], [])
            run = h.ok("POST", f"/api/v1/jobs/{tripping['id']}/run", expect=202)
            self.assertEqual(h.http.pending(endpoint), [])  # held by its open breaker
            fine = h.ok("POST", f"/api/v1/jobs/{other['id']}/run", expect=202)
            (sent,) = h.http.pending(FLAKY + "/other")      # the same host's other one goes
            self.assertEqual(sent.ids(), [fine["executionId"]])
            sent.answer(200)
            result = h.ok("POST", f"/api/monitoring/breakers/{form}/reset")
            self.assertEqual(result, {"instance": endpoint, "breaker": "closed"}, form)
            (post,) = h.http.pending(endpoint)               # the held one goes at once
            self.assertEqual(post.ids(), [run["executionId"]])
            post.answer(200)
            self.assertEqual(h.execution(run["executionId"])["state"], "succeeded")
            self.assertEqual(h.instance(endpoint)["breaker"]["state"], "closed")

    def test_reset_of_an_unknown_target_is_404_and_needs_admin(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.clock.advance(60)
        h.answer(GOOD, 200)
        for form in ("http://nowhere.test:9", "nowhere.test:9", quote("http://nowhere.test:9",
                                                                      safe="")):
            message = h.fails("POST", f"/api/monitoring/breakers/{form}/reset", 404)
            self.assertIn("nowhere.test:9", message)
        message = h.fails("POST", "/api/monitoring/breakers/"
                          f"{quote(GOOD + '/nope', safe='')}/reset", 404)
        self.assertIn("good.test:8001/nope", message)
        writer = h.credential(["read", "write", "execute"])
        h.fails("POST", f"/api/monitoring/breakers/{GOOD}/reset", 403, headers=writer)
        h.fails("POST", f"/api/monitoring/breakers/{GOOD}/reset", 401, headers={})
        self.assertEqual(h.ok("POST", f"/api/monitoring/breakers/{GOOD}/reset"),
                         {"instance": GOOD, "breaker": "closed"})


# -- 3. dead letters ----------------------------------------------------------------------


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


# -- 4. supervisor ------------------------------------------------------------------------


class SupervisorTests(SynchronousTestCase):
    def test_503_without_a_job(self) -> None:
        h = Ops(self)
        message = h.fails("GET", "/api/supervisor/state", 503)
        self.assertIn("no job", message)
        h.project()
        h.fails("GET", "/api/supervisor/state", 503)

    def test_running_then_finished_after_the_only_at_job_fired(self) -> None:
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/once", spec="@at 2026-11-26T16:00:30Z")
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        h.clock.advance(29)
        self.assertEqual(h.state()["state"], "RUNNING")
        h.clock.advance(1)
        (post,) = h.http.pending(GOOD)
        self.assertEqual(post.ids(), [execution_id(job["id"], T0 + 30)])
        self.assertEqual(h.state(), {"state": "FINISHED", "reason": None})
        post.answer(200)
        self.assertEqual(h.state()["state"], "FINISHED")
        # a job with a future occurrence: running again
        h.job(p, GOOD + "/every")
        self.assertEqual(h.state()["state"], "RUNNING")

    def test_halt_lets_flights_finish_and_restart_follows_the_misfire_policies(self) -> None:
        h = Ops(self)
        p = h.project()
        once = h.job(p, GOOD + "/once", misfirePolicy="fire_once")
        skip = h.job(p, GOOD + "/skip", misfirePolicy="skip")
        every = h.job(p, GOOD + "/all", misfirePolicy="fire_all")
        self.assertEqual(h.state()["state"], "RUNNING")
        h.clock.advance(60)
        in_flight = h.http.pending()
        self.assertEqual(len(in_flight), 3)

        # halt returns at once, with the callbacks still in flight
        halted = h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(halted["state"], "HALTED")
        self.assertIn("operator", halted["reason"])
        self.assertEqual(len(h.http.pending()), 3)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("operator", state["reason"])
        # in flight: finishes and is recorded
        for post in in_flight:
            post.answer(200)
        for job in (once, skip, every):
            self.assertEqual(h.execution(execution_id(job["id"], T0 + 60))["state"],
                             "succeeded")
        # nothing leaves the node while halted, run-now included
        h.ok("POST", f"/api/v1/jobs/{once['id']}/run", expect=202)
        h.clock.advance(570)                                # T0+630
        self.assertEqual(len(h.http.posts), 3)
        self.assertEqual(h.state()["state"], "HALTED")
        self.assertIs(h.health()["enabled"], False)

        restarted = h.ok("POST", "/api/supervisor/restart")
        self.assertEqual(restarted, {"state": "RUNNING", "reason": None})
        after = h.http.posts[3:]
        by_url: dict[str, list[str]] = {}
        for post in after:
            by_url.setdefault(post.url, []).extend(post.ids())
        # fire_once: the latest missed (16:10:00, 30 s late, within the 60 s grace) once
        self.assertEqual(by_url[GOOD + "/once"][-1], execution_id(once["id"], T0 + 600))
        self.assertEqual(len([e for e in by_url[GOOD + "/once"]
                              if not e.endswith(".001Z")]), 1)
        self.assertEqual(len(by_url[GOOD + "/once"]), 2)    # + the run-now that waited
        # skip: nothing; fire_all: every missed one, 16:02 .. 16:10
        self.assertNotIn(GOOD + "/skip", by_url)
        self.assertEqual(by_url[GOOD + "/all"],
                         [execution_id(every["id"], T0 + 60 * k) for k in range(2, 11)])
        h.answer("", 200)
        h.clock.advance(30)                                 # T0+660: back on schedule
        self.assertEqual(sorted(eid for p in h.http.pending() for eid in p.ids()),
                         sorted(execution_id(j["id"], T0 + 660) for j in (once, skip, every)))

    def test_a_halt_during_a_retry_wait_sends_nothing_until_restart(self) -> None:
        h = Ops(self, retry_max=2)
        p = h.project()
        job = h.job(p, FLAKY + "/hook")
        h.clock.advance(60)
        h.ok("POST", "/api/supervisor/halt")
        h.answer(FLAKY, 503)                                # in flight: recorded retrying
        eid = execution_id(job["id"], T0 + 60)
        self.assertEqual(h.execution(eid)["state"], "retrying")
        h.clock.advance(30)                                 # the retry comes due
        self.assertEqual(h.http.pending(), [])
        self.assertEqual(len(h.http.posts), 1)
        h.ok("POST", "/api/supervisor/restart")
        (post,) = h.http.pending()
        self.assertEqual((post.ids(), post.attempts()), ([eid], [2]))

    def test_supervisor_endpoints_need_admin_or_peer(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        rwx = h.credential(["read", "write", "execute"])
        admin = h.credential(["admin"])
        endpoints = [("GET", "/api/supervisor/state", None),
                     ("POST", "/api/supervisor/halt", None),
                     ("POST", "/api/supervisor/restart", None),
                     ("GET", "/api/supervisor/hanging", None),
                     ("POST", "/api/supervisor/hanging/1-20261126T160100Z/resolve",
                      {"action": "complete"})]
        for method, path, body in endpoints:
            h.fails(method, path, 403, body=body, headers=rwx)
            h.fails(method, path, 401, body=body, headers={})
        self.assertEqual(h.state()["state"], "RUNNING")     # the 403s halted nothing
        code, envelope, _ = h.call("POST", "/api/supervisor/halt", headers=admin)
        self.assertEqual((code, envelope["data"]["state"]), (200, "HALTED"))
        code, envelope, _ = h.call("GET", "/api/supervisor/state", headers=admin)
        self.assertEqual((code, envelope["data"]["state"]), (200, "HALTED"))
        code, envelope, _ = h.call("POST", "/api/supervisor/restart",
                                   headers=peer_headers("peer"))
        self.assertEqual((code, envelope["data"]["state"]), (200, "RUNNING"))
        code, envelope, _ = h.call("GET", "/api/supervisor/hanging", headers=admin)
        self.assertEqual((code, envelope["data"]["total"]), (200, 0))


class SupervisorRestartTests(SynchronousTestCase):
    """
    Issue 9, item 7: an operator's halt survives a restart of the process (it is stored,
    and restored before anything is dispatched); the restart is stored too; memory
    pressure is not. Each "restart" is a new node, wired as build_node wires it, over the
    same data directory.
    """

    def again(self, h: Ops, at: float, **settings: Any) -> Ops:
        """Stop C{h} and start a node on its data directory at C{at}; as the daemon does,
        it resumes the outbox and the unfinished executions."""
        h.close()
        return Ops(self, data_dir=h.store.data_dir, start=at, **settings)

    def test_an_operators_halt_survives_a_restart_and_nothing_goes_out_at_start(self) -> None:
        h = Ops(self)
        p = h.project()
        once = h.job(p, GOOD + "/once", misfirePolicy="fire_once")
        skip = h.job(p, GOOD + "/skip", misfirePolicy="skip")
        every = h.job(p, GOOD + "/all", misfirePolicy="fire_all")
        h.clock.advance(60)
        h.answer("", 200)
        h.clock.advance(1)                                  # T0+61
        h.ok("POST", "/api/supervisor/halt")
        h.clock.advance(89)                                 # T0+150: 16:02 missed, halted

        node = self.again(h, T0 + 400)                      # down: 16:03 .. 16:06 missed
        self.assertEqual(node.state(), {
            "state": "HALTED",
            "reason": f"halted by an operator (POST /api/supervisor/halt) since "
                      f"{stamp(T0 + 61)}"})
        self.assertIs(node.health()["enabled"], False)
        node.clock.advance(230)                             # T0+630
        self.assertEqual(node.http.posts, [])               # no catch-up, nothing due
        self.assertEqual(node.state()["state"], "HALTED")

        self.assertEqual(node.ok("POST", "/api/supervisor/restart"),
                         {"state": "RUNNING", "reason": None})
        by_url: dict[str, list[str]] = {}
        for post in node.http.posts:
            by_url.setdefault(post.url, []).extend(post.ids())
        # the misfire policies over everything missed, halted or down alike:
        # fire_all every slot 16:02 .. 16:10; fire_once the latest (30 s late); skip none
        self.assertEqual(by_url.pop(GOOD + "/all"),
                         [execution_id(every["id"], T0 + 60 * k) for k in range(2, 11)])
        self.assertEqual(by_url.pop(GOOD + "/once"), [execution_id(once["id"], T0 + 600)])
        self.assertEqual(by_url, {})
        node.answer("", 200)
        node.clock.advance(30)                              # T0+660: back on schedule
        self.assertEqual(sorted(e for post in node.http.pending() for e in post.ids()),
                         sorted(execution_id(j["id"], T0 + 660) for j in (once, skip, every)))

    def test_a_resend_after_the_restart_waits_for_the_operator(self) -> None:
        """A POST in flight at the crash is sent again only after the operator's restart,
        once, with the same execution id."""
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/hook")                      # fire_once, grace 60
        h.clock.advance(60)
        (lost,) = h.http.pending(GOOD)
        h.ok("POST", "/api/supervisor/halt")
        node = self.again(h, T0 + 90)
        node.clock.advance(60)                              # T0+150: 16:02 passes
        self.assertEqual(node.http.posts, [])
        node.ok("POST", "/api/supervisor/restart")
        sent = sorted((e, a) for post in node.http.posts
                      for e, a in zip(post.ids(), post.attempts()))
        self.assertEqual(sent, sorted([(execution_id(job["id"], T0 + 60), 2),
                                       (execution_id(job["id"], T0 + 120), 1)]))

    def test_the_operators_restart_is_stored_too(self) -> None:
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/hook")
        h.ok("POST", "/api/supervisor/halt")
        h.ok("POST", "/api/supervisor/restart")
        node = self.again(h, T0 + 30)
        self.assertEqual(node.state(), {"state": "RUNNING", "reason": None})
        node.clock.advance(30)
        self.assertEqual(node.sent_ids(), [execution_id(job["id"], T0 + 60)])

    def test_memory_pressure_is_not_kept_across_a_restart(self) -> None:
        h = Ops(self, max_memory_mb=100)
        p = h.project()
        job = h.job(p, GOOD + "/hook")
        h.memory = 80 * MB
        h.clock.advance(1)
        self.assertIn("MaxMemory", h.state()["reason"])
        node = self.again(h, T0 + 30)
        self.assertEqual(node.state(), {"state": "RUNNING", "reason": None})
        node.clock.advance(30)
        self.assertEqual(node.sent_ids(), [execution_id(job["id"], T0 + 60)])

    def test_a_halt_that_cannot_be_stored_holds_and_is_logged(self) -> None:
        """The API answers at once whatever the store does; a failed write is logged with
        what it means, and the halt holds in memory."""
        from twisted.internet.defer import fail, succeed
        from twisted.logger import globalLogPublisher

        from scheduler0.consensus.interface import StorageFull

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        answers = [fail(StorageFull()), succeed({"ok": False, "status": 400, "error": "no"})]
        h.supervisor._commands = type("Failing", (), {
            "submit": lambda self, command: answers.pop(0)})()
        halted = h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(halted["state"], "HALTED")
        self.assertEqual(len(self.flushLoggedErrors(StorageFull)), 1)
        h.ok("POST", "/api/supervisor/halt")
        messages = [e for e in events if e.get("what") == "halt"]
        self.assertEqual(len(messages), 2, messages)
        for event in messages:
            self.assertIn("a restart of the process would resume the scheduler",
                          event["after"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.assertIsNone(h.store.schedule_reader.supervisor())    # nothing was stored


# -- 5. hanging executions ----------------------------------------------------------------


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


# -- 6. memory guard ----------------------------------------------------------------------


class MemoryGuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, max_memory_mb=100)
        p = h.project()
        self.job = h.job(p, GOOD + "/hook")

    def use(self, mb: float) -> None:
        self.h.memory = int(mb * MB)
        self.h.clock.advance(1)                             # the guard reads every second

    def test_hysteresis_between_60_and_70_percent(self) -> None:
        h = self.h
        self.use(69.9)
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        self.use(70)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("MaxMemory", state["reason"])
        self.assertIn("70%", state["reason"])
        self.assertIs(h.health()["enabled"], False)
        self.use(65)                                        # between: still halted
        self.assertEqual(h.state()["state"], "HALTED")
        self.use(60)
        self.assertEqual(h.state()["state"], "HALTED")
        self.use(59.9)
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        self.assertIs(h.health()["enabled"], True)
        self.use(69)                                        # between, from below: running
        self.assertEqual(h.state()["state"], "RUNNING")

    def test_no_new_occurrence_under_pressure_then_catch_up(self) -> None:
        h = self.h
        h.clock.advance(55)
        self.use(90)
        h.clock.advance(20)                                 # T0+60 passes: not taken
        self.assertEqual(h.http.posts, [])
        self.use(10)                                        # T0+77: resumes, fire_once
        (post,) = h.http.pending(GOOD)
        self.assertEqual(post.ids(), [execution_id(self.job["id"], T0 + 60)])
        post.answer(200)
        h.clock.advance(T0 + 120 - h.clock.seconds())
        self.assertEqual(len(h.http.pending(GOOD)), 1)

    def test_callbacks_already_in_flight_or_queued_still_go_out(self) -> None:
        h = self.h
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        self.use(80)
        post.answer(200)
        self.assertEqual(h.execution(execution_id(self.job["id"], T0 + 60))["state"],
                         "succeeded")
        # the executor is not halted by memory: a manual run still goes out
        run = h.ok("POST", f"/api/v1/jobs/{self.job['id']}/run", expect=202)
        (sent,) = h.http.pending(GOOD)
        self.assertEqual(sent.ids(), [run["executionId"]])

    def test_an_operator_halt_is_not_undone_by_the_memory_guard(self) -> None:
        h = self.h
        h.ok("POST", "/api/supervisor/halt")
        self.use(80)
        self.use(10)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("operator", state["reason"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.assertIs(h.health()["enabled"], False)
        # and an operator restart under memory pressure does not bypass the guard
        self.use(90)
        restarted = h.ok("POST", "/api/supervisor/restart")
        self.assertEqual(restarted["state"], "HALTED")
        self.assertIn("MaxMemory", restarted["reason"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.use(10)
        self.assertEqual(h.state()["state"], "RUNNING")
        self.assertEqual(len(h.http.pending(GOOD)), 1)      # fire_once catch-up

    def test_no_limit_means_no_guard(self) -> None:
        h = Ops(self, max_memory_mb=0)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.memory = 10**15
        h.clock.advance(60)
        self.assertEqual(h.state()["state"], "RUNNING")
        self.assertEqual(len(h.http.pending()), 1)


# -- 7. /metrics --------------------------------------------------------------------------


def scrape(h: Ops) -> dict[tuple[str, tuple], float]:
    code, body, headers = h.call("GET", "/metrics", headers={})
    assert code == 200, body
    (content_type,) = headers.getRawHeaders("content-type")
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class MetricsTests(SynchronousTestCase):
    def test_metrics(self) -> None:
        h = Ops(self, retry_max=2)
        p = h.project()
        h.job(p, GOOD + "/ok")
        h.job(p, AUTH + "/a")
        for i in range(5):
            h.job(p, f"{FLAKY}/f/{i}")
        h.job(p, SLOW + "/s")
        h.job(p, GOOD + "/at", spec="@at 2026-11-26T16:01:10Z")
        h.fails("GET", "/api/monitoring/scheduler/health", 401, headers={})
        h.clock.advance(60)
        self.assertEqual(len(h.http.pending()), 8)
        h.clock.advance(0.25)
        h.answer(GOOD, 200)
        h.answer(AUTH, 401)
        h.refuse(FLAKY)                         # 5 refused: the flaky host's breaker opens
        h.clock.advance(1.5)                    # its 5 retries are held

        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="dead"), 1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="retrying"), 5)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="failed"), 0)
        # lateness: the 8 first attempts went out on time
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 8)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_sum"), 0)
        # durations: 7 answered after 0.25 s
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 7)
        self.assertAlmostEqual(value(m, "scheduler0_callback_duration_seconds_sum"), 1.75)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_bucket", le="0.1"), 0)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_bucket", le="0.25"), 7)
        self.assertEqual(value(m, "scheduler0_queue_depth"), 5)
        self.assertEqual(value(m, "scheduler0_due_within_12s"), 1)   # the @at at 16:01:10
        self.assertEqual(value(m, "scheduler0_dead_letters"), 1)
        self.assertEqual(value(m, "scheduler0_executions_in_flight"), 1)  # the slow one
        self.assertEqual(value(m, "scheduler0_breakers", state="open"), 1)
        self.assertEqual(value(m, "scheduler0_breakers", state="closed"), 3)
        self.assertEqual(value(m, "scheduler0_endpoint_breakers_not_closed"), 0)
        self.assertEqual(value(m, "scheduler0_scheduler_halted"), 0)
        self.assertEqual(value(m, "scheduler0_jobs_planned"), 9)
        # the health answer agrees with the metrics
        s = h.health()
        self.assertEqual((s["queue"]["depth"], s["queue"]["dueWithinSeconds"],
                          s["deadLetter"]["count"]), (5, 1, 1))
        # API requests by route, method and status
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/api/v1/jobs",
                               method="POST", status="201"), 9)
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/api/v1/projects",
                               method="POST", status="201"), 1)
        self.assertEqual(value(m, "scheduler0_api_requests_total",
                               route="/api/monitoring/scheduler/health", method="GET",
                               status="401"), 1)
        self.assertIsNone(value(m, "scheduler0_api_requests_total", route="/metrics",
                                method="GET", status="200"))
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_api_requests_total", route="/metrics",
                               method="GET", status="200"), 1)
        self.assertEqual(value(m, "scheduler0_api_requests_total",
                               route="/api/monitoring/scheduler/health", method="GET",
                               status="200"), 1)
        # process metrics
        self.assertGreater(value(m, "process_resident_memory_bytes"), 0)
        self.assertIsNotNone(value(m, "process_cpu_seconds_total"))
        self.assertIn("python_info", {name for name, _ in m})
        # halting shows
        h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(value(scrape(h), "scheduler0_scheduler_halted"), 1)

    def test_one_duration_per_post_and_one_lateness_per_occurrence(self) -> None:
        """Three jobs on one URL go in one POST: the callback-duration histogram counts
        POSTs, the lateness histogram and the outcome counter count occurrences."""
        h = Ops(self)
        p = h.project()
        for _ in range(3):
            h.job(p, GOOD + "/same")
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        self.assertEqual(len(post.ids()), 3)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 3)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 0)
        h.clock.advance(0.5)
        post.answer(200)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_callback_duration_seconds_count"), 1)
        self.assertAlmostEqual(value(m, "scheduler0_callback_duration_seconds_sum"), 0.5)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 3)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 3)

    def test_lateness_of_a_catch_up(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.ok("POST", "/api/supervisor/halt")
        h.clock.advance(90)
        h.ok("POST", "/api/supervisor/restart")          # 16:01:00 caught up 30 s late
        h.answer(GOOD, 200)
        m = scrape(h)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_count"), 1)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_sum"), 30)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_bucket", le="10.0"),
                         0)
        self.assertEqual(value(m, "scheduler0_occurrence_lateness_seconds_bucket", le="30.0"),
                         1)
        self.assertEqual(value(m, "scheduler0_occurrences_total", outcome="succeeded"), 1)
