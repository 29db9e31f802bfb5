"""
The leadership gate (scheduler0.consensus.leadership): in a cluster only the Raft leader
runs the execution services; they start as a group when the node becomes leader (once it
has applied what its log held) and stop when it no longer is. A single node always
executes. Driven by a Clock and a fake command log.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.leadership import (POLL_INTERVAL, ClusterRole, LeaderCheck,
                                             LeadershipGate)
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.domain import SupervisorHalt
from scheduler0.operability.supervisor import HALTED, RUNNING, STANDBY, Supervisor
from scheduler0.schedule.occurrence import execution_id
from scheduler0.schedule.service import SchedulerService
from scheduler0.store.service import StoreService
from scheduler0.state.commands import issue
from scheduler0.state.payloads import SetSupervisor

from .ops import AUTH, Ops
from .records import job_of
from .scheduler_harness import T0, Harness, iso, job


class FakeLog:
    """A command log whose leader and indexes the test sets."""

    def __init__(self) -> None:
        self.leader_id: str | None = None
        self.applied = 0
        self.last = 0

    def leader(self) -> tuple[str, str] | None:
        if self.leader_id is None:
            return None
        return (f"127.0.0.1:700{self.leader_id}", self.leader_id)

    def status(self) -> dict[str, str]:
        return {"applied_index": str(self.applied), "last_log_index": str(self.last),
                "commit_index": str(self.applied)}


class Part(Service):
    """An execution service that records its starts and stops; its stop may wait."""

    def __init__(self, name: str, events: list[tuple[str, str]]) -> None:
        self.setName(name)
        self.events = events
        self.stopping: Deferred | None = None

    def startService(self) -> None:
        Service.startService(self)
        self.events.append(("start", self.name))

    def stopService(self) -> Any:
        Service.stopService(self)
        self.events.append(("stop", self.name))
        return self.stopping


class Gate:
    """A gate over the fake log (as node 1) with four recording parts, on a Clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.log = FakeLog()
        self.events: list[tuple[str, str]] = []
        self.gate = LeadershipGate(
            self.clock, LeaderCheck(self.log, "1"),
            before_start=lambda: self.events.append(("before", "start")),
            after_stop=lambda: self.events.append(("after", "stop")),
            losing=lambda: self.events.append(("losing", "leadership")))
        self.parts = [Part(name, self.events) for name in
                      ("executor", "scheduler", "recovery", "retention")]
        for part in self.parts:
            part.setServiceParent(self.gate)

    def lead(self, node_id: str | None) -> None:
        self.log.leader_id = node_id
        self.clock.advance(POLL_INTERVAL)


