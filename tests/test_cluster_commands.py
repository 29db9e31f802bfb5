"""
Issue 13 item 4 and item 6's breaker reset: run-now, dead-letter retries (one, per target,
all), a hanging execution's rerun and a breaker reset are commands any node takes and the
node they concern acts on (scheduler0/execution/requests.py).

In process, on Clocks: two nodes built as the daemon builds them (L{tests.ops.Ops}) share
one command stream (what A applies, B applies next, with the same command ids, as a
replicated log would); A owns no job, B owns every job. The real three-node cluster is in
tests/integration/test_cluster_commands.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.consensus.interface import NotAccepting
from scheduler0.domain import DeliveryRecord, Execution
from scheduler0.execution.breaker import BreakerState
from scheduler0.execution.recovery import RecoveryService
from scheduler0.execution.requests import RequestObserver
from scheduler0.state.commands import issue
from scheduler0.state.payloads import RETRY_DEAD, RUN_NOW, RequestDeliveries

from .harness import T0
from .ops import GOOD, Ops, stamp


class Pair:
    """Node A (answers the API, owns nothing) and node B (owns every job) over one
    command stream. Their jobs fire hourly: only what the tests ask for is sent."""

    def __init__(self, tc: SynchronousTestCase) -> None:
        self.a, self.b = Ops(tc), Ops(tc)
        self.a.node.requests.owns = lambda job_id: False
        # a cluster node: takes an instance another node may deliver to
        self.a.node.repairs._role = SimpleNamespace(executing=False)
        self.a.commands.add_observer(lambda command, result: self.b.commands.submit(command))
        self.job = self.a.job(self.a.project(), GOOD + "/hook", spec="@every 1h")

    def dead(self, eid: str, attempts: int = 3) -> Execution:
        """A dead letter of the job, stored on both nodes (written through A)."""
        record = Execution(id=eid, job_id=self.job["id"], project_id=self.job["projectId"],
                           scheduled_time=stamp(T0 - 600), state="dead", attempts=attempts,
                           target=GOOD, node_id=2, last_status=500)
        self.a.tc.successResultOf(self.a.recorder.record([record]))
        return record


class OwnerDeliversTests(SynchronousTestCase):
    def test_a_run_now_sent_to_a_non_owner_is_delivered_once_by_the_owner(self) -> None:
        """202 from A with an execution id; A sends nothing; B sends that very id once
        (attempt 1) and records its outcome under it; both stores hold the id."""
        p = Pair(self)
        run = p.a.ok("POST", f"/api/v1/jobs/{p.job['id']}/run", expect=202)
        eid = run["executionId"]
        self.assertEqual(p.a.http.posts, [])
        (post,) = p.b.http.pending(GOOD)
        self.assertEqual((post.ids(), post.attempts()), ([eid], [1]))
        self.assertEqual(p.a.execution(eid)["state"], "scheduled")
        post.answer(200)
        self.assertEqual(p.b.execution(eid)["state"], "succeeded")
        p.a.clock.advance(30)
        p.b.clock.advance(30)
        self.assertEqual(p.a.http.posts, [])
        self.assertEqual(p.b.sent_ids(GOOD), [eid])

    def test_two_runs_asked_at_once_get_their_own_ids(self) -> None:
        p = Pair(self)
        runs = [p.a.ok("POST", f"/api/v1/jobs/{p.job['id']}/run", expect=202)["executionId"]
                for _ in range(3)]
        self.assertEqual(len(set(runs)), 3)
        self.assertEqual(sorted(p.b.sent_ids(GOOD)), sorted(runs))

    def test_dead_letters_retried_through_a_non_owner_are_delivered_by_the_owner(self) -> None:
        """One execution, one target's and all: each 202 from A, sent by B with the same
        execution id and the next attempt; A sends nothing."""
        p = Pair(self)
        one, two, three = (p.dead(f"{p.job['id']}-dead{n}").id for n in (1, 2, 3))
        self.assertEqual(p.a.ok("POST", f"/api/v1/executions/{one}/retry", expect=202),
                         {"retried": [one], "skipped": []})
        (post,) = p.b.http.pending(GOOD)
        self.assertEqual((post.ids(), post.attempts()), ([one], [4]))
        post.answer(200)
        retried = p.a.ok("POST", f"/api/monitoring/dlq/{quote(GOOD, safe='')}/retry",
                         expect=202)
        self.assertEqual(sorted(retried["retried"]), sorted([two, three]))
        self.assertEqual(sorted(eid for post in p.b.http.pending(GOOD) for eid in post.ids()),
                         sorted([two, three]))
        self.assertEqual(p.a.ok("POST", "/api/monitoring/dlq/retry", expect=202),
                         {"retried": [], "skipped": []})  # none is dead any more
        self.assertEqual(p.a.http.posts, [])

    def test_a_retry_of_many_dead_letters_is_a_series_of_small_commands(self) -> None:
        p = Pair(self)
        p.a.node.repairs.request_chunk = 2
        requests: list[int] = []
        p.a.commands.add_observer(lambda command, result: requests.append(
            len(command.payload.occurrences)) if command.kind == "execution.request" else None)
        dead = sorted(p.dead(f"{p.job['id']}-dead{n}").id for n in range(5))
        retried = p.a.ok("POST", "/api/monitoring/dlq/retry", expect=202)
        self.assertEqual((sorted(retried["retried"]), retried["skipped"]), (dead, []))
        self.assertEqual(requests, [2, 2, 1])
        self.assertEqual(sorted(p.b.sent_ids(GOOD)), dead)
        self.assertEqual(p.a.http.posts, [])

    def test_a_hanging_rerun_sent_to_a_non_owner_is_delivered_by_the_owner(self) -> None:
        p = Pair(self)
        eid = f"{p.job['id']}-lost"
        self.successResultOf(p.a.recorder.record([], started=[DeliveryRecord(
            id="lost", node_id=2, project_id=p.job["projectId"], target=GOOD,
            started_at=stamp(T0), occurrences=[[eid, p.job["id"], stamp(T0 - 60), 1]])]))
        for h in (p.a, p.b):
            h.clock.advance(31)  # past JobExecutionTimeout x (retries + 1)
        self.assertEqual(p.a.ok("POST", f"/api/supervisor/hanging/{eid}/resolve",
                                {"action": "rerun"}), {"retried": [eid], "skipped": []})
        (post,) = p.b.http.pending(GOOD)
        self.assertEqual((post.ids(), post.attempts()), ([eid], [2]))
        self.assertEqual(p.a.http.posts, [])
        self.assertEqual(p.a.store.schedule_reader.deliveries(), [])

    def test_a_breaker_reset_sent_to_a_non_owner_closes_the_owners_breakers(self) -> None:
        """A host's reset closes B's host breaker and its endpoints'; an endpoint's reset
        closes B's endpoint breaker. A answers from its own (closed) breakers."""
        p = Pair(self)
        endpoint = GOOD + "/hook"
        for key in (GOOD, endpoint):
            for _ in range(5):
                p.b.breakers.get(key).record_failure()
            self.assertEqual(p.b.breakers.find(key).state, BreakerState.OPEN)
        self.assertEqual(p.a.ok("POST", f"/api/monitoring/breakers/{quote(endpoint, '')}"
                                        "/reset"), {"instance": endpoint, "breaker": "closed"})
        self.assertEqual(p.b.breakers.find(endpoint).state, BreakerState.CLOSED)
        self.assertEqual(p.b.breakers.find(GOOD).state, BreakerState.OPEN)
        for _ in range(5):
            p.b.breakers.get(endpoint).record_failure()
        self.assertEqual(p.a.ok("POST", f"/api/monitoring/breakers/{quote(GOOD, '')}/reset"),
                         {"instance": GOOD, "breaker": "closed"})
        self.assertEqual([b.state for b in p.b.breakers], [BreakerState.CLOSED] * 2)


