"""
The cluster-management API's pieces (issue 14 items 1-2), without processes: the
replicated member list (its command and migration), L{ClusterMembership} against a fake
Raft log on a L{Clock} (leader-only refusals naming the leader, one change at a time, the
wait for a new voter to catch up, transfer, demote/promote ordering, reset-raft and
force-rebuild), and the routes of an in-process single node (peer-only auth, 400s, the
dumps). The real-cluster behaviour is in L{tests.integration.test_cluster_api}.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import attrs
from pysyncobj import FAIL_REASON
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.membership import (NONVOTER, RESET_EXIT_STATUS, VOTER,
                                             ClusterError, Member, MemberList,
                                             MembershipRefused, Timing, read_members, run)
from scheduler0.consensus.membership_changes import ClusterMembership
from scheduler0.state.commands import issue
from scheduler0.state.machine import apply_command
from scheduler0.state.payloads import SetMembers
from scheduler0.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

from .harness import ApiHarness, key_headers, peer_headers

A = Member(1, "10.0.0.1:7070", "http://10.0.0.1:9090")
B = Member(2, "10.0.0.2:7070", "http://10.0.0.2:9090")
C = Member(3, "10.0.0.3:7070", "http://10.0.0.3:9090")
D = Member(4, "10.0.0.4:7070", "http://10.0.0.4:9090")


class FakeCommands:
    """The command log: applies every command to a real sqlite file at once, tells the
    observers, and says who leads."""

    def __init__(self, path: str) -> None:
        self.path = path
        conn = sqlite3.connect(path)
        conn.executescript(SCHEMA)
        conn.close()
        self.leading: tuple[str, str] | None = (A.raft_address, "1")
        self.index = 10
        self.observers: list[Any] = []
        self.submitted: list[Any] = []

    def submit(self, command: Any) -> Deferred:
        self.submitted.append(command)
        conn = sqlite3.connect(self.path)
        with conn:
            result = apply_command(conn, command)
        conn.close()
        self.index += 1
        for observer in self.observers:
            observer(command, result)
        return succeed(result)

    def leader(self) -> tuple[str, str] | None:
        return self.leading

    def status(self) -> dict[str, Any]:
        return {"last_log_index": str(self.index), "last_contact": "0"}


class FakeRaft:
    """The Raft log's membership operations, recorded; the test decides the outcomes."""

    def __init__(self) -> None:
        self.voter = True
        self.calls: list[tuple] = []
        self.pending: list[Deferred] = []
        self.answer: Any = None  # None: succeed at once; "wait": the test fires it
        self.peer_state: dict[str, dict[str, Any]] = {}
        self.learner_state: dict[str, dict[str, Any]] = {}
        self.raft_files: list[str] = []
        self.ids: dict[str, str] = {}

    def peers(self) -> dict[str, dict[str, Any]]:
        return self.peer_state

    def learners(self) -> dict[str, dict[str, Any]]:
        return self.learner_state

    def change_membership(self, action: str, address: str) -> Deferred:
        self.calls.append((action, address))
        if self.answer == "wait":
            d: Deferred = Deferred()
            self.pending.append(d)
            return d
        if isinstance(self.answer, int):
            d = Deferred()
            d.errback(MembershipRefused(self.answer))
            return d
        return succeed(None)

    def transfer_leadership(self) -> Deferred:
        self.calls.append(("transfer",))
        return succeed(None)

    def rebuild_alone(self) -> None:
        self.calls.append(("rebuild",))

    def compact(self) -> None:
        self.calls.append(("compact",))

    def learn_node_ids(self, ids: dict[str, str]) -> None:
        self.ids.update(ids)

    def restart_as(self, voter: bool, partners: list[str]) -> None:
        self.calls.append(("restart_as", voter, partners))
        self.voter = voter


class MembershipTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.commands = FakeCommands(os.path.join(self.mktemp() + ".db"))
        self.raft = FakeRaft()
        self.ends: list[tuple[int, Any]] = []
        self.membership = self.make(A)

    def make(self, own: Member, raft: FakeRaft | None = None,
             **kwargs: Any) -> ClusterMembership:
        members = MemberList(self.commands, raft or self.raft, self.clock, self.commands.path,
                             own, [A, B, C])
        membership = ClusterMembership(
            members, timing=Timing(catch_up=5.0, leadership=3.0, settle=0.5, poll=0.1),
            end_process=lambda status, before: self.ends.append((status, before)), **kwargs)
        self.commands.observers.append(members.observe)
        return membership

    def seeded(self) -> None:
        self.membership.member_list.seed()
        self.assertEqual([m.node_id for m in read_members(self.commands.path)], [1, 2, 3])

    def refused(self, coroutine: Any, status: int) -> str:
        failure = self.failureResultOf(run(coroutine), ClusterError)
        self.assertEqual(failure.value.status, status, failure.value.message)
        return failure.value.message

    def test_the_first_leader_stores_replicas_once(self) -> None:
        self.assertEqual(self.membership.members(), [A, B, C])  # Replicas until stored
        self.seeded()
        self.membership.member_list.seed()
        self.assertEqual(len(self.commands.submitted), 1)
        # another node's seed (a second leader) changes nothing once a list is stored
        result = self.successResultOf(self.commands.submit(issue(
            SetMembers([D.to_payload()], seed=True), 0)))
        self.assertEqual(result, {"ok": True, "seeded": False})
        self.assertEqual([m.node_id for m in read_members(self.commands.path)], [1, 2, 3])
        self.assertEqual(self.raft.ids, {A.raft_address: "1", B.raft_address: "2",
                                         C.raft_address: "3"})

    def test_a_follower_refuses_leader_only_calls_naming_the_leaders_api_address(self) -> None:
        self.seeded()
        follower = self.make(B)
        for call in (follower.add_node(4, D.raft_address, D.client_address),
                     follower.remove_node(3), follower.promote_node(3),
                     follower.demote_node(3), follower.transfer_leadership()):
            message = self.refused(call, 403)
            self.assertIn("http://10.0.0.1:9090", message)
        self.commands.leading = None
        self.assertIn("no leader", self.refused(follower.remove_node(3), 503))
        self.assertEqual(self.raft.calls, [])

    def test_one_change_at_a_time_and_a_new_node_votes_only_once_caught_up(self) -> None:
        self.seeded()
        target = self.commands.index  # the leader's log when the add begins
        newcomer_raft = FakeRaft()
        newcomer_raft.voter = False  # started with JoinCluster: true, a learner
        newcomer = self.make(D, newcomer_raft)
        adding = run(self.membership.add_node(4, D.raft_address, D.client_address))
        # listed as a non-voter, and no vote: the quorum stays that of the three voters
        self.assertEqual(read_members(self.commands.path)[-1], attrs.evolve(D, suffrage=NONVOTER))
        self.assertEqual(self.raft.calls, [])
        self.assertNoResult(adding)  # node 4 holds nothing of the log yet
        message = self.refused(self.membership.remove_node(3), 409)
        self.assertIn("adding node 4", message)
        self.raft.learner_state[D.raft_address] = {"connected": True, "matchIndex": 3,
                                                   "voter": False}
        self.clock.advance(0.5)
        self.assertNoResult(adding)
        row = {r["id"]: r for r in self.membership.list_nodes()}[4]
        self.assertEqual((row["suffrage"], row["connected"], row["lag"]),
                         (NONVOTER, True, self.commands.index - 3))
        self.assertEqual((self.raft.calls, newcomer_raft.calls), ([], []))
        # caught up with the log as it was when the add began: stored a voter, the node
        # rebuilds itself as one, and only then gets the vote
        self.raft.learner_state[D.raft_address]["matchIndex"] = target
        self.clock.advance(0.1)
        self.assertEqual(read_members(self.commands.path)[-1], D)
        self.clock.advance(0)
        self.assertEqual(newcomer_raft.calls, [("restart_as", True, [A.raft_address,
                                                                     B.raft_address,
                                                                     C.raft_address])])
        self.assertEqual(self.raft.calls, [])
        del self.raft.learner_state[D.raft_address]  # its learner connection dropped
        self.clock.pump([0.1] * 6)
        self.assertEqual(self.raft.calls, [("add", D.raft_address)])
        self.assertNoResult(adding)  # a voter now, holding the log
        self.raft.peer_state[D.raft_address] = {"connected": True,
                                                "matchIndex": self.commands.index}
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(adding), "node added")
        self.assertEqual(newcomer.members()[-1], D)
        # the next change is taken
        self.assertEqual(self.successResultOf(run(self.membership.remove_node(4))),
                         "node removed")
        self.assertEqual([m.node_id for m in read_members(self.commands.path)], [1, 2, 3])

    def test_a_new_node_that_never_catches_up_stays_a_nonvoter_and_frees_the_change(
            self) -> None:
        self.seeded()
        adding = run(self.membership.add_node(4, D.raft_address, D.client_address))
        self.clock.pump([0.1] * 60)
        failure = self.failureResultOf(adding, ClusterError)
        self.assertEqual(failure.value.status, 503)
        self.assertIn("did not catch up", failure.value.message)
        self.assertIn("never connected", failure.value.message)
        self.assertEqual(self.raft.calls, [])  # it never counted toward the quorum
        self.assertEqual(read_members(self.commands.path)[-1].suffrage, NONVOTER)
        self.assertIn("promote-node", self.refused(
            self.membership.add_node(4, D.raft_address, D.client_address), 409))
        self.assertEqual(self.successResultOf(run(self.membership.remove_node(4))),
                         "node removed")
        self.assertEqual(self.raft.calls, [])
        self.assertEqual([m.node_id for m in read_members(self.commands.path)], [1, 2, 3])

    def test_raft_refusing_a_change_is_409_and_conflicts_are_named(self) -> None:
        self.seeded()
        self.raft.answer = FAIL_REASON.REQUEST_DENIED
        message = self.refused(self.membership.remove_node(3), 409)
        self.assertIn("another membership change", message)
        self.assertIn("already a member", self.refused(
            self.membership.add_node(2, D.raft_address, D.client_address), 409))
        self.assertIn("already has Raft address", self.refused(
            self.membership.add_node(5, B.raft_address, D.client_address), 409))
        self.assertIn("not a member", self.refused(self.membership.remove_node(9), 404))
        self.assertIn("transfer-leadership", self.refused(self.membership.remove_node(1), 409))
        self.assertIn("transfer-leadership", self.refused(self.membership.demote_node(1), 409))

    def test_a_change_raft_never_confirms_is_503_after_a_while(self) -> None:
        self.seeded()
        self.raft.answer = "wait"
        removing = run(self.membership.remove_node(3))
        self.clock.advance(9)
        self.assertNoResult(removing)
        self.clock.advance(1)
        failure = self.failureResultOf(removing, ClusterError)
        self.assertEqual(failure.value.status, 503)
        self.assertIn("did not confirm", failure.value.message)
        self.assertEqual([m.node_id for m in read_members(self.commands.path)], [1, 2, 3])

    def test_transfer_answers_once_another_node_leads(self) -> None:
        self.seeded()
        transfer = run(self.membership.transfer_leadership())
        self.assertEqual(self.raft.calls, [("transfer",)])
        self.clock.advance(0.1)
        self.assertNoResult(transfer)
        self.commands.leading = (B.raft_address, "2")
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(transfer), "leadership transferred")

    def test_a_transfer_no_node_takes_is_503_and_asked_again_meanwhile(self) -> None:
        self.seeded()
        transfer = run(self.membership.transfer_leadership())
        self.clock.pump([0.1] * 40)
        self.assertIn("still leads", self.failureResultOf(transfer, ClusterError).value.message)
        self.assertGreater(self.raft.calls.count(("transfer",)), 1)

    def test_demote_tells_the_node_first_then_removes_its_vote_and_promote_reverses(
            self) -> None:
        self.seeded()
        target_raft = FakeRaft()
        self.make(C, target_raft)
        self.raft.peer_state[C.raft_address] = {"connected": True, "matchIndex": 0}
        demoting = run(self.membership.demote_node(3))
        # stored first: the node sees it while it still receives the log
        self.assertEqual(read_members(self.commands.path)[2].suffrage, NONVOTER)
        self.assertEqual(self.raft.calls, [])
        self.clock.advance(0)  # the node's own restart, after the apply
        self.assertEqual(target_raft.calls, [("restart_as", False, [A.raft_address,
                                                                     B.raft_address])])
        self.raft.peer_state[C.raft_address]["matchIndex"] = 99
        self.clock.pump([0.1] * 10)
        self.assertEqual(self.successResultOf(demoting), "node demoted to non-voter")
        self.assertEqual(self.raft.calls[-1], ("rem", C.raft_address))
        self.assertIn("already a non-voter", self.refused(self.membership.demote_node(3), 409))

        self.raft.calls.clear()
        promoting = run(self.membership.promote_node(3))
        self.assertEqual(read_members(self.commands.path)[2].suffrage, VOTER)
        self.clock.advance(0)
        self.assertEqual(target_raft.calls[-1], ("restart_as", True, [A.raft_address,
                                                                       B.raft_address]))
        self.assertEqual(self.raft.calls, [])  # added once it had time to rebuild
        self.clock.pump([0.1] * 10)
        self.assertEqual(self.raft.calls[-1], ("add", C.raft_address))
        self.raft.peer_state[C.raft_address]["matchIndex"] = 99
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(promoting), "node promoted to voter")

    def test_reset_raft_deletes_the_raft_files_and_exits_only_after_the_answer(self) -> None:
        base = self.mktemp()
        os.makedirs(base)
        self.raft.raft_files = [os.path.join(base, name)
                                for name in ("raft.journal", "raft.journal.meta", "gone")]
        for path in self.raft.raft_files[:2]:
            open(path, "w").close()
        answered: Deferred = Deferred()
        self.assertEqual(self.membership.reset_raft(answered), "raft reset")
        self.clock.advance(1)
        self.assertEqual(self.ends, [])
        answered.callback(None)
        self.clock.advance(0)
        [(status, wipe)] = self.ends  # the node stops, wipes, then exits with status
        self.assertEqual(status, RESET_EXIT_STATUS)
        self.assertNotEqual(RESET_EXIT_STATUS, 0)
        self.assertTrue(os.path.exists(self.raft.raft_files[0]))
        wipe()
        self.assertFalse(any(os.path.exists(p) for p in self.raft.raft_files))

    def test_force_rebuild_only_on_the_seed_after_a_loss_of_quorum(self) -> None:
        self.seeded()
        survivor = self.make(B)
        self.assertIn("send it to node 3 (http://10.0.0.3:9090)",
                      self.refused(survivor.force_rebuild(3), 400))
        self.raft.peer_state = {A.raft_address: {"connected": True},
                                C.raft_address: {"connected": False}}
        self.assertIn("still has a quorum", self.refused(survivor.force_rebuild(2), 409))
        self.raft.peer_state[A.raft_address]["connected"] = False
        self.commands.leading = None
        rebuilding = run(survivor.force_rebuild(2))
        self.assertEqual(self.raft.calls, [("rebuild",)])
        self.assertNoResult(rebuilding)
        self.commands.leading = (B.raft_address, "2")  # it elected itself
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(rebuilding), "rebuild initiated")
        self.assertEqual(read_members(self.commands.path), [B])
        self.assertEqual(self.raft.calls[-1], ("compact",))

    def test_list_nodes_says_what_the_leader_knows_of_each(self) -> None:
        self.seeded()
        self.raft.peer_state = {B.raft_address: {"connected": True, "matchIndex": 7,
                                                 "lastResponse": 0.012},
                                C.raft_address: {"connected": False, "matchIndex": 2,
                                                 "lastResponse": 4.0}}
        rows = {row["id"]: row for row in self.membership.list_nodes()}
        self.assertEqual(rows[1], {"id": 1, "address": A.raft_address, "isLeader": True,
                                   "suffrage": VOTER, "clientAddress": A.client_address,
                                   "self": True, "connected": True, "lastContact": "0",
                                   "matchIndex": 11, "lag": 0})
        self.assertEqual((rows[2]["lag"], rows[2]["lastContact"], rows[2]["connected"]),
                         (4, "12ms", True))
        self.assertEqual((rows[3]["lag"], rows[3]["connected"]), (9, False))

    def test_add_self_and_remove_self_ask_the_leader(self) -> None:
        self.seeded()
        asked: list[str] = []
        answers = {"http://10.0.0.1:9090": (200, "ok"), "http://10.0.0.2:9090": (403, "no")}

        async def call_peer(url: str) -> tuple[int, str]:
            asked.append(url)
            return answers[url.split("/api/")[0]]
        self.commands.leading = None  # node 4 is no member: it hears of no leader
        newcomer = self.make(D, call_peer=call_peer)
        self.assertEqual(self.successResultOf(run(newcomer.add_self())), "added")
        self.assertEqual(asked, ["http://10.0.0.1:9090/api/v1/cluster/add-node?nodeId=4&"
                                 "nodeAddress=10.0.0.4%3A7070&clientAddress="
                                 "http%3A%2F%2F10.0.0.4%3A9090"])
        self.commands.leading = (A.raft_address, "1")
        self.assertIn("already a member", self.refused(newcomer.add_self(), 409))
        # a learner (JoinCluster: true) hears of the leader before it is listed: it asks
        asked.clear()
        learner_raft = FakeRaft()
        learner_raft.voter = False
        learner = self.make(Member(5, "10.0.0.5:7070", "http://10.0.0.5:9090"), learner_raft,
                            call_peer=call_peer)
        self.assertEqual(self.successResultOf(run(learner.add_self())), "added")
        self.assertEqual(len(asked), 1)
        asked.clear()
        follower = self.make(B, call_peer=call_peer)
        self.assertEqual(self.successResultOf(run(follower.remove_self())), "removed")
        self.assertEqual(asked, ["http://10.0.0.1:9090/api/v1/cluster/remove-node?nodeId=2"])
        self.assertIn("transfer-leadership", self.refused(self.membership.remove_self(), 409))

    def test_a_single_node_lists_itself_and_has_no_membership_to_change(self) -> None:
        alone = ClusterMembership(MemberList(self.commands, None, self.clock,
                                             self.commands.path, A, []))
        self.assertEqual([row["id"] for row in alone.list_nodes()], [1])
        for call in (alone.add_node(4, D.raft_address, D.client_address), alone.add_self(),
                     alone.remove_self(), alone.force_rebuild(1)):
            self.assertIn("runs alone", self.refused(call, 409))


