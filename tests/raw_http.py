"""
Raw HTTP/1.1 for tests that need what a socket sees: the exact bytes of an answer (status,
headers, chunked or not), and when a request's last byte left this process. treq hides both.

L{parse_response} also reads what an in-process site wrote to a C{StringTransport}, so the
unit tests use it as well as the end-to-end ones (L{raw_request} talks to a real node).
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

import attrs
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import ClientFactory, Protocol
from zope.interface import implementer

reactor: Any = _reactor


@implementer(IPullProducer)
class _OneRequest(Protocol):
    """Writes one request (with C{Connection: close}) and collects the answer until the
    server closes. C{sent} fires once every byte has been handed to the kernel."""

    CHUNK = 64 * 1024

    def __init__(self, request: bytes) -> None:
        self._remaining = memoryview(request)
        self.sent: Deferred = Deferred()
        self.done: Deferred = Deferred()
        self.received = bytearray()

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, False)  # resumeProducing when the buffer drains

    def resumeProducing(self) -> None:
        if self._remaining:
            chunk, self._remaining = self._remaining[:self.CHUNK], self._remaining[self.CHUNK:]
            self.transport.write(bytes(chunk))
        elif not self.sent.called:
            self.transport.unregisterProducer()
            self.sent.callback(time.monotonic())

    def stopProducing(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        if not self.sent.called:
            self.sent.errback(reason)
        self.done.callback(bytes(self.received))


@attrs.frozen
class RawResponse:
    code: int | None  # None: the connection closed without a status line
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(raw: bytes) -> RawResponse:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        return RawResponse(None, {}, b"", raw)
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawResponse(code, headers, body, raw)


def _dechunk(data: bytes) -> bytes:
    """Decode a chunked body; an incomplete one yields what arrived (and fails to parse)."""
    out = bytearray()
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)


class _OneShotFactory(ClientFactory):
    def __init__(self, protocol: _OneRequest) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> _OneRequest:
        return self.protocol_instance

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.protocol_instance.sent.errback(reason)
        self.protocol_instance.done.errback(reason)


def raw_request(port: int, method: str, path: str, body: bytes,
                headers: Mapping[str, str] | None = None, *,
                chunked: bool = False) -> tuple[Deferred, Deferred]:
    """Send one request to 127.0.0.1:C{port}: (sent, done). C{sent} fires with the monotonic
    time the last byte left; C{done} with the raw bytes the server sent before closing."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close",
            "Content-Type": "application/json"}
    hdrs.update(headers or {})
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                           for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
    else:
        hdrs["Content-Length"] = str(len(body))
        payload = body
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    protocol = _OneRequest(head.encode("latin-1") + b"\r\n" + payload)
    reactor.connectTCP("127.0.0.1", port, _OneShotFactory(protocol), timeout=10)
    return protocol.sent, protocol.done
