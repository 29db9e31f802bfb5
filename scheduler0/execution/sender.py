"""
One callback exchange: the signed POST of a L{Delivery} and what the receiver answered.

Of a receiver's answer, the status decides; at most C{answer_prefix_bytes} of its body are
read (for a failure's message), then the connection is closed instead of being pooled, so
a receiver that answers gigabytes, or never stops answering, costs a few KiB. A request
that dies on a reused connection before any byte of the answer (the receiver had closed
it) is sent again at once on a fresh connection: no attempt and no failure is counted.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from .delivery import Delivery
from .failures import died_unanswered
from .settings import ExecutorSettings
from .signing import SIGNATURE_HEADER, signature_header

#: most characters of a receiver's answer quoted in a failure's message
ANSWER_EXCERPT_CHARS = 200


@attrs.frozen
class Answer:
    """What a receiver answered: its status and at most a prefix of its body."""

    code: int
    prefix: bytes = b""
    truncated: bool = False  # the body went on past the prefix
    location: str | None = None  # a redirect's target (never followed)

    def excerpt(self, limit: int = ANSWER_EXCERPT_CHARS) -> str:
        """The body's start as one printable line, for an error message."""
        text = self.prefix.decode("utf-8", errors="replace")
        text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        if len(text) > limit or (self.truncated and text):
            text = text[:limit].rstrip() + "..."
        return text


class BoundedBody(Protocol):
    """
    Reads at most C{limit} bytes of a response body and keeps them; C{finished} fires
    with them (and whether the body went on) at the body's end or as soon as it is known
    to be longer. A longer body is not read on: its connection is closed, so it cannot go
    back to the pool with unread data in it. Cancelling C{finished} (the deadline) closes
    it too, so a receiver that trickles its body does not hold the delivery open.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: list[bytes] = []
        self.size = 0  # bytes received, at most one read past the limit
        self.finished: Deferred = Deferred(lambda _: self._close())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def kept(self) -> bytes:
        return b"".join(self._kept)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        room = self._limit - self.size
        if room > 0:
            self._kept.append(data[:room])
        self.size += len(data)
        if self.size > self._limit:
            self._close()
            self.finished.callback((self.kept(), True))

    def connectionLost(self, reason: Any = None) -> None:
        if self.finished.called:
            return  # had enough, or cancelled at the deadline: the outcome is decided
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback((self.kept(), False))
        else:
            self.finished.errback(reason)


def _location(response: Any) -> str | None:
    """A redirect's C{Location}, for its failure message (never followed)."""
    headers = getattr(response, "headers", None)
    values = headers.getRawHeaders(b"location") if headers is not None else None
    return values[0].decode("latin-1") if values else None


def _deadline_passed(result: Any, timeout: float) -> Any:
    """C{addTimeout}'s C{onTimeoutCancel}: once the deadline has cancelled the exchange,
    whatever it failed with is a timeout (a cancelled agent request fails with
    C{ResponseNeverReceived}, not C{CancelledError}, which the default conversion expects)."""
    if isinstance(result, Failure):
        return Failure(DeferredTimeout(timeout, "no answer from the callback"))
    return result


#: the header naming the node that sent a callback (its C{NodeId})
NODE_HEADER = "X-Scheduler0-Node"


class CallbackSender:
    """
    Sends one delivery and reads its answer (an L{Answer}, or a failure).

    @param http: a treq C{HTTPClient} (its C{post}); its pool bounds connections. If it
        has a C{post_fresh} too (L{scheduler0.execution.connections.CallbackHTTP}), that
        sends on a new connection: the re-send of a request whose pooled connection had
        been closed by the receiver.
    @param secrets_for: C{(project id) -> [signing secrets]}, current first.
    """

    def __init__(self, clock: Any, http: Any, secrets_for: Callable[[int], list[str]],
                 settings: ExecutorSettings) -> None:
        self._clock = clock
        self._http = http
        self._secrets_for = secrets_for
        self._settings = settings
        self._node = str(settings.node_id)
        #: requests sent again at once because their pooled connection had been closed
        self.stale_retries = 0

    def post(self, delivery: Delivery) -> Deferred:
        body = delivery.body()
        headers = {
            "Content-Type": ["application/json"],
            "x-payload-chunk-id": [str(delivery.chunk_id)],
            "User-Agent": ["Scheduler0"],
            # which node sent it: in a cluster a receiver can tell the owners apart
            NODE_HEADER: [self._node],
        }
        secrets = self._secrets_for(delivery.project_id)
        if secrets:
            headers[SIGNATURE_HEADER] = [signature_header(body, secrets,
                                                          int(self._clock.seconds()))]
        # One deadline on our clock for the whole exchange (connect, answer and body, and
        # the re-send of a stale connection's request), not treq's timeout=, which covers
        # only the answer, runs on the global reactor and reports expiry as
        # ResponseNeverReceived.
        # unbuffered: treq would otherwise keep the whole body in memory, whatever reads it.
        # No redirects: only a 2xx is a success, and a redirect that the agent follows (or
        # refuses) leaves its own body unread and its connection open for as long as the
        # receiver keeps it open.
        def send(post: Callable[..., Deferred]) -> Deferred:
            return post(delivery.url, data=body, headers=headers, unbuffered=True,
                        allow_redirects=False)

        def stale(failure: Failure) -> Any:
            # the receiver closed the pooled connection before answering: nothing was
            # answered, so this is no failure; the same request goes again, at once, on a
            # new connection (same execution ids: a receiver that did process it can tell)
            if not died_unanswered(failure):
                return failure
            self.stale_retries += 1
            return send(getattr(self._http, "post_fresh", self._http.post))

        def read(response: Any) -> Any:
            sink = BoundedBody(self._settings.answer_prefix_bytes)
            response.deliverBody(sink)
            location = _location(response) if 300 <= response.code < 400 else None
            return sink.finished.addCallback(
                lambda kept: Answer(response.code, *kept, location=location))

        d = send(self._http.post)
        d.addErrback(stale)
        d.addCallback(read)
        d.addTimeout(self._settings.timeout, self._clock, onTimeoutCancel=_deadline_passed)
        return d
