"""
Which node executes which job (scheduler0.consensus.ownership): the assignment of job
buckets, how the leader keeps it fitted to the live nodes, how a node follows it, and what
its recovery takes over. Clock-driven, with fake Raft logs; the assignment's applier on a
real sqlite file.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.leadership import LeadershipGate
from scheduler0.consensus.ownership import (
    BUCKETS, Assignment, Liveness, OwnerCheck, Ownership, Rebalancer, rebalance)
from scheduler0.domain import DeliveryRecord
from scheduler0.execution.recovery import RecoveryService
from scheduler0.state.commands import issue
from scheduler0.state.machine import apply_command
from scheduler0.state.payloads import AssignJobs
from scheduler0.store.database import connect, ensure_schema
from scheduler0.store.reads.scheduler import ScheduleReader

nodes = st.sets(st.integers(1, 9), min_size=1, max_size=9)


def moved(before: tuple[int, ...], after: tuple[int, ...]) -> int:
    return sum(1 for a, b in zip(before, after) if a != b)


class RebalanceTests(SynchronousTestCase):
    @given(nodes, nodes)
    def test_even_and_as_few_moves_as_the_change_needs(self, first: set, second: set) -> None:
        before = rebalance(None, first)
        after = rebalance(before, second)
        shares = Assignment(2, after).shares()
        self.assertEqual(set(shares), second)  # every executor owns some, no one else any
        self.assertLessEqual(max(shares.values()) - min(shares.values()), 1)
        # what must move: the buckets of nodes that left, and those over the new quota
        quota = -(-BUCKETS // len(second))  # the larger quota
        held = Assignment(1, before).shares()
        must = sum(count for node, count in held.items() if node not in second)
        must += sum(max(0, count - quota) for node, count in held.items() if node in second)
        self.assertLessEqual(moved(before, after), must + len(second))
        self.assertEqual(rebalance(after, second), after)  # fitted: nothing moves

    def test_one_of_three_dies_then_comes_back(self) -> None:
        two = rebalance(None, [2, 3])
        self.assertEqual(Assignment(1, two).shares(), {2: 128, 3: 128})
        alone = rebalance(two, [3])
        self.assertEqual(moved(two, alone), 128)  # only the dead node's buckets move
        back = rebalance(alone, [2, 3])
        self.assertEqual(moved(alone, back), 128)
        # no node more than 10 % above the mean, with 2 to 25 executing nodes
        for count in range(2, 26):
            shares = Assignment(1, rebalance(None, range(1, count + 1))).shares()
            self.assertLessEqual(max(shares.values()), 1.1 * BUCKETS / count)


class AssignmentStateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.conn = connect(self.mktemp() + ".db")
        ensure_schema(self.conn)
        self.addCleanup(self.conn.close)

    def apply(self, version: int, owners: Any) -> dict:
        return apply_command(self.conn, issue(AssignJobs(revision=version, owners=owners), 0))

    def test_stored_from_the_previous_version_only(self) -> None:
        reader = ScheduleReader(self.conn)
        self.assertIsNone(reader.job_assignment())
        self.assertTrue(self.apply(1, [2, 3] * 128)["ok"])
        stale = self.apply(1, [3] * 256)  # a deposed leader's proposal
        self.assertEqual((stale["ok"], stale["status"]), (False, 409))
        self.assertIn("version 1", stale["error"])
        self.assertEqual(self.apply(2, [2] * 3)["status"], 400)
        self.assertEqual(reader.job_assignment(), Assignment(1, [2, 3] * 128))


class FakeRaft:
    """The parts of a Raft log ownership looks at; the test sets them."""

    def __init__(self) -> None:
        self.leader_id: str | None = "1"
        self.state = "Follower"
        self.applied = self.commit = 0
        self.leader_commit: int | None = 0
        self.contact = "0ms"
        self.connected: dict[str, bool] = {}
        self.ages: dict[str, float] = {}
        self.submitted: list[Any] = []
        self.answer: Any = {"ok": True}

    def leader(self) -> tuple[str, str] | None:
        return None if self.leader_id is None else ("127.0.0.1:7001", self.leader_id)

    def status(self) -> dict[str, str]:
        return {"state": self.state, "applied_index": str(self.applied),
                "commit_index": str(self.commit), "last_contact": self.contact}

    def leader_commit_index(self) -> int | None:
        return self.leader_commit

    def peers(self) -> dict[str, dict[str, Any]]:
        return {address: {"connected": up, "lastResponse": self.ages.get(address)}
                for address, up in self.connected.items()}

    def submit(self, command: Any) -> Deferred:
        self.submitted.append(command)
        return self.answer if isinstance(self.answer, Deferred) else succeed(self.answer)


class OwnershipTests(SynchronousTestCase):
    def test_a_node_owns_its_buckets_jobs_and_hears_of_changes(self) -> None:
        stored = Assignment(1, [2, 3] * 128)
        ownership = Ownership(2, clustered=True, load=lambda: stored)
        changes: list[frozenset] = []
        ownership.watch(lambda: changes.append(ownership.buckets))
        self.assertEqual([ownership.owns(j) for j in (256, 257, 258)], [True, False, True])
        command = issue(AssignJobs(revision=2, owners=[3] * 256), 0)
        ownership.observe(command, {"ok": False})  # refused: nothing changes
        self.assertEqual(changes, [])
        ownership.observe(command, {"ok": True})
        self.assertEqual(changes, [frozenset()])
        self.assertFalse(ownership.executing())
        ownership.observe(issue(AssignJobs(revision=3, owners=[3] * 256), 0), {"ok": True})
        self.assertEqual(len(changes), 1)  # the same share again: no news
        # a second copy of an older proposal (Raft carried it twice) changes nothing
        ownership.observe(command, {"ok": True})
        ownership.observe(issue(AssignJobs(revision=1, owners=[2] * 256), 0), {"ok": True})
        self.assertEqual((ownership.assignment.version, len(changes)), (3, 1))

    def test_a_single_node_owns_everything(self) -> None:
        ownership = Ownership(1, clustered=False, load=lambda: None)
        self.assertTrue(ownership.owns(12345) and ownership.executing())


class OwnerCheckTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.raft = FakeRaft()
        self.ownership = Ownership(2, clustered=True,
                                   load=lambda: Assignment(1, [2, 3] * 128))
        self.check = OwnerCheck(self.raft, self.ownership, timeout=3.5)

    def test_a_restarted_node_waits_to_catch_up_with_a_leader(self) -> None:
        self.raft.leader_id = None
        self.assertFalse(self.check())  # its stale store says it owns jobs
        # a leader is named, but not heard from yet: its commit index is not known
        self.raft.leader_id, self.raft.contact, self.raft.leader_commit = "1", "never", None
        self.assertFalse(self.check())
        self.raft.contact = "0ms"
        self.assertFalse(self.check())
        # heard from: the leader has committed up to 40; this node's own commit index is
        # capped by its log, which holds only up to 10 so far
        self.raft.leader_commit, self.raft.commit, self.raft.applied = 40, 10, 10
        self.assertFalse(self.check())
        self.raft.commit, self.raft.applied = 40, 39
        self.assertFalse(self.check())
        self.raft.applied = 40
        self.assertTrue(self.check())
        self.raft.leader_id = None  # an election: it goes on executing its share
        self.assertTrue(self.check())

    def test_a_node_the_leader_has_not_heard_from_stops(self) -> None:
        self.raft.commit = self.raft.applied = 5
        self.assertTrue(self.check())
        self.raft.contact = "3600ms"  # past RaftTransportTimeout: the leader moves its jobs
        self.assertFalse(self.check())
        self.raft.contact = "never"
        self.assertFalse(self.check())
        self.raft.state = "Leader"  # a leader alone executes its own share
        self.assertTrue(self.check())


class Member:
    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.raft_address = f"127.0.0.1:700{node_id}"


class RebalancerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.raft = FakeRaft()
        self.raft.state = "Leader"
        self.assignment: Assignment | None = None
        self.ownership = Ownership(1, clustered=True, load=lambda: self.assignment)
        self.rebalancer = Rebalancer(
            self.clock, self.raft, lambda: [Member(1), Member(2), Member(3)], self.ownership,
            Liveness(self.clock, self.raft.peers, timeout=3.5), node_id=1)

    def applied(self) -> Assignment:
        """Apply the last proposal (as the log would) and return it."""
        payload = self.raft.submitted[-1].payload
        self.ownership.observe(self.raft.submitted[-1], {"ok": True})
        return Assignment(payload.revision, payload.owners)

    def test_the_leader_spreads_the_jobs_over_the_live_followers_only(self) -> None:
        self.raft.connected = {"127.0.0.1:7002": True, "127.0.0.1:7003": True}
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        first = self.applied()
        self.assertEqual((first.version, first.shares()), (1, {2: 128, 3: 128}))
        self.clock.advance(0.5)
        self.assertEqual(len(self.raft.submitted), 1)  # fitted: nothing proposed
        # node 3 goes silent: its share moves once RaftTransportTimeout has passed
        self.raft.connected["127.0.0.1:7003"] = False
        self.clock.pump([0.5] * 6)
        self.assertEqual(len(self.raft.submitted), 1)
        self.clock.pump([0.5] * 2)
        second = self.applied()
        self.assertEqual((second.version, second.shares()), (2, {2: 256}))
        # it comes back: half of the buckets go back to it
        self.raft.connected["127.0.0.1:7003"] = True
        self.clock.advance(0.5)
        self.assertEqual(self.applied().shares(), {2: 128, 3: 128})

    def test_a_new_cluster_waits_for_its_members_before_the_first_assignment(self) -> None:
        # a share given to the first follower heard from and moved a moment later would be
        # executed by both for the slots due in between
        self.raft.connected = {"127.0.0.1:7002": True}
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        self.clock.pump([0.5] * 2)
        self.assertEqual(self.raft.submitted, [])
        self.raft.connected["127.0.0.1:7003"] = True
        self.clock.advance(0.5)
        self.assertEqual(self.applied().shares(), {2: 128, 3: 128})

    def test_a_member_that_never_comes_is_waited_for_only_a_while(self) -> None:
        self.raft.connected = {"127.0.0.1:7002": True}
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        self.clock.pump([0.5] * 3)
        self.assertEqual(self.raft.submitted, [])
        self.clock.advance(0.5)  # FIRST_ASSIGNMENT_WAIT has passed
        self.assertEqual(self.applied().shares(), {2: 256})

    def test_a_stopped_process_keeps_its_connection_but_stops_answering(self) -> None:
        """SIGSTOP leaves the TCP connection up: the last answer's age tells."""
        self.raft.connected = {"127.0.0.1:7002": True, "127.0.0.1:7003": True}
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        self.assertEqual(self.applied().shares(), {2: 128, 3: 128})
        self.raft.ages["127.0.0.1:7003"] = 3.6
        self.clock.advance(0.5)
        self.assertEqual(self.applied().shares(), {2: 256})

    def test_a_new_leader_keeps_silent_owners_a_while_and_gives_the_old_leader_nothing(
            self) -> None:
        # node 2 led; nodes 1 and 3 owned the jobs; node 1 leads now and sees only node 3
        self.assignment = Assignment(4, [1, 3] * 128)
        self.ownership.reload()
        self.raft.connected = {"127.0.0.1:7003": True}
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        after = self.applied()
        self.assertEqual((after.version, after.shares()), (5, {3: 256}))

    def test_alone_the_leader_owns_everything_and_one_proposal_at_a_time(self) -> None:
        self.raft.answer = Deferred()
        self.rebalancer.startService()
        self.addCleanup(self.rebalancer.stopService)
        self.clock.pump([0.5] * 10)
        self.assertEqual(len(self.raft.submitted), 1)  # the first is not answered yet
        payload = self.raft.submitted[0].payload
        self.assertEqual(set(payload.owners), {1})
        self.raft.answer.callback({"ok": False, "error": "stale"})
        self.raft.answer = {"ok": True}
        self.clock.advance(0.5)
        self.assertEqual(len(self.raft.submitted), 2)  # looks again