class GateTests(SynchronousTestCase):
    def test_a_follower_runs_nothing_and_a_new_leader_starts_the_parts_in_order(self) -> None:
        g = Gate()
        g.log.leader_id = "2"
        g.gate.startService()
        g.clock.advance(5)
        self.assertEqual(g.events, [])
        self.assertFalse(g.gate.executing)
        self.assertEqual(g.gate.role, "follower")
        g.lead("1")
        self.assertEqual(g.events, [("before", "start"), ("start", "executor"),
                                    ("start", "scheduler"), ("start", "recovery"),
                                    ("start", "retention")])
        self.assertTrue(g.gate.executing)
        self.assertEqual(g.gate.role, "leader")

    def test_a_new_leader_waits_until_it_applied_what_its_log_held(self) -> None:
        """Planning from a store behind the log would repeat or miss the old leader's
        last slots: the parts start only once every entry it held is applied."""
        g = Gate()
        g.gate.startService()
        g.log.applied, g.log.last = 40, 45
        g.lead("1")
        self.assertEqual(g.events, [])
        g.log.applied = 44
        g.log.last = 60  # entries proposed since it became leader do not count
        g.clock.advance(POLL_INTERVAL)
        self.assertEqual(g.events, [])
        g.log.applied = 45
        g.clock.advance(POLL_INTERVAL)
        self.assertEqual(g.events[1], ("start", "executor"))

    def test_losing_leadership_stops_the_parts_in_reverse_one_after_the_other(self) -> None:
        g = Gate()
        g.log.leader_id = "1"
        g.gate.startService()
        del g.events[:]
        executor = g.parts[0]
        executor.stopping = Deferred()  # callbacks in flight drain
        g.lead(None)
        # it stops starting occurrences at once: the scheduler is stopped before the
        # executor drains (told first that it stands down: what waits is the new leader's)
        self.assertFalse(g.gate.executing)
        self.assertEqual(g.events, [("losing", "leadership"), ("stop", "retention"),
                                    ("stop", "recovery"), ("stop", "scheduler"),
                                    ("stop", "executor")])
        # leadership back while the executor drains: nothing starts until it is stopped
        g.lead("1")
        self.assertEqual(len(g.events), 5)
        executor.stopping.callback(None)
        self.assertEqual(g.events[5], ("after", "stop"))
        g.clock.advance(POLL_INTERVAL)
        self.assertEqual(g.events[6:], [("before", "start"), ("start", "executor"),
                                        ("start", "scheduler"), ("start", "recovery"),
                                        ("start", "retention")])

    def test_stopping_the_node_stops_the_parts_and_the_polling(self) -> None:
        g = Gate()
        g.log.leader_id = "1"
        g.gate.startService()
        executor = g.parts[0]
        executor.stopping = Deferred()
        stopped = g.gate.stopService()
        self.assertNoResult(stopped)
        executor.stopping.callback(None)
        self.successResultOf(stopped)
        # the node's own stop is not a loss of leadership: the executor holds what waits
        self.assertNotIn(("losing", "leadership"), g.events)
        self.assertEqual(g.clock.getDelayedCalls(), [])
        self.assertFalse(any(part.running for part in g.parts))

    def test_a_node_that_stops_while_its_parts_drain_waits_for_them(self) -> None:
        g = Gate()
        g.log.leader_id = "1"
        g.gate.startService()
        executor = g.parts[0]
        executor.stopping = Deferred()
        g.lead("3")
        stopped = g.gate.stopService()
        self.assertNoResult(stopped)
        executor.stopping.callback(None)
        self.successResultOf(stopped)

    def test_a_single_node_is_always_the_leader(self) -> None:
        """LocalCommandLog names itself leader with nothing to catch up: a gate over it
        starts its parts at once, in startService."""
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        clock = Clock()
        log = LocalCommandLog(store.path, clock, node_id=1, threaded=False)
        self.successResultOf(log.startService())
        self.addCleanup(log.stopService)
        events: list[tuple[str, str]] = []
        gate = LeadershipGate(clock, LeaderCheck(log, "1"))
        Part("executor", events).setServiceParent(gate)
        gate.startService()
        self.assertEqual(events, [("start", "executor")])