class NothingLostNothingTwiceTests(SynchronousTestCase):
    def test_a_run_the_owner_died_before_sending_is_sent_once_after_its_restart(self) -> None:
        """The request is a durable 'scheduled' record: after a crash, recovery sends it
        once, with the id the API answered."""
        data_dir = self.mktemp()
        h = Ops(self, data_dir=data_dir)
        job = h.job(h.project(), GOOD + "/hook", spec="@every 1h")
        h.ok("POST", "/api/supervisor/halt")  # nothing is sent: the run waits in the queue
        eid = h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)["executionId"]
        self.assertEqual(h.http.posts, [])
        h.crash()
        again = Ops(self, data_dir=data_dir, start=T0 + 5)
        self.assertEqual(again.http.posts, [])  # the halt holds
        again.ok("POST", "/api/supervisor/restart")
        (post,) = again.http.pending(GOOD)
        self.assertEqual(post.ids(), [eid])
        post.answer(200)
        again.clock.advance(30)
        self.assertEqual(again.sent_ids(), [eid])

    def test_a_request_recovery_already_resumed_is_not_sent_again(self) -> None:
        """The store was read by recovery after the request was applied but before this
        node observed it: the observer leaves it; before recovery ran, too."""
        submitted: list[list[Any]] = []
        executor = SimpleNamespace(running=True,
                                   submit=lambda occurrences, live: submitted.append(
                                       list(occurrences)))
        recovery = SimpleNamespace(recovered=False, resumed=set())
        plan = SimpleNamespace(job_id=1, project_id=1, callback_url=GOOD + "/hook",
                               target=GOOD, payload=b"{}", paused=False)
        owned = {1}
        observer = RequestObserver(lambda job_id: job_id in owned, lambda: {1: plan},
                                   lambda job_id: None, executor, recovery, breakers=None)
        command = issue(RequestDeliveries(reason=RUN_NOW, occurrences=[
            ("1-x", 1, stamp(T0), 0, GOOD)]), T0)
        result = {"ok": True, "requested": ["1-x"], "skipped": []}
        observer.observe(command, result)  # recovery has not read the store yet
        recovery.recovered, recovery.resumed = True, {("1-x", 1)}
        observer.observe(command, result)  # it read it, and sent this one
        self.assertEqual(submitted, [])
        # a later request of the same execution (a retry of that attempt) is another one
        retry = issue(RequestDeliveries(reason=RETRY_DEAD, occurrences=[
            ("1-x", 1, stamp(T0), 1, GOOD)]), T0)
        observer.observe(retry, result)
        ((occurrence,),) = submitted
        self.assertEqual((occurrence.execution_id, occurrence.attempt), ("1-x", 2))
        submitted.clear()
        recovery.resumed = set()
        owned.clear()
        observer.observe(command, result)  # another node owns the job
        self.assertEqual(submitted, [])
        owned.add(1)
        observer.observe(command, result)
        ((occurrence,),) = submitted
        self.assertEqual((occurrence.execution_id, occurrence.attempt), ("1-x", 1))

    def test_recovery_leaves_the_jobs_another_node_owns_to_it(self) -> None:
        """Outbox entries and records of a job this node does not own are neither re-sent
        nor dropped here."""
        redelivered: list[tuple[list[str], str, list[str]]] = []
        submitted: list[str] = []
        executor = SimpleNamespace(
            redeliver=lambda occurrences, replaces, dropped: redelivered.append(
                ([o.execution_id for o in occurrences], replaces, list(dropped))),
            submit=lambda occurrences: submitted.extend(o.execution_id for o in occurrences),
            retry_later=lambda occurrences, delay: None)
        plans = {j: SimpleNamespace(job_id=j, project_id=1, callback_url=GOOD + "/hook",
                                    target=GOOD, payload=b"{}") for j in (1, 2)}
        outbox = [DeliveryRecord(id="d", node_id=2, project_id=1, target=GOOD,
                                 started_at=stamp(T0), occurrences=[
                                     ["1-a", 1, stamp(T0), 1], ["2-a", 2, stamp(T0), 1]]),
                  DeliveryRecord(id="e", node_id=2, project_id=1, target=GOOD,
                                 started_at=stamp(T0), occurrences=[["2-b", 2, stamp(T0), 1]])]
        unfinished = [Execution(id=f"{j}-c", job_id=j, project_id=1, scheduled_time=stamp(T0),
                                state="scheduled", attempts=0) for j in (1, 2)]
        recovery = RecoveryService(Clock(), lambda: unfinished, lambda: plans, executor,
                                   outbox=lambda: outbox, owns=lambda job_id: job_id == 1)
        recovery.startService()
        self.assertEqual(redelivered, [(["1-a"], "d", [])])
        self.assertEqual(submitted, ["1-c"])
        self.assertEqual((recovery.recovered, recovery.resumed), (True, {("1-c", 1)}))


