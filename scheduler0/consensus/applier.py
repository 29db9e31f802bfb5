"""
The applier: commands that are committed (by the local log now, by Raft next) are applied to
sqlite here, by one writer, in batches, and their results handed back in the reactor, in order.

Writes never run in the reactor thread. Commands that arrive while a batch is being written
wait and go together in the next transaction, so a burst of writes costs one commit, not one
per command.

The scheduler's own writes (L{URGENT_KINDS}: a delivery's outbox entry, which its callback
waits for, and outcome records) go ahead of the others, in the batch and when results are
handed back: a saturated API may slow down, the callbacks may not (issue 8).

The applier knows nothing of who proposed a command: whoever calls L{CommandApplier.apply}
(a local log, or a replicated method called once per committed Raft entry) gets a Deferred
of that command's result, matched by command id.

Under Raft (C{ordered=True}) every replica must apply the log in the same order, so there is
no urgent lane; each command carries its Raft index, and the batch's last index is stored in
the batch's own transaction; a batch that fails on storage is retried until it is stored
(the entries are committed: dropping one would make this replica diverge).

Commands are applied, and seen by the observers, as read back from their JSON by the writer
thread (L{scheduler0.consensus.read_back}): a Raft entry's text (L{apply_encoded}), on a
single node as on every replica; L{apply} takes a command as it is.

It stays one module (over 450 lines): the lanes, the batch in the writer and the ordered
hand-back share the same queues and the busy flag; what could leave has left (reading
back: C{read_back.py}; logging a failed batch: C{batch_outcome.py}; the writers:
C{writers.py}).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Union

import attrs

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..state import commands as C
from ..state.commands import Command
from ..state.machine import Result
from ..store.database import connect, storage_failure
from .batch_outcome import log_batch_failure, log_malformed, storage_error
from .interface import NotAccepting, Observer
from .read_back import Entry, NotACommand, Unencoded, apply_entries, log_not_commands
# where the sqlite work runs; importable from here too, as before the split
from .writers import InlineWriter, ThreadWriter, Writer

__all__ = ["URGENT_KINDS", "CommandApplier", "InlineWriter", "ThreadWriter", "Writer"]

log = Logger()

#: Commands that jump the queue: the scheduler's execution records and outbox changes. No
#: observer acts on them, so handing their results back early reorders nothing observers see.
URGENT_KINDS = frozenset({C.EXECUTION_RECORD})



@attrs.frozen
class _Replacement:
    """Replace the whole database (a Raft snapshot installed): C{restore(conn)} in order."""

    restore: Callable[[Any], None]
    index: int
    done: Deferred = attrs.field(eq=False)


#: what waits for the writer: a command (with no index), or a Raft entry (its JSON text, or
#: a single node's L{Unencoded} command) with its Raft index, or a replacement of the whole
#: state
_Entry = Union[tuple[Entry, Union[int, None]], _Replacement]


#: an applied command to hand back: the command (None: only an index to mark), who waits
#: for it, its result and its Raft index
_Delivery = tuple[Union[Command, None], Union[Deferred, None], dict, Union[int, None]]


class CommandApplier:
    """
    @param path: the sqlite file; its schema must already exist.
    @param reactor: schedules the hand-back of results, one per turn.
    @param max_batch: most commands committed in one transaction.
    @param writer: where sqlite runs (L{ThreadWriter} or L{InlineWriter}).
    @param ordered: apply strictly in the order given (a Raft replica): no urgent lane, and a
        batch that fails on storage is retried every C{retry_delay} seconds, never failed.
    @param store_index: store the batch's last Raft index with it (a replica, whose journal
        replays what sqlite lacks); a single node's indices start again at each start.
    """

    def __init__(self, path: str, reactor: Any, writer: Writer, max_batch: int = 256,
                 ordered: bool = False, retry_delay: float = 1.0,
                 store_index: bool = True) -> None:
        self._path = path
        self._store_index = store_index
        self._settled: Callable[[Command, dict], None] | None = None
        self._refused: Callable[[str, Any], None] | None = None
        self._on_written: Callable[[], None] | None = None
        self._reactor = reactor
        self._writer = writer
        self._max_batch = max_batch
        self._ordered = ordered
        self._retry_delay = retry_delay
        self._retry_call: Any = None
        self._applied_index: int | None = None
        self._observed_index: int | None = None
        self._replaced_observers: list[Callable[[], None]] = []
        self._pending: deque[_Entry] = deque()
        self._urgent: deque[_Entry] = deque()
        # the Deferreds handed out by apply, per command id, oldest first
        self._waiters: dict[str, deque[Deferred]] = {}
        self._observers: list[Observer] = []
        self._busy = False
        self._idle: list[Deferred] = []
        self._conn: Any = None
        self._applied = 0
        # applied commands waiting to be handed back, with who waits (None: an encoded
        # entry, reported to the settled callback) and their Raft index; a None command
        # only marks an index (an entry that was not a command)
        self._delivering: deque[_Delivery] = deque()
        self._delivering_urgent: deque[_Delivery] = deque()
        self._delivery_call: Any = None
        # what keeps the database from being written ("full", "io", "damaged"), while it lasts
        self._storage_trouble: str | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Deferred:
        """Open the writer connection; commands applied before that wait for it."""
        self._writer.start()
        return self._writer.run(self._open).addCallback(lambda _: self._kick())

    def _open(self) -> None:
        self._conn = connect(self._path, check_same_thread=False)

    def stop(self) -> Deferred:
        """Apply and hand back everything already taken, then close the connection.

        An ordered applier waiting to retry a failed batch gives it up: its entries are in
        the Raft journal above the stored index, so the next start applies them again."""
        if self._retry_call is not None:
            self._retry_call.cancel()
            self._retry_call = None
            self._abandon(NotAccepting("the node is stopping; the write was not stored"))
        d = self.when_idle()
        d.addCallback(lambda _: self._writer.run(self._close))
        d.addBoth(self._stop_writer)
        return d

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stop_writer(self, passthrough: object) -> object:
        self._writer.stop()
        return passthrough

    def when_idle(self) -> Deferred:
        """Fires once nothing is waiting, being written or being handed back."""
        if not self._busy and not self.waiting and not self._delivering_any():
            return succeed(None)
        d: Deferred = Deferred()
        self._idle.append(d)
        return d

    # -- applying -----------------------------------------------------------------------

    def apply(self, command: Command, index: int | None = None) -> Deferred:
        """
        Apply C{command} in a coming batch (urgent kinds first, unless ordered).

        @param index: its Raft index (stored with its batch), None on a single node.
        @return: a Deferred firing with its result dict after the observers saw it, or
            failing with L{StorageFull}/L{StorageFailed} when its batch could not be stored
            (never, when ordered: the batch is retried).
        """
        d: Deferred = Deferred()
        self._waiters.setdefault(command.id, deque()).append(d)
        urgent = not self._ordered and command.kind in URGENT_KINDS
        (self._urgent if urgent else self._pending).append((command, index))
        self._kick()
        return d

    def apply_encoded(self, text: str, index: int) -> None:
        """
        Apply a Raft entry, C{text} being its command's JSON, read back in the writer
        thread. Nobody waits for it here: once the observers saw it, the settled callback
        (L{on_settled}) gets the command and its result; an entry that is not a command is
        logged and skipped (its index is stored all the same).
        """
        self._pending.append((text, index))
        self._kick()

    def apply_encoded_all(self, entries: list[Unencoded], index: int,
                          urgent: bool = False) -> None:
        """L{apply_encoded} for the commands a single node's entry carries (its API writes
        of a reactor turn, or one urgent or large command), each written to JSON and read
        back by the writer, which takes them together."""
        urgent = urgent and not self._ordered
        (self._urgent if urgent else self._pending).extend((e, index) for e in entries)
        self._kick()

    def on_settled(self, callback: Callable[[Command, dict], None]) -> None:
        """Call C{callback(command, result)} for each entry of L{apply_encoded} once the
        observers saw it (a Raft log answers its proposals there)."""
        self._settled = callback

    def on_refused(self, callback: Callable[[str | Unencoded, Any], None]) -> None:
        """
        Call C{callback(entry, why)} for each entry of L{apply_encoded} that was not
        applied: its batch could not be stored (C{why} the error; never when ordered: that
        batch is retried), or it is not a command (a L{NotACommand}). A single node answers
        its proposal with it, as nobody else will apply that entry.
        """
        self._refused = callback

    def on_written(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} each time the writer is done with a batch (stored or failed),
        before it takes the next: what is handed over in the callback rides in that one."""
        self._on_written = callback

    @property
    def writing(self) -> bool:
        """Whether the writer is busy (what is handed over now waits until it is done)."""
        return self._busy

    def replace_state(self, restore: Callable[[Any], None], index: int) -> Deferred:
        """
        Replace the whole state, in order after what was taken before: C{restore(conn)} runs
        on the writer connection (outside any transaction) once everything before it is
        stored and handed back; then the replaced observers are told.

        @param index: the Raft index the new state holds everything up to.
        @return: a Deferred firing once the state is replaced and the observers told.
        """
        done: Deferred = Deferred()
        self._pending.append(_Replacement(restore, index, done))
        self._kick()
        return done

    def add_replaced_observer(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} in the reactor after the whole state was replaced."""
        self._replaced_observers.append(callback)

    @property
    def idle(self) -> bool:
        """Nothing is waiting, being written or being handed back."""
        return not self._busy and not self.waiting and not self._delivering_any()

    @property
    def applied_index(self) -> int | None:
        """The Raft index of the last batch or replacement stored (None: none yet)."""
        return self._applied_index

    @property
    def observed_index(self) -> int | None:
        """The Raft index of the last entry the observers were told of (or skipped, or
        replaced): what a node that acts on the state (its share of the jobs) has seen."""
        return self._observed_index

    def add_observer(self, observer: Observer) -> None:
        """Call C{observer(command, result)} in the reactor after each apply, in order."""
        self._observers.append(observer)

    @property
    def applied(self) -> int:
        """Commands applied since start (rejections included)."""
        return self._applied

    @property
    def waiting(self) -> int:
        """Commands taken but not yet in the writer's hands."""
        return len(self._urgent) + len(self._pending)

    @property
    def backlog(self) -> int:
        """Waiting commands that are not urgent: what a log may bound."""
        return len(self._pending)

    @property
    def synchronous(self) -> bool:
        """Whether its writer applies a batch before C{apply} returns (tests)."""
        return bool(self._writer.synchronous)

    @property
    def connection(self) -> Any:
        """The writer connection (None until started); touch it only from the writer."""
        return self._conn

    # -- the writer ---------------------------------------------------------------------

    def _delivering_any(self) -> bool:
        return bool(self._delivering_urgent or self._delivering)

    def _kick(self) -> None:
        if (self._busy or not self.waiting or self._conn is None
                or self._retry_call is not None):
            if not self._busy and not self.waiting and not self._delivering_any():
                idle, self._idle = self._idle, []
                for d in idle:
                    d.callback(None)
            return
        if not self._urgent and isinstance(self._pending[0], _Replacement):
            # everything before it is stored; once it is also handed back, replace
            if not self._delivering_any():
                replacement = self._pending.popleft()
                assert isinstance(replacement, _Replacement)
                self._busy = True
                d = self._writer.run(replacement.restore, self._conn)
                d.addBoth(self._replaced, replacement)
            return
        # urgent commands first, then the others up to the batch size (up to a replacement)
        entries: list[tuple[Entry, int | None]] = list(self._urgent)  # type: ignore
        self._urgent.clear()
        while (self._pending and len(entries) < self._max_batch
               and not isinstance(self._pending[0], _Replacement)):
            entries.append(self._pending.popleft())  # type: ignore[arg-type]
        batch = [command for command, _ in entries]
        indexes = [index for _, index in entries if index is not None]
        self._busy = True
        d = self._writer.run(apply_entries, self._conn, batch,
                             max(indexes) if indexes and self._store_index else None)
        d.addBoth(self._written, entries)

    def _replaced(self, outcome: object, replacement: _Replacement) -> None:
        self._busy = False
        if isinstance(outcome, Failure):
            log.failure("replacing the database with a Raft snapshot failed; retrying in "
                        "{delay} s", outcome, delay=self._retry_delay)
            self._pending.appendleft(replacement)
            self._retry_later()
            return
        self._applied_index = self._observed_index = replacement.index
        log.info("the database was replaced by a Raft snapshot up to index {index}",
                 index=replacement.index)
        for observer in self._replaced_observers:
            try:
                observer()
            except Exception:
                log.failure("a state-replaced observer failed")
        replacement.done.callback(None)
        self._writer_free()

    def _retry_later(self) -> None:
        def retry() -> None:
            self._retry_call = None
            self._kick()
        self._retry_call = self._reactor.callLater(self._retry_delay, retry)

    def _abandon(self, error: Exception) -> None:
        """Fail everything still waiting for the writer (an ordered applier that stops)."""
        entries = list(self._urgent) + list(self._pending)
        self._urgent.clear()
        self._pending.clear()
        for entry in entries:
            if isinstance(entry, _Replacement):
                entry.done.errback(error)
            elif isinstance(entry[0], Command):  # an encoded entry stays in the journal
                self._waiter(entry[0]).errback(error)

    def _waiter(self, command: Entry) -> Deferred | None:
        """The oldest Deferred handed out for this command id (results arrive in order);
        None for an encoded entry, which nobody waits for here."""
        if not isinstance(command, Command):
            return None
        waiters = self._waiters[command.id]
        d = waiters.popleft()
        if not waiters:
            del self._waiters[command.id]
        return d

    def _written(self, results: list[tuple[Command | NotACommand, Result | None]] | Failure,
                 entries: list[tuple[Entry, int | None]]) -> None:
        """
        A failed batch fails each of its commands' Deferreds (nothing of it is stored); a
        storage failure with a L{StorageFull}/L{StorageFailed} that says so, so callers
        answer clearly and know the command can be retried. An ordered applier puts the
        batch back instead and retries it: its entries are committed in the Raft log.
        """
        self._busy = False
        batch = [command for command, _ in entries]
        if isinstance(results, Failure):
            trouble = storage_failure(results.value)
            self._storage_trouble = log_batch_failure(
                results, trouble, self._storage_trouble, len(batch), self._path)
            if self._ordered:
                self._pending.extendleft(reversed(entries))
                self._retry_later()
                return
            error: Any = storage_error(trouble) if trouble else results
            for command in batch:
                waiter = self._waiter(command)
                if waiter is not None:
                    waiter.errback(error)
                elif self._refused is not None:
                    self._refused(command, error)
        else:
            if self._storage_trouble is not None:
                log.info("the database takes writes again")
                self._storage_trouble = None
            applied = [(c, r) for c, r in results if isinstance(c, Command)]
            log_malformed(applied)
            log_not_commands(results, entries)
            self._applied += len(applied)
            indexes = [index for _, index in entries if index is not None]
            if indexes:
                self._applied_index = max(indexes)
            for (command, result), (given, index) in zip(results, entries):
                if not isinstance(command, Command):
                    # an entry that is not a command: logged, skipped, its index marked
                    self._delivering.append((None, None, {}, index))
                    if self._refused is not None:
                        self._refused(given, command)  # type: ignore[arg-type]
                    continue
                urgent = not self._ordered and command.kind in URGENT_KINDS
                lane = self._delivering_urgent if urgent else self._delivering
                lane.append((command, self._waiter(given), result, index))
            self._deliver()
        self._writer_free()

    def _writer_free(self) -> None:
        """The writer is done with its work: tell L{on_written}'s callback, then give it
        the next batch."""
        if self._on_written is not None:
            self._on_written()
        self._kick()

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
            delivery = self._delivering.popleft()
            self._hand_back(*delivery)
            if delivery[0] is None:
                continue  # only an index: no turn of its own
            if not self._writer.synchronous and self._delivering:
                self._delivery_call = self._reactor.callLater(0, self._deliver)
                return
        self._kick()

    def _hand_back(self, command: Command | None, d: Deferred | None, result: dict,
                   index: int | None) -> None:
        if command is not None:
            for observer in self._observers:
                try:
                    observer(command, result)
                except Exception:
                    log.failure("observer failed on command {command_id}",
                                command_id=command.id)
            if d is not None:
                d.callback(result)
            elif self._settled is not None:
                self._settled(command, result)
        if index is not None:
            self._observed_index = index
