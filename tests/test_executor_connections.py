"""
Callback connections against real receivers on 127.0.0.1, through the client that
C{scheduler0.node.callback_client} builds (issue 9 items 2 and 4):

- a plain Python C{http.server} receiver (HTTP/1.0, closes after each answer) and an
  HTTP/1.1 one that closes without saying so: 100+ deliveries, no failure recorded;
- what a user reads when a delivery fails: sentences, never a Python repr.
"""

from __future__ import annotations

import os
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from OpenSSL import SSL
from service_identity.exceptions import VerificationError
from twisted.internet import defer, reactor, ssl, task
from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet import error as net
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from scheduler0.config import Config
from scheduler0.execution.connections import closes_connection
from scheduler0.execution.executor import Executor
from scheduler0.execution.failures import (
    ENDPOINT, HOST, PERMANENT, TRANSIENT, describe, died_unanswered)
from scheduler0.execution.network_policy import CallbackRefused, NetworkPolicy
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence

from .integration.test_daemon_tls import self_signed
from .executor_fixtures import SECRET_1, Store, make_executor


# -- what a failure says ------------------------------------------------------------------


class DescribeTests(SynchronousTestCase):
    def check(self, error: BaseException, message: str, category: str = TRANSIENT,
              scope: str = ENDPOINT) -> None:
        for outcome in (error, Failure(error)):
            got = describe(outcome, "https://a.test:443", 30.0)
            self.assertEqual(got, (message, category, scope))
            self.assertNotIn("<", got[0])
            self.assertNotIn("Failure", got[0])

    def test_connection_level_failures_blame_the_host(self) -> None:
        self.check(net.ConnectionRefusedError("Connection refused"),
                   "connection refused by a.test:443 (nothing accepts connections there)",
                   scope=HOST)
        self.check(net.DNSLookupError("a.test"), "the host name a.test could not be resolved",
                   scope=HOST)
        self.check(net.TCPTimedOutError(), "could not connect to a.test:443 in time", scope=HOST)
        self.check(net.TimeoutError(), "could not connect to a.test:443 in time", scope=HOST)
        self.check(net.NoRouteError(), "no route to a.test:443", scope=HOST)
        self.check(net.ConnectError("weird"), "could not connect to a.test:443 (ConnectError)",
                   scope=HOST)
        self.check(CallbackRefused("refused to deliver to a.test: 10.0.0.1 is in a denied "
                                   "network"),
                   "refused to deliver to a.test: 10.0.0.1 is in a denied network",
                   PERMANENT, HOST)

    def test_tls_failures(self) -> None:
        verify = SSL.Error([("SSL routines", "", "certificate verify failed")])
        self.check(ResponseNeverReceived([Failure(verify)]),
                   "TLS failure with a.test:443: certificate verify failed", scope=HOST)
        self.check(verify, "TLS failure with a.test:443: certificate verify failed", scope=HOST)
        self.check(ResponseNeverReceived([Failure(VerificationError(errors=[]))]),
                   "TLS failure with a.test:443: the receiver's certificate does not match "
                   "its host name", scope=HOST)

    def test_the_receiver_closing_or_not_answering(self) -> None:
        closed = "connection closed by the receiver before it answered"
        self.check(ResponseNeverReceived([Failure(net.ConnectionDone())]), closed)
        self.check(RequestTransmissionFailed([Failure(net.ConnectionLost())]), closed)
        self.check(ResponseFailed([Failure(net.ConnectionLost())]),
                   "connection closed by the receiver while it was answering")
        self.check(DeferredTimeout(30, "x"), "no answer within 30 s")
        self.check(CancelledError(), "no answer within 30 s")
        self.check(ResponseNeverReceived([Failure(CancelledError())]), "no answer within 30 s")

    def test_anything_else_is_a_sentence_with_the_type_name(self) -> None:
        self.check(ValueError("<object object at 0x7f>"),
                   "the delivery failed unexpectedly (ValueError); see the node's log")

    def test_died_unanswered(self) -> None:
        self.assertTrue(died_unanswered(ResponseNeverReceived([Failure(net.ConnectionDone())])))
        self.assertTrue(died_unanswered(Failure(RequestTransmissionFailed(
            [Failure(net.ConnectionLost())]))))
        # aborted by us (a cancel), a timeout, a refused connection, a started answer: no
        for error in (ResponseNeverReceived([Failure(net.ConnectionAborted())]),
                      ResponseNeverReceived([Failure(CancelledError())]),
                      ResponseNeverReceived([]), net.ConnectionRefusedError(),
                      ResponseFailed([Failure(net.ConnectionDone())])):
            self.assertFalse(died_unanswered(error), error)

    def test_closes_connection(self) -> None:
        self.assertTrue(closes_connection(b"HTTP/1.0 200 OK\r\nContent-Length: 2"))
        self.assertTrue(closes_connection(b"HTTP/1.1 200 OK\r\nConnection: Close"))
        self.assertTrue(closes_connection(b"HTTP/1.1 200 OK\r\nconnection: upgrade, CLOSE"))
        self.assertFalse(closes_connection(b"HTTP/1.0 200 OK\r\nConnection: keep-alive"))
        self.assertFalse(closes_connection(b"HTTP/1.1 200 OK\r\nContent-Length: 2"))
        self.assertFalse(closes_connection(b"HTTP/1.1 200 OK\r\nConnection: close"))


