"""
Membership changes (issue 14 item 2): one at a time on this node, each keeping the
replicated member list (L{scheduler0.consensus.membership.MemberList}) and PySyncObj's
membership in step; recovery (force-rebuild, reset-raft) too. docs/architecture.md,
"Cluster-management API", says what each does and why in that order.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import urlencode

import attrs
from pysyncobj import FAIL_REASON
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ..state.commands import issue
from ..state.payloads import SetMembers
from .membership import (NONVOTER, RESET_EXIT_STATUS, VOTER, ClusterError, Member,
                         MemberList, MembershipRefused, Timing, _int)

log = Logger()


class ClusterMembership:
    """
    The cluster-management operations of one node.

    @param members: the member list.
    @param end_process: C{end_process(status, before)} stops the node, calls C{before()}
        and ends the process with C{status} (reset-raft;
        L{scheduler0.twisted_private.exit_after_shutdown}).
    @param call_peer: C{call_peer(url)} POSTs to another node's API with the peer
        credentials and fires with C{(status, message)} (add-self, remove-self).
    """

    def __init__(self, members: MemberList, *, timing: Timing | None = None,
                 end_process: Callable[[int, Callable[[], None]], None] | None = None,
                 call_peer: Callable[[str], Awaitable[tuple[int, str]]] | None = None) -> None:
        self._list = members
        self._commands = members.commands
        self._raft = members.raft
        self._clock = members.clock
        self._own = members.own
        self._timing = timing or Timing()
        self._end_process = end_process
        self._call_peer = call_peer
        self._changing: str | None = None

    @property
    def member_list(self) -> MemberList:
        return self._list

    # what the routes read

    def members(self) -> list[Member]:
        return self._list.members()

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._list.list_nodes()

    def job_span(self) -> tuple[int, int | None, int | None]:
        return self._list.job_span()

    # -- changes ------------------------------------------------------------------------

    async def add_node(self, node_id: int, raft_address: str, client_address: str) -> str:
        """
        Add the node as a learner first: stored as a non-voter, it replicates (from a
        snapshot when far behind) without counting toward the quorum; once it holds the
        log as it was when the add began, it is made a voter, as promote-node does. The
        node itself starts as a learner (C{Bootstrap: false}; docs/architecture.md).
        """
        self._clustered("add-node")
        self._require_leader("add-node")
        with self._one_change(f"adding node {node_id}"):
            for m in self._list.members():
                if m.node_id == node_id:
                    extra = ("; promote-node makes it a voter" if not m.voter else "")
                    raise ClusterError(409, f"node {node_id} is already a member, a "
                                            f"{m.suffrage} (Raft {m.raft_address}); remove it "
                                            f"first to move it{extra}")
                if m.raft_address == raft_address:
                    raise ClusterError(409, f"node {m.node_id} already has Raft address "
                                            f"{raft_address}")
            target = _int(self._commands.status().get("last_log_index"))
            learner = Member(node_id, raft_address, client_address, NONVOTER)
            await self._store([*self._list.members(), learner])
            await self._learner_caught_up(learner, target)
            # promoted as promote-node does: the node applies its Voter entry and rebuilds
            # itself as a voter (dropping its learner connection), then it gets the vote
            await self._store(self._with_suffrage(node_id, VOTER))
            await self._replicated_to(learner, _int(self._commands.status().get(
                "last_log_index")))
            await self._pysyncobj("add", raft_address, f"adding node {node_id}")
            await self._caught_up(node_id, raft_address,
                                  _int(self._commands.status().get("last_log_index")))
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
            await self._store([m for m in self._list.members() if m.node_id != node_id])
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
        if leader is None or not leader[1].isdigit() or self._list.find(int(leader[1])) is None:
            raise ClusterError(503, "this node knows no leader to remove it right now; retry "
                                    "in a few seconds")
        with self._one_change("removing this node"):
            self._member(own)
            code, message = await self._ask(self._list.find(int(leader[1])),
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
        if leader is not None and (self._raft.voter or self._list.listed(self._own.node_id)):
            # a voter that is not a member never hears of a leader (every member drops its
            # connections); a learner (Bootstrap: false) hears of it before it is listed
            raise ClusterError(409, f"this node ({self._own.node_id}) is already a member: "
                                    f"it follows the leader, node {leader[1] or '?'}")
        if self._call_peer is None:
            raise ClusterError(503, "this node cannot call the other nodes")
        with self._one_change("adding this node"):
            answers = []
            for m in self._list.members():
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
            seed = self._list.find(seed_node_id)
            where = f" ({seed.client_address})" if seed else ""
            raise ClusterError(400, f"seedNodeId: force-rebuild runs on the seed node itself; "
                                    f"this is node {own}, send it to node {seed_node_id}{where}")
        voters = [m for m in self._list.members() if m.voter and m.node_id != own]
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
            mine = self._list.find(own) or self._own
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
        end_process = self._end_process
        if end_process is None:
            raise ClusterError(503, "this node cannot stop itself")
        files = list(self._raft.raft_files)

        def wipe() -> None:
            for path in files:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            log.warn("reset-raft: deleted this node's Raft state ({files}); exiting with "
                     "status {status} so that it is restarted", files=", ".join(files),
                     status=RESET_EXIT_STATUS)

        answered.addBoth(lambda _: self._clock.callLater(0, end_process, RESET_EXIT_STATUS,
                                                         wipe))
        return "raft reset"

    # -- helpers ------------------------------------------------------------------------

    def _clustered(self, call: str) -> None:
        if self._raft is None:
            raise ClusterError(409, f"{call}: this node runs alone (Replicas is empty): there "
                                    "is no Raft membership to change")

    def _require_leader(self, call: str) -> None:
        leader = self._commands.leader()
        if leader is None:
            raise ClusterError(503, f"{call} is leader-only and the cluster has no leader "
                                    "right now (an election is running, or too few voters "
                                    "are reachable); retry in a few seconds")
        if leader[1] != str(self._own.node_id):
            known = self._list.find(int(leader[1])) if leader[1].isdigit() else None
            where = known.client_address if known else "its API address is not known here"
            raise ClusterError(403, f"{call} is leader-only and this node "
                                    f"({self._own.node_id}) is not the leader: send it to the "
                                    f"leader, node {leader[1] or '?'} at {where} (Raft "
                                    f"{leader[0]})")

    @contextmanager
    def _one_change(self, what: str) -> Iterator[None]:
        """The one change in progress on this node, while its C{with} block runs."""
        if self._changing is not None:
            raise ClusterError(409, f"a membership change is in progress on this node "
                                    f"({self._changing}); retry when it is done")
        self._changing = what
        try:
            yield
        finally:
            self._changing = None

    def _member(self, node_id: int) -> Member:
        member = self._list.find(node_id)
        if member is None:
            raise ClusterError(404, f"node {node_id} is not a member; list-nodes shows them")
        return member

    def _with_suffrage(self, node_id: int, suffrage: str) -> list[Member]:
        return [attrs.evolve(m, suffrage=suffrage) if m.node_id == node_id else m
                for m in self._list.members()]

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

    async def _learner_caught_up(self, learner: Member, target: int) -> None:
        """Until the leader's match index for the learner at C{learner.raft_address}
        reaches C{target}; a 503 after C{catch_up} seconds, the node left a non-voter."""
        deadline = self._clock.seconds() + self._timing.catch_up
        while True:
            progress = self._list.progress().get(learner.raft_address, {})
            if _int(progress.get("matchIndex")) >= target:
                return
            if self._clock.seconds() >= deadline:
                seen = ("it is connected, and holds the log up to entry "
                        f"{_int(progress.get('matchIndex'))} of {target}"
                        if progress else "it never connected as a learner: is it running "
                        f"at {learner.raft_address} with Bootstrap: false and Replicas "
                        "listing this cluster?")
                raise ClusterError(503, f"node {learner.node_id} is listed as a non-voter "
                                        "but did not catch up with the log within "
                                        f"{self._timing.catch_up:g} s ({seen}); it counts "
                                        "toward no quorum: promote-node makes it a voter "
                                        "once it caught up, remove-node takes it off")
            await deferLater(self._clock, self._timing.poll, lambda: None)

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
        commit (bounded: a node that is down, or a learner that already rebuilt itself as
        a voter, does not hold the change up)."""
        deadline = self._clock.seconds() + self._timing.catch_up
        while self._clock.seconds() < deadline:
            peer = self._list.progress().get(member.raft_address, {})
            if not peer.get("connected") or _int(peer.get("matchIndex")) >= target:
                break
            await deferLater(self._clock, self._timing.poll, lambda: None)
        await deferLater(self._clock, self._timing.settle, lambda: None)

    async def _wait_leading(self) -> None:
        deadline = self._clock.seconds() + self._timing.leadership
        while not self._list.leading():
            if self._clock.seconds() >= deadline:
                raise ClusterError(503, "this node did not become leader of the rebuilt "
                                        f"cluster within {self._timing.leadership:g} s")
            await deferLater(self._clock, self._timing.poll, lambda: None)
