"""
The callback executor (PRODUCT §5 delivery, §7 breakers and dead letters).

Two layers, both against a real sqlite store whose execution records are really applied
(StoreService + LocalCommandLog(threaded=False) + ExecutionRecorder):

- L{ExecutorTests}: deterministic, a C{task.Clock} and a fake HTTP client whose answers
  are fired by hand; the fake ignores treq's C{timeout=}, so every timeout seen here is the
  executor's own.
- L{RealHttpTests}: the real reactor, real twisted.web receivers on 127.0.0.1 and the
  client that C{scheduler0.node.callback_client} builds (its own connection pool).
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from scheduler0.config import Config
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.execution.backoff import retry_delay
from scheduler0.execution.breaker import Breakers, BreakerState
from scheduler0.execution.executor import Executor, ExecutorSettings
from scheduler0.execution.failures import PERMANENT, TRANSIENT
from scheduler0.execution.network_policy import CallbackRefused, NetworkPolicy
from scheduler0.execution.outcomes import classify_status
from scheduler0.execution.recorder import ExecutionRecorder
from scheduler0.execution.signing import SIGNATURE_HEADER, verify
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence, execution_id, job_payload, target_of
from scheduler0.state import commands as C
from scheduler0.state.commands import new_command
from scheduler0.store.service import StoreService
from scheduler0.timestamps import format_time, from_seconds

from .fakes import FakeHTTP, FakeResponse
from .records import job_of, next_id_will_be, shown

T0 = 1795708800.0  # 2026-11-26T16:00:00Z
SECRET_1 = "whsec_project-one-secret-0123456789abcdefghijklmnop"
SECRET_2 = "whsec_project-two-secret-0123456789abcdefghijklmnop"
ROTATED = "whsec_project-one-rotated-0123456789abcdefghijklmno"


def stamp(seconds: float) -> str:
    return format_time(from_seconds(seconds))


# -- a real store -------------------------------------------------------------------------


class Store:
    """Projects, jobs and execution records in a real sqlite file, written synchronously."""

    def __init__(self, testcase: SynchronousTestCase, clock: Any) -> None:
        self.testcase = testcase
        self.clock = clock
        self.service = StoreService(testcase.mktemp())
        self.service.startService()
        self.commands = LocalCommandLog(self.service.path, clock, threaded=False)
        testcase.successResultOf(self.commands.startService())
        self.jobs: dict[int, dict] = {}
        testcase.addCleanup(self.close)

    def close(self) -> None:
        self.testcase.successResultOf(self.commands.stopService())
        self.service.stopService()

    def apply(self, kind: str, payload: dict) -> dict:
        result = self.testcase.successResultOf(
            self.commands.submit(new_command(kind, payload, self.clock.seconds())))
        self.testcase.assertTrue(result["ok"], result)
        return result

    def project(self, project_id: int, secret: str) -> None:
        next_id_will_be(self.service.path, "projects", project_id)
        result = self.apply(C.PROJECT_CREATE, {"project": {
            "name": f"project {project_id}", "description": "", "signing_secret": secret}})
        self.testcase.assertEqual(result["id"], project_id)

    def rotate(self, project_id: int, secret: str, previous_expires: float) -> None:
        self.apply(C.PROJECT_ROTATE_SECRET, {"id": project_id, "secret": secret,
                                             "previous_expires": stamp(previous_expires)})

    def job(self, job_id: int, url: str, project_id: int = 1, data: str | None = None) -> dict:
        next_id_will_be(self.service.path, "jobs", job_id)
        self.apply(C.JOB_CREATE, {"jobs": [{
            "project_id": project_id, "spec": "@every 1m", "callback_url": url,
            "data": data, "execution_type": "http", "timezone": "UTC", "start_date": None,
            "end_date": None, "paused": 0, "misfire_policy": "fire_once",
            "misfire_grace_seconds": 60}]})
        public = {"id": job_id, "projectId": project_id, "spec": "@every 1m",
                  "callbackUrl": url, "data": data, "executionType": "http",
                  "timezone": "UTC", "startDate": None, "endDate": None,
                  "dateCreated": "2026-11-26T15:00:00.000Z"}
        self.jobs[job_id] = public
        return public

    def occurrence(self, job_id: int, scheduled: float = T0) -> Occurrence:
        job = self.jobs[job_id]
        return Occurrence(
            execution_id=execution_id(job_id, scheduled), job_id=job_id,
            project_id=job["projectId"], scheduled=scheduled, callback_url=job["callbackUrl"],
            target=target_of(job["callbackUrl"]), payload=job_payload(job_of(job)))

    def expected_item(self, o: Occurrence, attempt: int = 1) -> dict:
        return {**self.jobs[o.job_id], "executionId": o.execution_id,
                "scheduledTime": stamp(o.scheduled), "attempt": attempt}

    def record(self, eid: str) -> dict | None:
        assert self.service.reader is not None
        return shown(self.service.reader.execution(eid))

    def state(self, eid: str) -> str | None:
        record = self.record(eid)
        return None if record is None else record["state"]

    def secrets_for(self, project_id: int) -> list[str]:
        assert self.service.schedule_reader is not None
        return self.service.schedule_reader.signing_secrets(
            project_id, stamp(self.clock.seconds()))


def make_executor(testcase: SynchronousTestCase, clock: Any, http: Any, store: Store,
                  rng: random.Random, is_live: Callable[[int], bool] = lambda job_id: True,
                  **settings: Any) -> Executor:
    """Wired like L{scheduler0.node.build_node}: breaker changes reach the executor."""
    breakers = Breakers(clock, rng, on_change=lambda breaker, old, new:
                        executor.on_breaker_change(breaker, old, new))
    executor = Executor(clock, http, ExecutionRecorder(clock, store.commands), breakers,
                        secrets_for=store.secrets_for, is_live=is_live,
                        settings=ExecutorSettings(**settings), rng=rng)
    executor.startService()
    return executor


# -- a fake HTTP client -------------------------------------------------------------------


# -- layer 1: deterministic ---------------------------------------------------------------


class ExecutorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0 + 5)  # every occurrence at T0 is 5 s late
        self.store = Store(self, self.clock)
        self.store.project(1, SECRET_1)
        self.store.project(2, SECRET_2)
        self.http = FakeHTTP(self.clock, self.store)
        self.rng = random.Random(20261126)
        self.live: set[int] | None = None  # None: every job is live

    def executor(self, **settings: Any) -> Executor:
        executor = make_executor(self, self.clock, self.http, self.store, self.rng,
                                 is_live=lambda job_id: self.live is None or job_id in self.live,
                                 **settings)
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def jobs(self, base: str, ids: range | list[int], project_id: int = 1,
             own_url: bool = True) -> list[Occurrence]:
        """A job per id; C{own_url}: each at C{base/<id>} (its own POST), else all at C{base}."""
        for job_id in ids:
            self.store.job(job_id, f"{base}/{job_id}" if own_url else base, project_id)
        return [self.store.occurrence(job_id) for job_id in ids]

    def assertRecord(self, eid: str, **expected: Any) -> dict:
        record = self.store.record(eid)
        assert record is not None, f"no record for {eid}"
        self.assertEqual({k: record[k] for k in expected}, expected)
        return record

    # -- classification -------------------------------------------------------------------

    def test_classify_status(self) -> None:
        for status in (400, 401, 403, 404, 405, 410, 413, 422, 499):
            self.assertEqual(classify_status(status), PERMANENT, status)
        for status in (408, 429, 500, 502, 503, 504, 302, 100):
            self.assertEqual(classify_status(status), TRANSIENT, status)

    # -- grouping, chunking, body, signature ----------------------------------------------

    def test_same_url_and_project_share_one_post(self) -> None:
        executor = self.executor()
        for job_id in (1, 2):
            self.store.job(job_id, "http://a.test/hook")
        self.store.job(3, "http://a.test/other")        # same target, another URL
        self.store.job(4, "http://a.test/hook", project_id=2)  # same URL, another project
        self.store.job(5, "http://b.test/hook")
        o = {j: self.store.occurrence(j) for j in range(1, 6)}
        executor.submit([o[1], o[3], o[2], o[4], o[5]])
        sent = sorted((p.url, p.ids()) for p in self.http.posts)
        self.assertEqual(sent, sorted([
            ("http://a.test/hook", [o[1].execution_id, o[2].execution_id]),
            ("http://a.test/other", [o[3].execution_id]),
            ("http://a.test/hook", [o[4].execution_id]),
            ("http://b.test/hook", [o[5].execution_id]),
        ]))
        by_ids = {tuple(p.ids()): p for p in self.http.posts}
        # each POST is signed with its own project's secret
        now = int(self.clock.seconds())
        self.assertTrue(verify(by_ids[(o[4].execution_id,)].header(SIGNATURE_HEADER),
                               by_ids[(o[4].execution_id,)].body, SECRET_2, now))
        self.assertFalse(verify(by_ids[(o[4].execution_id,)].header(SIGNATURE_HEADER),
                                by_ids[(o[4].execution_id,)].body, SECRET_1, now))
        for post in self.http.posts:
            self.assertEqual(post.header("x-payload-chunk-id"), "0")

    def test_body_is_a_json_array_of_jobs_with_execution_fields(self) -> None:
        executor = self.executor()
        self.store.job(7, "http://a.test/hook")
        self.store.job(8, "http://a.test/hook")
        first, second = self.store.occurrence(7), self.store.occurrence(8, T0 + 0.25)
        executor.submit([first, second])
        (post,) = self.http.posts
        self.assertEqual(post.items(), [self.store.expected_item(first),
                                        self.store.expected_item(second)])
        self.assertEqual(post.items()[1]["executionId"], "8-20261126T160000.250Z")
        self.assertEqual(post.items()[1]["scheduledTime"], "2026-11-26T16:00:00.250Z")
        self.assertEqual(post.body, b"[" + first.body_item() + b"," + second.body_item() + b"]")
        self.assertEqual(post.header("Content-Type"), "application/json")
        self.assertEqual(post.header("x-payload-chunk-id"), "0")

    def test_chunks_respect_max_payload_bytes(self) -> None:
        rng = random.Random(7)
        url = "http://a.test/bulk"
        occurrences = []
        for n in range(30):
            job_id = 1_000_001 + n  # long ids and run-now milliseconds: long items
            self.store.job(job_id, url, data="x" * rng.randrange(0, 400))
            occurrences.append(self.store.occurrence(job_id, T0 + n + 0.123))
        all_ids = [o.execution_id for o in occurrences]
        sizes = {o.execution_id: len(o.body_item()) for o in occurrences}
        for limit in (250, 700, 1000, 1333, 1500, 2000, 2501, 4000, 10_000_000):
            self.http = FakeHTTP(self.clock, self.store)
            executor = self.executor(max_payload_bytes=limit, per_target=100)
            executor.submit(occurrences)
            posts = self.http.posts
            self.assertEqual([p.header("x-payload-chunk-id") for p in posts],
                             [str(i) for i in range(len(posts))], limit)
            # every occurrence in exactly one chunk, in order
            self.assertEqual([eid for p in posts for eid in p.ids()], all_ids, limit)
            for i, post in enumerate(posts):
                if len(post.ids()) > 1:
                    self.assertLessEqual(len(post.body), limit, (limit, i))
                else:
                    self.assertTrue(len(post.body) <= limit
                                    or sizes[post.ids()[0]] + 2 > limit, (limit, i))
                if i + 1 < len(posts):  # greedy: the next item did not fit
                    self.assertGreater(len(post.body) + 1 + sizes[posts[i + 1].ids()[0]],
                                       limit, (limit, i))
            if limit == 10_000_000:
                self.assertEqual(len(posts), 1)
            if limit == 250:
                self.assertEqual(len(posts), 30)
            for post in posts:
                post.answer(200)
            for eid in all_ids:
                self.assertEqual(self.store.state(eid), "succeeded")

    def test_signature_verifies_with_the_project_secret(self) -> None:
        executor = self.executor()
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        header = post.header(SIGNATURE_HEADER)
        now = int(self.clock.seconds())
        self.assertTrue(header.startswith(f"t={now},v1="), header)
        self.assertEqual(header.count("v1="), 1)
        self.assertTrue(verify(header, post.body, SECRET_1, now))
        self.assertFalse(verify(header, post.body, SECRET_2, now))
        self.assertFalse(verify(header, post.body + b" ", SECRET_1, now))

    def test_signature_during_rotation_verifies_with_both_secrets(self) -> None:
        executor = self.executor()
        first, second = self.jobs("http://a.test", [1, 2])
        self.store.rotate(1, ROTATED, previous_expires=self.clock.seconds() + 3600)
        executor.submit([first])
        (post,) = self.http.posts
        header, now = post.header(SIGNATURE_HEADER), int(self.clock.seconds())
        self.assertEqual(header.count("v1="), 2)
        self.assertTrue(verify(header, post.body, ROTATED, now))
        self.assertTrue(verify(header, post.body, SECRET_1, now))
        self.assertFalse(verify(header, post.body, SECRET_2, now))
        # once the grace period is over, only the new secret signs
        self.clock.advance(3601)
        executor.submit([second])
        later = self.http.posts[1]
        header, now = later.header(SIGNATURE_HEADER), int(self.clock.seconds())
        self.assertTrue(verify(header, later.body, ROTATED, now))
        self.assertFalse(verify(header, later.body, SECRET_1, now))

    # -- records and outcomes -------------------------------------------------------------

    def test_dispatched_is_recorded_before_the_post_then_succeeded(self) -> None:
        executor = self.executor()
        first, second = self.jobs("http://a.test/hook", [1, 2], own_url=False)
        sent_at = self.clock.seconds()
        executor.submit([first, second])
        (post,) = self.http.posts
        for o in (first, second):
            seen = post.seen[o.execution_id]
            self.assertIsNotNone(seen, "no record existed when the POST was sent")
            self.assertEqual(
                {k: seen[k] for k in ("state", "attempts", "jobId", "projectId", "target",
                                      "nodeId", "latenessMs", "firstAttemptAt",
                                      "lastAttemptAt", "scheduledTime")},
                {"state": "dispatched", "attempts": 1, "jobId": o.job_id, "projectId": 1,
                 "target": "http://a.test:80", "nodeId": 1, "latenessMs": 5000.0,
                 "firstAttemptAt": stamp(sent_at), "lastAttemptAt": stamp(sent_at),
                 "scheduledTime": stamp(T0)})
        # in flight (for the hanging-execution check): from the record to the outcome
        self.assertEqual(set(executor.in_flight_ids), {first.execution_id,
                                                       second.execution_id})
        self.clock.advance(0.25)
        post.answer(204)
        self.assertEqual(set(executor.in_flight_ids), set())
        for o in (first, second):
            self.assertRecord(o.execution_id, state="succeeded", attempts=1, lastStatus=204,
                              durationMs=250.0, latenessMs=5000.0, lastError=None,
                              firstAttemptAt=stamp(sent_at), nextRetryAt=None)
        self.assertEqual(executor.counters["succeeded"], 2)
        self.assertEqual(executor.in_flight, 0)
        self.assertEqual(executor.endpoints["http://a.test:80/hook"].last_success,
                         self.clock.seconds())

    def test_server_error_is_retried_with_backoff_and_the_same_id_then_dead(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        first_at = self.clock.seconds()
        executor.submit([o])
        for attempt in range(1, 5):
            (post,) = self.http.pending()
            self.assertEqual(post.items(), [self.store.expected_item(o, attempt)])
            self.assertEqual(post.seen[o.execution_id]["state"], "dispatched")
            self.assertEqual(post.seen[o.execution_id]["attempts"], attempt)
            twin = random.Random()
            twin.setstate(self.rng.getstate())
            delay = retry_delay(attempt, 1.0, 300.0, twin)
            self.clock.advance(0.5)
            post.answer(500)
            if attempt == 4:
                break
            nominal = 2.0 ** (attempt - 1)
            self.assertTrue(0.8 * nominal <= delay <= 1.2 * nominal, delay)
            self.assertRecord(o.execution_id, state="retrying", attempts=attempt,
                              lastStatus=500, lastError="HTTP 500: ok", errorCategory=TRANSIENT,
                              nextRetryAt=stamp(self.clock.seconds() + delay),
                              firstAttemptAt=stamp(first_at), latenessMs=5000.0)
            self.clock.advance(delay - 0.01)
            self.assertEqual(self.http.pending(), [], "retried before its backoff")
            self.clock.advance(0.02)
        self.assertRecord(o.execution_id, state="dead", attempts=4, lastStatus=500,
                          errorCategory=TRANSIENT, nextRetryAt=None,
                          firstAttemptAt=stamp(first_at))
        self.assertEqual(len(self.http.posts), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 4)
        self.assertEqual(executor.counters, {"succeeded": 0, "failed": 0, "retrying": 3,
                                             "dead": 1})
        status = executor.endpoints["http://a.test:80/1"]
        self.assertEqual((status.consecutive_failures, status.last_error_category),
                         (4, TRANSIENT))

    def test_unauthorized_is_dead_at_once_and_permanent(self) -> None:
        executor = self.executor(retry_max=3)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(401)
        self.assertRecord(o.execution_id, state="dead", attempts=1, lastStatus=401,
                          lastError="HTTP 401: ok", errorCategory=PERMANENT, nextRetryAt=None)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(executor.counters["dead"], 1)

    def test_408_and_429_are_transient(self) -> None:
        executor = self.executor(retry_max=1, retry_delay=1.0)
        (a, b) = self.jobs("http://a.test", [1, 2])
        executor.submit([a, b])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        by_id[a.execution_id].answer(408)
        by_id[b.execution_id].answer(429)
        self.assertRecord(a.execution_id, state="retrying", lastStatus=408,
                          errorCategory=TRANSIENT)
        self.assertRecord(b.execution_id, state="retrying", lastStatus=429,
                          errorCategory=TRANSIENT)
        self.clock.advance(2.0)
        retried = sorted(p.ids()[0] for p in self.http.pending())
        self.assertEqual(retried, sorted([a.execution_id, b.execution_id]))
        for post in self.http.pending():
            self.assertEqual(post.items()[0]["attempt"], 2)
            post.answer(200)
        self.assertRecord(a.execution_id, state="succeeded", attempts=2, lastStatus=200)

    def test_connection_errors_are_transient_a_policy_refusal_permanent(self) -> None:
        executor = self.executor(retry_max=2)
        (a, b) = self.jobs("http://a.test", [1, 2])
        executor.submit([a, b])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        by_id[a.execution_id].fail(ConnectionRefusedError("connection refused"))
        by_id[b.execution_id].fail(CallbackRefused("refused to deliver to a.test: denied"))
        self.assertRecord(a.execution_id, state="retrying", errorCategory=TRANSIENT,
                          lastStatus=None,
                          lastError="connection refused by a.test:80 (nothing accepts "
                                    "connections there)")
        self.assertRecord(b.execution_id, state="dead", errorCategory=PERMANENT,
                          lastError="refused to deliver to a.test: denied")

    # -- timeouts -------------------------------------------------------------------------

    def test_the_executor_applies_its_own_timeout(self) -> None:
        # The fake ignores treq's timeout=, as any client that is not treq would: the
        # deadline has to be the executor's.
        executor = self.executor(timeout=2.0, retry_max=1, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        self.clock.advance(1.999)
        self.assertFalse(post.cancelled)
        self.assertEqual(self.store.state(o.execution_id), "dispatched")
        self.clock.advance(0.0011)
        self.assertTrue(post.cancelled, "the request was not cancelled at its deadline")
        record = self.assertRecord(o.execution_id, state="retrying", attempts=1,
                                   lastStatus=None, errorCategory=TRANSIENT,
                                   lastError="no answer within 2 s")
        self.assertTrue(2000.0 <= record["durationMs"] <= 2001.0, record["durationMs"])
        self.assertEqual(executor.in_flight, 0)
        self.clock.advance(1.5)  # the backoff (1 s, jitter at most 20 %)
        (retry,) = self.http.pending()
        self.assertEqual(retry.items()[0]["attempt"], 2)
        self.clock.advance(2.0)
        self.assertTrue(retry.cancelled)
        self.assertRecord(o.execution_id, state="dead", attempts=2, errorCategory=TRANSIENT,
                          lastError="no answer within 2 s")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_stalled_body_times_out_and_closes_the_connection(self) -> None:
        executor = self.executor(timeout=2.0, retry_max=0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        response = FakeResponse(200, b"partial", finish=False)
        self.clock.advance(1.0)
        post.deferred.callback(response)
        self.assertEqual(self.store.state(o.execution_id), "dispatched")
        self.clock.advance(1.001)
        self.assertTrue(response.transport.stopped, "the connection was left open")
        self.assertRecord(o.execution_id, state="dead", lastStatus=None,
                          errorCategory=TRANSIENT, lastError="no answer within 2 s")
        self.assertEqual(executor.in_flight, 0)

    # -- isolation between targets --------------------------------------------------------

    def test_per_target_concurrency(self) -> None:
        executor = self.executor(per_target=2)
        slow = self.jobs("http://slow.test", range(1, 6))
        fast = self.jobs("http://fast.test", range(11, 14))
        executor.submit(slow + fast)
        self.assertEqual(len(self.http.to("http://slow.test")), 2)
        self.assertEqual(len(self.http.to("http://fast.test")), 2)
        self.assertEqual(executor.targets["http://slow.test:80"].in_flight, 2)
        self.assertEqual(executor.targets["http://slow.test:80"].queued(), 3)
        for _ in range(3):  # the fast target proceeds while the slow one holds two
            self.http.pending("http://fast.test")[0].answer(200)
        self.assertEqual(self.http.pending("http://fast.test"), [])
        for o in fast:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
        more = self.jobs("http://fast.test", [14, 15])
        executor.submit(more)
        for post in self.http.pending("http://fast.test"):
            post.answer(200)
        for o in more:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
        self.assertEqual(len(self.http.to("http://slow.test")), 2)
        for o in slow[2:]:
            self.assertIsNone(self.store.record(o.execution_id))  # still queued
        self.http.pending("http://slow.test")[0].answer(200)
        self.assertEqual(len(self.http.to("http://slow.test")), 3)
        self.assertEqual(len(self.http.pending("http://slow.test")), 2)

    def trip(self, executor: Executor, url: str, ids: range) -> list[Occurrence]:
        """Jobs on one endpoint, each in its own POST; the first five fail: the endpoint's
        breaker opens."""
        tripping = self.separately(executor, self.jobs(url, ids, own_url=False))
        for post in self.http.pending(url)[:5]:
            post.answer(500)
        return tripping

    def separately(self, executor: Executor, occurrences: list[Occurrence]) -> list[Occurrence]:
        """Submit each occurrence on its own (its own round, so its own POST)."""
        for o in occurrences:
            executor.submit([o])
        return occurrences

    def test_breaker_holds_then_one_probe_then_delivers_the_held(self) -> None:
        executor = self.executor(retry_max=0)
        url = "http://flaky.test/hook"
        tripped = self.trip(executor, url, range(1, 6))
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        self.assertIs(breaker.state, BreakerState.OPEN)
        for o in tripped:
            self.assertEqual(self.store.state(o.execution_id), "dead")
        held = self.separately(executor, self.jobs(url, range(6, 9), own_url=False))
        other = self.jobs("http://fine.test", [20])
        executor.submit(other)
        self.assertEqual(len(self.http.to(url)), 5, "posted to an open breaker")
        for o in held:
            self.assertRecord(o.execution_id, state="scheduled", attempts=0)
        self.assertEqual(len(self.http.pending("http://fine.test")), 1)  # others unaffected
        self.assertEqual(executor.queued(), 3)
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds() - 0.01)
        self.assertEqual(self.http.pending(url), [])
        self.clock.advance(0.02)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN)
        (probe,) = self.http.pending(url)
        self.assertEqual(probe.ids(), [held[0].execution_id])
        for o in held[1:]:
            self.assertEqual(self.store.state(o.execution_id), "scheduled")
        probe.answer(200)
        self.assertIs(breaker.state, BreakerState.CLOSED)
        rest = self.http.pending(url)
        self.assertEqual(sorted(p.ids()[0] for p in rest),
                         sorted(o.execution_id for o in held[1:]))
        for post in rest:
            post.answer(200)
        for o in held:
            self.assertRecord(o.execution_id, state="succeeded", attempts=1)
        self.assertEqual(executor.queued(), 0)

    def test_a_failed_probe_reopens_and_nothing_held_is_lost(self) -> None:
        executor = self.executor(retry_max=0)
        url = "http://flaky.test/hook"
        self.trip(executor, url, range(1, 6))
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        held = self.separately(executor, self.jobs(url, range(6, 9), own_url=False))
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = self.http.pending(url)
        probe.answer(503)
        self.assertIs(breaker.state, BreakerState.OPEN)
        self.assertEqual(self.store.state(held[0].execution_id), "dead")  # retry_max 0
        self.assertEqual(self.http.pending(url), [])
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = self.http.pending(url)
        self.assertEqual(probe.ids(), [held[1].execution_id])
        probe.answer(200)
        (last,) = self.http.pending(url)
        last.answer(200)
        for o in held[1:]:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    def test_a_stale_outcome_does_not_decide_a_half_open_breaker(self) -> None:
        # Requests started while the breaker was closed can finish after it went half-open;
        # only the probe's outcome may close or reopen it.
        executor = self.executor(retry_max=0, per_target=8)
        url = "http://flaky.test/hook"
        self.trip(executor, url, range(1, 8))
        stale = self.http.pending(url)
        self.assertEqual(len(stale), 2)
        breaker = executor.breakers.get("http://flaky.test:80/hook")
        held = self.separately(executor, self.jobs(url, [8, 9], own_url=False))
        assert breaker.retry_at is not None
        self.clock.advance(breaker.retry_at - self.clock.seconds())
        (probe,) = [p for p in self.http.pending(url) if p not in stale]
        stale[0].answer(500)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN, "a stale failure reopened it")
        stale[1].answer(200)
        self.assertIs(breaker.state, BreakerState.HALF_OPEN, "a stale success closed it")
        self.assertEqual(self.http.pending(url), [probe])
        probe.answer(200)
        self.assertIs(breaker.state, BreakerState.CLOSED)
        (last,) = self.http.pending(url)
        self.assertEqual(last.ids(), [held[1].execution_id])
        last.answer(200)
        for o in held:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    # -- liveness, halt, stop -------------------------------------------------------------

    def test_a_job_no_longer_live_is_not_delivered(self) -> None:
        executor = self.executor()
        kept, gone = self.jobs("http://a.test/hook", [1, 2], own_url=False)
        self.live = {1}
        executor.submit([kept, gone])
        (post,) = self.http.posts
        self.assertEqual(post.ids(), [kept.execution_id])
        self.assertRecord(gone.execution_id, state="failed", attempts=0)
        self.assertIn("deleted or paused", self.store.record(gone.execution_id)["lastError"])
        executor.submit([self.store.occurrence(2, T0 + 60)])  # alone: nothing to send
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(execution_id(2, T0 + 60)), "failed")
        self.assertEqual(executor.counters["failed"], 2)

    def test_a_retry_of_a_job_no_longer_live_is_abandoned(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(self.store.state(o.execution_id), "retrying")
        self.live = set()
        self.clock.advance(10)
        self.assertEqual(len(self.http.posts), 1)
        self.assertRecord(o.execution_id, state="failed", attempts=1)

    def test_halt_stops_new_deliveries_and_resume_sends_what_waited(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        first, failing, waiting = self.jobs("http://a.test", [1, 2, 3])
        executor.submit([first, failing])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        executor.halt()
        executor.submit([waiting])
        self.assertEqual(len(self.http.posts), 2)
        by_id[first.execution_id].answer(200)  # in flight: completes and is recorded
        by_id[failing.execution_id].answer(500)
        self.assertEqual(self.store.state(first.execution_id), "succeeded")
        self.assertEqual(self.store.state(failing.execution_id), "retrying")
        self.clock.advance(60)  # the retry comes due, but nothing starts while halted
        self.assertEqual(len(self.http.posts), 2)
        self.assertIsNone(self.store.record(waiting.execution_id))
        executor.resume()
        sent = {p.ids()[0]: p.items()[0]["attempt"] for p in self.http.pending()}
        self.assertEqual(sent, {waiting.execution_id: 1, failing.execution_id: 2})
        for post in self.http.pending():
            post.answer(200)
        for o in (first, failing, waiting):
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    def test_stop_waits_for_deliveries_in_flight(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        ok, failing, late = self.jobs("http://a.test", [1, 2, 3])
        executor.submit([ok, failing])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        stopped = executor.stopService()
        self.assertNoResult(stopped)
        executor.submit([late])  # stopping: nothing new starts
        self.assertEqual(len(self.http.posts), 2)
        by_id[ok.execution_id].answer(200)
        self.assertNoResult(stopped)
        self.clock.advance(1.0)
        by_id[failing.execution_id].answer(500)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.store.state(ok.execution_id), "succeeded")
        # the failure is recorded for a restart to resume; no retry is left scheduled
        self.assertRecord(failing.execution_id, state="retrying", attempts=1)
        self.assertIsNotNone(self.store.record(failing.execution_id)["nextRetryAt"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 2)

    def test_stop_records_queued_occurrences_for_the_restart(self) -> None:
        executor = self.executor(per_target=1)
        first, queued = self.jobs("http://a.test", [1, 2])
        executor.submit([first, queued])
        self.assertEqual(len(self.http.posts), 1)
        self.assertIsNone(self.store.record(queued.execution_id))  # waiting behind the limit
        stopped = executor.stopService()
        late = self.jobs("http://b.test", [3])
        executor.submit(late)  # due while stopping: kept, not sent
        self.assertRecord(queued.execution_id, state="scheduled", attempts=0)
        self.assertRecord(late[0].execution_id, state="scheduled", attempts=0)
        self.http.posts[0].answer(200)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(first.execution_id), "succeeded")

    def test_stop_gives_up_waiting_after_the_drain_timeout(self) -> None:
        executor = self.executor(timeout=60.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        stopped = executor.stopService()
        self.clock.advance(executor.drain_timeout - 0.1)
        self.assertNoResult(stopped)
        self.clock.advance(0.2)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.store.state(o.execution_id), "dispatched")  # resumed on restart

    def test_stop_cancels_pending_retries(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertIsNone(self.successResultOf(executor.stopService()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(o.execution_id), "retrying")


# -- layer 2: real HTTP -------------------------------------------------------------------


class QuietSite(Site):
    def __init__(self, resource: Resource) -> None:
        super().__init__(resource, timeout=None)  # no idle-timeout DelayedCalls
        self.noisy = False

    def log(self, request: Any) -> None:
        pass


class Receiver(Resource):
    """
    A callback receiver. C{behaviour}: an HTTP status; C{("delay", seconds, status)};
    C{"never"} (headers never come); C{"stall"} (headers and part of the body, then nothing).
    """

    isLeaf = True

    def __init__(self, behaviour: Any) -> None:
        super().__init__()
        self.behaviour = behaviour
        self.hits: list[dict] = []
        self.lost: list[float] = []  # when a request's connection went away unanswered
        self.timers: list[Any] = []

    def render_POST(self, request: Any) -> Any:
        self.hits.append({
            "at": reactor.seconds(), "path": request.path, "body": request.content.read(),
            "headers": {k.decode().lower(): [v.decode() for v in vs]
                        for k, vs in request.requestHeaders.getAllRawHeaders()},
        })
        request.notifyFinish().addErrback(lambda _: self.lost.append(reactor.seconds()))
        behaviour = self.behaviour
        if isinstance(behaviour, int):
            request.setResponseCode(behaviour)
            return b"ok"
        if behaviour == "never":
            return NOT_DONE_YET
        if behaviour == "stall":
            request.setHeader(b"content-length", b"1000")
            request.write(b"x" * 10)
            return NOT_DONE_YET
        _, seconds, status = behaviour

        def answer() -> None:
            self.timers.remove(timer)
            request.setResponseCode(status)
            request.write(b"late")
            request.finish()

        timer = reactor.callLater(seconds, answer)
        self.timers.append(timer)
        return NOT_DONE_YET


class RealHttpTests(TestCase):
    timeout = 15

    def setUp(self) -> None:
        self.store = Store(self, reactor)
        self.store.project(1, SECRET_1)
        self.rng = random.Random(4)
        self.listening: list[tuple[Any, WrappingFactory, Receiver]] = []
        self.addCleanup(self.close_receivers)

    def receiver(self, behaviour: Any) -> tuple[str, Receiver]:
        resource = Receiver(behaviour)
        site = WrappingFactory(QuietSite(resource))  # knows its open connections
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.listening.append((port, site, resource))
        return f"http://127.0.0.1:{port.getHost().port}", resource

    @defer.inlineCallbacks
    def close_receivers(self) -> Any:
        for port, site, resource in self.listening:
            yield port.stopListening()
            for timer in resource.timers:
                if timer.active():
                    timer.cancel()
            for connection in list(site.protocols):
                connection.transport.abortConnection()
            while site.protocols:
                yield task.deferLater(reactor, 0.01, lambda: None)

    def executor(self, timeout: float = 0.5, per_target: int = 8, **settings: Any) -> Executor:
        config = Config(job_execution_timeout=timeout,
                        callback_concurrency_per_target=per_target)
        http, pool = callback_client(reactor, config, NetworkPolicy([], []))
        settings.setdefault("retry_delay", 0.05)
        settings.setdefault("retry_max", 0)
        executor = make_executor(self, reactor, http, self.store, self.rng, timeout=timeout,
                                 per_target=per_target, **settings)
        self.addCleanup(pool.closeCachedConnections)
        self.addCleanup(executor.stopService)  # runs first: waits for deliveries in flight
        return executor

    def occurrences(self, url: str, ids: list[int]) -> list[Occurrence]:
        for job_id in ids:
            self.store.job(job_id, url)
        return [self.store.occurrence(job_id, float(int(reactor.seconds())))
                for job_id in ids]

    @defer.inlineCallbacks
    def until(self, predicate: Callable[[], bool], within: float = 5.0) -> Any:
        deadline = reactor.seconds() + within
        while not predicate():
            if reactor.seconds() > deadline:
                self.fail(f"not reached within {within} s")
            yield task.deferLater(reactor, 0.005, lambda: None)

    def finished(self, o: Occurrence) -> bool:
        return self.store.state(o.execution_id) in ("succeeded", "dead", "failed")

    @defer.inlineCallbacks
    def test_a_2xx_receiver_gets_the_exact_body_and_headers(self) -> Any:
        base, receiver = self.receiver(200)
        executor = self.executor()
        first, second = self.occurrences(base + "/hooks/a", [1, 2])
        submitted = reactor.seconds()
        executor.submit([first, second])
        yield self.until(lambda: self.finished(first) and self.finished(second))
        waited_ms = (reactor.seconds() - submitted) * 1000
        (hit,) = receiver.hits
        self.assertEqual(hit["path"], b"/hooks/a")
        self.assertEqual(hit["body"],
                         b"[" + first.body_item() + b"," + second.body_item() + b"]")
        self.assertEqual(json.loads(hit["body"]), [self.store.expected_item(first),
                                                   self.store.expected_item(second)])
        headers = hit["headers"]
        self.assertEqual(headers["content-type"], ["application/json"])
        self.assertEqual(headers["x-payload-chunk-id"], ["0"])
        self.assertEqual(headers["user-agent"], ["Scheduler0"])
        (signature,) = headers["x-scheduler0-signature"]
        self.assertTrue(verify(signature, hit["body"], SECRET_1, int(reactor.seconds())))
        for o in (first, second):
            record = self.store.record(o.execution_id)
            assert record is not None
            self.assertEqual((record["state"], record["attempts"], record["lastStatus"]),
                             ("succeeded", 1, 200))
            # the POST's own time: within what the test saw from submitting to its record
            self.assertTrue(0 <= record["durationMs"] <= waited_ms + 1,
                            (record["durationMs"], waited_ms))

    @defer.inlineCallbacks
    def test_a_500_receiver_is_retried_then_dead(self) -> Any:
        base, receiver = self.receiver(500)
        executor = self.executor(retry_max=2)
        (o,) = self.occurrences(base + "/hook", [1])
        executor.submit([o])
        yield self.until(lambda: self.finished(o))
        bodies = [json.loads(hit["body"]) for hit in receiver.hits]
        self.assertEqual([b[0]["attempt"] for b in bodies], [1, 2, 3])
        self.assertEqual({b[0]["executionId"] for b in bodies}, {o.execution_id})
        record = self.store.record(o.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["attempts"], record["lastStatus"],
                          record["errorCategory"]), ("dead", 3, 500, TRANSIENT))

    @defer.inlineCallbacks
    def test_a_receiver_that_never_answers_times_out(self) -> Any:
        base, receiver = self.receiver("never")
        executor = self.executor(timeout=0.5)
        (o,) = self.occurrences(base + "/hook", [1])
        executor.submit([o])
        # when the deadline falls is proven on a Clock (test_the_executor_applies_its_own_
        # timeout); here, that a real connection is abandoned and the outcome recorded
        yield self.until(lambda: self.finished(o), within=3.0)
        record = self.store.record(o.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["lastStatus"], record["errorCategory"],
                          record["lastError"]),
                         ("dead", None, TRANSIENT, "no answer within 0.5 s"))
        # the request was abandoned: the receiver sees its connection close
        yield self.until(lambda: receiver.lost, within=1.0)

    @defer.inlineCallbacks
    def test_a_stalled_body_times_out_and_the_connection_is_closed(self) -> Any:
        base, receiver = self.receiver("stall")
        executor = self.executor(timeout=0.5)
        (o,) = self.occurrences(base + "/hook", [1])
        started = reactor.seconds()
        executor.submit([o])
        yield self.until(lambda: self.finished(o), within=3.0)
        self.assertTrue(0.45 <= reactor.seconds() - started < 1.5)
        record = self.store.record(o.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["errorCategory"], record["lastError"]),
                         ("dead", TRANSIENT, "no answer within 0.5 s"))
        yield self.until(lambda: receiver.lost, within=1.0)

    @defer.inlineCallbacks
    def test_a_refused_connection_is_transient(self) -> Any:
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        number = port.getHost().port
        yield port.stopListening()
        executor = self.executor(retry_max=1)
        (o,) = self.occurrences(f"http://127.0.0.1:{number}/hook", [1])
        executor.submit([o])
        yield self.until(lambda: self.finished(o))
        record = self.store.record(o.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["attempts"], record["lastStatus"],
                          record["errorCategory"]), ("dead", 2, None, TRANSIENT))
        self.assertEqual(record["lastError"], f"connection refused by 127.0.0.1:{number} "
                                              "(nothing accepts connections there)")

    @defer.inlineCallbacks
    def test_a_slow_target_does_not_delay_a_fast_one(self) -> Any:
        slow_base, slow = self.receiver(("delay", 1.0, 200))
        fast_base, fast = self.receiver(200)
        executor = self.executor(timeout=3.0, per_target=2)
        slow_ones = [o for n in range(3)
                     for o in self.occurrences(f"{slow_base}/slow/{n}", [1 + n])]
        fast_ones = [o for n in range(5)
                     for o in self.occurrences(f"{fast_base}/fast/{n}", [10 + n])]
        started = reactor.seconds()
        executor.submit(slow_ones)
        executor.submit(fast_ones)
        yield self.until(lambda: all(self.finished(o) for o in fast_ones), within=2.0)
        self.assertEqual(len(fast.hits), 5)
        self.assertLess(max(hit["at"] for hit in fast.hits) - started, 0.5)
        self.assertLess(reactor.seconds() - started, 0.8)
        for o in fast_ones:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
        # meanwhile the slow target holds its own two slots, the third waits its turn
        self.assertEqual([self.store.state(o.execution_id) for o in slow_ones],
                         ["dispatched", "dispatched", None])
        self.assertEqual(len(slow.hits), 2)
        yield self.until(lambda: all(self.finished(o) for o in slow_ones), within=4.0)
        self.assertGreaterEqual(reactor.seconds() - started, 1.95)  # two rounds of 1 s
        for o in slow_ones:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