class SchedulerBehindTheGateTests(SynchronousTestCase):
    """The real scheduler inside a gate: what a receiver would see."""

    def build(self, records: list[dict], last: dict[int, float]) -> tuple[Harness, Gate]:
        """The harness's scheduler, rebuilt as node.py builds a cluster's: owning jobs
        while this node executes, forgetting its plans once stopped."""
        h = Harness(records, last=last)
        g = Gate()
        g.clock = h.clock
        g.gate = gate = LeadershipGate(h.clock, LeaderCheck(g.log, "1"),
                                       after_stop=lambda: scheduler.reload())
        scheduler = h.scheduler = SchedulerService(
            clock=h.clock,
            load=lambda: ([job_of(r) for r in h.store.values()], dict(h.last)),
            job_records=lambda ids: [job_of(h.store[i]) for i in ids if i in h.store],
            dispatch=h.rounds.append, owns=lambda job_id: gate.executing)
        scheduler.setServiceParent(gate)
        return h, g

    def fired(self, h: Harness) -> list[str]:
        return [o.execution_id for round in h.rounds for o in round]

    def test_only_the_leader_fires_and_a_new_leader_misses_no_slot(self) -> None:
        every = job(7, "@every 1s", created=T0 - 100, policy="fire_all", grace=60)
        # the old leader recorded the occurrence of T0; the election takes 3 s
        h, g = self.build([every], last={7: T0})
        g.log.leader_id = "2"
        g.gate.startService()
        h.clock.advance(3)
        self.assertEqual(h.rounds, [])
        self.assertEqual(h.scheduler.plans, {})  # a follower plans nothing
        g.lead("1")  # at T0 + 3.2
        # every slot after the old leader's last one, once, with its own execution id
        self.assertEqual(self.fired(h), [execution_id(7, T0 + s) for s in (1, 2, 3)])
        h.clock.advance(0.8)
        self.assertEqual(self.fired(h)[-1], execution_id(7, T0 + 4))
        # it loses leadership: nothing more starts, and it forgets its plans
        g.lead("3")
        count = len(self.fired(h))
        h.clock.advance(10)
        self.assertEqual(len(self.fired(h)), count)
        self.assertEqual(h.scheduler.plans, {})

    def test_a_job_created_while_following_is_planned_when_this_node_leads(self) -> None:
        h, g = self.build([], last={})
        g.log.leader_id = "2"
        g.gate.startService()
        h.create(job(9, "@every 1s", created=T0, policy="fire_once", grace=60))
        h.clock.advance(5)
        self.assertEqual(h.rounds, [])
        g.lead("1")
        # fire_once: the latest missed slot once, then on time
        self.assertEqual(self.fired(h), [execution_id(9, T0 + 5)])
        h.clock.advance(1)
        self.assertEqual(self.fired(h)[-1], execution_id(9, T0 + 6))


class FakeScheduler:
    def __init__(self) -> None:
        self.plans: dict[int, Any] = {1: object()}
        self.halted = False
        self.resumed = 0

    def pending(self) -> int:
        return len(self.plans)

    def halt(self) -> None:
        self.halted = True

    def resume(self) -> None:
        self.halted = False
        self.resumed += 1


class FakeExecutor:
    def __init__(self) -> None:
        self.halted = False

    def halt(self) -> None:
        self.halted = True

    def resume(self) -> None:
        self.halted = False


class SupervisorRoleTests(SynchronousTestCase):
    def build(self, leader: str = "2") -> tuple[Supervisor, Gate, FakeScheduler, FakeExecutor]:
        g = Gate()
        g.log.leader_id = leader
        g.gate.startService()
        scheduler, executor = FakeScheduler(), FakeExecutor()
        role = ClusterRole(g.gate, g.log.leader, "1")
        return Supervisor(scheduler, executor, role=role), g, scheduler, executor

    def test_a_follower_says_it_is_not_executing_and_who_is(self) -> None:
        supervisor, g, _, _ = self.build()
        view = supervisor.view()
        self.assertEqual((view["state"], view["role"], view["executing"]),
                         (STANDBY, "follower", False))
        self.assertIn("the leader, node 2 (127.0.0.1:7002)", view["reason"])
        g.lead("1")
        self.assertEqual(supervisor.view(), {"state": RUNNING, "reason": None,
                                             "role": "leader", "executing": True})
        g.lead(None)
        self.assertIn("no leader", supervisor.view()["reason"])

    def test_a_single_node_answers_as_before(self) -> None:
        supervisor = Supervisor(FakeScheduler(), FakeExecutor())
        self.assertEqual(supervisor.view(), {"state": RUNNING, "reason": None})

    def test_a_halt_stored_through_another_node_holds_the_leader(self) -> None:
        supervisor, g, scheduler, executor = self.build(leader="1")
        halt = issue(SetSupervisor(halted=True, reason="x", at=iso(T0)), T0)
        supervisor.observe(halt, {"ok": True})
        self.assertTrue(scheduler.halted and executor.halted)
        self.assertEqual(supervisor.view()["state"], HALTED)
        restart = issue(SetSupervisor(halted=False, at=iso(T0)), T0)
        supervisor.observe(restart, {"ok": True})
        self.assertFalse(scheduler.halted or executor.halted)
        self.assertEqual(supervisor.view()["state"], RUNNING)

    def test_a_new_leader_takes_the_stored_halt_before_it_executes(self) -> None:
        supervisor, g, scheduler, executor = self.build()
        supervisor.adopt(SupervisorHalt(True, "halted by an operator", iso(T0)))
        self.assertTrue(scheduler.halted and executor.halted)
        self.assertEqual(supervisor.view()["state"], HALTED)
        supervisor.adopt(SupervisorHalt(False, None, iso(T0)))
        self.assertFalse(scheduler.halted or executor.halted)
        self.assertEqual(supervisor.view()["state"], STANDBY)

    def test_its_own_halt_is_not_applied_twice(self) -> None:
        class Log:
            def __init__(self) -> None:
                self.commands: list[Any] = []

            def submit(self, command: Any) -> Deferred:
                self.commands.append(command)
                return Deferred()

        log = Log()
        g = Gate()
        g.log.leader_id = "1"
        g.gate.startService()
        scheduler, executor = FakeScheduler(), FakeExecutor()
        supervisor = Supervisor(scheduler, executor, commands=log, clock=Clock(),
                                role=ClusterRole(g.gate, g.log.leader, "1"))
        supervisor.halt()
        supervisor.restart()
        resumed = scheduler.resumed
        for command in log.commands:
            supervisor.observe(command, {"ok": True})
        self.assertFalse(scheduler.halted)
        self.assertEqual(scheduler.resumed, resumed)