class RedeliverTests(SynchronousTestCase):
    def test_an_outbox_occurrence_whose_job_is_gone_leaves_the_outbox(self) -> None:
        """Recovery drops what it cannot rebuild: the executor takes it out of its row."""
        h = Ops(self)
        job = h.job(h.project(), GOOD + "/hook", spec="@every 1h")
        self.successResultOf(h.recorder.record([], started=[DeliveryRecord(
            id="d", node_id=1, project_id=job["projectId"], target=GOOD,
            started_at=stamp(T0), occurrences=[["x", job["id"], stamp(T0), 1],
                                               ["y", job["id"], stamp(T0), 1]])]))
        h.executor.redeliver([], replaces="d", dropped=["x"])
        (row,) = h.store.schedule_reader.deliveries()
        self.assertEqual([o[0] for o in row.occurrences], ["y"])


class RefusedWritesTests(SynchronousTestCase):
    def test_a_repair_the_node_cannot_write_is_a_503_not_a_500(self) -> None:
        """Every repair goes through the command facade: a node that takes no writes now
        (stopping, no Raft leader) answers 503 with Retry-After, for the deletes too."""
        h = Ops(self)
        job = h.job(h.project(), GOOD + "/hook", spec="@every 1h")
        record = Execution(id=f"{job['id']}-dead", job_id=job["id"],
                           project_id=job["projectId"], scheduled_time=stamp(T0 - 600),
                           state="dead", attempts=3, target=GOOD, node_id=1)
        self.successResultOf(h.recorder.record([record]))
        real = h.api.facade.commands

        class Refusing:
            def submit(self, command: Any) -> Any:
                return defer.fail(NotAccepting("the cluster has no Raft leader right now"))

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        h.api.facade.commands = h.repairs._commands = Refusing()
        for method, path in (("DELETE", f"/api/v1/executions/{record.id}"),
                             ("DELETE", f"/api/monitoring/dlq/{quote(GOOD, safe='')}"),
                             ("POST", f"/api/v1/executions/{record.id}/retry"),
                             ("POST", f"/api/v1/jobs/{job['id']}/run"),
                             ("POST", f"/api/monitoring/breakers/{quote(GOOD, safe='')}/reset")):
            code, envelope, headers = h.call(method, path)
            self.assertEqual((code, envelope["data"]),
                             (503, "the cluster has no Raft leader right now"), path)
            self.assertEqual(headers.getRawHeaders("retry-after"), ["1"], path)
        self.assertEqual(h.execution(record.id)["state"], "dead")


class MalformedRequestTests(SynchronousTestCase):
    def test_an_occurrence_of_the_wrong_shape_is_a_400_saying_what_it_must_be(self) -> None:
        h = Ops(self)
        result = self.successResultOf(h.commands.submit(issue(RequestDeliveries(
            reason=RUN_NOW, occurrences=[("1-x", 1)]), T0)))
        self.assertEqual((result["ok"], result["status"]), (False, 400))
        self.assertIn("[execution id, job id, scheduled time, attempts made, target]",
                      result["error"])
