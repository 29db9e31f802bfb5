"""
One request to a node, end to end: URL and headers, JSON in, the envelope out, an error as
L{Scheduler0Error}, and the retries of L{RetryPolicy} with a sleep that tests replace.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlencode

from .auth import Auth, NoAuth
from .errors import Scheduler0Error
from .retry import RetryPolicy, parse_retry_after
from .transport import RawResponse, Transport

USER_AGENT = "scheduler0-python-client/0.1"


def path_segment(value: Any) -> str:
    """A value as one URL path segment (execution ids may hold any character)."""
    return quote(str(value), safe="")


class Session:
    """
    @param base_url: the node, e.g. C{http://127.0.0.1:9091} (no C{/api/v1}).
    @param sleep: how to wait before a retry (C{time.sleep}; a fake in tests).
    @param clock: the current POSIX time, for C{Retry-After} dates.
    """

    def __init__(self, base_url: str, transport: Transport, *, auth: Auth | None = None,
                 retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.auth: Auth = auth or NoAuth()
        self.retry = retry
        self.sleep = sleep
        self.clock = clock

    def call(self, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
             query: Mapping[str, Any] | None = None, idempotent: bool = True) -> Any:
        """
        The envelope's C{data} of a 2xx answer (the decoded body when it is not the
        envelope; None when empty). C{data} is a body already encoded as JSON.
        """
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
        url = self.base_url + path
        shown = path
        if query:
            encoded = urlencode({k: _query_value(v) for k, v in query.items() if v is not None})
            if encoded:
                url += "?" + encoded
                shown += "?" + encoded
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT,
                   **self.auth.headers()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        attempt = 1
        while True:
            response = self.transport.send(method, url, headers, data)
            if 200 <= response.status < 300:
                return _decode(response, method, shown)
            message = _error_message(response)
            if not self.retry.should_retry(response.status, message, attempt, idempotent):
                raise Scheduler0Error(response.status, message, method=method, path=shown)
            wait = self.retry.delay(attempt, parse_retry_after(
                response.headers.get("retry-after"), self.clock()))
            if wait is None:
                raise Scheduler0Error(response.status, message, method=method, path=shown)
            self.sleep(wait)
            attempt += 1


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(response: RawResponse, method: str, path: str) -> Any:
    if not response.body:
        return None
    try:
        decoded = json.loads(response.body)
    except ValueError:
        raise Scheduler0Error(response.status, "the answer is not JSON: "
                              f"{response.body[:200]!r}", method=method, path=path) from None
    if isinstance(decoded, dict) and set(decoded) == {"success", "data"}:
        return decoded["data"]
    return decoded


def _error_message(response: RawResponse) -> str:
    """The node's message from the envelope; else the start of whatever came back."""
    try:
        decoded = json.loads(response.body) if response.body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("data"), str):
        return decoded["data"]
    text = response.body[:200].decode("utf-8", "replace").strip()
    return text or response.reason or f"HTTP {response.status}"
