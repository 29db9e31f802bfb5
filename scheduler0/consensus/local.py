"""
The single-node command log: commands are applied by one writer thread, in batches.

Writes never run in the reactor thread. Commands submitted while a batch is being written
wait and go together in the next transaction, so a burst of API writes costs one commit,
not one per request.

The scheduler's own writes (L{URGENT_KINDS}: a delivery's outbox entry, which its callback
waits for, and outcome records) go ahead of API writes, in the batch and when results are
handed back: a saturated API may slow down, the callbacks may not (issue 8).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from ..state import commands as C
from ..state.commands import Command
from ..state.machine import EXCEPTION_KEY, apply_batch
from ..store.database import connect, storage_failure
from .interface import ICommandLog, NotAccepting, Observer, StorageFailed, StorageFull

log = Logger()

#: Commands that jump the queue: the scheduler's execution records and outbox changes. No
#: observer acts on them, so handing their results back early reorders nothing observers see.
URGENT_KINDS = frozenset({C.EXECUTION_RECORD})


@implementer(ICommandLog)
class LocalCommandLog(Service):
    """
    @param path: the sqlite file; its schema must already exist.
    @param max_batch: most commands committed in one transaction.
    @param max_pending: commands allowed to wait; past it C{submit} fails with
        L{NotAccepting} instead of growing memory without end.
    @param threaded: write in a dedicated thread (the daemon); False writes synchronously
        in the caller's thread, for deterministic in-process tests.
    """

    def __init__(self, path: str, reactor: Any, node_id: int = 1, address: str = "",
                 max_batch: int = 256, max_pending: int = 10_000, threaded: bool = True) -> None:
        self._threaded = threaded
        self._path = path
        self._reactor = reactor
        self._node_id = node_id
        self._address = address
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._pending: deque[tuple[Command, Deferred]] = deque()
        self._urgent: deque[tuple[Command, Deferred]] = deque()
        self._observers: list[Observer] = []
        self._busy = False
        self._accepting = False
        self._idle: list[Deferred] = []
        self._pool: ThreadPool | None = None
        self._conn: Any = None
        self._applied = 0
        self._delivering: deque[tuple[Command, Deferred, dict]] = deque()
        self._delivering_urgent: deque[tuple[Command, Deferred, dict]] = deque()
        self._delivery_call: Any = None

    # -- service ------------------------------------------------------------------------

    def startService(self) -> Deferred:
        Service.startService(self)
        # commands submitted while the database opens wait for it: services started after
        # this one (recovery re-sending what a crash interrupted) may write at once
        self._accepting = True
        if self._threaded:
            self._pool = ThreadPool(1, 1, name="scheduler0-writer")
            self._pool.start()
        d = self._in_writer(self._open)

        def opened(_: object) -> None:
            self._kick()

        return d.addCallback(opened)

    def _in_writer(self, f: Any, *args: Any) -> Deferred:
        if self._pool is None:
            return maybeDeferred(f, *args)
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _open(self) -> None:
        self._conn = connect(self._path, check_same_thread=False)

    def stopService(self) -> Deferred:
        Service.stopService(self)
        self._accepting = False
        d = self._when_idle()
        d.addCallback(lambda _: self._in_writer(self._close))
        d.addBoth(self._stop_pool)
        return d

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stop_pool(self, passthrough: object) -> object:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
        return passthrough

    def _when_idle(self) -> Deferred:
        if not self._busy and not self._waiting() and not self._delivering_any():
            return succeed(None)
        d: Deferred = Deferred()
        self._idle.append(d)
        return d

    # -- ICommandLog --------------------------------------------------------------------

    def submit(self, command: Command) -> Deferred:
        if not self._accepting:
            return _failed(NotAccepting("the node is not accepting writes (starting or stopping)"))
        d: Deferred = Deferred()
        if command.kind in URGENT_KINDS:
            # never refused for the API's backlog: the recorder keeps one command in flight
            self._urgent.append((command, d))
        elif len(self._pending) >= self._max_pending:
            return _failed(NotAccepting("too many writes are waiting; retry shortly"))
        else:
            self._pending.append((command, d))
        self._kick()
        return d

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    def status(self) -> dict[str, Any]:
        return {
            "state": "Leader",
            "term": "1",
            "num_peers": "0",
            "applied_index": str(self._applied),
            "commit_index": str(self._applied),
            "last_log_index": str(self._applied + self._waiting()),
            "fsm_pending": str(self._waiting()),
        }

    def leader(self) -> tuple[str, str] | None:
        return (self._address, str(self._node_id))

    # -- the writer ---------------------------------------------------------------------

    def _waiting(self) -> int:
        return len(self._urgent) + len(self._pending)

    def _delivering_any(self) -> bool:
        return bool(self._delivering_urgent or self._delivering)

    def _kick(self) -> None:
        if self._busy or not self._waiting() or self._conn is None:
            if not self._busy and not self._waiting() and not self._delivering_any():
                idle, self._idle = self._idle, []
                for d in idle:
                    d.callback(None)
            return
        # urgent commands first, then API writes up to the batch size
        batch = list(self._urgent)
        self._urgent.clear()
        room = max(self._max_batch - len(batch), 0)
        batch.extend(self._pending.popleft() for _ in range(min(room, len(self._pending))))
        self._busy = True
        d = self._in_writer(apply_batch, self._conn, [c for c, _ in batch])
        d.addBoth(self._written, batch)

    # what keeps the database from being written ("full", "io", "damaged"), while it lasts
    _storage_trouble: str | None = None

    def _written(self, results: list[dict] | Failure,
                 batch: list[tuple[Command, Deferred]]) -> None:
        """
        A failed batch fails each of its commands' Deferreds (nothing of it is stored); a
        storage failure with a L{StorageFull}/L{StorageFailed} that says so, so callers
        answer clearly and know the command can be retried.
        """
        self._busy = False
        if isinstance(results, Failure):
            trouble = storage_failure(results.value)
            self._storage_trouble = _log_batch_failure(
                results, trouble, self._storage_trouble, len(batch), self._path)
            error: Any = _storage_error(trouble) if trouble else results
            for _, d in batch:
                d.errback(error)
        else:
            if self._storage_trouble is not None:
                log.info("the database takes writes again")
                self._storage_trouble = None
            _log_malformed(batch, results)
            self._applied += len(batch)
            self._queue_results(batch, results)
            self._deliver()
        self._kick()

    def _queue_results(self, batch: list[tuple[Command, Deferred]], results: list[dict]) -> None:
        for (command, d), result in zip(batch, results):
            lane = self._delivering_urgent if command.kind in URGENT_KINDS else self._delivering
            lane.append((command, d, result))

    def _deliver(self) -> None:
        """
        Tell observers and callers about applied commands, in order. Urgent results all
        at once, ahead of the others (callbacks wait on them); with the writer thread, the
        others one per reactor turn: what follows a big write (planning 1,000 jobs,
        rendering the answer) never holds up other requests for long.
        """
        if self._delivery_call is not None and self._delivery_call.active():
            self._delivery_call.cancel()
        self._delivery_call = None
        while self._delivering_urgent:
            self._hand_back(*self._delivering_urgent.popleft())
        while self._delivering:
            self._hand_back(*self._delivering.popleft())
            if self._threaded and self._delivering:
                self._delivery_call = self._reactor.callLater(0, self._deliver)
                return
        self._kick()

    def _hand_back(self, command: Command, d: Deferred, result: dict) -> None:
        for observer in self._observers:
            try:
                observer(command, result)
            except Exception:
                log.failure("observer failed on command {command_id}", command_id=command.id)
        d.callback(result)


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d


def _storage_error(trouble: str) -> NotAccepting:
    if trouble == "full":
        return StorageFull()
    if trouble == "damaged":
        return StorageFailed("the node's database file is damaged; the write was not "
                             "stored (the operator must restore it from a backup)")
    return StorageFailed()


def _log_batch_failure(failure: Failure, trouble: str | None, before: str | None,
                       count: int, path: str) -> str | None:
    """Log a failed batch; a storage failure once when it starts, not for every batch."""
    if trouble is None:
        log.failure("writing {count} commands failed", failure, count=count)
    elif trouble != before:
        log.error("cannot write the database {path} ({trouble}: {error}); every write fails "
                  "until it can ({count} in this batch)", path=path, trouble=trouble,
                  error=str(failure.value), count=count)
    return trouble


def _log_malformed(batch: list[tuple[Command, Deferred]], results: list[dict]) -> None:
    """Log (with its traceback) each command its applier failed on; the rest committed."""
    for (command, _), result in zip(batch, results):
        error = result.pop(EXCEPTION_KEY, None)
        if error is not None:
            log.failure("command {command_id} ({kind}) failed in its applier; rejected it "
                        "({message}) and committed the rest of its batch",
                        Failure(error, type(error), error.__traceback__),
                        command_id=command.id, kind=command.kind, message=result["error"])
