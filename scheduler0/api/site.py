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
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress, IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from ..operability.metrics import route_of
from .admission import PROBES
from .rate_limit import RateLimiter, client_key, retry_after

if TYPE_CHECKING:
    from ..config import Config

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


# --------------------------------------------------------------------------------------------
# Slow and greedy clients


@attrs.frozen
class SiteLimits:
    """What one client connection may hold, and how many may be open (config keys named)."""

    read_timeout: float = 20.0  # RequestReadTimeout
    body_min_rate: int = 1000  # RequestBodyMinBytesPerSecond
    idle_timeout: float = 60.0  # IdleConnectionTimeout
    max_connections: int = 1024  # MaxConnections
    max_per_client: int = 256  # MaxConnectionsPerClient; 0 = no per-client cap

    @classmethod
    def from_config(cls, config: Config) -> SiteLimits:
        return cls(read_timeout=config.request_read_timeout,
                   body_min_rate=config.request_body_min_bytes_per_second,
                   idle_timeout=config.idle_connection_timeout,
                   max_connections=config.max_connections,
                   max_per_client=config.max_connections_per_client)

    def fitted(self, open_files: int | None) -> SiteLimits:
        """
        At most half the process's open files go to API connections: the rest is for callback
        connections, sqlite and logs. Past the file limit C{accept} fails and every client
        hangs, which is what C{MaxConnections} exists to prevent.
        """
        if open_files is None or open_files <= 0:
            return self
        cap = max(1, open_files // 2)
        if cap >= self.max_connections:
            return self
        log.warn("MaxConnections {configured} is more than half the files this process may "
                 "open ({open_files}); using {cap}. Raise the limit (LimitNOFILE in the systemd "
                 "unit, ulimit -n) to allow more.", configured=self.max_connections,
                 open_files=open_files, cap=cap)
        return attrs.evolve(self, max_connections=cap)


def open_files_limit() -> int | None:
    """The process's soft limit on open files (RLIMIT_NOFILE); None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def http_answer(status: int, reason: str, message: str, retry_after: int | None = None) -> bytes:
    """
    A whole HTTP/1.1 response with the JSON envelope and C{Connection: close}, for the
    answers written below the HTTP parser (refusals and read timeouts).
    """
    body = json.dumps({"success": False, "data": message}).encode()
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", "Connection: close"]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


ABORT_AFTER = 5.0  # seconds a closing connection may take to flush its last answer


def answer_and_close(transport: Any, clock: Any, answer: bytes) -> Any:
    """
    Write C{answer} and close; abort the connection if it has not closed within
    C{ABORT_AFTER} seconds (a client that does not read, or a TLS handshake that never
    completes, would otherwise keep it open). Returns the abort call, to cancel once the
    connection is lost.
    """
    transport.write(answer)
    transport.loseConnection()
    return clock.callLater(ABORT_AFTER, transport.abortConnection)


class _Tally:
    """
    Logs the first of a burst of events at once and the rest as one count per C{every}
    seconds, so a flood of slow or refused clients cannot flood the log too.
    """

    def __init__(self, clock: Any, first: str, more: str, every: float = 60.0) -> None:
        self._clock = clock
        self._first = first
        self._more = more
        self.every = every
        self._window: Any = None
        self._last: dict[str, Any] = {}
        self.count = 0  # events since the last line logged

    def note(self, **fields: Any) -> None:
        if self._window is None:
            log.warn(self._first, **fields)
            self._window = self._clock.callLater(self.every, self._report)
        else:
            self.count += 1
            self._last = fields

    def _report(self, reopen: bool = True) -> None:
        self._window = None
        if self.count:
            log.warn(self._more, count=self.count, every=self.every, **self._last)
            self.count = 0
            if reopen:
                self._window = self._clock.callLater(self.every, self._report)

    def stop(self) -> None:
        """Log what is still counted; the listener has stopped."""
        if self._window is not None and self._window.active():
            self._window.cancel()
        self._report(reopen=False)


# the phases of a connection, as far as the read deadline is concerned
_IDLE = "idle"  # between requests: Twisted's idle timeout applies
_HEAD = "head"  # the first byte of a request arrived, its headers have not all arrived
_BODY = "body"  # the headers arrived, the body is arriving
_HANDLING = "handling"  # the whole request arrived and is being answered: no deadline
_CLOSED = "closed"  # timed out: the 408 is written, the connection is closing


class GuardedConnection(ProtocolWrapper):
    """
    One HTTP connection with a deadline on reading each request.

    The clock starts at a request's first byte: the request line and headers must arrive
    within C{read_timeout}; from the end of the headers the body gets C{read_timeout} plus
    one second for every C{body_min_rate} bytes received (so a large body on a slow but
    steady link is accepted, and a trickle is not). Past the deadline the client gets a
    408 and the connection is closed. Between requests Twisted's idle timeout applies.

    It also counts the requests it carries (from their request line to their answer), so
    that a drain closes only the connections with none (L{ConnectionGuard.drain}).
    """

    factory: ConnectionGuard

    def __init__(self, factory: ConnectionGuard, wrappedProtocol: Any) -> None:
        super().__init__(factory, wrappedProtocol)
        self.client = ""
        self.phase = _IDLE
        self.open_requests = 0
        self._limits = factory.limits
        self._clock = factory.clock
        self._deadline: Any = None
        self._abort: Any = None
        self._body_started = 0.0
        self._body_bytes = 0

    def dataReceived(self, data: bytes) -> None:
        if self.phase is _CLOSED:
            return  # the 408 is written; nothing more is parsed or answered
        if self.phase is _IDLE:
            self.phase = _HEAD
            self._arm(self._limits.read_timeout)
        elif self.phase is _BODY:
            self._body_bytes += len(data)
        super().dataReceived(data)

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None
        super().connectionLost(reason)
        self.factory.connection_closed()

    @property
    def idle(self) -> bool:
        """No request has started on this connection, or every one has been answered."""
        return self.open_requests == 0

    # -- told by BoundedRequest

    def request_started(self) -> None:
        self.open_requests += 1

    def headers_received(self) -> None:
        if self.phase in (_IDLE, _HEAD):  # IDLE: a pipelined request replayed from a buffer
            self.phase = _BODY
            self._body_started = self._clock.seconds()
            self._body_bytes = 0
            self._arm(self._limits.read_timeout)

    def request_received(self) -> None:
        if self.phase is not _CLOSED:
            self.phase = _HANDLING
            self._disarm()

    def request_done(self) -> None:
        self.open_requests = max(0, self.open_requests - 1)
        if self.phase is _HANDLING:
            self.phase = _IDLE

    # -- the deadline

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self._clock.callLater(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.disconnecting:  # already closing (a 400 from the parser, say)
            return
        limits = self._limits
        if self.phase is _BODY:
            deadline = (self._body_started + limits.read_timeout
                        + self._body_bytes / limits.body_min_rate)
            remaining = deadline - self._clock.seconds()
            if remaining > 0:  # the body kept coming: check again when its credit runs out
                self._arm(remaining)
                return
            message = (f"the request body arrived slower than {limits.body_min_rate} bytes/s "
                       f"(RequestBodyMinBytesPerSecond) after its first {limits.read_timeout:g} "
                       "s (RequestReadTimeout); send it faster or in smaller requests")
        elif self.phase is _HEAD:
            message = (f"the request line and headers did not arrive within "
                       f"{limits.read_timeout:g} s (RequestReadTimeout)")
        else:
            return
        self.phase = _CLOSED
        self.factory.timed_out.note(peer=self.client, reason=message)
        self.disconnecting = 1
        self._abort = answer_and_close(self.transport, self._clock,
                                       http_answer(408, "Request Timeout", message))


class Refusal(Protocol):
    """
    The answer to a connection past a cap: a short 503 (or 429 past the per-client cap)
    with C{Connection: close}, then the connection is closed; it is never queued.

    The answer waits for the end of the request's headers (at most C{grace} seconds), so
    that a client which sends its request at once reads the answer instead of a reset; with
    no grace it is written at once.
    """

    HEAD_END = (b"\r\n\r\n", b"\n\n")
    MAX_READ = 16 * 1024

    def __init__(self, guard: ConnectionGuard, answer: bytes, grace: float) -> None:
        self._guard = guard
        self._answer = answer
        self._grace = grace
        self._tail = b""
        self._read = 0
        self._call: Any = None
        self._abort: Any = None
        self.answered = False

    def connectionMade(self) -> None:
        self._guard.refusing += 1
        if self._grace > 0:
            self._call = self._guard.clock.callLater(self._grace, self.answer)
        else:
            self.answer()

    def dataReceived(self, data: bytes) -> None:
        if self.answered:
            return
        seen = self._tail + data
        self._read += len(data)
        if any(end in seen for end in self.HEAD_END) or self._read >= self.MAX_READ:
            self.answer()
        else:
            self._tail = seen[-3:]

    def answer(self) -> None:
        if self.answered:
            return
        self.answered = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._abort = answer_and_close(self.transport, self._guard.clock, self._answer)

    def connectionLost(self, reason: Any) -> None:
        for call in (self._call, self._abort):
            if call is not None and call.active():
                call.cancel()
        self._guard.refusing -= 1


class ConnectionGuard(WrappingFactory):
    """
    The factory the API listens with: the L{ApiSite} behind connection caps and a read
    deadline per request (L{GuardedConnection}).

    Past C{max_connections} open connections a new one gets a 503, past C{max_per_client}
    from one address (IPv6: one /64) a 429; either way it is closed, never queued, so a
    client learns at once that it should retry. A refused connection is normally answered
    once its request head has arrived (at most C{REFUSAL_GRACE} seconds); past
    C{MAX_REFUSING} such refusals waiting, new ones are answered and closed at once, so
    refusing never holds the file descriptors that the caps protect.
    """

    protocol = GuardedConnection
    noisy = False  # the site already logs that it starts and stops
    MAX_REFUSING = 64
    REFUSAL_GRACE = 1.0

    def __init__(self, site: ApiSite, limits: SiteLimits, clock: Any) -> None:
        super().__init__(site)
        self.limits = limits
        self.clock = clock
        self.refusing = 0
        self._drained: list[Deferred] = []
        self._per_client: dict[str, int] = {}
        self.refused = _Tally(clock, "refused an HTTP connection: {reason}",
                              "refused {count} more HTTP connections in {every:g} s; the "
                              "last: {reason}")
        self.timed_out = _Tally(clock, "closed an HTTP connection from {peer}: {reason}",
                                "closed {count} more HTTP connections in {every:g} s whose "
                                "request was too slow; the last from {peer}: {reason}")

    @property
    def site(self) -> ApiSite:
        return self.wrappedFactory

    def buildProtocol(self, addr: IAddress | None) -> Any:
        client = client_key(getattr(addr, "host", "") or "")
        answer = self._refusal(client)
        if answer is not None:
            grace = self.REFUSAL_GRACE if self.refusing < self.MAX_REFUSING else 0.0
            return Refusal(self, answer, grace)
        protocol = super().buildProtocol(addr)
        protocol.client = client
        return protocol

    def _refusal(self, client: str) -> bytes | None:
        limits = self.limits
        if len(self.protocols) >= limits.max_connections:
            message = (f"too many open connections (MaxConnections={limits.max_connections}); "
                       "retry shortly")
            self.refused.note(reason=message)
            return http_answer(503, "Service Unavailable", message, retry_after=1)
        if limits.max_per_client and self._per_client.get(client, 0) >= limits.max_per_client:
            message = (f"too many open connections from this address "
                       f"(MaxConnectionsPerClient={limits.max_per_client}); close some or "
                       "retry shortly")
            self.refused.note(reason=f"{client}: {message}")
            return http_answer(429, "Too Many Requests", message, retry_after=1)
        return None

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        self._per_client[p.client] = self._per_client.get(p.client, 0) + 1

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        left = self._per_client.get(p.client, 1) - 1
        if left > 0:
            self._per_client[p.client] = left
        else:
            self._per_client.pop(p.client, None)

    def stopFactory(self) -> None:
        self.refused.stop()
        self.timed_out.stop()

    # -- stopping

    def drain(self, clock: Any, timeout: float, idle_grace: float = 1.0) -> Deferred:
        """
        Answer what is in flight, then close; fires once every connection has closed, or
        after C{timeout} seconds (with a warning: the reactor's shutdown closes the rest).

        A connection whose request was sent just before the stop may not have been read
        yet, so idle connections get C{idle_grace} seconds before they are closed; requests
        that start meanwhile are served, with C{Connection: close} as every answer from now
        on. Refused connections close by themselves within seconds and are not waited for.
        """
        self.site.draining = True
        if not self.protocols:
            return succeed(None)
        closer = clock.callLater(idle_grace, self._close_idle)
        d: Deferred = Deferred()
        self._drained.append(d)
        d.addTimeout(timeout, clock, onTimeoutCancel=lambda *_: log.warn(
            "{count} HTTP connections still open after {timeout} s; closing them",
            count=len(self.protocols), timeout=timeout))

        def stop_closer(passthrough: object) -> object:
            if closer.active():
                closer.cancel()
            return passthrough

        return d.addBoth(stop_closer)

    def _close_idle(self) -> None:
        for connection in list(self.protocols):
            if connection.idle:
                connection.loseConnection()

    def connection_closed(self) -> None:
        """A connection is gone (L{GuardedConnection.connectionLost}): the drain may be over."""
        if self.site.draining and not self.protocols:
            drained, self._drained = self._drained, []
            for d in drained:
                if not d.called:
                    d.callback(None)


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
