"""
What a failed callback delivery means, in words a user reads and in the scope it blames.

A failure's message is a sentence (C{lastError} of its execution, the health API, the log),
never an exception's repr. Its scope says which breaker it counts against:

  - C{HOST}: the host could not be reached at all (refused, unknown name, no route, connect
    timeout, TLS handshake, a barred address): every endpoint of that host would fail the
    same way, so the host's breaker holds them all;
  - C{ENDPOINT}: the host was reached and this endpoint answered badly or not in time; only
    this endpoint's breaker counts it, so the host's other endpoints keep going.

A request that died on its connection before any byte of the answer arrived (a pooled
connection the receiver had closed) is L{died_unanswered}: the executor sends it again at
once on a fresh connection instead of counting a failure.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import error as net
from twisted.internet.defer import CancelledError
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure
from twisted.web.client import RequestTransmissionFailed, ResponseFailed, ResponseNeverReceived

from .callback_client import UnsupportedURL
from .network_policy import CallbackRefused

HOST = "host"
ENDPOINT = "endpoint"
TRANSIENT = "transient"
PERMANENT = "permanent"

#: most characters of a failure's message
MAX_MESSAGE = 500
#: most characters of a redirect's target quoted in its message
MAX_LOCATION = 300


def _error(outcome: Any) -> BaseException:
    return outcome.value if isinstance(outcome, Failure) else outcome


def _reasons(error: BaseException) -> list[BaseException]:
    """The errors a Twisted wrapper exception (C{ResponseNeverReceived}, ...) carries."""
    return [_error(r) for r in getattr(error, "reasons", None) or []]


def _is_tls(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return module.startswith(("OpenSSL", "service_identity")) or "SSL" in type(error).__name__


def _tls_reason(error: BaseException) -> str:
    """The library's own words for a TLS failure: OpenSSL's reason strings (it reports
    C{[(library, function, reason), ...]}), or the verifier's message."""
    if type(error).__module__.startswith("service_identity"):
        return "the receiver's certificate does not match its host name"
    reasons: list[str] = []
    for arg in getattr(error, "args", ()):
        if isinstance(arg, list):
            reasons.extend(str(item[-1]) for item in arg
                           if isinstance(item, tuple) and item and item[-1])
        elif isinstance(arg, str) and arg:
            reasons.append(arg)
    return ", ".join(dict.fromkeys(reasons)) or "the handshake failed"


