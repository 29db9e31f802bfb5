"""
The connection guard the API listens with: a read deadline per request, caps on open
connections (in all and per client), and the drain on stop.

Twisted's own connection timeout is an idle timeout, reset by every byte, so a client that
trickles a request a byte at a time (or opens connections and sends half a request) would
keep its connections forever, and enough of them exhaust the process's file descriptors.
L{ConnectionGuard} wraps the site: each request must arrive within a deadline
(C{RequestReadTimeout}, extended while a body keeps coming at C{RequestBodyMinBytesPerSecond}),
and connections past C{MaxConnections} (or C{MaxConnectionsPerClient} from one address) are
answered at once and closed instead of being queued. All of it uses public Twisted APIs only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from .limits import SiteLimits, Tally, answer_and_close, http_answer
from .rate_limit import client_key

if TYPE_CHECKING:
    from .site import ApiSite

log = Logger()


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
        self.refused = Tally(clock, "refused an HTTP connection: {reason}",
                              "refused {count} more HTTP connections in {every:g} s; the "
                              "last: {reason}")
        self.timed_out = Tally(clock, "closed an HTTP connection from {peer}: {reason}",
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