class SingleNodeTests(SynchronousTestCase):
    def test_a_single_node_runs_its_execution_services_as_before(self) -> None:
        """No gate, no poll: the services are the node's own children, in their order,
        running from the start; its answers carry no role."""
        h = Ops(self)
        names = [service.name for service in h.node.service]
        self.assertNotIn("execution", names)
        parts = ["executor", "scheduler", "recovery", "retention"]
        self.assertEqual([name for name in names if name in parts], parts)
        self.assertTrue(all(h.node.service.getServiceNamed(name).running for name in parts))
        self.assertNotIn("role", h.node.operations.health.snapshot())
        self.assertIsNone(h.node.supervisor.role)


class _Standing:
    """A gate that says whether the node executes."""

    def __init__(self, executing: bool) -> None:
        self.executing = executing
        self.role = "leader" if executing else "follower"


class FollowerTakesWhatTheOwnerDoesTests(SynchronousTestCase):
    """A run, a dead-letter retry or a breaker reset sent to a follower is taken (it is a
    command the job's owner acts on: tests/test_cluster_commands.py), not refused with a
    503 naming the leader; the follower itself delivers nothing it does not own."""

    def node(self, executing: bool) -> Ops:
        h = Ops(self)
        role = ClusterRole(_Standing(executing), lambda: ("127.0.0.1:7072", "2"), "1",
                           {"2": "http://127.0.0.1:9092"})  # type: ignore[arg-type]
        h.node.supervisor.role = role
        h.node.repairs._role = role
        h.node.requests.owns = lambda job_id: executing
        return h

    def test_a_follower_takes_each_of_them_and_sends_nothing(self) -> None:
        h = self.node(executing=False)
        job = h.job(h.project(), AUTH + "/hook", spec="@every 1h")
        run = h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
        self.assertEqual(h.execution(run["executionId"])["state"], "scheduled")
        self.assertEqual(h.ok("POST", "/api/monitoring/dlq/retry", expect=202),
                         {"retried": [], "skipped": []})
        self.assertEqual(h.ok("POST", f"/api/monitoring/breakers/{AUTH}/reset"),
                         {"instance": AUTH, "breaker": "closed"})
        h.clock.advance(1)
        self.assertEqual(h.http.posts, [])

    def test_the_executing_node_acts_as_before(self) -> None:
        h = self.node(executing=True)
        job = h.job(h.project(), AUTH + "/hook")
        run = h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
        self.assertEqual(run["jobId"], job["id"])
        self.assertEqual(h.sent_ids(AUTH), [run["executionId"]])
        self.assertEqual(h.ok("POST", "/api/monitoring/dlq/retry",
                              expect=202), {"retried": [], "skipped": []})
