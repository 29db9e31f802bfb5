"""
The HTTP site: request bodies are bounded before the API sees them.

Twisted buffers a whole request body before rendering, so the limit has to be enforced
while the body arrives: past the limit the rest is discarded and the request is answered
413 without being parsed.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from ..operability.metrics import route_of
from .rate_limit import RateLimiter, client_key, retry_after

log = Logger()


class BoundedRequest(Request):
    """A request that stops buffering its body once it exceeds the site's C{max_body}."""

    body_too_large = False
    _received = 0

    def write(self, data: bytes) -> None:
        if not self.startedWriting and getattr(self.channel.site, "draining", False):
            # the node is stopping: answer, then close the connection once it is flushed
            self.setHeader("connection", "close")
        super().write(data)

    def _limit(self) -> int:
        return getattr(self.channel.site, "max_body", 16 * 1024 * 1024)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self.body_too_large = True
            self.content = BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self.body_too_large = True
            self.content.close()
            self.content = BytesIO()
            return
        super().handleContentChunk(data)


class GuardResource(Resource):
    """
    What every request passes before the API: the per-client rate limit (429 with
    C{Retry-After}), the body limit (413), and the request count for metrics.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource, limiter: RateLimiter | None = None,
                 metrics: Any = None) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._limiter = limiter
        self._metrics = metrics

    def render(self, request: Any) -> Any:
        if self._metrics is not None:
            method = request.method.decode("ascii", "replace")
            route = route_of(request.path)
            request.notifyFinish().addBoth(
                lambda _: self._metrics.api_request(route, method, request.code))
        if self._limiter is not None and self._limiter.enabled:
            wait = self._limiter.check(client_key(request.getClientAddress().host))
            if wait is not None:
                seconds = retry_after(wait)
                request.setHeader("retry-after", str(seconds))
                return _refuse(request, 429, f"too many requests from this address; retry "
                                             f"in {seconds} s (RateLimitPerMinute)")
        if getattr(request, "body_too_large", False):
            limit = request.channel.site.max_body
            request.setHeader("connection", "close")
            return _refuse(request, 413, f"the request body is larger than {limit} bytes "
                                         "(MaxRequestBodyMb); split it into smaller requests")
        return self._wrapped.render(request)


_REASONS = {413: b"Payload Too Large", 429: b"Too Many Requests"}


def _refuse(request: Any, status: int, message: str) -> bytes:
    request.setResponseCode(status, _REASONS.get(status))
    request.setHeader("content-type", "application/json")
    return json.dumps({"success": False, "data": message}).encode()


class ApiSite(Site):
    """
    A Site that can drain: on stop, requests in flight are answered and flushed before
    their connections close, instead of being cut when the reactor shuts down.
    """

    displayTracebacks = False
    draining = False

    def __init__(self, resource: IResource, max_body: int, limiter: RateLimiter | None = None,
                 metrics: Any = None) -> None:
        super().__init__(GuardResource(resource, limiter, metrics), requestFactory=BoundedRequest)
        self.max_body = max_body
        self._channels: set[Any] = set()
        self._drained: list[Deferred] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self._channels.add(protocol)
        lost = protocol.connectionLost

        def connection_lost(reason: Any) -> None:
            self._channels.discard(protocol)
            lost(reason)
            if self.draining and not self._channels:
                drained, self._drained = self._drained, []
                for d in drained:
                    if not d.called:
                        d.callback(None)

        protocol.connectionLost = connection_lost
        return protocol

    def drain(self, clock: Any, timeout: float, idle_grace: float = 1.0) -> Deferred:
        """
        Answer what is in flight, then close. A connection whose request was sent just
        before the stop may not have been read yet, so idle connections get C{idle_grace}
        seconds before they are closed; requests that start meanwhile are served (with
        C{Connection: close}). Busy connections close once their answer is flushed.
        """
        self.draining = True
        if not self._channels:
            return succeed(None)
        closer = clock.callLater(idle_grace, self._close_idle)
        d: Deferred = Deferred()
        self._drained.append(d)
        d.addTimeout(timeout, clock, onTimeoutCancel=lambda *_: log.warn(
            "{count} HTTP connections still open after {timeout} s; closing them",
            count=len(self._channels), timeout=timeout))

        def stop_closer(passthrough: object) -> object:
            if closer.active():
                closer.cancel()
            return passthrough

        return d.addBoth(stop_closer)

    def _close_idle(self) -> None:
        for protocol in list(self._channels):
            channel = getattr(protocol, "_channel", protocol)
            transport = getattr(channel, "transport", None)
            if not getattr(channel, "requests", None) and transport is not None:
                transport.loseConnection()


class DrainingHTTPService(Service):
    """Stops listening, then waits (at most C{timeout}) for requests in flight."""

    def __init__(self, listener: Any, site: ApiSite, clock: Any, timeout: float = 15.0) -> None:
        self._listener = listener
        self._site = site
        self._clock = clock
        self._timeout = timeout

    def privilegedStartService(self) -> None:
        # fail start-up with one line when the port is taken, instead of logging and
        # running a node that serves nothing
        self._listener._raiseSynchronously = True
        try:
            self._listener.privilegedStartService()
        except CannotListenError as e:
            raise SystemExit(f"scheduler0: cannot serve the API: {e}")
        Service.privilegedStartService(self)

    def startService(self) -> None:
        Service.startService(self)
        self._listener.startService()

    def stopService(self) -> Deferred:
        Service.stopService(self)
        d = self._listener.stopService() or succeed(None)
        d.addCallback(lambda _: self._site.drain(self._clock, self._timeout))
        return d


def make_site(resource: IResource, max_body: int, limiter: RateLimiter | None = None,
              metrics: Any = None) -> ApiSite:
    return ApiSite(resource, max_body, limiter, metrics)
