"""
The single-node command log: a one-node cluster that commits every command at once.

It owns the parts that belong to a log (whether it takes commands now, how many may wait,
the Raft-style statistics of its one node) and hands each command to a L{CommandApplier},
which writes them in batches off the reactor thread and hands results back in order. A Raft
log puts its replicated log in front of the same applier.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from zope.interface import implementer

from ..state.commands import Command
from .applier import URGENT_KINDS, CommandApplier, InlineWriter, ThreadWriter
from .interface import ICommandLog, NotAccepting, Observer

__all__ = ["URGENT_KINDS", "LocalCommandLog"]


@implementer(ICommandLog)
class LocalCommandLog(Service):
    """
    @param path: the sqlite file; its schema must already exist.
    @param max_batch: most commands committed in one transaction.
    @param max_pending: commands allowed to wait; past it C{submit} fails with
        L{NotAccepting} instead of growing memory without end.
    @param threaded: write in a dedicated thread (the daemon); False writes synchronously
        in the caller's thread, for deterministic in-process tests.
    @param applier: the applier to hand commands to (built from the arguments above when
        not given); this log starts and stops it.
    """

    def __init__(self, path: str, reactor: Any, node_id: int = 1, address: str = "",
                 max_batch: int = 256, max_pending: int = 10_000, threaded: bool = True,
                 applier: CommandApplier | None = None) -> None:
        if applier is None:
            writer = ThreadWriter(reactor) if threaded else InlineWriter()
            applier = CommandApplier(path, reactor, writer, max_batch=max_batch, trip=True)
        self._applier = applier
        self._node_id = node_id
        self._address = address
        self._max_pending = max_pending
        self._accepting = False

    @property
    def applier(self) -> CommandApplier:
        return self._applier

    @property
    def _conn(self) -> Any:
        # the writer connection, for tests that fill the disk under it
        return self._applier.connection

    # -- service ------------------------------------------------------------------------

    def startService(self) -> Deferred:
        Service.startService(self)
        # commands submitted while the database opens wait for it: services started after
        # this one (recovery re-sending what a crash interrupted) may write at once
        self._accepting = True
        return self._applier.start()

    def stopService(self) -> Deferred:
        """Refuse new commands, then let the applier finish the ones it took."""
        Service.stopService(self)
        self._accepting = False
        return self._applier.stop()

    # -- ICommandLog --------------------------------------------------------------------

    def submit(self, command: Command) -> Deferred:
        if not self._accepting:
            return _failed(NotAccepting("the node is not accepting writes (starting or stopping)"))
        # urgent commands are never refused for the API's backlog: the recorder keeps one
        # command in flight
        if command.kind not in URGENT_KINDS and self._applier.backlog >= self._max_pending:
            return _failed(NotAccepting("too many writes are waiting; retry shortly"))
        # the applier (trip=True) writes it to JSON and reads it back in its writer thread,
        # as a replicated log's entries are read: one node applies what a cluster would
        return self._applier.apply(command)

    def add_observer(self, observer: Observer) -> None:
        self._applier.add_observer(observer)

    def add_replaced_observer(self, callback: Any) -> None:
        """Told if the applier's state is replaced (a single node's never is: only a
        restore through the applier would)."""
        self._applier.add_replaced_observer(callback)

    def status(self) -> dict[str, Any]:
        applied, waiting = self._applier.applied, self._applier.waiting
        return {
            "state": "Leader",
            "term": "1",
            "num_peers": "0",
            "applied_index": str(applied),
            "commit_index": str(applied),
            "last_log_index": str(applied + waiting),
            "fsm_pending": str(waiting),
        }

    def leader(self) -> tuple[str, str] | None:
        return (self._address, str(self._node_id))


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d
