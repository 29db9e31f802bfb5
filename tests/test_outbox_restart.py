"""
The delivery outbox after a crash: every occurrence the outbox lists is POSTed again with
the same execution id, exactly once, and the job's schedule carries on after it (or it is
kept, durably, while the node is halted or the target's breaker is open).

Real sqlite files in temp dirs; nodes built by L{scheduler0.node.build_node} with the
command log writing synchronously, a C{task.Clock} and the fake HTTP client of
L{tests.fakes} (its POSTs are answered by hand).
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import FLAKY, GOOD, Ops, stamp
from .records import shown
from .outbox_nodes import Node, crash, outbox


class RestartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = h = Ops(self, retry_max=2, timeout=10)
        self.p = h.project()

    def test_resent_once_with_the_same_id_then_the_schedule_goes_on(self) -> None:
        """A POST without an outcome is sent again after a restart, and only once."""
        h = self.h
        job = h.job(self.p, GOOD + "/a")                    # @every 1m, fire_once, grace 60
        eid = execution_id(job["id"], T0 + 60)
        h.http.store = SimpleNamespace(record=h.execution)  # what the POST was sent after
        h.clock.advance(60)
        (lost,) = h.http.pending(GOOD)
        self.assertEqual(lost.seen[eid]["state"], "dispatched")  # durable before the POST
        self.assertEqual(outbox(h), [[eid, job["id"], stamp(T0 + 60), 1]])
        # within the grace period: without the outbox in its last scheduled times, the
        # scheduler would fire 16:01 a second time
        node = Node(self, crash(h), T0 + 90)
        (post,) = node.http.posts
        self.assertEqual((post.url, post.ids(), post.attempts()), (lost.url, [eid], [2]))
        self.assertEqual(post.items()[0]["scheduledTime"], stamp(T0 + 60))
        self.assertEqual(node.scheduler.next_fire(job["id"]), T0 + 120)
        self.assertEqual(outbox(node), [[eid, job["id"], stamp(T0 + 60), 2]])
        self.assertEqual(node.execution(eid)["state"], "dispatched")
        post.answer(200)
        self.assertEqual(outbox(node), [])
        record = node.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        node.clock.advance(30)
        self.assertEqual([(p.ids(), p.attempts()) for p in node.http.pending()],
                         [([execution_id(job["id"], T0 + 120)], [1])])
        self.assertEqual(len(node.http.posts), 2)

    def test_the_first_attempts_facts_survive_a_crash(self) -> None:
        """firstAttemptAt and latenessMs say when the occurrence was first sent, crash or
        not (as the 'dispatched' row written before each POST used to keep them)."""
        h = self.h
        job = h.job(self.p, GOOD + "/a")
        eid = execution_id(job["id"], T0 + 60)
        h.clock.advance(60.25)                              # sent 250 ms late
        node = Node(self, crash(h), T0 + 90)
        node.answer(GOOD, 200)
        record = node.execution(eid)
        self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        self.assertEqual((record["firstAttemptAt"], record["latenessMs"]),
                         (stamp(T0 + 60.25), 250.0))

    def test_a_retry_in_flight_is_resent_once_with_the_next_attempt(self) -> None:
        """Stored 'retrying' and listed in the outbox: one POST, attempt 3, not two."""
        h = self.h
        job = h.job(self.p, FLAKY + "/f", spec="@every 1h")
        eid = execution_id(job["id"], T0 + 3600)
        h.clock.advance(3600)
        h.answer(FLAKY, 503)
        h.clock.advance(10)
        (retry,) = h.http.pending(FLAKY)
        self.assertEqual(retry.attempts(), [2])
        node = Node(self, crash(h), T0 + 3700)
        (post,) = node.http.posts
        self.assertEqual((post.ids(), post.attempts()), ([eid], [3]))
        shown = node.execution(eid)
        self.assertEqual((shown["state"], shown["attempts"], shown["firstAttemptAt"]),
                         ("dispatched", 3, stamp(T0 + 3600)))
        post.answer(200)
        self.assertEqual(node.execution(eid)["state"], "succeeded")
        self.assertEqual(outbox(node), [])
        node.clock.advance(60)
        self.assertEqual(len(node.http.posts), 1)

    def test_an_occurrence_of_a_deleted_job_is_dropped(self) -> None:
        """A job deleted while its POST was in flight is not called back after a restart;
        the other occurrence of that POST is."""
        h = self.h
        keep = h.job(self.p, GOOD + "/shared")
        gone = h.job(self.p, GOOD + "/shared")
        h.clock.advance(60)
        (post,) = h.http.pending(GOOD)
        kept, dropped = (execution_id(j["id"], T0 + 60) for j in (keep, gone))
        self.assertEqual(sorted(post.ids()), sorted([kept, dropped]))
        h.ok("DELETE", f"/api/v1/jobs/{gone['id']}", expect=204)
        # the deleted job's occurrence leaves the outbox at once; the other stays in flight
        self.assertEqual(outbox(h), [[kept, keep["id"], stamp(T0 + 60), 1]])
        node = Node(self, crash(h), T0 + 90)
        (post,) = node.http.posts
        self.assertEqual((post.ids(), post.attempts()), ([kept], [2]))
        self.assertEqual(outbox(node), [[kept, keep["id"], stamp(T0 + 60), 2]])
        self.assertIsNone(node.execution(dropped))
        post.answer(200)
        self.assertEqual(outbox(node), [])
        self.assertEqual(node.execution(kept)["state"], "succeeded")
        self.assertIsNone(node.execution(dropped))

    def lost(self, *urls: str) -> tuple[str, list[str]]:
        """Jobs at C{urls} fire at T0+60 and the node crashes with their POSTs in flight."""
        jobs = [self.h.job(self.p, url) for url in urls]
        self.h.clock.advance(60)
        self.assertEqual(len(outbox(self.h)), len(urls))
        return crash(self.h), [execution_id(j["id"], T0 + 60) for j in jobs]

    def assertSentOnceMore(self, node: Node, ids: list[str]) -> None:
        sent = sorted((eid, p.attempts()[0]) for p in node.http.posts for eid in p.ids())
        self.assertEqual(sent, sorted((eid, 2) for eid in ids))
        node.answer("", 200)
        self.assertEqual(outbox(node), [])
        for eid in ids:
            self.assertEqual((node.execution(eid)["state"], node.execution(eid)["attempts"]),
                             ("succeeded", 2))

    def test_halted_then_stopped_before_the_resend_keeps_them_for_the_next_start(self) -> None:
        """Halted from the start, then stopped: held 'scheduled'; sent once next time."""
        data_dir, ids = self.lost(GOOD + "/a", FLAKY + "/b")
        second = Node(self, data_dir, T0 + 70, before_recovery=lambda n: n.executor.halt())
        self.assertEqual(second.http.posts, [])
        self.assertEqual(sorted(o[0] for o in outbox(second)), sorted(ids))  # queued
        second.close()                                      # graceful: held

        def held(node: Node) -> None:
            self.assertEqual(outbox(node), [])
            for eid in ids:
                self.assertEqual(node.execution(eid)["state"], "scheduled")

        third = Node(self, data_dir, T0 + 80, before_recovery=held)
        self.assertSentOnceMore(third, ids)

    def test_halted_then_crashed_before_the_resend_keeps_them_in_the_outbox(self) -> None:
        """A crash while the re-send waits leaves the outbox as it was; sent once later."""
        data_dir, ids = self.lost(GOOD + "/a", FLAKY + "/b")
        second = Node(self, data_dir, T0 + 70, before_recovery=lambda n: n.executor.halt())
        self.assertEqual(sorted((o[0], o[3]) for o in outbox(second)),
                         sorted((eid, 1) for eid in ids))
        crash(second)
        third = Node(self, data_dir, T0 + 80)
        self.assertSentOnceMore(third, ids)

    def test_breaker_open_at_the_resend_holds_them_durably(self) -> None:
        """An open breaker holds the re-send as 'scheduled' (leaving the outbox in the same
        write): a crash then loses nothing and sends nothing twice."""
        data_dir, ids = self.lost(GOOD + "/a", GOOD + "/b")

        def trip(node: Node) -> None:
            for _ in range(5):
                node.breakers.get(GOOD).record_failure()

        second = Node(self, data_dir, T0 + 70, before_recovery=trip)
        self.assertEqual(second.http.posts, [])
        self.assertEqual(outbox(second), [])
        for eid in ids:
            self.assertEqual(second.execution(eid)["state"], "scheduled")
        crash(second)
        third = Node(self, data_dir, T0 + 80)
        self.assertSentOnceMore(third, ids)
