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
