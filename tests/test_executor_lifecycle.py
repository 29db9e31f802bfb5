"""
The callback executor: jobs no longer live are not delivered, halt and resume, and what
stopping does with deliveries in flight, queued or waiting to retry (recorded for the
restart). A C{task.Clock} and a fake HTTP client.
"""

from __future__ import annotations

from scheduler0.schedule.occurrence import execution_id

from .executor_fixtures import DeliveryCase, T0


class LivenessAndStopTests(DeliveryCase):
    """Jobs no longer live, halt and resume, and what stop does with deliveries in flight,
    queued and waiting to retry."""

    def test_a_job_no_longer_live_is_not_delivered(self) -> None:
        executor = self.executor()
        kept, gone = self.jobs("http://a.test/hook", [1, 2], own_url=False)
        self.live = {1}
        executor.submit([kept, gone])
        (post,) = self.http.posts
        self.assertEqual(post.ids(), [kept.execution_id])
        self.assertRecord(gone.execution_id, state="failed", attempts=0)
        self.assertIn("deleted or paused", self.store.record(gone.execution_id)["lastError"])
        executor.submit([self.store.occurrence(2, T0 + 60)])  # alone: nothing to send
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(execution_id(2, T0 + 60)), "failed")
        self.assertEqual(executor.counters["failed"], 2)

    def test_a_retry_of_a_job_no_longer_live_is_abandoned(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(self.store.state(o.execution_id), "retrying")
        self.live = set()
        self.clock.advance(10)
        self.assertEqual(len(self.http.posts), 1)
        self.assertRecord(o.execution_id, state="failed", attempts=1)

    def test_halt_stops_new_deliveries_and_resume_sends_what_waited(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        first, failing, waiting = self.jobs("http://a.test", [1, 2, 3])
        executor.submit([first, failing])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        executor.halt()
        executor.submit([waiting])
        self.assertEqual(len(self.http.posts), 2)
        by_id[first.execution_id].answer(200)  # in flight: completes and is recorded
        by_id[failing.execution_id].answer(500)
        self.assertEqual(self.store.state(first.execution_id), "succeeded")
        self.assertEqual(self.store.state(failing.execution_id), "retrying")
        self.clock.advance(60)  # the retry comes due, but nothing starts while halted
        self.assertEqual(len(self.http.posts), 2)
        self.assertIsNone(self.store.record(waiting.execution_id))
        executor.resume()
        sent = {p.ids()[0]: p.items()[0]["attempt"] for p in self.http.pending()}
        self.assertEqual(sent, {waiting.execution_id: 1, failing.execution_id: 2})
        for post in self.http.pending():
            post.answer(200)
        for o in (first, failing, waiting):
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    def test_stop_waits_for_deliveries_in_flight(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        ok, failing, late = self.jobs("http://a.test", [1, 2, 3])
        executor.submit([ok, failing])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        stopped = executor.stopService()
        self.assertNoResult(stopped)
        executor.submit([late])  # stopping: nothing new starts
        self.assertEqual(len(self.http.posts), 2)
        by_id[ok.execution_id].answer(200)
        self.assertNoResult(stopped)
        self.clock.advance(1.0)
        by_id[failing.execution_id].answer(500)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.store.state(ok.execution_id), "succeeded")
        # the failure is recorded for a restart to resume; no retry is left scheduled
        self.assertRecord(failing.execution_id, state="retrying", attempts=1)
        self.assertIsNotNone(self.store.record(failing.execution_id)["nextRetryAt"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 2)

    def test_stop_records_queued_occurrences_for_the_restart(self) -> None:
        executor = self.executor(per_target=1)
        first, queued = self.jobs("http://a.test", [1, 2])
        executor.submit([first, queued])
        self.assertEqual(len(self.http.posts), 1)
        self.assertIsNone(self.store.record(queued.execution_id))  # waiting behind the limit
        stopped = executor.stopService()
        late = self.jobs("http://b.test", [3])
        executor.submit(late)  # due while stopping: kept, not sent
        self.assertRecord(queued.execution_id, state="scheduled", attempts=0)
        self.assertRecord(late[0].execution_id, state="scheduled", attempts=0)
        self.http.posts[0].answer(200)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(first.execution_id), "succeeded")

    def test_stop_gives_up_waiting_after_the_drain_timeout(self) -> None:
        executor = self.executor(timeout=60.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        stopped = executor.stopService()
        self.clock.advance(executor.drain_timeout - 0.1)
        self.assertNoResult(stopped)
        self.clock.advance(0.2)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.store.state(o.execution_id), "dispatched")  # resumed on restart

    def test_stop_cancels_pending_retries(self) -> None:
        executor = self.executor(retry_max=3, retry_delay=1.0)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertIsNone(self.successResultOf(executor.stopService()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10_000)
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(self.store.state(o.execution_id), "retrying")

    def test_standing_down_as_leader_forgets_what_waits_without_recording_it(self) -> None:
        """The new leader has those slots (it plans them and re-sends the outbox): a
        'scheduled' record from the old leader could land after the slot's outcome. What
        is in flight finishes and is recorded; a later start sends nothing stale."""
        executor = self.executor(per_target=1)
        first, queued = self.jobs("http://a.test", [1, 2])
        executor.submit([first, queued])
        self.assertEqual(len(self.http.posts), 1)
        executor.stand_down()
        stopped = executor.stopService()
        late = self.jobs("http://b.test", [3])
        executor.submit(late)
        self.assertIsNone(self.store.record(queued.execution_id))
        self.assertIsNone(self.store.record(late[0].execution_id))
        self.http.posts[0].answer(200)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(self.store.state(first.execution_id), "succeeded")
        executor.startService()   # leading again, in the same process
        self.clock.advance(60)
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual(executor.queued(), 0)
        # and a later stop holds again, as a node's own stop always does
        (again,) = self.jobs("http://c.test", [4])
        executor.halt()
        executor.submit([again])
        self.successResultOf(executor.stopService())
        self.assertRecord(again.execution_id, state="scheduled", attempts=0)
