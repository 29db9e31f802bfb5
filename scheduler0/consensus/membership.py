"""
Cluster membership (issue 14 items 1-2): who is in the cluster, and changing it safely.

The member list (node id, Raft address, API address, suffrage) is replicated state: a
C{cluster.members} command carries the whole list, so every node lists the same members;
the first leader of a new cluster stores its C{Replicas} (a I{seed}: only when no list is
stored); L{MemberList} keeps it as this node knows it. PySyncObj's own membership (who
votes) is changed through its log with C{addNodeToCluster}/C{removeNodeFromCluster};
L{scheduler0.consensus.membership_changes.ClusterMembership} keeps both in step, one change
at a time on this node (a second one is refused with 409 until the first is done,
including the new node catching up; PySyncObj itself refuses a change while another is
being committed anywhere). A new node joins as a learner (a non-voter, started with
C{Bootstrap: false}) and gets its vote only once it caught up, so the quorum stays the
old voters' meanwhile.

A non-voter is a PySyncObj read-only node (C{SyncObj(None, voters)}): it replicates but
never votes nor leads. PySyncObj cannot switch a live node between the two, so a node
that sees its own suffrage change in the member list rebuilds its PySyncObj object
(L{scheduler0.consensus.raft.RaftCommandLog.restart_as}); the leader adds or removes it
as a voter around that (see docs/architecture.md, "Cluster-management API").
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any, Iterable

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
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


class MemberList:
    """
    The replicated member list as this node knows it, and what follows from it: the first
    leader stores C{Replicas}, a node whose own suffrage changed rebuilds its Raft node,
    and list-nodes adds what this node knows of each member.

    @param commands: the command log (C{submit}, C{leader}, C{status}).
    @param raft: the Raft log's membership operations (a L{RaftCommandLog}); None on a
        single node, which has no membership.
    @param own: this node as a member (NodeId, advertised Raft address, API address).
    @param replicas: C{Replicas} as members (what a new cluster's first leader stores).
    """

    def __init__(self, commands: Any, raft: Any, clock: Any, db_path: str, own: Member,
                 replicas: Iterable[Member]) -> None:
        self.commands = commands
        self.raft = raft
        self.clock = clock
        self.own = own
        self._db_path = db_path
        self._replicas = list(replicas)
        self._members: list[Member] = []
        self._seeding = False
        self.reload()

    # -- the member list ----------------------------------------------------------------

    def reload(self) -> None:
        """Read the stored list again (at start, after a snapshot replaced the database)."""
        self._members = read_members(self._db_path) if self.raft is not None else []
        self._adopt()

    def members(self) -> list[Member]:
        """The replicated list; C{Replicas} until the first leader stored it (a single
        node: itself)."""
        if self._members:
            return list(self._members)
        return list(self._replicas) if self.raft is not None else [self.own]

    def observe(self, command: Any, result: dict) -> None:
        """Command log observer: a stored member list is adopted at once."""
        if command.kind == CLUSTER_MEMBERS and result.get("ok"):
            self.reload()

    def _adopt(self) -> None:
        """Learn the members' ids; switch this node between voter and non-voter when its
        own suffrage changed (after the leader's promote or demote)."""
        raft = self.raft
        if raft is None or not self._members:
            return
        raft.learn_node_ids({m.raft_address: str(m.node_id) for m in self._members})
        own = self.find(self.own.node_id)
        if own is None or own.voter == raft.voter:
            return
        voters = [m.raft_address for m in self._members
                  if m.voter and m.node_id != self.own.node_id]
        log.info("this node is now a {suffrage} in the replicated member list; restarting "
                 "its Raft node", suffrage=own.suffrage)
        # after this apply's tick: rebuilding PySyncObj inside its own callback is unsafe
        self.clock.callLater(0, raft.restart_as, own.voter, voters)

    def leading(self) -> bool:
        leader = self.commands.leader()
        return leader is not None and leader[1] == str(self.own.node_id)

    def find(self, node_id: int) -> Member | None:
        return next((m for m in self.members() if m.node_id == node_id), None)

    def listed(self, node_id: int) -> Member | None:
        """C{node_id} in the I{stored} list only (not C{Replicas}, which names a node about
        to join too)."""
        return next((m for m in self._members if m.node_id == node_id), None)

    def progress(self) -> dict[str, dict[str, Any]]:
        """What this node knows of the others, by Raft address: the voters (L{peers}),
        then the non-voters connected to it (learners, which the leader replicates to
        without counting them toward the quorum)."""
        if self.raft is None:
            return {}
        learners = getattr(self.raft, "learners", None)
        return {**(learners() if learners is not None else {}), **self.raft.peers()}

    def seed(self) -> None:
        """
        Raft state observer: a leader of a cluster with no stored member list stores
        C{Replicas}; retried every second while this node leads and none is stored.
        """
        if self.raft is None or self._members or self._seeding or not self.leading():
            return
        self._seeding = True
        d = self.commands.submit(issue(SetMembers(
            [m.to_payload() for m in self._replicas], seed=True), self.clock.seconds()))

        def done(result: Any) -> None:
            self._seeding = False
            if not self._members:
                self.clock.callLater(1.0, self.seed)

        d.addBoth(done)

    # -- listing ------------------------------------------------------------------------

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every member with what this node knows of it: the leader knows each voter's
        and each connected non-voter's match index (so its lag) and how long ago it last
        answered."""
        leader = self.commands.leader()
        status = self.commands.status()
        peers = self.progress()
        last_index = _int(status.get("last_log_index"))
        leading = leader is not None and leader[1] == str(self.own.node_id)
        nodes = []
        for m in self.members():
            row: dict[str, Any] = {
                "id": m.node_id, "address": m.raft_address,
                "isLeader": leader is not None and leader[1] == str(m.node_id),
                "suffrage": m.suffrage, "clientAddress": m.client_address,
                "self": m.node_id == self.own.node_id,
                "connected": None, "lastContact": None, "matchIndex": None, "lag": None}
            if m.node_id == self.own.node_id:
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

    def job_span(self) -> tuple[int, int | None, int | None]:
        """How many jobs the store holds, and the lowest and highest id."""
        conn = sqlite3.connect(self._db_path)
        try:
            count, low, high = conn.execute(
                "SELECT COUNT(*), MIN(id), MAX(id) FROM jobs").fetchone()
        finally:
            conn.close()
        return int(count), low, high



def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def run(coroutine: Any) -> Deferred:
    """A Deferred for one of the async operations above."""
    return ensureDeferred(coroutine)
