"""
What one client may hold of the API's HTTP listener, and the answers written below the HTTP
parser when a client is past it.

L{SiteLimits} carries the config keys (read deadline, body rate, idle timeout, connection
caps), fitted to the process's open-file limit; L{http_answer} and L{answer_and_close} write
the whole response a refused or timed-out connection gets; L{Tally} keeps a flood of such
clients from flooding the log. L{scheduler0.api.connection_guard} applies them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs
from twisted.logger import Logger

if TYPE_CHECKING:
    from ..config import Config

log = Logger()


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


class Tally:
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
