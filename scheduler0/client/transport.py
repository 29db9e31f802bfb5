"""
Sending one HTTP request with C{http.client}: the seam the tests replace to script answers.

No proxies from the environment and no redirects (the API never redirects); one connection
per request, so a client object can be shared between threads.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass, field
from typing import Mapping, Protocol
from urllib.parse import urlsplit

from .errors import Scheduler0Error


@dataclass(frozen=True)
class RawResponse:
    """An answer as it came: status, headers (names lower-cased) and body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""


class Transport(Protocol):
    """Sends one request and returns the answer; raises L{Scheduler0Error} (status None)
    when no answer came."""

    def send(self, method: str, url: str, headers: Mapping[str, str],
             body: bytes | None) -> RawResponse: ...


class HttpTransport:
    """The default transport. C{ssl_context} is for C{https://} nodes (default: the system's
    trust store)."""

    def __init__(self, timeout: float = 60.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Scheduler0Error(None, f"{url!r} is not an http:// or https:// URL")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.scheme == "https":
            context = self.ssl_context or ssl.create_default_context()
            return (http.client.HTTPSConnection(parts.hostname, parts.port,
                                                timeout=self.timeout, context=context), target)
        return http.client.HTTPConnection(parts.hostname, parts.port,
                                          timeout=self.timeout), target

    def send(self, method: str, url: str, headers: Mapping[str, str],
             body: bytes | None) -> RawResponse:
        connection, target = self._connection(url)
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read()
            return RawResponse(response.status, data,
                               {k.lower(): v for k, v in response.getheaders()},
                               response.reason)
        except (OSError, http.client.HTTPException) as e:
            raise Scheduler0Error(None, _no_answer(url, e, self.timeout), method=method,
                                  path=target) from e
        finally:
            connection.close()


def _no_answer(url: str, error: BaseException, timeout: float) -> str:
    """Why no answer came, as a sentence naming the node (not the request path)."""
    parts = urlsplit(url)
    node = f"{parts.scheme}://{parts.netloc}"
    reason = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return f"no answer from {node} within {timeout:g} s"
    if isinstance(error, (http.client.HTTPException, ConnectionResetError)):
        return f"the connection to {node} broke before an answer: {reason}"
    return f"could not reach {node}: {reason}"
