"""
Cluster membership (issue 14 items 1-2): who is in the cluster, and changing it safely.

The member list (node id, Raft address, API address, suffrage) is replicated state: a
C{cluster.members} command carries the whole list, so every node lists the same members;
the first leader of a new cluster stores its C{Replicas} (a I{seed}: only when no list is
stored). PySyncObj's own membership (who votes) is changed through its log with
C{addNodeToCluster}/C{removeNodeFromCluster}; L{ClusterMembership} keeps both in step, one
change at a time on this node (a second one is refused with 409 until the first is done,
including the new voter catching up; PySyncObj itself refuses a change while another is
being committed anywhere).

A non-voter is a PySyncObj read-only node (C{SyncObj(None, voters)}): it replicates but
never votes nor leads. PySyncObj cannot switch a live node between the two, so a node
that sees its own suffrage change in the member list rebuilds its PySyncObj object
(L{scheduler0.consensus.raft.RaftCommandLog.restart_as}); the leader adds or removes it
as a voter around that (see docs/architecture.md, "Cluster-management API").
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlencode

import attrs
from pysyncobj import FAIL_REASON
from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ..state.commands import issue
from ..state.kinds import CLUSTER_MEMBERS
from ..state.payloads import SetMembers

log = Logger()

VOTER = "Voter"
NONVOTER = "Nonvoter"

#: Exit status of a node after reset-raft: not 0, so systemd's Restart=on-failure starts it
RESET_EXIT_STATUS = 3

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):([0-9]{1,5})$")


@attrs.frozen
class Member:
    """One cluster member as the replicated list holds it."""

    node_id: int
    raft_address: str
    client_address: str
    suffrage: str = VOTER

    @property
    def voter(self) -> bool:
        return self.suffrage == VOTER

    def to_payload(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "raft_address": self.raft_address,
                "client_address": self.client_address, "suffrage": self.suffrage}


def read_members(db_path: str) -> list[Member]:
    """The stored member list (empty before the first leader stored one, or on a file
    without the table)."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT node_id, raft_address, client_address, suffrage "
                            "FROM cluster_members ORDER BY node_id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [Member(*row) for row in rows]


