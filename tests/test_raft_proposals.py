"""
How C{RaftCommandLog.submit} treats what PySyncObj reports (issue 12 item 8), on a Clock with
a stand-in for the PySyncObj object: results matched by command id whoever proposed the
entry, failure codes taken as "unknown, re-check" (proposed again; a duplicate entry changes
nothing), every proposal bounded in time, and a bounded number in flight.
"""

from __future__ import annotations

from typing import Any, Callable

from pysyncobj import FAIL_REASON
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.interface import NotAccepting
from scheduler0.consensus.raft import (RECHECK_AFTER, REPROPOSE_DELAY, RaftCommandLog,
                                       RaftSettings)
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import connect
from scheduler0.store.service import StoreService

from .test_raft_log import project, projects


class StandIn:
    """What RaftCommandLog uses of PySyncObj: a leader or not, and proposals."""

    def __init__(self) -> None:
        self.leader: str | None = "127.0.0.1:7071"
        self.proposals: list[tuple[str, Callable[[Any, int], None]]] = []

    def leader_node(self) -> str | None:
        return self.leader

    def apply_command(self, payload: str, callback: Callable[[Any, int], None]) -> None:
        self.proposals.append((payload, callback))


class ProposalTests(SynchronousTestCase):
    def setUp(self) -> None:
        store = StoreService(self.mktemp())
        store.open()
        store.stopService()
        self.path = store.path
        self.clock = Clock()
        settings = RaftSettings(self_address="127.0.0.1:7071", partners=("127.0.0.1:7072",),
                                node_ids={}, data_dir=".", password="p", apply_timeout=5,
                                max_in_flight=2)
        self.log = RaftCommandLog(self.path, self.clock, settings, threaded=False)
        self.log.applier.start()
        self.addCleanup(self.log.applier.stop)
        self.node = StandIn()
        self.log._node = self.node  # type: ignore[assignment]
        self.log.running = True
        self.index = 1

    def commit(self, payload: str) -> None:
        """The entry is committed and PySyncObj applies it here."""
        self.index += 1
        self.log._on_entry(payload, self.index)

    def test_a_failure_code_is_not_proof_the_command_is_proposed_again(self) -> None:
        d = self.log.submit(project(1))
        (payload, callback), = self.node.proposals
        callback(None, FAIL_REASON.LEADER_CHANGED)
        self.assertNoResult(d)
        self.clock.advance(REPROPOSE_DELAY)
        self.assertEqual([p for p, _ in self.node.proposals], [payload, payload])
        # it had been committed after all, and so is the second proposal: one project
        self.commit(payload)
        self.assertEqual(self.successResultOf(d), {"ok": True, "id": 1})
        self.commit(payload)
        self.assertEqual(projects(self.path), ["p1"])
        self.assertEqual(self.log.in_flight, 0)

    def test_the_answer_is_this_nodes_applied_result_whoever_proposed_it(self) -> None:
        d = self.log.submit(project(1))
        self.node.proposals.clear()
        # the entry arrives through the log (a lost callback: PySyncObj never answers)
        self.commit(project(1).to_json())
        self.assertEqual(self.successResultOf(d), {"ok": True, "id": 1})

    def test_a_proposal_never_applied_times_out_and_is_forgotten(self) -> None:
        d = self.log.submit(project(1))
        self.clock.advance(5)
        self.failureResultOf(d, DeferredTimeout)
        self.assertEqual(self.log.in_flight, 0)

    def test_while_the_leader_is_lost_a_retry_waits_for_a_new_one(self) -> None:
        d = self.log.submit(project(1))
        (payload, callback), = self.node.proposals
        self.node.leader = None
        callback(None, FAIL_REASON.NOT_LEADER)
        self.clock.advance(REPROPOSE_DELAY * 10)
        self.assertEqual(len(self.node.proposals), 1)
        self.node.leader = "127.0.0.1:7072"
        self.clock.advance(REPROPOSE_DELAY)
        self.assertEqual(len(self.node.proposals), 2)
        self.commit(payload)
        self.assertTrue(self.successResultOf(d)["ok"])

    def test_in_flight_proposals_are_bounded(self) -> None:
        self.log.submit(project(1))
        self.log.submit(project(2))
        failure = self.failureResultOf(self.log.submit(project(3)), NotAccepting)
        self.assertIn("too many writes", str(failure.value))
        self.assertEqual(len(self.node.proposals), 2)

    def test_without_a_leader_submit_fails_at_once(self) -> None:
        self.node.leader = None
        self.failureResultOf(self.log.submit(project(1)), NotAccepting)
        self.assertEqual(self.node.proposals, [])

    def test_a_lost_callback_is_rechecked_and_the_command_proposed_again(self) -> None:
        d = self.log.submit(project(1))
        (payload, _), = self.node.proposals  # PySyncObj never calls back
        self.clock.advance(RECHECK_AFTER)
        self.assertEqual([p for p, _ in self.node.proposals], [payload, payload])
        self.commit(payload)
        self.assertTrue(self.successResultOf(d)["ok"])
        self.clock.advance(RECHECK_AFTER)  # answered: nothing more is proposed
        self.assertEqual(len(self.node.proposals), 2)

    def test_a_command_a_snapshot_brought_is_answered_from_the_database(self) -> None:
        d = self.log.submit(project(1))
        # its entry never reaches this node's applier: a snapshot holding it replaced the
        # database (written here directly, as the snapshot's restore would have)
        conn = connect(self.path)
        apply_batch(conn, [project(1)])
        conn.close()
        self.clock.advance(RECHECK_AFTER)
        self.assertEqual(self.successResultOf(d), {"ok": True, "id": 1})
        self.assertEqual(len(self.node.proposals), 1)  # not proposed again



class StateObserverTests(SynchronousTestCase):
    def test_a_raft_state_change_is_told_after_the_tick(self) -> None:
        """A leadership change is acted on at once (not at the gate's next poll), but
        outside PySyncObj's tick: stopping an executor or planning every job in it would
        stall Raft."""
        clock = Clock()
        settings = RaftSettings(self_address="127.0.0.1:7071", partners=(), node_ids={},
                                data_dir=".", password="p")
        log = RaftCommandLog(self.mktemp(), clock, settings, threaded=False)
        told: list[str] = []
        log.add_state_observer(lambda: told.append("changed"))
        log._state_changed(2, 0)  # leader -> follower, as PySyncObj calls it in its tick
        self.assertEqual(told, [])
        clock.advance(0)
        self.assertEqual(told, ["changed"])
