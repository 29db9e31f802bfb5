"""
The single node's command log: a one-node Raft cluster (issue 12 item 14).

A node with an empty C{Replicas} runs the cluster's code: L{RaftCommandLog} over a
PySyncObj node that is its own cluster. Commands are proposed, committed by PySyncObj,
handed to the applier with their Raft index, written to JSON and read back in its writer
thread, and the proposals answered by command id, as on every replica. What differs is
what a node alone has no use for, each measured (BENCHMARKS.md):

* no Raft port and no cluster secret: its transport (L{NoTransport}) talks to nobody;
* no journal on disk: sqlite holds what was applied, and a command is answered only once
  it is stored there, as before, so the journal lives in memory and is compacted every few
  seconds (its snapshot is PySyncObj's few bytes of its own state: the database is not
  copied, nobody will ask for it). Its Raft indices start again at every start and are
  not stored, so an index never claims entries of a cluster this database may join later;
* an entry carries a number, the key of the commands it proposes, which the node holds
  until the entry is applied: their JSON is written and read back in the writer thread
  (L{scheduler0.consensus.read_back.Unencoded}), not by the reactor, and PySyncObj copies
  no text;
* the scheduler's own records go first (the applier's urgent lane: a replica must follow
  the log's order, a node alone may not wait behind the API's writes), and a batch that
  cannot be stored (a full disk) fails its commands at once rather than retrying them;
* no waiting for a tick interval: a proposal is appended and PySyncObj ticked once, which
  commits and applies it, at once for the scheduler's records and for a large write
  (L{AT_ONCE_ROWS}); the API's small writes of a reactor turn ride in one entry, proposed
  and ticked in the next turn, or, while the writer is busy, once it is done with its batch
  (everything at once with a writer that writes inline: tests then see the result before
  C{submit} returns); no proposal is looked for again later (none can be lost on the way)
  and none times out;
* no poll: PySyncObj's tick ends with one, which would hand the interpreter lock to the
  writer thread at every tick (L{scheduler0.consensus.raft_node.NoTransport}'s node has a
  poller that does nothing).
"""

from __future__ import annotations

import os
from typing import Any

from pysyncobj import FAIL_REASON, SyncObjConf
from pysyncobj.config import SERIALIZER_STATE
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..state.commands import Command
from .applier import URGENT_KINDS, CommandApplier, InlineWriter, ThreadWriter
from .interface import NotAccepting
from .raft import REPROPOSE_DELAY, RaftCommandLog, RaftSettings
from .raft_node import NoTransport, ReplicatedLog
from .read_back import NotACommand, Unencoded, not_carried

__all__ = ["URGENT_KINDS", "LocalCommandLog"]

log = Logger()


#: The in-memory journal is compacted once it holds this many entries or its last
#: compaction is this many seconds old: at 1,000,000 jobs a minute (execution records of
#: about 60 bytes an occurrence) it holds a few MB, at most 200 job creations of 1,000 jobs
#: (about 21 MB) while jobs are created
COMPACT_ENTRIES = 200
COMPACT_SECONDS = 2.0

#: An API write of this many rows or more (a job creation of 20 jobs) is proposed at once,
#: not with its turn's other writes in the next turn
AT_ONCE_ROWS = 20

#: The name PySyncObj knows the lone node by when it was given no Raft address
NO_ADDRESS = "127.0.0.1:0"

#: The snapshot file PySyncObj is told of, in DataDir; never written
NO_SNAPSHOT_FILE = "single-node.no-raft-snapshot"


