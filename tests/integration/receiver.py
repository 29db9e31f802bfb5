"""
A callback receiver for end-to-end tests: a twisted.web server on 127.0.0.1 (port 0) in the
test's own reactor that records every POST scheduler0 sends it.

    receiver = Receiver(self)              # listening at once; closed in the test's cleanup
    job = {..., "callbackUrl": receiver.url}
    receiver.fail_first(2)                 # 500, 500, then 200
    await receiver.wait_hits(3, job_id=7, timeout=5)
    [h.attempt for h in receiver.hits_for(7)]   # [1, 2, 3]

Each POST is a L{Post} (receive time, headers, raw body, the status it was answered with);
each element of its JSON array is a L{Hit} (job id, executionId, scheduledTime, attempt).
What the receiver answers is set per request by a policy: a fixed status, the first N
requests failing, a scripted sequence of statuses, or hanging (never answering until the
connection goes away or L{release} is called).

Cleanup stops listening and aborts every connection the node left open (persistent or hung),
and waits until each is gone, so trial never sees a dirty reactor.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Callable, Iterable

import attrs
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from scheduler0.execution.signing import SIGNATURE_HEADER, verify
from scheduler0.timestamps import parse_time

from .daemon import sleep

reactor: Any = _reactor

#: What a policy returns to leave a request hanging.
HANG = None


@attrs.define(eq=False)
class Post:
    """One callback request as it arrived."""

    index: int  # 0 for the first POST this receiver saw
    received: float  # time.time() once the whole request was read
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    elements: list[dict]
    status: int | None = None  # what it was answered with; None while it hangs
    hits: list["Hit"] = attrs.Factory(list)

    @property
    def chunk_id(self) -> str | None:
        return self.headers.get("x-payload-chunk-id")

    @property
    def signature(self) -> str | None:
        return self.headers.get(SIGNATURE_HEADER.lower())

    def verifies(self, secret: str, tolerance: int = 300) -> bool:
        """The signature header checks out for this body under C{secret}, with the
        timestamp judged at the time the request arrived."""
        header = self.signature
        return header is not None and verify(header, self.body, secret, int(self.received),
                                             tolerance)


@attrs.define(eq=False)
class Hit:
    """One element of a callback body: one occurrence, one attempt."""

    job_id: int
    execution_id: str
    scheduled_text: str
    scheduled: float  # POSIX seconds
    attempt: int
    element: dict
    post: Post

    @property
    def received(self) -> float:
        return self.post.received

    @property
    def lateness(self) -> float:
        """Receive time minus scheduled time, in seconds."""
        return self.post.received - self.scheduled


Policy = Callable[[Post], "int | None"]


class _Channel(HTTPChannel):
    def connectionMade(self) -> None:
        self.gone: Deferred = Deferred()
        self.factory.open_channels.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        try:
            super().connectionLost(reason)
        finally:
            self.factory.open_channels.discard(self)
            if not self.gone.called:
                self.gone.callback(None)


class _Site(Site):
    noisy = False
    protocol = _Channel  # plain HTTP/1.1, so that connections can be tracked

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.open_channels: set[_Channel] = set()

    def log(self, request: Any) -> None:  # no access log in test.log
        pass


class _Endpoint(Resource):
    isLeaf = True

    def __init__(self, receiver: "Receiver") -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> Any:
        return self.receiver._arrived(request)

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(405)
        return b""


class Receiver:
    """
    @param path: the URL path the jobs use (any path is accepted and recorded).
    """

    def __init__(self, testcase: Any, path: str = "/callback") -> None:
        self.testcase = testcase
        self.posts: list[Post] = []
        self.hits: list[Hit] = []
        self._policy: Policy = lambda post: 200
        self._hung: list[tuple[Any, Post]] = []
        self._site = _Site(_Endpoint(self))
        self._port = reactor.listenTCP(0, self._site, interface="127.0.0.1")
        self.port: int = self._port.getHost().port
        self.url = f"http://127.0.0.1:{self.port}{path}"
        testcase.addCleanup(self.close)

    # -- what to answer ---------------------------------------------------------------

    def answer(self, status: int | Policy | None) -> None:
        """Answer every following request with C{status}; None hangs; a callable gets the
        L{Post} and returns the status (or None to hang)."""
        self._policy = status if callable(status) else (lambda post: status)

    def hang(self) -> None:
        """Never answer following requests (until L{release} or the connection drops)."""
        self.answer(HANG)

    def script(self, statuses: Iterable[int | None], then: int | None = 200) -> None:
        """Answer the following requests with C{statuses} in order, then C{then}."""
        pending = list(statuses)

        def policy(post: Post) -> int | None:
            return pending.pop(0) if pending else then

        self.answer(policy)

    def fail_first(self, n: int, status: int = 500, then: int = 200) -> None:
        """The next C{n} requests get C{status}, the rest C{then}."""
        self.script([status] * n, then)

    def release(self, status: int = 200) -> int:
        """Answer every hanging request that is still connected; how many were."""
        hung, self._hung = self._hung, []
        answered = 0
        for request, post in hung:
            if request.finished or getattr(request, "_disconnected", False):
                continue
            post.status = status
            request.setResponseCode(status)
            request.write(b"{}")
            request.finish()
            answered += 1
        return answered

    def _arrived(self, request: Any) -> Any:
        received = time.time()
        body = request.content.read() if request.content is not None else b""
        headers = {name.decode("latin-1").lower(): b", ".join(values).decode("latin-1")
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        elements = [e for e in parsed if isinstance(e, dict)] if isinstance(parsed, list) else []
        post = Post(len(self.posts), received, request.path.decode("latin-1"), headers, body,
                    elements)
        for element in elements:
            try:
                text = element["scheduledTime"]
                hit = Hit(element["id"], element["executionId"], text,
                          parse_time(text).timestamp(), element["attempt"], element, post)
            except (KeyError, TypeError, ValueError):
                continue  # recorded in post.elements; a test comparing counts will notice
            post.hits.append(hit)
            self.hits.append(hit)
        self.posts.append(post)
        status = self._policy(post)
        if status is HANG:
            self._hung.append((request, post))
            return NOT_DONE_YET
        post.status = status
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return b"{}"

    # -- what was seen ----------------------------------------------------------------

    def hits_for(self, job_id: int) -> list[Hit]:
        return [h for h in self.hits if h.job_id == job_id]

    def count(self, job_id: int | None = None) -> int:
        return len(self.hits) if job_id is None else len(self.hits_for(job_id))

    def counts(self) -> Counter:
        """Hits per job id."""
        return Counter(h.job_id for h in self.hits)

    def by_execution(self, execution_id: str) -> list[Hit]:
        return [h for h in self.hits if h.execution_id == execution_id]

    def summary(self, limit: int = 30) -> str:
        """The last POSTs, for failure messages."""
        lines = [f"{len(self.posts)} POSTs, {len(self.hits)} elements; hits per job: "
                 f"{dict(sorted(self.counts().items()))}"]
        for post in self.posts[-limit:]:
            items = ", ".join(f"{h.execution_id}#{h.attempt}" for h in post.hits)
            lines.append(f"  #{post.index} at {post.received:.3f} -> {post.status}: {items}")
        return "\n".join(lines)

    # -- waiting ----------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], timeout: float,
                         what: str = "the condition") -> None:
        """Poll C{predicate} until it is true; fail the test after C{timeout} seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.testcase.fail(f"{what} not seen within {timeout} s; {self.summary()}")
            await sleep(0.02)

    async def wait_hits(self, n: int, job_id: int | None = None, timeout: float = 10,
                        execution_id: str | None = None) -> list[Hit]:
        """Wait until at least C{n} hits were seen (for C{job_id} / C{execution_id} if
        given); returns those hits."""
        def matching() -> list[Hit]:
            return [h for h in self.hits
                    if (job_id is None or h.job_id == job_id)
                    and (execution_id is None or h.execution_id == execution_id)]

        label = " ".join(filter(None, [f"job {job_id}" if job_id is not None else "",
                                       execution_id or ""]))
        await self.wait_until(lambda: len(matching()) >= n, timeout,
                              f"{n} hits{' for ' + label if label else ''}")
        return matching()

    async def wait_jobs(self, job_ids: Iterable[int], n: int, timeout: float = 10) -> None:
        """Wait until every one of C{job_ids} has at least C{n} hits."""
        ids = list(job_ids)

        def done() -> bool:
            counts = self.counts()
            return all(counts[j] >= n for j in ids)

        await self.wait_until(done, timeout, f"{n} hits for each of jobs {ids}")

    # -- cleanup ----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, abort every open connection and wait until they are gone."""
        await self._port.stopListening()
        channels = list(self._site.open_channels)
        for channel in channels:
            if channel.transport is not None:
                channel.transport.abortConnection()
        if channels:
            await DeferredList([c.gone for c in channels])
        self._hung = []
