"""
The callback executor (PRODUCT §5 delivery, §7 breakers and dead letters): how an answer is
classified, what is recorded before and after each POST (retried with backoff under the
same execution id, dead at once when permanent), and the executor's own timeouts.

A C{task.Clock} and a fake HTTP client whose answers are fired by hand; the fake ignores
treq's C{timeout=}, so every timeout seen here is the executor's own.
"""

from __future__ import annotations

import random

from twisted.internet.error import ConnectionRefusedError

from scheduler0.execution.backoff import retry_delay
from scheduler0.execution.failures import PERMANENT, TRANSIENT
from scheduler0.execution.network_policy import CallbackRefused
from scheduler0.execution.outcomes import classify_status

from .fakes import FakeResponse
from .executor_fixtures import DeliveryCase, T0, stamp


class OutcomeTests(DeliveryCase):
    """How an answer is classified, and what is recorded for each outcome."""

    def test_classify_status(self) -> None:
        for status in (400, 401, 403, 404, 405, 410, 413, 422, 499):
            self.assertEqual(classify_status(status), PERMANENT, status)
        for status in (408, 429, 500, 502, 503, 504, 302, 100):
            self.assertEqual(classify_status(status), TRANSIENT, status)

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


class TimeoutTests(DeliveryCase):
    """The executor's own deadline, for the answer and for its body."""

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
