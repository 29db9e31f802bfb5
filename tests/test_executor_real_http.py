"""
The callback executor over real HTTP: the real reactor, real twisted.web receivers on
127.0.0.1 and the client that C{scheduler0.node.callback_client} builds (its own connection
pool), against a real sqlite store.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from scheduler0.config import Config
from scheduler0.execution.executor import Executor
from scheduler0.execution.failures import TRANSIENT
from scheduler0.execution.network_policy import NetworkPolicy
from scheduler0.execution.signing import verify
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence

from .executor_fixtures import QuietSite, SECRET_1, Store, make_executor


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
        executor = self.executor(node_id=7)
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
        # which node sent it (in a cluster, the job's owner)
        self.assertEqual(headers["x-scheduler0-node"], ["7"])
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
