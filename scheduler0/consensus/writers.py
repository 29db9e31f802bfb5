"""
Where the applier's sqlite work runs: one dedicated thread in the daemon (the reactor never
waits for sqlite), or inline in the caller's thread for deterministic in-process tests.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool


class Writer(Protocol):
    """Where the sqlite work runs: a dedicated thread in the daemon, inline in tests."""

    #: True when C{run} finishes before it returns: results are then handed back at once,
    #: not one per reactor turn
    synchronous: bool

    def start(self) -> None: ...

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred: ...

    def stop(self) -> None: ...


class ThreadWriter:
    """One thread that owns the writer connection, so the reactor never waits for sqlite."""

    synchronous = False

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._pool: ThreadPool | None = None

    def start(self) -> None:
        self._pool = ThreadPool(1, 1, name="scheduler0-writer")
        self._pool.start()

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred:
        assert self._pool is not None, "the writer thread is not started"
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None


class InlineWriter:
    """Writes in the caller's thread: deterministic in-process tests."""

    synchronous = True

    def start(self) -> None:
        pass

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred:
        return maybeDeferred(f, *args)

    def stop(self) -> None:
        pass
