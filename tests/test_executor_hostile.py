"""
The executor against hostile receivers and a failing store (issue 8, items 5 and 8).

- L{AnswerTests} and L{BoundedAnswerTests}: a receiver's answer is read no further than a
  small prefix, whatever it sends (a C{task.Clock} and the fake HTTP client).
- L{HugeAnswerTests}: the same against real twisted.web receivers on 127.0.0.1 that stream
  100 MB, or an endless body, through the client the node builds.
- L{UnrecordedDispatchTests}: a callback whose dispatch could not be recorded (the outbox
  write failed: a full disk) is not sent; it is held and goes out, with the same execution
  ids, once a write succeeds again; an outcome that could not be recorded is recorded then.
- L{RecorderTests}: which failed writes the recorder keeps for another try, in what order,
  and how many at most.

The store is a real sqlite file; a full disk is L{FlakyCommandLog} in front of it.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scheduler0.config import Config
from scheduler0.consensus.interface import NotAccepting
from scheduler0.domain import Execution
from scheduler0.execution.breaker import Breakers, BreakerState
from scheduler0.execution.executor import Executor, ExecutorSettings
from scheduler0.execution.failures import TRANSIENT
from scheduler0.execution.network_policy import NetworkPolicy
from scheduler0.execution.recorder import ExecutionRecorder, RecordRejected, ignore_failure
from scheduler0.execution.sender import Answer
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence

from .fakes import FakeHTTP, FakeResponse, FlakyCommandLog, StreamingResponse
from .executor_fixtures import SECRET_1, SECRET_2, T0, QuietSite, Store, make_executor

MB = 1_000_000
PREFIX = 4096  # ExecutorSettings.answer_prefix_bytes


class DiskFull(NotAccepting):
    """What the command log fails a write with when sqlite says the disk is full."""


# -- the answer's excerpt -------------------------------------------------------------------


class AnswerTests(SynchronousTestCase):
    def test_excerpt_is_one_printable_line(self) -> None:
        answer = Answer(500, b'{"error":\r\n  "db\x00 down"}\t\x1b[31m')
        self.assertEqual(answer.excerpt(), '{"error": "db down"} [31m')

    def test_excerpt_of_invalid_utf8_and_a_cut_character(self) -> None:
        self.assertEqual(Answer(502, b"bad \xff gateway \xc3").excerpt(),
                         "bad \ufffd gateway \ufffd")

    def test_excerpt_is_bounded_and_says_when_the_body_went_on(self) -> None:
        self.assertEqual(Answer(500, b"x" * 300).excerpt(limit=10), "x" * 10 + "...")
        self.assertEqual(Answer(500, b"short", truncated=True).excerpt(), "short...")
        self.assertEqual(Answer(500, b"").excerpt(), "")
        self.assertEqual(Answer(500, b" \r\n ").excerpt(), "")


# -- deterministic: the answer's body is read no further than its prefix --------------------


class ExecutorCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0 + 5)
        self.store = Store(self, self.clock)
        self.store.project(1, SECRET_1)
        self.store.project(2, SECRET_2)
        self.http = FakeHTTP(self.clock, self.store)
        self.rng = random.Random(20261126)

    def jobs(self, base: str, ids: list[int]) -> list[Occurrence]:
        for job_id in ids:
            self.store.job(job_id, f"{base}/{job_id}")
        return [self.store.occurrence(job_id) for job_id in ids]

    def record(self, o: Occurrence) -> dict:
        record = self.store.record(o.execution_id)
        assert record is not None, f"no record for {o.execution_id}"
        return record


class BoundedAnswerTests(ExecutorCase):
    def executor(self, **settings: Any) -> Executor:
        executor = make_executor(self, self.clock, self.http, self.store, self.rng,
                                 **settings)
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def test_a_huge_2xx_answer_is_not_read_and_its_connection_is_closed(self) -> None:
        executor = self.executor(timeout=30.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        response = StreamingResponse(200, b"x" * 65536, total=100 * MB)
        post.deferred.callback(response)
        self.assertEqual(self.record(o)["state"], "succeeded")
        # read: the prefix and at most the one read that went past it
        self.assertLessEqual(response.delivered, PREFIX + 65536)
        self.assertTrue(response.transport.stopped,
                        "a connection with unread body data was left open (to the pool)")
        self.assertEqual(executor.in_flight, 0)

    def test_an_endless_error_answer_is_recorded_at_once_with_its_start(self) -> None:
        executor = self.executor(timeout=30.0, retry_max=1)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        response = StreamingResponse(503, b"the database is down; " * 100)  # never ends
        post.deferred.callback(response)
        record = self.record(o)
        self.assertEqual((record["state"], record["lastStatus"], record["errorCategory"]),
                         ("retrying", 503, TRANSIENT))
        self.assertTrue(record["lastError"].startswith(
            "HTTP 503: the database is down; the database is down;"), record["lastError"])
        self.assertTrue(record["lastError"].endswith("..."), record["lastError"])
        self.assertLessEqual(len(record["lastError"]), 220)
        self.assertLessEqual(response.delivered, PREFIX + 2200)
        self.assertTrue(response.transport.stopped)
        status = executor.endpoints["http://a.test:80/1"]
        self.assertEqual(status.last_error, record["lastError"])

    def test_an_answer_that_fits_the_prefix_keeps_its_connection(self) -> None:
        executor = self.executor()
        first, second = self.jobs("http://a.test", [1, 2])
        executor.submit([first, second])
        fits, over = FakeResponse(200, b"k" * PREFIX), FakeResponse(200, b"k" * (PREFIX + 1))
        by_id = {p.ids()[0]: p for p in self.http.posts}
        by_id[first.execution_id].deferred.callback(fits)
        by_id[second.execution_id].deferred.callback(over)
        self.assertEqual(self.record(first)["state"], "succeeded")
        self.assertEqual(self.record(second)["state"], "succeeded")
        self.assertFalse(fits.transport.stopped, "a fully read answer's connection was closed")
        self.assertTrue(over.transport.stopped)


# -- real HTTP: receivers that answer 100 MB or never stop ----------------------------------


@implementer(IPushProducer)
class _Stream:
    """Writes a body as fast as the client takes it (paused while the connection's buffer
    is full): C{total} bytes, or endless. C{sent} counts the bytes handed to the
    connection, i.e. at most what the client read plus what the kernel buffers hold."""

    def __init__(self, request: Any, chunk: bytes, total: int | None) -> None:
        self.request = request
        self.chunk = chunk
        self.total = total
        self.sent = 0
        self.paused = False
        self.stopped = False
        self.done = False

    def resumeProducing(self) -> None:
        self.paused = False
        while not (self.paused or self.stopped or self.done):
            if self.total is not None and self.sent >= self.total:
                self.done = True
                self.request.unregisterProducer()
                self.request.finish()
                return
            chunk = self.chunk
            if self.total is not None:
                chunk = chunk[:self.total - self.sent]
            self.sent += len(chunk)
            self.request.write(chunk)

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.stopped = True


class StreamingReceiver(Resource):
    """Answers each POST as the next of C{answers}: C{(status, total bytes or None)}."""

    isLeaf = True

    def __init__(self, answers: list[tuple[int, int | None]]) -> None:
        super().__init__()
        self.answers = answers
        self.streams: list[_Stream] = []
        self.lost = 0  # answers whose connection went away before they were complete

    def render_POST(self, request: Any) -> Any:
        status, total = self.answers[len(self.streams)]
        request.setResponseCode(status)
        if 300 <= status < 400:
            request.setHeader(b"location", b"/elsewhere")
        if total is not None:
            request.setHeader(b"content-length", b"%d" % total)
        stream = _Stream(request, (b"%d is too much. " % status) * 4096, total)
        self.streams.append(stream)

        def lost(_: Any) -> None:
            stream.stopped = True
            self.lost += 1

        request.notifyFinish().addErrback(lost)
        request.registerProducer(stream, True)
        stream.resumeProducing()
        return NOT_DONE_YET


class HugeAnswerTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.store = Store(self, reactor)
        self.store.project(1, SECRET_1)
        self.rng = random.Random(5)

    def receiver(self, answers: list[tuple[int, int | None]]) -> tuple[str, StreamingReceiver,
                                                                      WrappingFactory]:
        resource = StreamingReceiver(answers)
        site = WrappingFactory(QuietSite(resource))
        port = reactor.listenTCP(0, site, interface="127.0.0.1")

        @defer.inlineCallbacks
        def close() -> Any:
            yield port.stopListening()
            for connection in list(site.protocols):
                connection.transport.abortConnection()
            while site.protocols:
                yield task.deferLater(reactor, 0.01, lambda: None)

        self.addCleanup(close)
        return f"http://127.0.0.1:{port.getHost().port}", resource, site

    def executor(self, timeout: float) -> Executor:
        config = Config(job_execution_timeout=timeout, callback_concurrency_per_target=4)
        http, pool = callback_client(reactor, config, NetworkPolicy([], []))
        executor = make_executor(self, reactor, http, self.store, self.rng, timeout=timeout,
                                 per_target=4, retry_max=0)
        self.addCleanup(pool.closeCachedConnections)
        self.addCleanup(executor.stopService)
        return executor

    def occurrence(self, job_id: int, url: str) -> Occurrence:
        self.store.job(job_id, url)
        return self.store.occurrence(job_id, float(int(reactor.seconds())))

    @defer.inlineCallbacks
    def until(self, predicate: Callable[[], bool], within: float) -> Any:
        deadline = reactor.seconds() + within
        while not predicate():
            if reactor.seconds() > deadline:
                self.fail(f"not reached within {within} s")
            yield task.deferLater(reactor, 0.01, lambda: None)

    def finished(self, o: Occurrence) -> bool:
        return self.store.state(o.execution_id) in ("succeeded", "dead")

    @defer.inlineCallbacks
    def test_a_100_mb_answer_is_not_read_and_the_next_delivery_gets_a_fresh_connection(
            self) -> Any:
        base, receiver, site = self.receiver([(200, 100 * MB), (200, 10)])
        # a deadline far away: the outcome must not wait for it
        executor = self.executor(timeout=20.0)
        first = self.occurrence(1, base + "/hook")
        executor.submit([first])
        yield self.until(lambda: self.finished(first), within=10.0)
        self.assertEqual(self.store.state(first.execution_id), "succeeded")
        # the node closed the connection rather than read (or pool) 100 MB
        yield self.until(lambda: receiver.lost == 1, within=5.0)
        (stream,) = receiver.streams
        self.assertLess(stream.sent, 20 * MB, f"the receiver got {stream.sent} bytes out")
        # the next delivery to the same receiver is not handed the dirty connection
        second = self.occurrence(2, base + "/hook")
        executor.submit([second])
        yield self.until(lambda: self.finished(second), within=10.0)
        record = self.store.record(second.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["lastStatus"]), ("succeeded", 200))
        self.assertEqual(len(receiver.streams), 2)

    @defer.inlineCallbacks
    def test_an_endless_redirect_is_a_failure_and_its_body_is_not_read(self) -> Any:
        # a redirect is not followed (2xx is success, anything else a failure), and its
        # body is read like any other answer's: not past the prefix
        base, receiver, site = self.receiver([(302, None), (303, 50 * MB)])
        executor = self.executor(timeout=20.0)
        found, see_other = self.occurrence(1, base + "/a"), self.occurrence(2, base + "/b")
        executor.submit([found])
        yield self.until(lambda: self.finished(found), within=10.0)
        executor.submit([see_other])
        yield self.until(lambda: self.finished(see_other), within=10.0)
        for o, status in ((found, 302), (see_other, 303)):
            record = self.store.record(o.execution_id)
            assert record is not None
            self.assertEqual((record["state"], record["lastStatus"]), ("dead", status))
            self.assertEqual(record["lastError"], f"HTTP {status}: redirects are not "
                                                  "followed (Location: /elsewhere)")
        yield self.until(lambda: receiver.lost == 2, within=5.0)
        self.assertEqual(len(receiver.streams), 2)  # nothing went to /elsewhere
        for stream in receiver.streams:
            self.assertLess(stream.sent, 20 * MB, f"the receiver got {stream.sent} bytes out")

    @defer.inlineCallbacks
    def test_an_endless_500_is_recorded_promptly_with_its_start(self) -> Any:
        base, receiver, site = self.receiver([(500, None)])
        executor = self.executor(timeout=20.0)
        o = self.occurrence(1, base + "/hook")
        executor.submit([o])
        yield self.until(lambda: self.finished(o), within=10.0)
        record = self.store.record(o.execution_id)
        assert record is not None
        self.assertEqual((record["state"], record["lastStatus"], record["errorCategory"]),
                         ("dead", 500, TRANSIENT))
        self.assertTrue(record["lastError"].startswith("HTTP 500: 500 is too much. 500 is"),
                        record["lastError"])
        yield self.until(lambda: receiver.lost == 1, within=5.0)
        (stream,) = receiver.streams
        self.assertLess(stream.sent, 20 * MB, f"the receiver got {stream.sent} bytes out")


# -- no callback goes out unrecorded --------------------------------------------------------


class UnrecordedDispatchTests(ExecutorCase):
    def setUp(self) -> None:
        super().setUp()
        self.commands = FlakyCommandLog(self.store.commands)

    def executor(self, **settings: Any) -> Executor:
        """Like L{make_executor}, with the recorder writing through L{FlakyCommandLog}."""
        breakers = Breakers(self.clock, self.rng, threshold=2, base_delay=5.0,
                            on_change=lambda b, old, new: executor.on_breaker_change(b, old, new))
        executor = Executor(self.clock, self.http, ExecutionRecorder(self.clock, self.commands),
                            breakers, secrets_for=self.store.secrets_for,
                            is_live=lambda job_id: True, settings=ExecutorSettings(**settings),
                            rng=self.rng)
        executor.startService()
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def test_no_post_while_the_dispatch_cannot_be_recorded_then_the_same_ids_go_out(
            self) -> None:
        for failing in (DiskFull("the disk holding the database is full"),
                        {"ok": False, "status": 500, "error": "a record could not be stored"}):
            self.http = FakeHTTP(self.clock, self.store)
            executor = self.executor(record_retry_delay=1.0, record_retry_cap=30.0)
            base = f"http://{len(self.store.jobs)}.test"
            occurrences = self.jobs(base, [len(self.store.jobs) + 1, len(self.store.jobs) + 2])
            ids = sorted(o.execution_id for o in occurrences)
            self.commands.failing = failing
            executor.submit(occurrences)
            self.assertEqual(self.http.posts, [], "a callback went out unrecorded")
            for o in occurrences:
                self.assertIsNone(self.store.record(o.execution_id))
            self.assertEqual((executor.queued(), executor.in_flight,
                              set(executor.in_flight_ids)), (2, 0, set()))
            status = executor.endpoints[f"{base}:80/{occurrences[0].job_id}"]
            self.assertIn("not sent: its dispatch could not be recorded", status.last_error)
            self.assertEqual(status.last_error_category, TRANSIENT)
            # the write is tried again after a backoff (1 s, then 2 s, ...): still failing
            refused = self.commands.refused
            self.clock.advance(1.0)
            self.assertGreater(self.commands.refused, refused)
            self.assertEqual(self.http.posts, [])
            # space is back: at the next try the same occurrences go out, recorded first
            self.commands.failing = None
            self.clock.advance(2.0)
            self.assertEqual(sorted(eid for p in self.http.posts for eid in p.ids()), ids)
            for post in self.http.posts:
                for eid in post.ids():
                    self.assertEqual(post.seen[eid]["state"], "dispatched")
                self.assertEqual(post.attempts(), [1])
                post.answer(200)
            for o in occurrences:
                self.assertEqual(self.record(o)["state"], "succeeded")
            self.assertEqual(executor.queued(), 0)
            executor.stopService()
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)
        self.assertEqual(len(self.flushLoggedErrors(RecordRejected)), 1)

    def test_a_retry_whose_dispatch_cannot_be_recorded_waits_for_the_store(self) -> None:
        executor = self.executor(retry_delay=1.0, retry_max=3)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(self.record(o)["state"], "retrying")
        self.commands.failing = DiskFull("disk full")
        self.clock.advance(60)  # the retry's backoff is long over; its write keeps failing
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual((self.record(o)["state"], self.record(o)["attempts"]), ("retrying", 1))
        self.commands.failing = None
        self.clock.advance(30)  # at most the write's backoff cap
        (retry,) = self.http.pending()
        self.assertEqual((retry.ids(), retry.attempts()), ([o.execution_id], [2]))
        self.assertEqual(retry.seen[o.execution_id]["state"], "dispatched")
        retry.answer(200)
        self.assertEqual((self.record(o)["state"], self.record(o)["attempts"]),
                         ("succeeded", 2))
        self.flushLoggedErrors(DiskFull)

    def test_a_probe_whose_dispatch_cannot_be_recorded_is_the_probe_later(self) -> None:
        executor = self.executor(retry_max=0)
        for job_id in (1, 2, 3):
            self.store.job(job_id, "http://a.test/hook")
        occurrences = [self.store.occurrence(job_id) for job_id in (1, 2, 3)]
        for o in occurrences[:2]:
            executor.submit([o])  # each its own POST to the one endpoint
        for post in self.http.pending():
            post.answer(503)
        breaker = executor.breakers.get("http://a.test:80/hook")
        self.assertEqual(breaker.state, BreakerState.OPEN)
        self.commands.failing = DiskFull("disk full")
        self.clock.advance(10)  # half open: the probe may go, but cannot be recorded
        executor.submit(occurrences[2:])
        self.assertEqual(breaker.state, BreakerState.HALF_OPEN)
        self.assertEqual(self.http.pending(), [])
        self.commands.failing = None
        self.clock.advance(30)
        (probe,) = self.http.pending()
        self.assertEqual(probe.ids(), [occurrences[2].execution_id])
        probe.answer(200)
        self.assertEqual(breaker.state, BreakerState.CLOSED)
        self.assertEqual(self.record(occurrences[2])["state"], "succeeded")
        self.flushLoggedErrors(DiskFull)

    def test_failed_writes_are_logged_as_a_streak_not_per_occurrence(self) -> None:
        executor = self.executor(record_retry_delay=1.0, record_retry_cap=30.0, per_target=10)
        self.commands.failing = DiskFull("the disk holding the database is full")
        with capturedLogs() as events:
            for n in range(100):  # 100 occurrences over 10 minutes, none can be recorded
                executor.submit(self.jobs(f"http://t{n % 10}.test", [n + 1]))
                self.clock.advance(6)
            self.assertEqual(self.http.posts, [])
            self.assertEqual(executor.queued(), 100)
            self.commands.failing = None
            self.clock.advance(30)
        self.assertEqual(len(self.http.posts), 100)
        loud = [e for e in events if e["log_level"] in (LogLevel.warn, LogLevel.error,
                                                        LogLevel.critical)]
        # the recorder's and the executor's: the first failure, then once a minute
        self.assertLessEqual(len(loud), 2 * 11, [e["log_format"] for e in loud])
        self.assertGreaterEqual(len(loud), 2 * 9)
        back = [e for e in events if e["log_level"] == LogLevel.info
                and "again" in e["log_format"]]
        self.assertEqual(len(back), 2, [e["log_format"] for e in back])
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)

    def test_an_outcome_that_could_not_be_recorded_is_recorded_once_writes_work(
            self) -> None:
        executor = self.executor(retry_delay=1.0, retry_max=3)
        a, b = self.jobs("http://a.test", [1, 2])
        executor.submit([a, b])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        outbox = self.store.service.schedule_reader.deliveries
        self.assertEqual(len(outbox()), 2)
        self.commands.failing = DiskFull("disk full")
        by_id[a.execution_id].answer(200)
        by_id[b.execution_id].answer(503)  # its retry is due in about 1 s
        self.assertEqual(self.record(a)["state"], "dispatched")
        self.assertEqual(len(outbox()), 2)  # a restart now would send both again
        self.clock.advance(5)
        self.assertEqual(len(self.http.posts), 2)  # b's retry waits for the store
        self.commands.failing = None
        self.clock.advance(30)
        # the outcomes are stored, in order, before the retry's dispatch
        self.assertEqual(self.record(a)["state"], "succeeded")
        self.assertEqual(outbox()[0].occurrences[0].execution_id, b.execution_id)
        (retry,) = self.http.pending()
        self.assertEqual(retry.attempts(), [2])
        self.assertEqual((retry.seen[b.execution_id]["state"],
                          retry.seen[b.execution_id]["attempts"]), ("dispatched", 2))
        retry.answer(200)
        self.assertEqual((self.record(b)["state"], self.record(b)["attempts"]),
                         ("succeeded", 2))
        self.assertEqual(outbox(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.flushLoggedErrors(DiskFull)


class RecorderTests(ExecutorCase):
    """What the recorder keeps when a write fails, and what it does not."""

    def setUp(self) -> None:
        super().setUp()
        self.commands = FlakyCommandLog(self.store.commands)
        (self.o,) = self.jobs("http://a.test", [1])

    def row(self, state: str, attempts: int) -> Execution:
        o = self.o
        return Execution(id=o.execution_id, job_id=o.job_id, project_id=o.project_id,
                         scheduled_time="2026-11-26T16:00:00.000Z", state=state,
                         attempts=attempts, target=o.target, node_id=1)

    def test_kept_writes_go_in_order_ahead_of_later_ones(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = DiskFull("disk full")
        first = recorder.record([self.row("retrying", 1)], keep_trying=True)
        self.failureResultOf(first, DiskFull)
        ignore_failure(recorder.record([self.row("retrying", 2)], keep_trying=True))
        self.assertEqual(recorder.kept, 1)
        self.clock.advance(1)  # still failing: both kept, the backoff doubles
        self.assertEqual(recorder.kept, 2)
        self.commands.failing = None
        self.clock.advance(2)
        self.assertEqual((self.record(self.o)["state"], self.record(self.o)["attempts"]),
                         ("retrying", 2))
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)

    def test_a_waited_for_write_is_tried_at_once_and_not_kept(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = DiskFull("disk full")
        self.failureResultOf(recorder.record([self.row("scheduled", 0)]), DiskFull)
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.commands.failing = None
        self.successResultOf(recorder.record([self.row("retrying", 1)]))
        self.assertEqual(self.record(self.o)["state"], "retrying")
        self.flushLoggedErrors(DiskFull)

    def test_a_refused_write_is_not_tried_again(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = {"ok": False, "status": 400, "error": "malformed"}
        d = recorder.record([self.row("retrying", 1)], keep_trying=True)
        self.assertIn("malformed", str(self.failureResultOf(d, RecordRejected).value))
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.flushLoggedErrors(RecordRejected)

    def test_kept_records_are_bounded(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands, max_kept=10)
        self.commands.failing = DiskFull("disk full")
        for _ in range(5):
            ignore_failure(recorder.record([self.row("retrying", 1)] * 4, keep_trying=True))
            self.clock.advance(30)
        self.assertLessEqual(recorder.kept, 10)
        self.assertGreaterEqual(recorder.dropped, 10)
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)