class Fake(Service):
    def __init__(self, name: str, events: list) -> None:
        self.setName(name)
        self.events = events

    def startService(self) -> None:
        Service.startService(self)
        self.events.append(("start", self.name))

    def stopService(self) -> None:
        Service.stopService(self)
        self.events.append(("stop", self.name))


class GateRestartTests(SynchronousTestCase):
    def test_a_changed_share_stops_and_starts_the_execution_services(self) -> None:
        clock, events, owning = Clock(), [], [True]
        gate = LeadershipGate(clock, lambda: owning[0], losing=lambda: events.append("lose"))
        Fake("scheduler", events).setServiceParent(gate)
        Fake("recovery", events).setServiceParent(gate)
        gate.startService()
        self.addCleanup(gate.stopService)
        del events[:]
        gate.restart()
        self.assertEqual(events, ["lose", ("stop", "recovery"), ("stop", "scheduler"),
                                  ("start", "scheduler"), ("start", "recovery")])
        owning[0] = False
        del events[:]
        gate.restart()  # it owns nothing now: stopped, not started again
        self.assertEqual(events, ["lose", ("stop", "recovery"), ("stop", "scheduler")])
        self.assertFalse(gate.executing)


class Executor:
    def __init__(self) -> None:
        self.redelivered: list[tuple[list[str], str, list[str]]] = []

    def redeliver(self, occurrences: list, replaces: str, dropped: list = ()) -> None:
        self.redelivered.append(([o.execution_id for o in occurrences], replaces,
                                 list(dropped)))

    def submit(self, occurrences: list) -> None:
        pass


