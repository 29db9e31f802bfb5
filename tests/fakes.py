"""
A fake treq client for executor tests: C{post()} hands back a Deferred the test fires with a
fake response (or an error), so every delivery's timing is the test's to decide.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from scheduler0.state import commands as C


class FakeBodyTransport:
    """The transport a response body is delivered over; records an abort."""

    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class FakeResponse:
    """Enough of treq's response: C{code}, C{deliverBody} (and C{content})."""

    def __init__(self, code: int, body: bytes = b"ok", finish: bool = True) -> None:
        self.code = code
        self.body = body
        self.finish = finish
        self.transport = FakeBodyTransport()

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(self.transport)
        protocol.dataReceived(self.body)
        if self.finish:
            protocol.connectionLost(Failure(ResponseDone()))

    def content(self) -> Deferred:
        return defer.succeed(self.body) if self.finish else Deferred()


@attrs.define(eq=False)
class Post:
    url: str
    body: bytes
    headers: dict
    at: float
    seen: dict  # execution id -> its stored record when the POST was sent
    deferred: Deferred = attrs.field(default=None)
    cancelled: bool = False

    def items(self) -> list[dict]:
        return json.loads(self.body)

    def ids(self) -> list[str]:
        return [item["executionId"] for item in self.items()]

    def attempts(self) -> list[int]:
        return [item["attempt"] for item in self.items()]

    def header(self, name: str) -> str:
        (values,) = [v for k, v in self.headers.items() if k.lower() == name.lower()]
        (value,) = values
        return value

    def answer(self, code: int) -> None:
        self.deferred.callback(FakeResponse(code))

    def fail(self, error: Exception) -> None:
        self.deferred.errback(error)


class FakeHTTP:
    """C{post()} returns a Deferred the test fires; it ignores treq's C{timeout=}."""

    def __init__(self, clock: Clock, store: Any = None) -> None:
        self.clock = clock
        self.store = store  # with a store, each Post notes the records it was sent after
        self.posts: list[Post] = []

    def post(self, url: str, data: bytes, headers: dict, **ignored: Any) -> Deferred:
        post = Post(url, data, headers, self.clock.seconds(), {})
        if self.store is not None:
            post.seen = {eid: self.store.record(eid) for eid in post.ids()}

        def cancel(_: Deferred) -> None:
            post.cancelled = True

        post.deferred = Deferred(cancel)
        self.posts.append(post)
        return post.deferred

    def pending(self, prefix: str = "") -> list[Post]:
        return [p for p in self.posts if not p.deferred.called and p.url.startswith(prefix)]

    def to(self, prefix: str) -> list[Post]:
        return [p for p in self.posts if p.url.startswith(prefix)]


class StreamingResponse(FakeResponse):
    """A response whose body arrives in C{chunk}s for as long as the reader lets it (it
    stops once its transport is stopped): C{total} bytes, or an endless body (None) that
    stalls after C{most} chunks. C{delivered} counts the bytes handed to the reader."""

    def __init__(self, code: int, chunk: bytes, total: int | None = None,
                 most: int = 10_000) -> None:
        super().__init__(code, b"", finish=False)
        self.chunk = chunk
        self.total = total
        self.most = most
        self.delivered = 0

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(self.transport)
        for _ in range(self.most):
            if self.transport.stopped or (self.total is not None
                                          and self.delivered >= self.total):
                break
            self.delivered += len(self.chunk)
            protocol.dataReceived(self.chunk)
        if (self.total is not None and self.delivered >= self.total
                and not self.transport.stopped):
            protocol.connectionLost(Failure(ResponseDone()))


class FlakyCommandLog:
    """
    An C{ICommandLog} in front of a real one that, while C{failing} is set, applies
    nothing: an exception fails the submit (a full disk), a dict is answered as the
    result (a rejection, C{{"ok": False, ...}}). C{refused} counts the commands refused.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing: Exception | dict | None = None
        self.refused = 0

    def submit(self, command: Any) -> Deferred:
        if self.failing is None:
            return self.real.submit(command)
        self.refused += 1
        if isinstance(self.failing, dict):
            return defer.succeed(dict(self.failing))
        return defer.fail(self.failing)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _kind(entry: Any) -> Any:
    """A batch entry's kind: a command's, or a log entry's (its JSON text, or on a single
    node the command it carries)."""
    if isinstance(entry, str):
        return json.loads(entry).get("kind")
    return getattr(getattr(entry, "command", entry), "kind", None)


class SlowRecordsWriter:
    """
    The applier's writer for a slow commit path of the scheduler's writes: every batch is
    applied at once, in the caller's thread (durable at once), but a batch holding an
    execution record is acknowledged only C{delay} seconds later on C{clock}; the API's
    writes are acknowledged at once.
    """

    synchronous = True

    def __init__(self, clock: Clock, delay: float) -> None:
        self._clock = clock
        self.delay = delay

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def run(self, f: Any, *args: Any) -> Deferred:
        applied = defer.maybeDeferred(f, *args)
        batch = next((a for a in args if isinstance(a, list)), None)  # the commands
        if not isinstance(batch, list) or not any(
                _kind(c) == C.EXECUTION_RECORD for c in batch):
            return applied
        d: Deferred = Deferred()
        results: list[Any] = []
        applied.addBoth(results.append)
        self._clock.callLater(self.delay, lambda: d.callback(results[0]))
        return d
