"""
Callback connections: which may go back to the pool, and a client for a fresh one.

Twisted's HTTP/1.1 client keeps a connection for reuse unless the answer carries exactly
C{Connection: close}. An HTTP/1.0 server (Python's C{http.server}, many small receivers)
closes after every answer without saying so, and a connection it has closed can be taken
from the pool before its close is noticed: the next request dies unanswered. So every
answer's head is checked on its way in: an HTTP/1.0 answer without C{keep-alive}, or one
whose C{Connection} header says close in any spelling, is handed to Twisted with a plain
C{Connection: close} added, and its connection is closed instead of pooled.

This uses public Twisted interfaces only (an endpoint and a protocol wrapper).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

#: the longest answer head looked at; a longer one passes as it is
MAX_HEAD = 16 * 1024
_CLOSE = b"Connection: close\r\n"


def closes_connection(head: bytes) -> bool:
    """Does an answer with this head (status line and headers) end its connection, by
    HTTP's rules (RFC 9112 §9.3), in a way Twisted would not notice by itself?"""
    lines = head.split(b"\n")
    status = lines[0].strip()
    tokens: set[bytes] = set()
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection":
            raw = [t.strip() for t in value.split(b",")]
            if b"close" in raw:
                return False  # Twisted sees this one itself
            tokens.update(t.lower() for t in raw)
    if b"close" in tokens:
        return True
    return status.startswith(b"HTTP/1.0") and b"keep-alive" not in tokens


class _AnswerHeadCheck(ProtocolWrapper):
    """Between a connection and Twisted's HTTP client protocol: holds each answer's first
    bytes until its head is complete, and adds C{Connection: close} where HTTP says the
    server closes (see L{closes_connection})."""

    def __init__(self, factory: WrappingFactory, wrapped: Any) -> None:
        super().__init__(factory, wrapped)
        self.client = wrapped  # kept after the connection ends (the wrapper drops it)
        self._head: bytes | None = None  # an answer's start, while its head is incomplete

    def write(self, data: bytes) -> None:
        if self._head is None:
            self._head = b""  # a request goes out: its answer's head comes next
        super().write(data)

    def writeSequence(self, data: Any) -> None:
        if self._head is None:
            self._head = b""
        super().writeSequence(data)

    def dataReceived(self, data: bytes) -> None:
        if self._head is None:
            super().dataReceived(data)
            return
        head = self._head + data
        if not (head.startswith(b"HTTP/") or b"HTTP/".startswith(head)):
            self._head = None  # not an answer's start (a body going on): pass it on
            super().dataReceived(head)
            return
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) < MAX_HEAD:
            self._head = head
            return
        self._head = None
        if end >= 0 and closes_connection(head[:end]):
            line_end = head.index(b"\n") + 1
            head = head[:line_end] + _CLOSE + head[line_end:]
        super().dataReceived(head)


class _CheckingFactory(WrappingFactory):
    protocol = _AnswerHeadCheck
    noisy = False

    def __init__(self, wrappedFactory: Any) -> None:
        super().__init__(wrappedFactory)
        # callback connections come and go all the time: no log line for each
        wrappedFactory.noisy = False


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        # the pool expects the protocol its factory built, not the wrapper around it
        return self._endpoint.connect(_CheckingFactory(protocolFactory)).addCallback(
            lambda wrapper: wrapper.client)


@implementer(IAgentEndpointFactory)
class AnswerCheckingEndpointFactory:
    """An C{IAgentEndpointFactory} whose connections add C{Connection: close} to answers
    that end their connection without saying so in a way Twisted understands."""

    def __init__(self, wrapped: IAgentEndpointFactory) -> None:
        self._wrapped = wrapped

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        return _CheckedEndpoint(self._wrapped.endpointForURI(uri))


class CallbackHTTP:
    """
    The executor's HTTP client: C{post} on pooled connections, C{post_fresh} on a new one
    that is closed after its answer (the re-send of a request whose pooled connection the
    receiver had closed: another pooled one might be just as stale).
    """

    def __init__(self, pooled: Any, fresh: Any) -> None:
        self.pooled = pooled
        self.fresh = fresh

    def post(self, url: str, **kwargs: Any) -> Deferred:
        return self.pooled.post(url, **kwargs)

    def post_fresh(self, url: str, **kwargs: Any) -> Deferred:
        return self.fresh.post(url, **kwargs)