class LocalCommandLog(RaftCommandLog):
    """
    @param path: the sqlite file; its schema must already exist.
    @param node_id: this node's C{NodeId} (C{leader()} names it).
    @param address: its Raft address, only reported (nothing listens on it).
    @param max_batch: most commands committed in one transaction.
    @param max_pending: commands allowed to wait for the writer; past it C{submit} fails
        with L{NotAccepting} instead of growing memory without end (the scheduler's own
        records are never refused).
    @param threaded: write in a dedicated thread (the daemon); False writes synchronously
        in the caller's thread, for deterministic in-process tests.
    @param applier: the applier to hand entries to (built from the arguments above when
        not given: unordered, indices not stored).
    """

    has_port = False
    # every proposal reaches the applier in the ticks it makes, which stores or refuses it
    recheck_after = 0.0

    def __init__(self, path: str, reactor: Any, node_id: int = 1, address: str = "",
                 max_batch: int = 256, max_pending: int = 10_000, threaded: bool = True,
                 applier: CommandApplier | None = None) -> None:
        if applier is None:
            writer = ThreadWriter(reactor) if threaded else InlineWriter()
            applier = CommandApplier(path, reactor, writer, max_batch=max_batch,
                                     store_index=False)
        name = address or NO_ADDRESS
        settings = RaftSettings(self_address=name, partners=(),
                                node_ids={name: str(node_id)}, data_dir="", password="",
                                max_in_flight=max_pending, apply_timeout=0,
                                node_id=str(node_id))
        super().__init__(path, reactor, settings, applier=applier)
        self._applier.on_refused(self._refused)
        self._applier.on_written(self._writer_done)
        self._ticks_due: Any = None
        # the API's writes proposed since the last entry (command ids), not in PySyncObj yet
        self._turn: list[str] = []
        # whether they wait for the writer to be done with its batch
        self._held = False
        # the commands of each entry proposed and not applied yet, by the key it carries
        self._entries: dict[int, list[Unencoded]] = {}
        self._last_key = 0
        self._node_id = node_id
        self._address = address
        self._max_pending = max_pending

    # -- the one-node cluster -----------------------------------------------------------

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        if self._node is None:
            # indices start at 1 with the in-memory journal: nothing is skipped
            self._skip_through = self._handed = 0
            self._self_address = self._settings.self_address
            self._node = self._make_node(self._self_address, [])

    def _make_node(self, self_address: str | None, partners: list[str]) -> ReplicatedLog:
        node = ReplicatedLog(self_address, [], self._conf(), self._on_entry,
                             self._reactor.seconds, transport_class=NoTransport)
        # alone, it elects itself at its first tick rather than after an election timeout
        node.hold_candidacy(0.0)
        return node

    def _conf(self) -> SyncObjConf:
        nothing = _NothingToKeep()
        return SyncObjConf(
            # no followers to send to: no pipe to wake PySyncObj's poller per proposal
            autoTick=False, appendEntriesUseBatch=True, journalFile=None,
            # PySyncObj wants a file name with a serializer; none is ever written there
            fullDumpFile=os.path.join(os.path.dirname(self._path), NO_SNAPSHOT_FILE),
            serializer=nothing.serialize, deserializer=nothing.deserialize,
            serializeChecker=nothing.check,
            logCompactionMinEntries=COMPACT_ENTRIES, logCompactionMinTime=COMPACT_SECONDS,
            commandsQueueSize=self._max_pending * 2 + 1000,
            onStateChanged=self._state_changed)

    def _carried(self, command: Command) -> Unencoded:
        return Unencoded(command)  # written to JSON in the writer thread

    def _propose(self, command_id: str) -> None:
        """
        The scheduler's records are proposed and ticked at once, so the writer starts on
        them in this reactor turn (waiting for the next turn put them behind the turn's
        planning: p99 lateness 0.62 -> 0.90 s at 1,000,000 jobs a minute). So does a large
        write (L{AT_ONCE_ROWS}), whose own cost dwarfs a proposal's, and which would
        otherwise wait for the next turn's timed calls (the scheduler's, while jobs fire:
        creation of 1,000,000 jobs in POSTs of 1,000 ran 0.6-0.75 as fast). The API's small
        writes of one turn share one entry and one tick in the next, or later
        (L{_propose_turn}): per command, PySyncObj's proposal and tick cost more than the
        rest of the log's work. With a writer that writes inline (tests), every proposal
        goes at once.
        """
        proposal = self._proposals.get(command_id)
        if proposal is None or self._node is None:
            return
        if (proposal.urgent or self._applier.synchronous
                or getattr(proposal.payload.command.payload, "rows", 1) >= AT_ONCE_ROWS):
            self._propose_entry([command_id], urgent=proposal.urgent)
            return
        self._turn.append(command_id)
        if self._ticks_due is None and not self._held:
            self._ticks_due = self._reactor.callLater(0, self._propose_turn)

    def _propose_turn(self) -> None:
        """
        Propose the API's writes of the last reactor turn as one entry, and tick; or, while
        the writer is busy with a batch, hold them (and those of the turns that follow) until
        it is done: it would take none of them sooner, and under load a turn brings one or
        two writes, so an entry a turn was a proposal and a tick per write (9 % more of the
        reactor's time per write than the single-node log's: BENCHMARKS.md).
        """
        self._ticks_due = None
        if self._applier.writing:
            self._held = True
            return
        self._propose_held()

    def _writer_done(self) -> None:
        """The writer is done with a batch: what it would take next is proposed now."""
        if self._held:
            self._propose_held()

    def _propose_held(self) -> None:
        self._held = False
        ids, self._turn = self._turn, []
        self._propose_entry(ids)

    def _propose_entry(self, ids: list[str], urgent: bool = False) -> None:
        """Propose the commands C{ids} (those still waiting) as one entry, and tick: the
        tick commits and applies it."""
        node = self._node
        proposals = [(i, self._proposals.get(i)) for i in ids]
        taken = [(i, p.payload) for i, p in proposals if p is not None]
        if not taken or node is None:
            return
        self._last_key = key = self._last_key + 1
        self._entries[key] = [entry for _, entry in taken]

        def proposed(result: Any, error: int) -> None:
            if error != FAIL_REASON.SUCCESS:
                self._entries.pop(key, None)
                log.warn("PySyncObj refused {count} writes ({error}); proposing them again",
                         count=len(taken), error=error)
                for command_id, _ in taken:
                    self._later(command_id, REPROPOSE_DELAY, self._propose)

        node.apply_command(key, urgent, callback=proposed)
        self._tick()

    def _tick_once(self, node: ReplicatedLog) -> None:
        node.append_proposed()  # so the tick commits and applies what was just proposed
        super()._tick_once(node)

    def _on_entry(self, key: Any, index: int, urgent: bool = False) -> None:
        entries = self._entries.pop(key, None)
        if entries is None:
            log.error("the single node's Raft entry {index} names no commands ({key!r}); "
                      "skipped", index=index, key=key)
            return
        self._handed = max(self._handed, index)
        self._applier.apply_encoded_all(entries, index, urgent)

    def startService(self) -> Deferred:
        if self._node is None:
            self.privilegedStartService()
        Service.startService(self)
        started = self._applier.start()
        # its first tick elects it: commands are taken from now on. No ticker: only
        # proposals give PySyncObj work (they tick it), and the journal is compacted in
        # those ticks
        self._tick()
        return started

    def stopService(self) -> Deferred:
        """Refuse new commands, then let the applier store and answer the ones taken."""
        Service.stopService(self)
        if self._ticks_due is not None and self._ticks_due.active():
            self._ticks_due.cancel()
        # what waits for a turn or the writer, and what PySyncObj still holds, reaches the
        # applier
        self._propose_held()
        self._tick()
        d = self._applier.stop()

        def stopped(passthrough: object) -> object:
            self._close("the node stopped before the write was stored; it was not taken")
            self._entries.clear()
            return passthrough

        return d.addBoth(stopped)

    # -- ICommandLog --------------------------------------------------------------------

    def submit(self, command: Command) -> Deferred:
        if not self.running or self._node is None:
            return _failed(NotAccepting("the node is not accepting writes (starting or "
                                        "stopping)"))
        urgent = command.kind in URGENT_KINDS
        # urgent commands are never refused for the API's backlog: the recorder keeps one
        # command in flight
        if not urgent and self._applier.backlog + len(self._turn) >= self._max_pending:
            return _failed(NotAccepting("too many writes are waiting; retry shortly"))
        return self._propose_new(command, urgent)

    def _refused(self, entry: Any, why: Any) -> None:
        """
        An entry was not applied, and the in-memory log will not apply it again: its
        proposal fails with why (a full disk), or, for a command that cannot be written to
        JSON (a bug, logged), is answered with a stable error.
        """
        if not isinstance(entry, Unencoded):
            return
        command = entry.command
        proposal = self._proposals.pop(command.id, None)
        if proposal is None:
            return
        proposal.cancel_timer()
        for waiter in proposal.waiters:
            if isinstance(why, NotACommand):
                waiter.callback(not_carried(command.kind))
            else:
                waiter.errback(why)

    def leader(self) -> tuple[str, str] | None:
        return (self._address, str(self._node_id))


class _NothingToKeep:
    """
    A single node's snapshots: nothing. Its state is the database, and nobody will ask
    for a copy, so compacting its in-memory journal only tells PySyncObj the snapshot is
    taken (PySyncObj's own in-memory snapshot would gzip the last two entries each time:
    about 17 ms of the reactor for 4,000 execution records).
    """

    def __init__(self) -> None:
        self._taken = False

    def serialize(self, file_name: str, data: Any) -> None:
        self._taken = True

    def check(self) -> int:
        if self._taken:
            self._taken = False
            return SERIALIZER_STATE.SUCCESS
        return SERIALIZER_STATE.NOT_SERIALIZING

    def deserialize(self, file_name: str) -> Any:
        raise ValueError(f"{file_name}: a single node keeps no Raft snapshot")


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d