class Plan:
    def __init__(self, job_id: int) -> None:
        self.job_id, self.project_id = job_id, 1
        self.callback_url, self.target, self.payload = "http://h/cb", "http://h", {}


class RecoveryTakeOverTests(SynchronousTestCase):
    def test_a_new_owner_takes_over_only_its_jobs_from_nodes_that_cannot_finish_them(
            self) -> None:
        at = "2026-12-01T00:00:00.000Z"

        def entry(delivery_id: str, node_id: int, *jobs: int) -> DeliveryRecord:
            return DeliveryRecord(delivery_id, node_id, 1, "http://h", at,
                                  [[f"e{j}", j, at, 1] for j in jobs])

        outbox = [entry("dead-node", 4, 2, 3, 258), entry("live-owner", 3, 2, 5),
                  entry("mine", 2, 260, 7)]
        executor = Executor()
        recovery = RecoveryService(
            Clock(), list, lambda: {2: Plan(2), 258: Plan(258), 260: Plan(260)}, executor,
            outbox=lambda: outbox, owns=lambda job_id: job_id % 2 == 0,
            finishes_its_own=lambda node_id: node_id == 3)
        recovery.startService()
        # the dead node's POST: jobs 2 and 258 are this node's (3 is another owner's);
        # the live owner finishes its own; this node's own entry: 260 (7 is not its own)
        self.assertEqual(executor.redelivered, [(["e2", "e258"], "dead-node", []),
                                                (["e260"], "mine", [])])

