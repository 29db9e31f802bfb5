"""
The replicated command log: Raft through PySyncObj 0.3.17 (issue 12 items 8-10, 13).

PySyncObj runs inside the reactor: C{autoTick=False} and C{doTick(0.0)} from a
C{LoopingCall} every 5 ms, so its callbacks and the one replicated method run in the reactor
thread and need no locks (reference/stack.md §1.8). The replicated method,
L{ReplicatedLog.apply_command}, only hands the command's JSON, with its Raft index, to the
ordered L{CommandApplier}, whose writer thread reads it back: no JSON reading and no sqlite
work in the tick.

C{submit} proposes a command's JSON and answers with the result applied on this node,
matched by command id, whoever proposed it (read-your-writes on the answering node).
PySyncObj's failure codes and lost callbacks are "unknown, re-check": the same command is
proposed again until it is applied here or its time (C{RaftApplyTimeout}) runs out;
commands are idempotent by id, so applying one twice changes nothing.

The PySyncObj object is L{scheduler0.consensus.raft_node}, the settings
L{scheduler0.consensus.raft_settings}; this module (about 670 lines) keeps the log and its
table of proposals together, since proposing, re-checking and answering all share it, with
the membership operations the cluster-management API calls (L{scheduler0.consensus.membership})
on the same PySyncObj object.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, Callable

import attrs
from pysyncobj import FAIL_REASON, SyncObjConf
from pysyncobj.syncobj import SyncObjException
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from ..state.commands import Command
from .applier import CommandApplier, InlineWriter, ThreadWriter
from .interface import ICommandLog, NotAccepting, Observer
from .membership import MembershipRefused, read_members
from .raft_node import ReplicatedLog, _bridge_pysyncobj_logs
from .raft_settings import RaftSettings, raft_password  # noqa: F401 (importable here)
from .raft_snapshot import SqliteSnapshots, restore_from, stored_index
from .read_back import not_carried

# what importers have always found here
__all__ = ["NO_LEADER", "RaftCommandLog", "RaftSettings", "ReplicatedLog", "STATE_NAMES",
           "raft_command_log", "raft_password"]

log = Logger()

#: PySyncObj's states, named as the healthcheck shows them (seed cluster-management.txt)
STATE_NAMES = {0: "Follower", 1: "Candidate", 2: "Leader"}

#: Seconds a node just promoted to voter stands for no election: the leader adds it and
#: connects to it meanwhile (else it could start an election and depose the leader)
PROMOTION_GRACE = 5.0

#: Seconds between two proposals of a command whose proposal reported a failure code
REPROPOSE_DELAY = 0.05

#: Seconds after a proposal without a result before this node looks for the command in its
#: database (a snapshot may have brought it; a callback may have been lost) or proposes it
#: again
RECHECK_AFTER = 2.0

NO_LEADER = ("the cluster has no Raft leader right now (an election is running, or too few "
             "nodes are reachable); the write was not taken, retry in a few seconds")


@attrs.define
class _Proposal:
    """A command this node proposed and waits for: what its entry carries (its JSON; a
    single node's, the command), who waits, and the one timer (a re-proposal or a re-check)
    pending for it."""

    payload: Any
    waiters: list[Deferred] = attrs.field(factory=list)
    timer: Any = None
    #: one of URGENT_KINDS on a single node (its applier puts them first)
    urgent: bool = False

    def cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


@implementer(ICommandLog)
class RaftCommandLog(Service):
    """
    @param path: the sqlite file; its schema must already exist.
    @param settings: addresses, timeouts and bounds (L{RaftSettings}).
    @param threaded: write in a dedicated thread (the daemon); False writes inline.
    @param applier: the applier to hand entries to (an ordered one built from the
        arguments above when not given).
    """

    #: whether the node has a Raft port (a single node, L{LocalCommandLog}, has none)
    has_port = True

    #: seconds before a proposal without a result is looked for in the database or
    #: proposed again (L{RECHECK_AFTER}; 0: never, a single node loses no proposal)
    recheck_after = RECHECK_AFTER

    def __init__(self, path: str, reactor: Any, settings: RaftSettings,
                 threaded: bool = True, max_batch: int = 256,
                 applier: CommandApplier | None = None) -> None:
        if self.has_port and not settings.password:
            # the Raft port unpickles what it receives: never without encryption
            raise ValueError("a Raft log needs a password (derived from SecretKey)")
        _bridge_pysyncobj_logs()
        self._path = path
        self._reactor = reactor
        self._settings = settings
        if applier is None:
            writer = ThreadWriter(reactor) if threaded else InlineWriter()
            applier = CommandApplier(path, reactor, writer, max_batch=max_batch, ordered=True)
        self._applier = applier
        self._applier.on_settled(self._settled)
        # ticks asked for while one runs (a proposal made by an observer in the tick)
        self._ticking = False
        self._ticks_owed = 0
        self._node: ReplicatedLog | None = None
        self._ticker: LoopingCall | None = None
        self._state_observers: list[Callable[[], None]] = []
        # what submit proposed and waits for, per command id
        self._proposals: dict[str, _Proposal] = {}
        self._reads: Any = None  # a read connection for re-checks (reactor thread)
        # the highest index stored in sqlite at start: replayed entries up to it are skipped
        self._skip_through = 0
        # the highest index handed to the applier (or skipped as already stored)
        self._handed = 0
        self._last_contact: float | None = None
        self._last_state: int | None = None
        # this node's Raft address while it votes, None while it is a non-voter
        self._self_address: str | None = settings.self_address
        # Raft address -> NodeId: Replicas, then the replicated member list
        self._node_ids: dict[str, str] = dict(settings.node_ids)
        self._snapshots = SqliteSnapshots(
            path, idle=self._applier_idle, local_index=lambda: self._handed,
            install=self._install,
            # the backup of a large database must not pause the reactor (Raft's heartbeats)
            in_thread=(lambda work: deferToThreadPool(reactor, reactor.getThreadPool(), work))
            if threaded else None)
        # results a snapshot brought are found in the database, after the other observers
        # (the scheduler reloading) had their turn
        self._applier.add_replaced_observer(
            lambda: self._reactor.callLater(0, self._recheck_all))

    @property
    def applier(self) -> CommandApplier:
        return self._applier

    @property
    def settings(self) -> RaftSettings:
        return self._settings

    @property
    def node(self) -> ReplicatedLog | None:
        """The PySyncObj object while running (tests and diagnostics)."""
        return self._node

    # -- service ------------------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """
        Bind the Raft port (while the process may still bind privileged ports). A port
        that cannot be bound stops start-up with one line, like a taken API port, instead
        of a traceback and a node that never joins.
        """
        Service.privilegedStartService(self)
        if self._node is not None:
            return
        self._skip_through = self._handed = stored_index(self._path)
        self._self_address, partners = self._startup_membership()
        self._node = self._make_node(self._self_address, partners)

    def _conf(self) -> SyncObjConf:
        s = self._settings
        return SyncObjConf(
            autoTick=False, appendEntriesUseBatch=False, maxBindRetries=s.bind_retries,
            bindRetryTime=0.2,
            password=s.password, bindAddress=s.bind_address,
            journalFile=self.journal_path,
            fullDumpFile=os.path.join(s.data_dir, "raft.snapshot"),
            serializer=self._serialize, deserializer=self._snapshots.deserialize,
            serializeChecker=self._snapshots.check,
            logCompactionMinEntries=max(s.snapshot_threshold, 2),
            logCompactionMinTime=s.snapshot_interval,
            connectionTimeout=max(s.transport_timeout, 1.4),
            # a peer that was not listening yet is dialled again within a second, not five:
            # nodes of a new cluster start a moment apart
            connectionRetryTime=1.0,
            commandsQueueSize=s.max_in_flight * 2,
            onStateChanged=self._state_changed,
            # the cluster-management API adds and removes voters (consensus/membership.py)
            dynamicMembershipChange=True,
        )

    def _make_node(self, self_address: str | None, partners: list[str]) -> ReplicatedLog:
        """The PySyncObj object: a voter at C{self_address}, or a non-voter (None) that
        replicates from C{partners} without a port of its own."""
        s = self._settings
        try:
            return ReplicatedLog(self_address, list(partners), self._conf(),
                                 self._on_entry, self._reactor.seconds,
                                 learner_address=s.self_address)
        except SyncObjException as e:
            raise SystemExit(
                f"scheduler0: cannot listen for Raft on {s.bind_address or s.self_address} "
                f"({e}): another process has the port, or the address is not this machine's "
                f"(RaftAddress, NodeAdvAddress)") from None

    def _startup_membership(self) -> tuple[str | None, list[str]]:
        """
        This node's Raft address (None: a non-voter) and the voters it talks to: the
        replicated member list once one is stored (so members added at run time are
        known after a restart, and a demoted node comes back as a non-voter), else
        C{Replicas}. A node with C{JoinCluster: true} joins a running cluster: it starts as
        a learner (a non-voter: it replicates, from a snapshot when needed, and counts
        toward no quorum) until the stored list names it a voter; add-node promotes it
        once it caught up.
        """
        s = self._settings
        members = read_members(self._path)
        if not members:
            if s.join:
                return None, list(s.partners)
            return s.self_address, list(s.partners)
        self._node_ids.update({m.raft_address: str(m.node_id) for m in members})
        voters = [m.raft_address for m in members if m.voter]
        own = next((m for m in members if str(m.node_id) == s.node_id), None)
        if (own is None and s.join) or (own is not None and not own.voter):
            return None, voters
        return s.self_address, [a for a in voters if a != s.self_address]

    def _serialize(self, file_name: str, data: Any) -> None:
        """PySyncObj's snapshot data, with a non-voter's own (None) left out of the cluster
        it records: loading it after a promotion would fail on it."""
        if data and isinstance(data[-1], (set, frozenset)):
            data = (*data[:-1], {node for node in data[-1] if node is not None})
        self._snapshots.serialize(file_name, data)

    @property
    def journal_path(self) -> str:
        return os.path.join(self._settings.data_dir, "raft.journal")

    def startService(self) -> Deferred:
        if self._node is None:
            self.privilegedStartService()
        Service.startService(self)
        started = self._applier.start()
        s = self._settings
        log.info("Raft node {self_address} started with partners {partners}; journal {journal}"
                 " (entries up to {index} are already in the database)",
                 self_address=s.self_address, partners=", ".join(s.partners),
                 journal=self.journal_path, index=self._skip_through)
        if self._self_address is None:
            log.info("this node starts as a non-voter (a learner): it replicates from the "
                     "voters and votes only once the member list names it a voter (add-node "
                     "or promote-node on the leader; a node of a new cluster needs "
                     "Bootstrap: true)", raft_node=s.self_address)
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self._reactor
        self._ticker.start(s.tick_interval, now=True)
        return started

    def stopService(self) -> Deferred:
        """Stop ticking, close the Raft port and journal, then let the applier finish what
        it took (entries it has not stored stay in the journal for the next start)."""
        Service.stopService(self)
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._close("the node is stopping; the write may still be applied by the cluster")
        return self._applier.stop()

    def _close(self, unanswered: str) -> None:
        """Destroy the PySyncObj object; fail the proposals still waiting with
        L{NotAccepting}(C{unanswered})."""
        if self._node is not None:
            self._node.destroy()
            self._node = None
        proposals, self._proposals = self._proposals, {}
        for proposal in proposals.values():
            proposal.cancel_timer()
            for d in proposal.waiters:
                d.errback(NotAccepting(unanswered))
        if self._reads is not None:
            self._reads.close()
            self._reads = None

    def _tick(self, times: int = 1) -> None:
        """Run PySyncObj's tick C{times} times; asked for during a tick (an observer's
        proposal, on a single node), they run right after it, never inside it."""
        self._ticks_owed += times
        if self._ticking:
            return
        self._ticking = True
        try:
            while self._ticks_owed and self._node is not None:
                self._ticks_owed -= 1
                self._tick_once(self._node)
        finally:
            self._ticking = False
            self._ticks_owed = 0

    def _tick_once(self, node: ReplicatedLog) -> None:
        try:
            node.doTick(0.0)
        except Exception:
            log.failure("PySyncObj's tick failed")
        leader = node.leader_node()
        if leader is not None and (node.is_leader() or node.isNodeConnected(leader)):
            self._last_contact = self._reactor.seconds()

    def _state_changed(self, old: int, new: int) -> None:
        log.info("Raft state {old} -> {new}", old=STATE_NAMES.get(old, old),
                 new=STATE_NAMES.get(new, new))
        # told after this tick, not inside it: what they do (stop the executor, plan every
        # job) must not stall PySyncObj
        for observer in self._state_observers:
            self._reactor.callLater(0, observer)

    def add_state_observer(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} soon after this node's Raft state changes (it became leader,
        or stopped being it): a leadership change is noticed at once, not at the next poll."""
        self._state_observers.append(callback)

    # -- applying committed entries (in the tick, in log order) ------------------------

    def _on_entry(self, command_json: str, index: int, urgent: bool = False) -> None:
        # (urgent: only a single node proposes such entries, and reads them itself)
        if index <= self._skip_through:
            return  # replayed from the journal: already in the database
        self._handed = max(self._handed, index)
        # read back from its JSON by the writer thread, not here in the tick; answered in
        # _settled once applied (a proposal still waiting when the applier stops is failed
        # by stopService)
        self._applier.apply_encoded(command_json, index)

    def _settled(self, command: Command, result: dict) -> None:
        self._applied(result, command.id)

    def _applied(self, result: dict, command_id: str) -> None:
        proposal = self._proposals.pop(command_id, None)
        if proposal is not None:
            proposal.cancel_timer()
            for d in proposal.waiters:
                d.callback(result)

    def _applier_idle(self) -> bool:
        return self._applier.idle

    def _install(self, path: str, index: int) -> None:
        self._handed = max(self._handed, index)
        self._applier.replace_state(restore_from(path), index)

    # -- ICommandLog --------------------------------------------------------------------

    def submit(self, command: Command) -> Deferred:
        node = self._node
        if not self.running or node is None:
            return _failed(NotAccepting("the node is not accepting writes (starting or "
                                        "stopping)"))
        if node.leader_node() is None:
            return _failed(NotAccepting(NO_LEADER))
        if self.in_flight >= self._settings.max_in_flight:
            return _failed(NotAccepting("too many writes are waiting to be committed through "
                                        "Raft; retry shortly"))
        return self._propose_new(command)

    def _propose_new(self, command: Command, urgent: bool = False) -> Deferred:
        """Propose C{command} (or wait for the same one already proposed)."""
        proposal = self._proposals.get(command.id)
        if proposal is None:
            try:
                payload = self._carried(command)
            except Exception:
                # a bug: refused with a stable message, nothing proposed
                log.failure("command {command_id} ({kind}) cannot be carried as JSON; "
                            "refused", command_id=command.id, kind=command.kind)
                return succeed(not_carried(command.kind))
            proposal = self._proposals[command.id] = _Proposal(payload, urgent=urgent)
        d: Deferred = Deferred(lambda cancelled: self._forget(command.id, cancelled))
        if self._settings.apply_timeout:
            d.addTimeout(self._settings.apply_timeout, self._reactor)
        proposal.waiters.append(d)
        if len(proposal.waiters) == 1:
            self._propose(command.id)  # else the same command is already on its way
        return d

    def _carried(self, command: Command) -> Any:
        """What an entry proposing C{command} carries: its JSON, which every replica reads
        back (an error if it cannot be written)."""
        return command.to_json()

    @property
    def in_flight(self) -> int:
        """Proposals waiting for their result on this node."""
        return sum(len(proposal.waiters) for proposal in self._proposals.values())

    def _forget(self, command_id: str, d: Deferred) -> None:
        proposal = self._proposals.get(command_id)
        if proposal is None:
            return
        if d in proposal.waiters:
            proposal.waiters.remove(d)
        if not proposal.waiters:
            proposal.cancel_timer()
            del self._proposals[command_id]

    def _later(self, command_id: str, delay: float, action: Callable[[str], None]) -> None:
        proposal = self._proposals.get(command_id)
        if proposal is not None:
            proposal.cancel_timer()
            proposal.timer = self._reactor.callLater(delay, action, command_id)

    def _propose(self, command_id: str) -> None:
        node = self._node
        proposal = self._proposals.get(command_id)
        if proposal is None or node is None:
            return  # answered, timed out or stopping
        if node.leader_node() is None:
            self._later(command_id, REPROPOSE_DELAY, self._propose)
            return

        def proposed(result: Any, error: int) -> None:
            if error != FAIL_REASON.SUCCESS and command_id in self._proposals:
                # not proof of failure (reference/stack.md §1.9): propose it again; if it
                # was applied after all, the second entry changes nothing
                log.debug("proposal of {command_id} reported {error}; proposing it again",
                          command_id=command_id, error=error)
                self._later(command_id, REPROPOSE_DELAY, self._propose)

        if self.recheck_after:
            self._later(command_id, self.recheck_after, self._recheck)
        node.apply_command(proposal.payload, callback=proposed)  # the next tick sends it

    def _recheck(self, command_id: str) -> None:
        """
        No result yet: PySyncObj may have lost the callback, or a snapshot may have brought
        the command without its entry. Once the applier is idle (so observers saw whatever
        the database holds), answer from the database, or else propose it again.
        """
        if command_id not in self._proposals:
            return
        if not self._applier.idle:
            self._later(command_id, RECHECK_AFTER, self._recheck)
            return
        stored = self._stored_result(command_id)
        if stored is not None:
            self._applied(stored, command_id)
        else:
            self._propose(command_id)

    def _recheck_all(self) -> None:
        for command_id in list(self._proposals):
            self._recheck(command_id)

    def _stored_result(self, command_id: str) -> dict | None:
        if self._reads is None:
            self._reads = sqlite3.connect(self._path)
        row = self._reads.execute("SELECT result FROM applied_commands WHERE id = ?",
                                  (command_id,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def add_observer(self, observer: Observer) -> None:
        self._applier.add_observer(observer)

    def add_replaced_observer(self, callback: Callable[[], None]) -> None:
        self._applier.add_replaced_observer(callback)

    def status(self) -> dict[str, Any]:
        node = self._node
        if node is None:
            return {"state": "Shutdown", "term": "0", "num_peers": str(len(self._settings.partners)),
                    "last_log_index": "0", "commit_index": "0", "applied_index": "0",
                    "fsm_pending": "0", "last_contact": "never"}
        status = node.getStatus()
        # what sqlite holds and the observers (ownership, the scheduler) have seen:
        # everything PySyncObj applied once the applier is idle (the last entries may be
        # no-ops, which store nothing), else the last entry handed back
        seen = max(self._applier.observed_index or 0, self._skip_through)
        if self._applier.idle:
            seen = max(seen, int(status["last_applied"]))
        return {
            "state": STATE_NAMES.get(status["state"], str(status["state"])),
            "term": str(status["raft_term"]),
            "last_log_index": str(_last_log_index(node, status)),
            "commit_index": str(status["commit_idx"]),
            "applied_index": str(seen),
            "fsm_pending": str(self._applier.waiting),
            "num_peers": str(status["partner_nodes_count"]),
            "connected_peers": str(sum(
                1 for key, value in status.items()
                if key.startswith("partner_node_status_server_") and value == 2)),
            "last_contact": self._last_contact_text(status),
        }

    def leader_commit_index(self) -> int | None:
        """
        The commit index the leader last sent this node (the leader's own on the leader),
        None until a leader has been heard from since start. Unlike C{status()}'s
        C{commit_index}, it is not capped by what this node's log holds.
        """
        node = self._node
        if node is None:
            return None
        known = node.getStatus().get("leader_commit_idx")
        return None if known is None else int(known)

    def _last_contact_text(self, status: dict) -> str:
        if status["state"] == 2:
            return "0"
        if self._last_contact is None:
            return "never"
        return f"{max(self._reactor.seconds() - self._last_contact, 0) * 1000:.0f}ms"

    def leader(self) -> tuple[str, str] | None:
        node = self._node
        leader = node.leader_node() if node is not None else None
        if leader is None:
            return None
        address = getattr(leader, "address", None) or str(leader)
        return (address, self._node_ids.get(address, ""))

    # -- membership (the cluster-management API, consensus/membership.py) ---------------

    @property
    def voter(self) -> bool:
        """Whether this node votes (a non-voter replicates and never leads)."""
        return self._self_address is not None

    @property
    def raft_files(self) -> list[str]:
        """This node's Raft state on disk: the journal, its meta, the snapshot (reset-raft
        deletes them; the database stays)."""
        base = os.path.join(self._settings.data_dir, "raft")
        return [f"{base}.journal", f"{base}.journal.meta", f"{base}.snapshot",
                f"{base}.snapshot.tmp", f"{base}.snapshot.1.tmp"]

    def learn_node_ids(self, ids: dict[str, str]) -> None:
        """Raft address -> NodeId of members added at run time, so C{leader()} names them."""
        self._node_ids.update(ids)

    def restart_as(self, voter: bool, partners: list[str]) -> None:
        """
        Rebuild the PySyncObj object as a voter or a non-voter (this node was promoted or
        demoted): PySyncObj cannot switch a live object. The journal is kept; entries
        replayed from it that are already handed to the applier are skipped.
        """
        if self._node is None or voter == self.voter:
            return
        self._node.destroy()
        self._skip_through = max(self._skip_through, self._handed)
        self._self_address = self._settings.self_address if voter else None
        self._node = self._make_node(self._self_address, partners)
        if voter:
            self._node.hold_candidacy(PROMOTION_GRACE)
        log.info("Raft node restarted as a {role} with voters {partners}",
                 role="voter" if voter else "non-voter", partners=", ".join(partners))

    def _running_node(self) -> ReplicatedLog:
        if self._node is None:
            raise NotAccepting("the node is not running Raft (starting or stopping)")
        return self._node

    def change_membership(self, action: str, address: str) -> Deferred:
        """
        Add (C{"add"}) or remove (C{"rem"}) the voter at C{address} through the Raft log:
        fires once the change is committed, or fails with L{MembershipRefused} (PySyncObj
        refuses a change while another is not committed yet).
        """
        node = self._running_node()
        d, done = _answered()
        if action == "add":
            node.addNodeToCluster(address, callback=done)
        else:
            node.removeNodeFromCluster(address, callback=done)
        return d

    def transfer_leadership(self) -> Deferred:
        """Ask the most caught-up connected voter to start an election at once (Raft's
        TimeoutNow); fires when it was asked, not when it won."""
        node = self._running_node()
        d, done = _answered()
        node.transferLeadership(None, callback=done)
        return d

    def rebuild_alone(self) -> None:
        """Forget every other voter (force-rebuild): this node elects itself."""
        self._running_node().rebuild_alone()

    def compact(self) -> None:
        """Take a snapshot soon (it records the current membership for the next start)."""
        self._running_node().forceLogCompaction()

    def peers(self) -> dict[str, dict[str, Any]]:
        """
        What this node knows of each other voter, by Raft address: C{connected}; and on
        the leader C{matchIndex} (the last entry it holds) and C{lastResponse} (seconds
        since it last answered).
        """
        node = self._node
        if node is None:
            return {}
        status = node.getStatus()
        leading = status["state"] == 2
        ages = node.response_ages() if leading else {}
        found: dict[str, dict[str, Any]] = {}
        for key, value in status.items():
            if key.startswith("partner_node_status_server_"):
                address = key[len("partner_node_status_server_"):]
                found[address] = {
                    "connected": value == 2,
                    "matchIndex": status.get(f"match_idx_server_{address}") if leading else None,
                    "lastResponse": ages.get(address)}
        return found

    def learners(self) -> dict[str, dict[str, Any]]:
        """
        The non-voters connected to this node, by the Raft address each announced: like
        L{peers} (C{matchIndex} and C{lastResponse} on the leader), plus C{voter: False}.
        They count toward no quorum, so L{peers} (and what reads it: liveness, the
        quorum check of force-rebuild) leaves them out.
        """
        node = self._node
        return node.learners() if node is not None else {}


def _last_log_index(node: ReplicatedLog, status: dict) -> int:
    """The journal's last index (PySyncObj keeps it private; the commit index without it)."""
    try:
        return node.last_log_index()
    except Exception:
        return int(status["commit_idx"])


def _answered() -> tuple[Deferred, Callable[[Any, int], None]]:
    """A Deferred and the PySyncObj callback that fires it once: with None on success, with
    L{MembershipRefused} carrying PySyncObj's failure code otherwise."""
    d: Deferred = Deferred()

    def done(result: Any, error: int) -> None:
        if not d.called:
            if error == FAIL_REASON.SUCCESS:
                d.callback(None)
            else:
                d.errback(MembershipRefused(error))

    return d, done


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d


def raft_command_log(config: Any, secret_key: str, path: str,
                     reactor: Any) -> RaftCommandLog | None:
    """
    The node's Raft log when C{Replicas} lists a cluster (the other listed nodes are its
    partners); None with an empty C{Replicas}: a one-node cluster (L{LocalCommandLog}).
    """
    if not config.replicas:
        return None
    return RaftCommandLog(path, reactor, RaftSettings.from_config(config, secret_key))


__all__ = ["RaftCommandLog", "RaftSettings", "ReplicatedLog", "raft_command_log", "raft_password"]