class MemberListStateTests(SynchronousTestCase):
    def test_the_migration_adds_the_table_and_the_applier_checks_the_list(self) -> None:
        self.assertGreaterEqual(SCHEMA_VERSION, 5)
        self.assertEqual(MIGRATIONS[4].new_tables, ("cluster_members",))
        conn = sqlite3.connect(":memory:")
        conn.executescript(SCHEMA)
        for members, status in (([{**A.to_payload(), "suffrage": NONVOTER}], 409),
                                ([{**A.to_payload(), "suffrage": "Observer"}], 400),
                                ([{**A.to_payload(), "node_id": 0}], 400),
                                ([A.to_payload(), A.to_payload()], 409)):
            with conn:
                result = apply_command(conn, issue(SetMembers(members), 0))
            self.assertEqual((result["ok"], result["status"]), (False, status), result)
        with conn:
            self.assertTrue(apply_command(conn, issue(SetMembers(
                [A.to_payload(), {**B.to_payload(), "suffrage": NONVOTER}]), 0))["ok"])
        rows = conn.execute("SELECT node_id, suffrage FROM cluster_members").fetchall()
        self.assertEqual(rows, [(1, VOTER), (2, NONVOTER)])


class ClusterRoutesTests(SynchronousTestCase):
    """A single in-process node: the routes, their auth and their 400s."""

    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.h.headers = peer_headers("peer")

    def test_peer_basic_auth_only(self) -> None:
        code, envelope = self.h.request("GET", "/cluster/list-nodes", headers={})
        self.assertEqual(code, 401, envelope)
        admin = key_headers(self.h.credential(["read", "write", "execute", "admin"]))
        for method, path in (("GET", "/cluster/list-nodes"), ("POST", "/cluster/reset-raft"),
                             ("GET", "/cluster/dump/schedule-queue")):
            code, envelope = self.h.request(method, path, headers=admin)
            self.assertEqual(code, 403, envelope)
            self.assertIn("X-Peer", envelope["data"])
        rows = self.h.ok("GET", "/cluster/list-nodes")
        self.assertEqual([(r["id"], r["suffrage"], r["self"]) for r in rows],
                         [(1, VOTER, True)])

    def test_a_bad_query_is_400_saying_what_to_fix(self) -> None:
        for path, words in (("add-node", "nodeId: required"),
                            ("add-node?nodeId=two&nodeAddress=a:1&clientAddress=a:2",
                             "is not a node id"),
                            ("add-node?nodeId=2&nodeAddress=a:99999&clientAddress=a:2",
                             "nodeAddress"),
                            ("add-node?nodeId=2&nodeAddress=a:1&clientAddress=ftp://a",
                             "clientAddress"),
                            ("remove-node?nodeId=0", "nodeId"),
                            ("promote-node", "nodeId: required"),
                            ("force-rebuild?seedNodeId=-1", "seedNodeId")):
            code, envelope = self.h.request("POST", "/cluster/" + path)
            self.assertEqual(code, 400, (path, envelope))
            self.assertIn(words, envelope["data"], path)
        # a good one on a single node: nothing to change
        code, envelope = self.h.request(
            "POST", "/cluster/add-node?nodeId=2&nodeAddress=10.0.0.2:7070"
                    "&clientAddress=10.0.0.2:9090")
        self.assertEqual(code, 409, envelope)
        self.assertIn("Replicas is empty", envelope["data"])

    def test_the_dumps(self) -> None:
        project = self.h.project()
        job = self.h.ok("POST", "/jobs", {"projectId": project["id"], "spec": "0 0 1 1 *",
                                          "timezone": "UTC",
                                          "callbackUrl": "http://127.0.0.1:9/cb"},
                        expect=201)
        self.h.node.scheduler.startService()
        self.addCleanup(self.h.node.scheduler.stopService)
        self.h.clock.advance(1)
        queue = self.h.ok("GET", "/cluster/dump/schedule-queue")
        self.assertEqual((queue["total"], queue["items"][0]["jobId"]), (1, job["id"]))
        self.assertTrue(queue["items"][0]["nextFire"].endswith("Z"))
        cache = self.h.ok("GET", "/cluster/dump/job-executions-cache")
        self.assertEqual(list(cache["jobs"]), [str(job["id"])])
        # a single node's one queue: every bucket of jobs
        [queue] = self.h.ok("GET", "/cluster/dump/job-queues")
        self.assertEqual((queue["nodeId"], queue["buckets"], queue["bucketIds"][:3]),
                         (1, 256, [0, 1, 2]))
        [version] = self.h.ok("GET", "/cluster/dump/job-queue-versions")
        self.assertEqual((version["numberOfActiveNodes"], version["shares"]), (1, {"1": 256}))