class ClusterError(Exception):
    """A membership request refused: C{status} is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MembershipRefused(Exception):
    """PySyncObj refused or lost a membership change or a leadership transfer."""

    def __init__(self, code: int) -> None:
        super().__init__(f"PySyncObj answered {code}")
        self.code = code


def host_port(value: str, name: str, example: str) -> str:
    """C{value} if it is C{host:port}, else a 400 naming C{name}."""
    match = _HOST_PORT.match(value)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise ClusterError(400, f"{name}: {value!r} is not host:port (e.g. {example})")
    return value


def client_url(value: str) -> str:
    """The API address of a node: C{http(s)://host:port}, or C{host:port} taken as http."""
    rest = value
    scheme = "http"
    for prefix in ("http://", "https://"):
        if value.startswith(prefix):
            scheme, rest = prefix[:-3], value[len(prefix):]
    host_port(rest.rstrip("/"), "clientAddress", "10.0.0.2:9090 or http://10.0.0.2:9090")
    return f"{scheme}://{rest.rstrip('/')}"


@attrs.define
class Timing:
    """How long membership calls wait (shorter in tests)."""

    #: a new or promoted voter must hold the leader's log within this many seconds
    catch_up: float = 60.0
    #: for a transfer of leadership to show, or this node to lead after a rebuild
    leadership: float = 10.0
    #: for heartbeats to carry a commit to a node about to change its role
    settle: float = 0.5
    poll: float = 0.1
    #: for Raft to commit a membership entry
    change: float = 10.0


class ClusterMembership:
    """
    The cluster-management operations of one node.

    @param commands: the command log (C{submit}, C{leader}, C{status}).
    @param raft: the Raft log's membership operations (a L{RaftCommandLog}); None on a
        single node, which has no membership to change.
    @param own: this node as a member (NodeId, advertised Raft address, API address).
    @param replicas: C{Replicas} as members (what a new cluster's first leader stores).
    @param stop_process: stops the reactor (reset-raft); C{exit_process(status)} ends the
        process once it has stopped.
    @param call_peer: C{call_peer(url)} POSTs to another node's API with the peer
        credentials and fires with C{(status, message)} (add-self).
    """

    def __init__(self, commands: Any, raft: Any, clock: Any, db_path: str, own: Member,
                 replicas: Iterable[Member], *, timing: Timing | None = None,
                 stop_process: Callable[[Callable[[], None]], None] | None = None,
                 exit_process: Callable[[int], None] = os._exit,
                 call_peer: Callable[[str], Awaitable[tuple[int, str]]] | None = None) -> None:
        self._commands = commands
        self._raft = raft
        self._clock = clock
        self._db_path = db_path
        self._own = own
        self._replicas = list(replicas)
        self._timing = timing or Timing()
        self._stop_process = stop_process
        self._exit_process = exit_process
        self._call_peer = call_peer
        self._members: list[Member] = []
        self._changing: str | None = None
        self._seeding = False
        self.reload()

    # -- the member list ----------------------------------------------------------------

    def reload(self) -> None:
        """Read the stored list again (at start, after a snapshot replaced the database)."""
        self._members = read_members(self._db_path) if self._raft is not None else []
        self._adopt()

    def members(self) -> list[Member]:
        """The replicated list; C{Replicas} until the first leader stored it (a single
        node: itself)."""
        if self._members:
            return list(self._members)
        return list(self._replicas) if self._raft is not None else [self._own]

    def observe(self, command: Any, result: dict) -> None:
        """Command log observer: a stored member list is adopted at once."""
        if command.kind == CLUSTER_MEMBERS and result.get("ok"):
            self.reload()

    def _adopt(self) -> None:
        """Learn the members' ids; switch this node between voter and non-voter when its
        own suffrage changed (after the leader's promote or demote)."""
        raft = self._raft
        if raft is None or not self._members:
            return
        raft.learn_node_ids({m.raft_address: str(m.node_id) for m in self._members})
        own = self._find(self._own.node_id)
        if own is None or own.voter == raft.voter:
            return
        voters = [m.raft_address for m in self._members
                  if m.voter and m.node_id != self._own.node_id]
        log.info("this node is now a {suffrage} in the replicated member list; restarting "
                 "its Raft node", suffrage=own.suffrage)
        # after this apply's tick: rebuilding PySyncObj inside its own callback is unsafe
        self._clock.callLater(0, raft.restart_as, own.voter, voters)

    def _find(self, node_id: int) -> Member | None:
        return next((m for m in self.members() if m.node_id == node_id), None)

    def seed(self) -> None:
        """
        Raft state observer: a leader of a cluster with no stored member list stores
        C{Replicas}; retried every second while this node leads and none is stored.
        """
        if self._raft is None or self._members or self._seeding or not self._leading():
            return
        self._seeding = True
        d = self._commands.submit(issue(SetMembers(
            [m.to_payload() for m in self._replicas], seed=True), self._clock.seconds()))

        def done(result: Any) -> None:
            self._seeding = False
            if not self._members:
                self._clock.callLater(1.0, self.seed)

        d.addBoth(done)

    # -- listing ------------------------------------------------------------------------

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every member with what this node knows of it: the leader knows each voter's
        match index (so its lag) and how long ago it last answered."""
        leader = self._commands.leader()
        status = self._commands.status()
        peers = self._raft.peers() if self._raft is not None else {}
        last_index = _int(status.get("last_log_index"))
        leading = leader is not None and leader[1] == str(self._own.node_id)
        nodes = []
        for m in self.members():
            row: dict[str, Any] = {
                "id": m.node_id, "address": m.raft_address,
                "isLeader": leader is not None and leader[1] == str(m.node_id),
                "suffrage": m.suffrage, "clientAddress": m.client_address,
                "self": m.node_id == self._own.node_id,
                "connected": None, "lastContact": None, "matchIndex": None, "lag": None}
            if m.node_id == self._own.node_id:
                row["connected"] = True
                contact = status.get("last_contact")
                row["lastContact"] = contact if contact not in (None, "never") else None
                if leading:
                    row.update(matchIndex=last_index, lag=0)
            elif m.raft_address in peers:
                peer = peers[m.raft_address]
                row["connected"] = peer["connected"]
                if peer.get("lastResponse") is not None:
                    row["lastContact"] = f"{peer['lastResponse'] * 1000:.0f}ms"
                if peer.get("matchIndex") is not None:
                    row["matchIndex"] = int(peer["matchIndex"])
                    row["lag"] = max(last_index - int(peer["matchIndex"]), 0)
            nodes.append(row)
        return nodes

    # -- changes ------------------------------------------------------------------------

    async def add_node(self, node_id: int, raft_address: str, client_address: str) -> str:
        self._clustered("add-node")
        self._require_leader("add-node")
        with self._one_change(f"adding node {node_id}"):
            for m in self.members():
                if m.node_id == node_id:
                    raise ClusterError(409, f"node {node_id} is already a member (Raft "
                                            f"{m.raft_address}); remove it first to move it")
                if m.raft_address == raft_address:
                    raise ClusterError(409, f"node {m.node_id} already has Raft address "
                                            f"{raft_address}")
            await self._pysyncobj("add", raft_address, f"adding node {node_id}")
            target = _int(self._commands.status().get("last_log_index"))
            await self._store([*self.members(),
                               Member(node_id, raft_address, client_address, VOTER)])
            await self._caught_up(node_id, raft_address, target)
        return "node added"

    async def remove_node(self, node_id: int) -> str:
        self._clustered("remove-node")
        self._require_leader("remove-node")
        with self._one_change(f"removing node {node_id}"):
            member = self._member(node_id)
            if node_id == self._own.node_id:
                raise ClusterError(409, f"node {node_id} is the leader that answers: call "
                                        "transfer-leadership first, then remove-node on the "
                                        "new leader")
            if member.voter:
                await self._pysyncobj("rem", member.raft_address, f"removing node {node_id}")
            await self._store([m for m in self.members() if m.node_id != node_id])
        return "node removed"

    async def remove_self(self) -> str:
        """Ask the leader to remove this node (its own change would lose its answer: the
        node is cut off from the log by the very entry it waits for)."""
        self._clustered("remove-self")
        leader = self._commands.leader()
        own = self._own.node_id
        if leader is not None and leader[1] == str(own):
            raise ClusterError(409, "this node is the leader: call transfer-leadership first, "
                                    "then remove-self")
        if leader is None or not leader[1].isdigit() or self._find(int(leader[1])) is None:
            raise ClusterError(503, "this node knows no leader to remove it right now; retry "
                                    "in a few seconds")
        with self._one_change("removing this node"):
            self._member(own)
            code, message = await self._ask(self._find(int(leader[1])),
                                            f"remove-node?nodeId={own}")
            if code != 200:
                raise ClusterError(code if 400 <= code < 600 else 503,
                                   f"the leader did not remove this node: {message}")
        return "removed"

    async def _ask(self, member: Member | None, call: str) -> tuple[int, str]:
        """POST C{call} to C{member}'s cluster API with the peer credentials."""
        if self._call_peer is None or member is None:
            raise ClusterError(503, "this node cannot call the other nodes")
        try:
            return await self._call_peer(f"{member.client_address}/api/v1/cluster/{call}")
        except Exception as e:
            return 0, f"no answer from {member.client_address}: {type(e).__name__}: {e}"

    async def add_self(self) -> str:
        """Ask the other nodes to add this one (it is not a member yet, so it cannot write
        through Raft itself): the first that leads does."""
        self._clustered("add-self")
        leader = self._commands.leader()
        if leader is not None:
            # a node that is not a member never hears of a leader: every member drops its
            # connections
            raise ClusterError(409, f"this node ({self._own.node_id}) is already a member: "
                                    f"it follows the leader, node {leader[1] or '?'}")
        if self._call_peer is None:
            raise ClusterError(503, "this node cannot call the other nodes")
        with self._one_change("adding this node"):
            answers = []
            for m in self.members():
                if m.node_id == self._own.node_id:
                    continue
                code, message = await self._ask(m, "add-node?" + urlencode({
                    "nodeId": self._own.node_id, "nodeAddress": self._own.raft_address,
                    "clientAddress": self._own.client_address}))
                if code == 200:
                    return "added"
                answers.append(f"node {m.node_id} ({m.client_address}): "
                               f"{code or 'no answer'} {message}")
                if code not in (0, 403, 503):
                    break
            raise ClusterError(503, "no node added this one: " + "; ".join(answers))

    async def demote_node(self, node_id: int) -> str:
        self._clustered("demote-node")
        self._require_leader("demote-node")
        with self._one_change(f"demoting node {node_id}"):
            member = self._member(node_id)
            if node_id == self._own.node_id:
                raise ClusterError(409, f"node {node_id} is the leader: call "
                                        "transfer-leadership first, then demote it on the new "
                                        "leader")
            if not member.voter:
                raise ClusterError(409, f"node {node_id} is already a non-voter")
            # the node learns it is a non-voter (and rebuilds itself as one) while it still
            # receives the log; then it stops counting as a voter
            await self._store(self._with_suffrage(node_id, NONVOTER))
            await self._replicated_to(member, _int(self._commands.status().get(
                "last_log_index")))
            await self._pysyncobj("rem", member.raft_address, f"demoting node {node_id}")
        return "node demoted to non-voter"

    async def promote_node(self, node_id: int) -> str:
        self._clustered("promote-node")
        self._require_leader("promote-node")
        with self._one_change(f"promoting node {node_id}"):
            member = self._member(node_id)
            if member.voter:
                raise ClusterError(409, f"node {node_id} is already a voter")
            # the non-voter applies this and rebuilds itself as a voter; then it is added
            await self._store(self._with_suffrage(node_id, VOTER))
            await deferLater(self._clock, self._timing.settle, lambda: None)
            await self._pysyncobj("add", member.raft_address, f"promoting node {node_id}")
            await self._caught_up(node_id, member.raft_address,
                                  _int(self._commands.status().get("last_log_index")))
        return "node promoted to voter"

    async def transfer_leadership(self) -> str:
        self._clustered("transfer-leadership")
        self._require_leader("transfer-leadership")
        own = str(self._own.node_id)
        with self._one_change("transferring leadership"):
            deadline = self._clock.seconds() + self._timing.leadership
            asked_at: float | None = None
            while self._clock.seconds() < deadline:
                leader = self._commands.leader()
                if leader is not None and leader[1] not in ("", own):
                    return "leadership transferred"
                now = self._clock.seconds()
                if leader is not None and leader[1] == own and (
                        asked_at is None or now - asked_at > 2.0):
                    # asked again when the election did not take or no voter was caught
                    # up with the log at that instant (writes go on meanwhile)
                    try:
                        await self._raft.transfer_leadership()
                        asked_at = now
                    except MembershipRefused:
                        pass
                await deferLater(self._clock, self._timing.poll, lambda: None)
            raise ClusterError(503, "no other voter took the leadership within "
                                    f"{self._timing.leadership:g} s (none connected and "
                                    "caught up?); this node still leads")

    async def force_rebuild(self, seed_node_id: int) -> str:
        self._clustered("force-rebuild")
        own = self._own.node_id
        if seed_node_id != own:
            seed = self._find(seed_node_id)
            where = f" ({seed.client_address})" if seed else ""
            raise ClusterError(400, f"seedNodeId: force-rebuild runs on the seed node itself; "
                                    f"this is node {own}, send it to node {seed_node_id}{where}")
        voters = [m for m in self.members() if m.voter and m.node_id != own]
        connected = sum(1 for p in self._raft.peers().values() if p["connected"])
        if voters and connected + 1 > (len(voters) + 1) / 2:
            raise ClusterError(409, f"the cluster still has a quorum ({connected + 1} of "
                                    f"{len(voters) + 1} voters connected): force-rebuild is for a "
                                    "cluster that lost it; use remove-node")
        with self._one_change("rebuilding the cluster around this node"):
            log.warn("force-rebuild: this node forgets the other voters and becomes a "
                     "one-node cluster with its data")
            self._raft.rebuild_alone()
            await self._wait_leading()
            mine = self._find(own) or self._own
            await self._store([attrs.evolve(mine, suffrage=VOTER)])
            self._raft.compact()
        return "rebuild initiated"

    def reset_raft(self, answered: Deferred) -> str:
        """
        Once the answer is sent (C{answered} fires), stop the node, delete its Raft state
        (journal, meta, snapshot; the database stays) and exit with L{RESET_EXIT_STATUS}, so
        a supervisor restarts it and it rejoins with an empty log.
        """
        self._clustered("reset-raft")
        if self._stop_process is None:
            raise ClusterError(503, "this node cannot stop itself")
        files = list(self._raft.raft_files)

        def wipe_and_exit() -> None:
            for path in files:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            log.warn("reset-raft: deleted this node's Raft state ({files}); exiting with "
                     "status {status} so that it is restarted", files=", ".join(files),
                     status=RESET_EXIT_STATUS)
            self._exit_process(RESET_EXIT_STATUS)

        answered.addBoth(lambda _: self._clock.callLater(0, self._stop_process,
                                                         wipe_and_exit))
        return "raft reset"

    # -- helpers ------------------------------------------------------------------------

    def _clustered(self, call: str) -> None:
        if self._raft is None:
            raise ClusterError(409, f"{call}: this node runs alone (Replicas is empty): there "
                                    "is no Raft membership to change")

    def _leading(self) -> bool:
        leader = self._commands.leader()
        return leader is not None and leader[1] == str(self._own.node_id)

    def _require_leader(self, call: str) -> None:
        leader = self._commands.leader()
        if leader is None:
            raise ClusterError(503, f"{call} is leader-only and the cluster has no leader "
                                    "right now (an election is running, or too few voters "
                                    "are reachable); retry in a few seconds")
        if leader[1] != str(self._own.node_id):
            known = self._find(int(leader[1])) if leader[1].isdigit() else None
            where = known.client_address if known else "its API address is not known here"
            raise ClusterError(403, f"{call} is leader-only and this node "
                                    f"({self._own.node_id}) is not the leader: send it to the "
                                    f"leader, node {leader[1] or '?'} at {where} (Raft "
                                    f"{leader[0]})")

    def _one_change(self, what: str) -> "_Change":
        if self._changing is not None:
            raise ClusterError(409, f"a membership change is in progress on this node "
                                    f"({self._changing}); retry when it is done")
        return _Change(self, what)

    def _member(self, node_id: int) -> Member:
        member = self._find(node_id)
        if member is None:
            raise ClusterError(404, f"node {node_id} is not a member; list-nodes shows them")
        return member

    def _with_suffrage(self, node_id: int, suffrage: str) -> list[Member]:
        return [attrs.evolve(m, suffrage=suffrage) if m.node_id == node_id else m
                for m in self.members()]

    async def _store(self, members: list[Member]) -> None:
        result = await self._commands.submit(issue(
            SetMembers([m.to_payload() for m in members]), self._clock.seconds()))
        if not result.get("ok"):
            raise ClusterError(result.get("status", 500), result.get("error", "refused"))

    async def _pysyncobj(self, action: str, address: str, what: str) -> None:
        change = self._raft.change_membership(action, address)
        change.addTimeout(self._timing.change, self._clock)
        try:
            await change
        except TimeoutError:
            raise ClusterError(503, f"{what}: Raft did not confirm the change within "
                                    f"{self._timing.change:g} s (no leader, or it is "
                                    "overloaded); list-nodes shows whether it was "
                                    "applied") from None
        except MembershipRefused as e:
            if e.code == FAIL_REASON.REQUEST_DENIED:
                raise ClusterError(409, f"{what}: Raft refused the change: another "
                                        "membership change is still being committed (or the "
                                        "new leader has not committed its first entry yet); "
                                        "retry in a few seconds") from None
            raise ClusterError(503, f"{what}: the change was not confirmed (PySyncObj code "
                                    f"{e.code}: the leader changed or the log is full); "
                                    "list-nodes shows whether it was applied") from None

    async def _caught_up(self, node_id: int, address: str, target: int) -> None:
        """Until the leader's match index for C{address} reaches C{target}: the node holds
        the log (from a snapshot when the leader compacted it)."""
        deadline = self._clock.seconds() + self._timing.catch_up
        while True:
            peer = self._raft.peers().get(address, {})
            if _int(peer.get("matchIndex")) >= target:
                return
            if self._clock.seconds() >= deadline:
                raise ClusterError(503, f"node {node_id} is a member now but has not caught up "
                                        f"with the log within {self._timing.catch_up:g} s: is it "
                                        f"running at {address} with Replicas listing this "
                                        "cluster? list-nodes shows its lag")
            await deferLater(self._clock, self._timing.poll, lambda: None)

    async def _replicated_to(self, member: Member, target: int) -> None:
        """Until C{member} holds entry C{target}, plus a few heartbeats that tell it the
        commit (bounded: a node that is down does not hold the change up)."""
        deadline = self._clock.seconds() + self._timing.catch_up
        while self._clock.seconds() < deadline:
            peer = self._raft.peers().get(member.raft_address, {})
            if not peer.get("connected") or _int(peer.get("matchIndex")) >= target:
                break
            await deferLater(self._clock, self._timing.poll, lambda: None)
        await deferLater(self._clock, self._timing.settle, lambda: None)

    async def _wait_leading(self) -> None:
        deadline = self._clock.seconds() + self._timing.leadership
        while not self._leading():
            if self._clock.seconds() >= deadline:
                raise ClusterError(503, "this node did not become leader of the rebuilt "
                                        f"cluster within {self._timing.leadership:g} s")
            await deferLater(self._clock, self._timing.poll, lambda: None)

    # -- store facts for the dumps ------------------------------------------------------

    def job_span(self) -> tuple[int, int | None, int | None]:
        """How many jobs the store holds, and the lowest and highest id."""
        conn = sqlite3.connect(self._db_path)
        try:
            count, low, high = conn.execute(
                "SELECT COUNT(*), MIN(id), MAX(id) FROM jobs").fetchone()
        finally:
            conn.close()
        return int(count), low, high


class _Change:
    """The one change in progress on this node, while its C{with} block runs."""

    def __init__(self, owner: ClusterMembership, what: str) -> None:
        self._owner = owner
        self._what = what

    def __enter__(self) -> None:
        self._owner._changing = self._what

    def __exit__(self, *exc: Any) -> None:
        self._owner._changing = None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def run(coroutine: Any) -> Deferred:
    """A Deferred for one of the async operations above."""
    return ensureDeferred(coroutine)