# -- real receivers -----------------------------------------------------------------------


class _HTTP10Handler(BaseHTTPRequestHandler):
    """Python's own server as small receivers use it: HTTP/1.0, Content-Length set,
    the connection closed after every answer."""

    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _SilentCloser(Protocol):
    """Answers each request as HTTP/1.1 (no C{Connection: close}) and then closes the
    connection: a pooled connection to it is stale as soon as it is pooled. With
    C{answer=False} it closes without answering at all."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) < length:
            return
        self.factory.hits += 1  # type: ignore[attr-defined]
        if self.answer:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 2\r\n\r\n{}")
        self.transport.loseConnection()


class RealReceiverTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.store = Store(self, reactor)
        self.store.project(1, SECRET_1)
        self.rng = random.Random(9)

    def executor(self, per_target: int = 4, timeout: float = 5.0, **settings: Any) -> Executor:
        config = Config(job_execution_timeout=timeout,
                        callback_concurrency_per_target=per_target)
        http, pool = callback_client(reactor, config, NetworkPolicy([], []))
        settings.setdefault("retry_delay", 0.05)
        settings.setdefault("retry_max", 2)
        executor = make_executor(self, reactor, http, self.store, self.rng, timeout=timeout,
                                 per_target=per_target, **settings)
        self.addCleanup(pool.closeCachedConnections)
        self.addCleanup(executor.stopService)
        return executor

    def occurrences(self, urls: list[str], first_id: int = 1) -> list[Occurrence]:
        now = float(int(reactor.seconds()))
        for n, url in enumerate(urls):
            self.store.job(first_id + n, url)
        return [self.store.occurrence(first_id + n, now) for n in range(len(urls))]

    @defer.inlineCallbacks
    def until(self, predicate: Callable[[], bool], within: float = 20.0) -> Any:
        deadline = reactor.seconds() + within
        while not predicate():
            if reactor.seconds() > deadline:
                self.fail(f"not reached within {within} s")
            yield task.deferLater(reactor, 0.01, lambda: None)

    def finished(self, o: Occurrence) -> bool:
        return self.store.state(o.execution_id) in ("succeeded", "dead", "failed")

    def http10_receiver(self) -> tuple[str, list[str]]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _HTTP10Handler)
        server.daemon_threads = True
        server.hits = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        self.addCleanup(stop)
        return f"http://127.0.0.1:{server.server_address[1]}", server.hits  # type: ignore

    def raw_receiver(self, answer: bool = True) -> tuple[str, Factory]:
        factory = Factory.forProtocol(lambda: _SilentCloser(answer))
        factory.hits = 0  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}", factory

    @defer.inlineCallbacks
    def deliver_rounds(self, executor: Executor, urls: list[str], rounds: int) -> Any:
        """C{rounds} rounds of one occurrence per URL, each round after the last ended."""
        delivered = []
        for n in range(rounds):
            batch = self.occurrences(urls, first_id=1 + n * len(urls))
            executor.submit(batch)
            yield self.until(lambda: all(self.finished(o) for o in batch))
            delivered.extend(batch)
        return delivered

    @defer.inlineCallbacks
    def test_an_http_1_0_receiver_gets_every_delivery_first_time(self) -> Any:
        """Issue 9: with Python's http.server, 16 of 122 first attempts failed with
        ResponseNeverReceived(ConnectionDone) and were retried. An HTTP/1.0 answer is never
        pooled, so none fails."""
        base, hits = self.http10_receiver()
        executor = self.executor(per_target=4)
        urls = [f"{base}/hook/{n}" for n in range(8)]
        delivered = yield self.deliver_rounds(executor, urls, rounds=16)
        self.assertEqual(len(delivered), 128)
        records = [self.store.record(o.execution_id) for o in delivered]
        failed = [(r["executionId"], r["state"], r["attempts"], r["lastError"])
                  for r in records if (r["state"], r["attempts"]) != ("succeeded", 1)]
        self.assertEqual(failed, [])
        self.assertEqual(len(hits), 128)
        self.assertEqual(executor.counters["retrying"], 0)
        self.assertEqual(executor.stale_retries, 0)  # not even a stale connection

    @defer.inlineCallbacks
    def test_a_receiver_closing_pooled_connections_silently_costs_no_failure(self) -> Any:
        """An HTTP/1.1 answer without Connection: close, then a close: the connection is
        pooled and stale at once. A request that dies on it unanswered is sent again at
        once on a fresh connection; no attempt, retry or breaker failure is counted."""
        base, receiver = self.raw_receiver()
        executor = self.executor(per_target=2)
        urls = [f"{base}/hook/{n}" for n in range(4)]
        delivered = yield self.deliver_rounds(executor, urls, rounds=30)
        records = [self.store.record(o.execution_id) for o in delivered]
        failed = [(r["executionId"], r["state"], r["attempts"], r["lastError"])
                  for r in records if (r["state"], r["attempts"]) != ("succeeded", 1)]
        self.assertEqual(failed, [])
        self.assertEqual(receiver.hits, 120)
        self.assertEqual(executor.counters["retrying"], 0)
        # the case did come up: requests died on stale connections and went again
        self.assertGreater(executor.stale_retries, 0)
        self.assertEqual(len(executor.breakers), 0)

    @defer.inlineCallbacks
    def test_a_receiver_that_closes_without_answering_is_reported_in_words(self) -> Any:
        base, receiver = self.raw_receiver(answer=False)
        executor = self.executor(retry_max=0)
        (o,) = self.occurrences([f"{base}/hook"])
        executor.submit([o])
        yield self.until(lambda: self.finished(o))
        record = self.store.record(o.execution_id)
        self.assertEqual((record["state"], record["lastError"]),
                         ("dead", "connection closed by the receiver before it answered"))

    @defer.inlineCallbacks
    def test_a_receiver_whose_certificate_is_not_trusted_is_reported_in_words(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        cert_path, key_path = self_signed(directory)
        with open(cert_path, "rb") as c, open(key_path, "rb") as k:
            options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        port = reactor.listenSSL(0, Factory.forProtocol(Protocol), options,
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        executor = self.executor(retry_max=0)
        (o,) = self.occurrences([f"https://127.0.0.1:{number}/hook"])
        executor.submit([o])
        yield self.until(lambda: self.finished(o))
        record = self.store.record(o.execution_id)
        self.assertEqual(record["state"], "dead")
        self.assertTrue(record["lastError"].startswith(f"TLS failure with 127.0.0.1:{number}: "),
                        record["lastError"])
        self.assertIn("certificate verify failed", record["lastError"])
        self.assertNotIn("<", record["lastError"])
        # a TLS failure is the host's: its breaker counted it
        self.assertEqual(executor.breakers.get(f"https://127.0.0.1:{number}").failure_count, 1)
