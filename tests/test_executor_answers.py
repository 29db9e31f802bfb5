"""
The executor against hostile receivers (issue 8, item 5): a receiver's answer is read no
further than a small prefix, whatever it sends.

- L{AnswerTests} and L{BoundedAnswerTests}: the answer's excerpt, and the body read no
  further than its prefix (a C{task.Clock} and the fake HTTP client).
- L{HugeAnswerTests}: the same against real twisted.web receivers on 127.0.0.1 that stream
  100 MB, or an endless body, through the client the node builds.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IPushProducer
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from scheduler0.config import Config
from scheduler0.execution.executor import Executor
from scheduler0.execution.failures import TRANSIENT
from scheduler0.execution.network_policy import NetworkPolicy
from scheduler0.execution.sender import Answer
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence

from .fakes import FakeResponse, StreamingResponse
from .executor_fixtures import SECRET_1, ExecutorCase, QuietSite, Store, make_executor


MB = 1_000_000
PREFIX = 4096  # ExecutorSettings.answer_prefix_bytes


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
