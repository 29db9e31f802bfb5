"""
The HTTP site: request bodies are bounded before the API sees them, and no client can hold
connections for long without sending.

Twisted buffers a whole request body before rendering, so the limit has to be enforced
while the body arrives: past the limit the rest is discarded and the request is answered
413 without being parsed.

Twisted's own connection timeout is an idle timeout, reset by every byte, so a client that
trickles a request a byte at a time (or opens connections and sends half a request) would
keep its connections forever, and enough of them exhaust the process's file descriptors.
L{ConnectionGuard} wraps the site: each request must arrive within a deadline
(C{RequestReadTimeout}, extended while a body keeps coming at C{RequestBodyMinBytesPerSecond}),
and connections past C{MaxConnections} (or C{MaxConnectionsPerClient} from one address) are
answered at once and closed instead of being queued.

On stop (L{DrainingHTTPService}) the guard drains: the requests in flight are answered and
flushed before their connections close, instead of being cut when the reactor shuts down.
All of it uses public Twisted APIs only (issue 11 item 4).

The guard is in L{scheduler0.api.connection_guard}, the limits and the answers written below
the HTTP parser in L{scheduler0.api.limits}; this module keeps the Site, its requests and the
service, and re-exports the rest.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from ..operability.metrics import route_of
from .admission import PROBES
from .connection_guard import ConnectionGuard, GuardedConnection, Refusal
from .limits import ABORT_AFTER, SiteLimits, answer_and_close, http_answer, open_files_limit
from .rate_limit import RateLimiter, client_key, retry_after

# the limits and the guard live in their own modules; their names stay importable from here
__all__ = ["ABORT_AFTER", "ApiSite", "BoundedRequest", "ConnectionGuard", "DrainingHTTPService",
           "GuardResource", "GuardedConnection", "Refusal", "SiteLimits", "answer_and_close",
           "http_answer", "make_site", "open_files_limit"]

log = Logger()


class BoundedRequest(Request):
    """
    A request that stops buffering its body once it exceeds the site's C{max_body}, and
    tells its connection's guard when its headers and its whole body have arrived and when
    it has been answered (that is what the read deadline measures).
    """

    body_too_large = False
    _received = 0

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        # the channel makes a request as soon as its request line has arrived
        super().__init__(channel, *args, **kwargs)
        guard = self._guard()
        if guard is not None:
            guard.request_started()

    def _guard(self) -> GuardedConnection | None:
        transport = getattr(self.channel, "transport", None)
        return transport if isinstance(transport, GuardedConnection) else None

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        guard = self._guard()
        if guard is not None:
            guard.request_received()
        super().requestReceived(command, path, version)

    def finish(self) -> None:
        guard = self._guard()
        if guard is not None:
            # before finishing: finishing replays pipelined bytes, which may start the next one
            guard.request_done()
        super().finish()

    def write(self, data: bytes) -> None:
        if not self.startedWriting and getattr(self.channel.site, "draining", False):
            # the node is stopping: answer, then close the connection once it is flushed
            self.setHeader("connection", "close")
        super().write(data)

    def _limit(self) -> int:
        return getattr(self.channel.site, "max_body", 16 * 1024 * 1024)

    def gotLength(self, length: int | None) -> None:
        guard = self._guard()
        if guard is not None:
            guard.headers_received()
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

    Probes (L{PROBES}: the healthcheck and C{/metrics}) are never rate limited: a load
    balancer or Prometheus polling from the same address as busy clients must not see the
    node as down because of them. They are cheap, and the connection caps still bound what
    one address can hold.
    """

    PROBES = PROBES

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
        if (self._limiter is not None and self._limiter.enabled
                and request.path not in self.PROBES):
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
    The Site of the API: bounded requests (L{BoundedRequest}), no tracebacks for clients.
    While C{draining} (set by L{ConnectionGuard.drain}) every answer says C{Connection:
    close}.
    """

    displayTracebacks = False
    draining = False

    def __init__(self, resource: IResource, max_body: int, limiter: RateLimiter | None = None,
                 metrics: Any = None, *, idle_timeout: float | None = 60.0,
                 clock: Any = None) -> None:
        # idle_timeout: Twisted's own timeout, for connections idle between requests
        super().__init__(GuardResource(resource, limiter, metrics), requestFactory=BoundedRequest,
                         timeout=idle_timeout, reactor=clock)
        self.max_body = max_body


class DrainingHTTPService(Service):
    """
    Serves the API on C{endpoint}; on stop, stops listening, then waits (at most
    C{timeout}) for the requests in flight (L{ConnectionGuard.drain}).
    """

    def __init__(self, endpoint: IStreamServerEndpoint, site: ConnectionGuard, clock: Any,
                 timeout: float = 15.0) -> None:
        self._endpoint = endpoint
        self._site = site
        self._clock = clock
        self._timeout = timeout
        self._listening: Deferred | None = None  # fires with the port

    def privilegedStartService(self) -> None:
        """
        Listen while the process may still bind privileged ports. A port that is taken
        stops start-up with one line, instead of a logged error and a node that serves
        nothing: TCP and TLS endpoints listen at once, so their Deferred has failed already.
        """
        Service.privilegedStartService(self)
        listening = self._endpoint.listen(self._site)
        outcome: list[Any] = []

        def seen(result: Any) -> Any:
            outcome.append(result)
            return result

        listening.addBoth(seen)
        if outcome and isinstance(outcome[0], Failure):
            error = outcome[0]
            listening.addErrback(lambda _: None)  # raised here, not logged as unhandled
            if error.check(CannotListenError):
                raise SystemExit(f"scheduler0: cannot serve the API: {error.value}")
            error.raiseException()
        self._listening = listening.addErrback(self._not_listening)

    def _not_listening(self, failure: Failure) -> None:
        """An endpoint that listens later failed, or the stop came first."""
        if not failure.check(CancelledError):
            log.failure("cannot serve the API", failure)

    def startService(self) -> None:
        Service.startService(self)
        if self._listening is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred:
        Service.stopService(self)
        if self._listening is None:
            d: Deferred = succeed(None)
        else:
            self._listening.cancel()  # if it is still under way
            d = self._listening.addCallback(
                lambda port: port.stopListening() if port is not None else None)
        d.addCallback(lambda _: self._site.drain(self._clock, self._timeout))
        return d


def make_site(resource: IResource, max_body: int, limiter: RateLimiter | None = None,
              metrics: Any = None, *, limits: SiteLimits | None = None,
              clock: Any = None) -> ConnectionGuard:
    """The factory to serve the API with: an L{ApiSite} behind its L{ConnectionGuard}."""
    if clock is None:
        from twisted.internet import reactor as clock
    limits = (limits or SiteLimits()).fitted(open_files_limit())
    site = ApiSite(resource, max_body, limiter, metrics, idle_timeout=limits.idle_timeout,
                   clock=clock)
    return ConnectionGuard(site, limits, clock)