def _clean(text: str) -> str:
    """One printable line without angle brackets (no repr ever reaches a user)."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.replace("<", "").replace(">", "").split())


def answer_message(code: int, excerpt: str, location: str | None = None) -> str:
    """
    A failed answer (not a 2xx) as a sentence: its status and the start of its body, or,
    for a 3xx, that redirects are not followed and where it pointed (a redirect is never
    followed: it could lead anywhere, the signature with it).
    """
    if 300 <= code < 400:
        where = _clean(location or "")
        if len(where) > MAX_LOCATION:
            where = where[:MAX_LOCATION] + "..."
        return (f"HTTP {code}: redirects are not followed (Location: {where})" if where
                else f"HTTP {code}: redirects are not followed (the answer had no Location)")
    return f"HTTP {code}: {excerpt}" if excerpt else f"HTTP {code}"


def describe(outcome: Any, host: str, timeout: float) -> tuple[str, str, str]:
    """
    A delivery failure (an exception or a C{Failure}) as C{(message, category, scope)}:
    a sentence, C{transient} or C{permanent}, and L{HOST} or L{ENDPOINT}. C{host} is the
    target (C{scheme://host:port}) it was sent to.
    """
    error = _error(outcome)
    where = host.split("://", 1)[-1]
    if isinstance(error, (DeferredTimeout, CancelledError)):
        return f"no answer within {timeout:g} s", TRANSIENT, ENDPOINT
    if isinstance(error, CallbackRefused):
        return _clean(str(error))[:MAX_MESSAGE], PERMANENT, HOST
    if isinstance(error, UnsupportedURL):
        return (_clean(f"the callback URL cannot be sent: {error}")[:MAX_MESSAGE], PERMANENT,
                ENDPOINT)
    if isinstance(error, net.ConnectionRefusedError):
        return (f"connection refused by {where} (nothing accepts connections there)",
                TRANSIENT, HOST)
    if isinstance(error, net.DNSLookupError):
        name = where.rsplit(":", 1)[0]
        return f"the host name {name} could not be resolved", TRANSIENT, HOST
    if isinstance(error, (net.TCPTimedOutError, net.TimeoutError)):
        return f"could not connect to {where} in time", TRANSIENT, HOST
    if isinstance(error, net.NoRouteError):
        return f"no route to {where}", TRANSIENT, HOST
    if isinstance(error, net.ConnectError):
        return f"could not connect to {where} ({type(error).__name__})", TRANSIENT, HOST
    if _is_tls(error):
        return f"TLS failure with {where}: {_clean(_tls_reason(error))}"[:MAX_MESSAGE], \
            TRANSIENT, HOST
    reasons = _reasons(error)
    tls = [r for r in reasons if _is_tls(r)]
    if tls:
        return f"TLS failure with {where}: {_clean(_tls_reason(tls[0]))}"[:MAX_MESSAGE], \
            TRANSIENT, HOST
    if isinstance(error, (ResponseNeverReceived, RequestTransmissionFailed)):
        if any(isinstance(r, (DeferredTimeout, CancelledError)) for r in reasons):
            return f"no answer within {timeout:g} s", TRANSIENT, ENDPOINT
        return "connection closed by the receiver before it answered", TRANSIENT, ENDPOINT
    if isinstance(error, (ResponseFailed, net.ConnectionLost, net.ConnectionDone)):
        return "connection closed by the receiver while it was answering", TRANSIENT, ENDPOINT
    return (f"the delivery failed unexpectedly ({type(error).__name__}); see the node's log",
            TRANSIENT, ENDPOINT)


def died_unanswered(outcome: Any) -> bool:
    """
    Did the request die on its connection before any byte of an answer arrived, because
    the connection was closed (not because we gave up on it)? That is a pooled connection
    the receiver had already closed (an HTTP/1.0 server, an idle timeout on its side): the
    receiver never answered, so sending again on a fresh connection is safe and the
    failure is nobody's fault.
    """
    error = _error(outcome)
    if not isinstance(error, (ResponseNeverReceived, RequestTransmissionFailed)):
        return False
    reasons = _reasons(error)
    return bool(reasons) and all(
        isinstance(r, (net.ConnectionDone, net.ConnectionLost))
        and not isinstance(r, net.ConnectionAborted)  # aborted by us (a cancel)
        for r in reasons)


class FailureLog:
    """
    Which delivery failures get a log line: at most one per endpoint every C{every}
    seconds and C{burst} in all per C{every} seconds; the others are counted, and the
    next line says how many were left out. A receiver that fails every second, or ten
    thousand endpoints failing at once, cannot flood the log.
    """

    def __init__(self, clock: Any, every: float = 60.0, burst: int = 20) -> None:
        self._clock = clock
        self._every = every
        self._burst = burst
        self._window_start = -every
        self._in_window = 0
        self._last: dict[str, float] = {}  # endpoint -> when its last line was logged
        self._unlogged = 0

    def allow(self, endpoint: str) -> int | None:
        """None: do not log this one; else log it, and this many were left out before."""
        now = self._clock.seconds()
        if now - self._window_start >= self._every:
            self._window_start, self._in_window = now, 0
            if len(self._last) > 10 * self._burst:
                self._last = {e: t for e, t in self._last.items() if now - t < self._every}
        last = self._last.get(endpoint)
        if self._in_window >= self._burst or (last is not None and now - last < self._every):
            self._unlogged += 1
            return None
        self._in_window += 1
        self._last[endpoint] = now
        unlogged, self._unlogged = self._unlogged, 0
        return unlogged
