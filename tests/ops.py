"""
The operability harness: one node built by L{scheduler0.node.build_node}, as the daemon
builds it (real sqlite store, the command log writing synchronously, the API behind the
site's GuardResource), on a C{task.Clock}, with a fake callback HTTP client whose answers
the tests fire by hand (L{Ops}); the checks on the health snapshot's shape (L{Shape}) and
a /metrics scrape (L{scrape}, L{value}). Shared by the operability test modules
(test_health, test_breakers_api, test_dead_letters, test_supervisor_api, test_hanging,
test_memory_guard, test_metrics_endpoint) and others that need a whole node in process.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.site import GuardResource
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
