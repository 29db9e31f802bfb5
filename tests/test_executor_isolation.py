"""
Delivery isolation (issue 9, PRODUCT §5): one endpoint's errors never hold back another
endpoint of the same host that answers 2xx; a host that cannot be reached is held as a
whole; a request that died on a stale pooled connection is sent again at once and is no
failure; failures are logged rate-limited with their jobs, endpoint and reason.

Deterministic: a C{task.Clock}, the fake HTTP client of L{tests.fakes} whose answers the
tests fire by hand, and a real sqlite store (as in L{tests.executor_fixtures}).
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived

from scheduler0.execution.breaker import BreakerState
from scheduler0.execution.executor import Executor
from scheduler0.schedule.occurrence import Occurrence

from .fakes import FakeHTTP, Post
from .executor_fixtures import SECRET_1, T0, Store, make_executor

HOST = "http://hooks.test:80"


def stale() -> ResponseNeverReceived:
    """What a request dies with on a pooled connection the receiver had closed."""
    return ResponseNeverReceived([Failure(ConnectionDone("Connection was closed cleanly."))])


class FreshHTTP(FakeHTTP):
    """A fake client with C{post_fresh} too (the real one opens a new connection)."""

    def __init__(self, clock: Clock, store: Any) -> None:
        super().__init__(clock, store)
        self.fresh: list[Post] = []

    def post_fresh(self, url: str, **kwargs: Any) -> Deferred:
        d = self.post(url, **kwargs)
        self.fresh.append(self.posts[-1])
        return d


class IsolationCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = Store(self, self.clock)
        self.store.project(1, SECRET_1)
        self.http = FreshHTTP(self.clock, self.store)
        self.rng = random.Random(9)

    def executor(self, **settings: Any) -> Executor:
        executor = make_executor(self, self.clock, self.http, self.store, self.rng, **settings)
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def jobs(self, urls: list[str], first_id: int = 1) -> list[int]:
        ids = []
        for n, url in enumerate(urls):
            self.store.job(first_id + n, url)
            ids.append(first_id + n)
        return ids

    def state(self, o: Occurrence) -> tuple[str | None, int | None]:
        record = self.store.record(o.execution_id)
        return (None, None) if record is None else (record["state"], record["attempts"])


class EndpointIsolationTests(IsolationCase):
    def test_failing_endpoints_never_hold_back_the_healthy_ones_of_their_host(self) -> None:
        """The issue's case: 3 jobs whose endpoints answer 500 beside 100 healthy ones on
        one receiver. Every healthy occurrence goes out in its own round, first time."""
        executor = self.executor(retry_max=3, retry_delay=1.0, per_target=8)
        failing = self.jobs([f"{HOST}/fail/{n}" for n in range(3)])
        healthy = self.jobs([f"{HOST}/ok/{n}" for n in range(100)], first_id=100)
        for second in range(20):
            now = T0 + second
            executor.submit([self.store.occurrence(j, now) for j in failing + healthy])
            while self.http.pending():
                for post in self.http.pending():
                    post.answer(500 if "/fail/" in post.url else 200)
            for job_id in healthy:
                o = self.store.occurrence(job_id, now)
                self.assertEqual(self.state(o), ("succeeded", 1), (second, job_id))
            self.clock.advance(1)
        for job_id in healthy:
            self.assertEqual(len([p for p in self.http.posts if p.url == f"{HOST}/ok/"
                                  f"{job_id - 100}"]), 20)
        # each failing endpoint's own breaker opened; the host's was never involved
        for n in range(3):
            breaker = executor.breakers.get(f"{HOST}/fail/{n}")
            self.assertIsNot(breaker.state, BreakerState.CLOSED)
            self.assertGreaterEqual(breaker.failure_count, 5)
        self.assertIsNone(executor.breakers.find(HOST))
        self.assertEqual(executor.endpoints[f"{HOST}/ok/0"].consecutive_failures, 0)

    def test_a_4xx_endpoint_does_not_hold_back_its_hosts_others(self) -> None:
        executor = self.executor(retry_max=0)
        bad, good = self.jobs([f"{HOST}/gone", f"{HOST}/fine"])
        for second in range(10):
            executor.submit([self.store.occurrence(j, T0 + second) for j in (bad, good)])
            for post in self.http.pending():
                post.answer(404 if post.url.endswith("/gone") else 200)
            self.clock.advance(1)
        self.assertEqual(len(self.http.to(f"{HOST}/fine")), 10)
        self.assertIs(executor.breakers.get(f"{HOST}/gone").state, BreakerState.OPEN)
        # five failures open it; after its delay (5 s +- 20 %) one probe, which fails
        self.assertEqual(len(self.http.to(f"{HOST}/gone")), 6)

    def test_an_unreachable_host_is_held_as_a_whole_then_probed_once(self) -> None:
        executor = self.executor(retry_max=0)
        ids = self.jobs([f"{HOST}/a", f"{HOST}/b", f"{HOST}/c", "http://other.test/x"])
        first = [self.store.occurrence(j, T0) for j in ids[:3]]
        executor.submit(first)
        executor.submit([self.store.occurrence(j, T0 + 0.5) for j in ids[:2]])
        for post in self.http.pending(HOST):
            post.fail(ConnectionRefusedError("Connection refused"))
        host = executor.breakers.get(HOST)
        self.assertIs(host.state, BreakerState.OPEN)
        # the endpoints' own breakers counted nothing: it was the host
        for path in ("a", "b", "c"):
            self.assertIsNone(executor.breakers.find(f"{HOST}/{path}"))
        held = [self.store.occurrence(j, T0 + 1) for j in ids]
        executor.submit(held)
        self.assertEqual(self.http.pending(HOST), [])
        for o in held[:3]:
            self.assertEqual(self.state(o), ("scheduled", 0))
        (other,) = self.http.pending("http://other.test")  # another host is not held
        other.answer(200)
        assert host.retry_at is not None
        self.clock.advance(host.retry_at - self.clock.seconds())
        (probe,) = self.http.pending(HOST)                  # one probe for the host
        probe.answer(200)
        self.assertIs(host.state, BreakerState.CLOSED)
        for post in self.http.pending(HOST):
            post.answer(200)
        for o in held[:3]:
            self.assertEqual(self.state(o), ("succeeded", 1))

    def test_an_http_answer_proves_the_host_reachable(self) -> None:
        """Connection failures on one endpoint and a 500 from another: the 500 is the
        endpoint's, and it resets the host's count (the host answered)."""
        executor = self.executor(retry_max=0)
        ids = self.jobs([f"{HOST}/a", f"{HOST}/b"])
        for n in range(4):
            executor.submit([self.store.occurrence(ids[0], T0 + n)])
            self.http.pending(HOST)[0].fail(ConnectionRefusedError("refused"))
        self.assertEqual(executor.breakers.get(HOST).failure_count, 4)
        executor.submit([self.store.occurrence(ids[1], T0 + 9)])
        self.http.pending(HOST)[0].answer(500)
        self.assertEqual(executor.breakers.get(HOST).failure_count, 0)
        self.assertEqual(executor.breakers.get(f"{HOST}/b").failure_count, 1)
        self.assertIsNone(executor.breakers.find(f"{HOST}/a"))

    def test_a_slow_endpoint_gets_at_most_half_its_hosts_slots_while_others_wait(
            self) -> None:
        executor = self.executor(per_target=4)
        slow = self.jobs([f"{HOST}/slow"])[0]
        fast = self.jobs([f"{HOST}/fast"], first_id=2)[0]
        for n in range(8):
            executor.submit([self.store.occurrence(slow, T0 + n)])
        self.assertEqual(len(self.http.pending(f"{HOST}/slow")), 4)  # alone: all four slots
        for n in range(4):
            executor.submit([self.store.occurrence(fast, T0 + n)])
        self.assertEqual(self.http.pending(f"{HOST}/fast"), [])      # the host is full
        for _ in range(2):
            self.http.pending(f"{HOST}/slow")[0].answer(200)
        # the freed slots went to the waiting endpoint, not to the slow one's queue
        self.assertEqual(len(self.http.pending(f"{HOST}/fast")), 2)
        self.assertEqual(len(self.http.pending(f"{HOST}/slow")), 2)
        while self.http.pending():
            for post in self.http.pending():
                self.assertLessEqual(len(self.http.pending(f"{HOST}/slow")), 2)
                post.answer(200)
        self.assertEqual(len(self.http.to(f"{HOST}/slow")), 8)
        self.assertEqual(len(self.http.to(f"{HOST}/fast")), 4)

    def test_endpoints_take_turns_on_a_busy_host(self) -> None:
        """A host's slots go round-robin between its endpoints: one endpoint with a long
        queue does not make the others wait for all of it."""
        executor = self.executor(per_target=1)
        busy = self.jobs([f"{HOST}/busy"])[0]
        other = self.jobs([f"{HOST}/other"], first_id=2)[0]
        for n in range(5):
            executor.submit([self.store.occurrence(busy, T0 + n)])
        executor.submit([self.store.occurrence(other, T0)])
        order = []
        while self.http.pending():
            (post,) = self.http.pending()
            order.append(post.url.rsplit("/", 1)[-1])
            post.answer(200)
        self.assertEqual(order, ["busy", "busy", "other", "busy", "busy", "busy"])


class ForgetTests(IsolationCase):
    def test_quiet_endpoints_are_forgotten_failing_ones_kept(self) -> None:
        """A node whose jobs (and their URLs) come and go does not keep every endpoint's
        status and breaker forever: one quiet and healthy for C{forget_after} goes."""
        executor = self.executor(retry_max=0, forget_after=100.0)
        a, b, c = self.jobs([f"{HOST}/a", f"{HOST}/b", f"{HOST}/c"])
        executor.submit([self.store.occurrence(a, T0), self.store.occurrence(b, T0)])
        for post in self.http.pending():
            post.answer(200 if post.url.endswith("/a") else 500)
        self.assertEqual(set(executor.endpoints), {f"{HOST}/a", f"{HOST}/b"})
        self.clock.advance(150)
        executor.submit([self.store.occurrence(c, T0 + 150)])
        self.http.pending()[0].answer(200)
        self.assertEqual(set(executor.endpoints), {f"{HOST}/b", f"{HOST}/c"})
        self.assertEqual(executor.breakers.get(f"{HOST}/b").failure_count, 1)


class StaleConnectionTests(IsolationCase):
    def test_a_request_that_died_unanswered_on_a_stale_connection_is_sent_again(
            self) -> None:
        executor = self.executor(retry_max=3)
        (job,) = self.jobs([f"{HOST}/hook"])
        o = self.store.occurrence(job, T0)
        executor.submit([o])
        (post,) = self.http.posts
        post.fail(stale())
        # at once, on a fresh connection, the same request: same execution id and attempt
        (again,) = self.http.pending()
        self.assertEqual(self.http.fresh, [again])
        self.assertEqual((again.ids(), again.attempts(), again.body),
                         (post.ids(), [1], post.body))
        self.assertEqual(self.state(o), ("dispatched", 1))
        again.answer(200)
        self.assertEqual(self.state(o), ("succeeded", 1))
        self.assertEqual(self.store.record(o.execution_id)["lastError"], None)
        self.assertEqual(executor.stale_retries, 1)
        self.assertEqual(executor.counters["retrying"], 0)
        self.assertIsNone(executor.breakers.find(f"{HOST}/hook"))  # no failure counted
        self.assertEqual(executor.endpoints[f"{HOST}/hook"].consecutive_failures, 0)

    def test_a_fresh_connection_closed_unanswered_too_is_a_failure_in_words(self) -> None:
        executor = self.executor(retry_max=3)
        (job,) = self.jobs([f"{HOST}/hook"])
        o = self.store.occurrence(job, T0)
        executor.submit([o])
        self.http.posts[0].fail(stale())
        self.http.posts[1].fail(ResponseNeverReceived([Failure(ConnectionLost("lost"))]))
        self.assertEqual(len(self.http.posts), 2)  # once, not again and again
        record = self.store.record(o.execution_id)
        self.assertEqual((record["state"], record["attempts"], record["lastError"]),
                         ("retrying", 1, "connection closed by the receiver before it "
                                         "answered"))
        self.assertEqual(executor.breakers.get(f"{HOST}/hook").failure_count, 1)

    def test_a_request_cut_by_its_deadline_is_not_sent_again(self) -> None:
        executor = self.executor(retry_max=0, timeout=2.0)
        (job,) = self.jobs([f"{HOST}/hook"])
        o = self.store.occurrence(job, T0)
        executor.submit([o])
        self.clock.advance(2.0)
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.record(o.execution_id)["lastError"], "no answer within 2 s")


class FailureLogTests(IsolationCase):
    def test_failures_are_logged_with_jobs_endpoint_and_reason_rate_limited(self) -> None:
        executor = self.executor(retry_max=1, retry_delay=1.0, per_target=100)
        ids = self.jobs([f"{HOST}/e{n}" for n in range(30)])
        with capturedLogs() as events:
            executor.submit([self.store.occurrence(j, T0) for j in ids])
            for post in self.http.pending():
                post.answer(503)
            self.clock.advance(5)                      # the retries: dead-lettered now
            for post in self.http.pending():
                post.answer(503)
        lines = [e for e in events if e.get("endpoint") and e.get("reason")]
        # 60 failures within a minute: 20 lines, each endpoint at most once
        self.assertEqual(len(lines), 20)
        self.assertEqual(len({e["endpoint"] for e in lines}), 20)
        first = lines[0]
        self.assertEqual(first["log_level"], LogLevel.warn)
        self.assertEqual((first["endpoint"], first["job_ids"], first["reason"]),
                         (f"{HOST}/e0", [1], "HTTP 503: ok"))
        self.assertRegex(first["outcome"], r"\A1 retried in (0\.[89]|1\.[0-2]?)\d* s\Z")
        with capturedLogs() as events:
            self.clock.advance(60)
            executor.submit([self.store.occurrence(ids[0], T0 + 60)])
            self.http.pending()[0].answer(404)
        (line,) = [e for e in events if e.get("endpoint")]
        self.assertEqual((line["outcome"], line["unlogged"]), ("1 dead-lettered", 40))
        text = line["log_format"].format(**line)
        self.assertIn("40 more delivery failures were not logged", text)
        self.assertIn(f"jobs 1", text)
        self.assertNotIn("<", text)