class RaftStartupTests(SynchronousTestCase):
    """What the Raft log starts with: the replicated member list over C{Replicas}."""

    def log_for(self, node_id: str, members: list[Member], join: bool = False) -> Any:
        from scheduler0.consensus.raft import RaftCommandLog, RaftSettings
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        path = os.path.join(data_dir, "db.sqlite")
        conn = sqlite3.connect(path)
        conn.executescript(SCHEMA)
        with conn:
            if members:
                apply_command(conn, issue(SetMembers([m.to_payload() for m in members]), 0))
        conn.close()
        own = {"1": A, "2": B, "3": C, "4": D}[node_id]
        settings = RaftSettings(
            self_address=own.raft_address,
            partners=tuple(m.raft_address for m in (A, B, C) if m != own),
            node_ids={}, data_dir=data_dir, password="p", node_id=node_id,
            join=join)
        return RaftCommandLog(path, Clock(), settings, threaded=False)

    def test_replicas_until_a_list_is_stored(self) -> None:
        raft = self.log_for("1", [])
        self.assertEqual(raft._startup_membership(), (A.raft_address,
                                                      [B.raft_address, C.raft_address]))

    def test_the_stored_list_wins_and_a_nonvoter_starts_without_a_vote(self) -> None:
        members = [A, B, attrs_evolve(C, NONVOTER), D]
        self.assertEqual(self.log_for("1", members)._startup_membership(),
                         (A.raft_address, [B.raft_address, D.raft_address]))
        raft = self.log_for("3", members)
        self.assertEqual(raft._startup_membership(),
                         (None, [A.raft_address, B.raft_address, D.raft_address]))
        self.assertEqual(raft._node_ids[D.raft_address], "4")

    def test_a_node_that_joins_starts_as_a_learner_until_listed_a_voter(
            self) -> None:
        # an empty DataDir: it replicates from Replicas' voters without a vote
        self.assertEqual(self.log_for("4", [], join=True)._startup_membership(),
                         (None, [A.raft_address, B.raft_address, C.raft_address]))
        # restarted before the leader listed it: still a learner, of the listed voters
        self.assertEqual(self.log_for("4", [A, B], join=True)._startup_membership(),
                         (None, [A.raft_address, B.raft_address]))
        # listed a voter (it was promoted): it votes, whatever JoinCluster says
        self.assertEqual(
            self.log_for("4", [A, B, C, D], join=True)._startup_membership(),
            (D.raft_address, [A.raft_address, B.raft_address, C.raft_address]))

    def test_a_snapshot_never_records_a_nonvoter_as_a_member(self) -> None:
        raft = self.log_for("1", [])
        seen: list[Any] = []
        raft._snapshots.serialize = lambda name, data: seen.append(data)
        raft._serialize("f", ("last", "prev", {None, "node"}))
        self.assertEqual(seen, [("last", "prev", {"node"})])


def attrs_evolve(member: Member, suffrage: str) -> Member:
    return Member(member.node_id, member.raft_address, member.client_address, suffrage)
