"""
The executor against a failing store (issue 8, item 8).

- L{UnrecordedDispatchTests}: a callback whose dispatch could not be recorded (the outbox
  write failed: a full disk) is not sent; it is held and goes out, with the same execution
  ids, once a write succeeds again; an outcome that could not be recorded is recorded then.
- L{RecorderTests}: which failed writes the recorder keeps for another try, in what order,
  and how many at most.

The store is a real sqlite file; a full disk is L{FlakyCommandLog} in front of it.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import LogLevel, capturedLogs

from scheduler0.consensus.interface import NotAccepting, StorageFull
from scheduler0.domain import Execution
from scheduler0.execution.breaker import Breakers, BreakerState
from scheduler0.execution.executor import Executor, ExecutorSettings
from scheduler0.execution.failures import TRANSIENT
from scheduler0.execution.recorder import ExecutionRecorder, RecordRejected, ignore_failure

from .fakes import FakeHTTP, FlakyCommandLog
from .executor_fixtures import ExecutorCase


class DiskFull(StorageFull):
    """What the command log fails a write with when sqlite says the disk is full."""


class UnrecordedDispatchTests(ExecutorCase):
    def setUp(self) -> None:
        super().setUp()
        self.commands = FlakyCommandLog(self.store.commands)

    def executor(self, **settings: Any) -> Executor:
        """Like L{make_executor}, with the recorder writing through L{FlakyCommandLog}."""
        breakers = Breakers(self.clock, self.rng, threshold=2, base_delay=5.0,
                            on_change=lambda b, old, new: executor.on_breaker_change(b, old, new))
        executor = Executor(self.clock, self.http, ExecutionRecorder(self.clock, self.commands),
                            breakers, secrets_for=self.store.secrets_for,
                            is_live=lambda job_id: True, settings=ExecutorSettings(**settings),
                            rng=self.rng)
        executor.startService()
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def test_no_post_while_the_dispatch_cannot_be_recorded_then_the_same_ids_go_out(
            self) -> None:
        for failing in (DiskFull("the disk holding the database is full"),
                        {"ok": False, "status": 500, "error": "a record could not be stored"}):
            self.http = FakeHTTP(self.clock, self.store)
            executor = self.executor(record_retry_delay=1.0, record_retry_cap=30.0)
            base = f"http://{len(self.store.jobs)}.test"
            occurrences = self.jobs(base, [len(self.store.jobs) + 1, len(self.store.jobs) + 2])
            ids = sorted(o.execution_id for o in occurrences)
            self.commands.failing = failing
            executor.submit(occurrences)
            self.assertEqual(self.http.posts, [], "a callback went out unrecorded")
            for o in occurrences:
                self.assertIsNone(self.store.record(o.execution_id))
            self.assertEqual((executor.queued(), executor.in_flight,
                              set(executor.in_flight_ids)), (2, 0, set()))
            status = executor.endpoints[f"{base}:80/{occurrences[0].job_id}"]
            self.assertIn("not sent: its dispatch could not be recorded", status.last_error)
            self.assertEqual(status.last_error_category, TRANSIENT)
            # the write is tried again after a backoff (1 s, then 2 s, ...): still failing
            refused = self.commands.refused
            self.clock.advance(1.0)
            self.assertGreater(self.commands.refused, refused)
            self.assertEqual(self.http.posts, [])
            # space is back: at the next try the same occurrences go out, recorded first
            self.commands.failing = None
            self.clock.advance(2.0)
            self.assertEqual(sorted(eid for p in self.http.posts for eid in p.ids()), ids)
            for post in self.http.posts:
                for eid in post.ids():
                    self.assertEqual(post.seen[eid]["state"], "dispatched")
                self.assertEqual(post.attempts(), [1])
                post.answer(200)
            for o in occurrences:
                self.assertEqual(self.record(o)["state"], "succeeded")
            self.assertEqual(executor.queued(), 0)
            executor.stopService()
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)
        self.assertEqual(len(self.flushLoggedErrors(RecordRejected)), 1)

    def test_a_retry_whose_dispatch_cannot_be_recorded_waits_for_the_store(self) -> None:
        executor = self.executor(retry_delay=1.0, retry_max=3)
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        self.http.posts[0].answer(500)
        self.assertEqual(self.record(o)["state"], "retrying")
        self.commands.failing = DiskFull("disk full")
        self.clock.advance(60)  # the retry's backoff is long over; its write keeps failing
        self.assertEqual(len(self.http.posts), 1)
        self.assertEqual((self.record(o)["state"], self.record(o)["attempts"]), ("retrying", 1))
        self.commands.failing = None
        self.clock.advance(30)  # at most the write's backoff cap
        (retry,) = self.http.pending()
        self.assertEqual((retry.ids(), retry.attempts()), ([o.execution_id], [2]))
        self.assertEqual(retry.seen[o.execution_id]["state"], "dispatched")
        retry.answer(200)
        self.assertEqual((self.record(o)["state"], self.record(o)["attempts"]),
                         ("succeeded", 2))
        self.flushLoggedErrors(DiskFull)

    def test_a_probe_whose_dispatch_cannot_be_recorded_is_the_probe_later(self) -> None:
        executor = self.executor(retry_max=0)
        for job_id in (1, 2, 3):
            self.store.job(job_id, "http://a.test/hook")
        occurrences = [self.store.occurrence(job_id) for job_id in (1, 2, 3)]
        for o in occurrences[:2]:
            executor.submit([o])  # each its own POST to the one endpoint
        for post in self.http.pending():
            post.answer(503)
        breaker = executor.breakers.get("http://a.test:80/hook")
        self.assertEqual(breaker.state, BreakerState.OPEN)
        self.commands.failing = DiskFull("disk full")
        self.clock.advance(10)  # half open: the probe may go, but cannot be recorded
        executor.submit(occurrences[2:])
        self.assertEqual(breaker.state, BreakerState.HALF_OPEN)
        self.assertEqual(self.http.pending(), [])
        self.commands.failing = None
        self.clock.advance(30)
        (probe,) = self.http.pending()
        self.assertEqual(probe.ids(), [occurrences[2].execution_id])
        probe.answer(200)
        self.assertEqual(breaker.state, BreakerState.CLOSED)
        self.assertEqual(self.record(occurrences[2])["state"], "succeeded")
        self.flushLoggedErrors(DiskFull)

    def test_failed_writes_are_logged_as_a_streak_not_per_occurrence(self) -> None:
        executor = self.executor(record_retry_delay=1.0, record_retry_cap=30.0, per_target=10)
        self.commands.failing = DiskFull("the disk holding the database is full")
        with capturedLogs() as events:
            for n in range(100):  # 100 occurrences over 10 minutes, none can be recorded
                executor.submit(self.jobs(f"http://t{n % 10}.test", [n + 1]))
                self.clock.advance(6)
            self.assertEqual(self.http.posts, [])
            self.assertEqual(executor.queued(), 100)
            self.commands.failing = None
            self.clock.advance(30)
        self.assertEqual(len(self.http.posts), 100)
        loud = [e for e in events if e["log_level"] in (LogLevel.warn, LogLevel.error,
                                                        LogLevel.critical)]
        # the recorder's and the executor's: the first failure, then once a minute
        self.assertLessEqual(len(loud), 2 * 11, [e["log_format"] for e in loud])
        self.assertGreaterEqual(len(loud), 2 * 9)
        back = [e for e in events if e["log_level"] == LogLevel.info
                and "again" in e["log_format"]]
        self.assertEqual(len(back), 2, [e["log_format"] for e in back])
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)

    def test_an_outcome_that_could_not_be_recorded_is_recorded_once_writes_work(
            self) -> None:
        executor = self.executor(retry_delay=1.0, retry_max=3)
        a, b = self.jobs("http://a.test", [1, 2])
        executor.submit([a, b])
        by_id = {p.ids()[0]: p for p in self.http.posts}
        outbox = self.store.service.schedule_reader.deliveries
        self.assertEqual(len(outbox()), 2)
        self.commands.failing = DiskFull("disk full")
        by_id[a.execution_id].answer(200)
        by_id[b.execution_id].answer(503)  # its retry is due in about 1 s
        self.assertEqual(self.record(a)["state"], "dispatched")
        self.assertEqual(len(outbox()), 2)  # a restart now would send both again
        self.clock.advance(5)
        self.assertEqual(len(self.http.posts), 2)  # b's retry waits for the store
        self.commands.failing = None
        self.clock.advance(30)
        # the outcomes are stored, in order, before the retry's dispatch
        self.assertEqual(self.record(a)["state"], "succeeded")
        self.assertEqual(outbox()[0].occurrences[0][0], b.execution_id)
        (retry,) = self.http.pending()
        self.assertEqual(retry.attempts(), [2])
        self.assertEqual((retry.seen[b.execution_id]["state"],
                          retry.seen[b.execution_id]["attempts"]), ("dispatched", 2))
        retry.answer(200)
        self.assertEqual((self.record(b)["state"], self.record(b)["attempts"]),
                         ("succeeded", 2))
        self.assertEqual(outbox(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.flushLoggedErrors(DiskFull)


class RecorderTests(ExecutorCase):
    """What the recorder keeps when a write fails, and what it does not."""

    def setUp(self) -> None:
        super().setUp()
        self.commands = FlakyCommandLog(self.store.commands)
        (self.o,) = self.jobs("http://a.test", [1])

    def row(self, state: str, attempts: int) -> Execution:
        o = self.o
        return Execution(id=o.execution_id, job_id=o.job_id, project_id=o.project_id,
                         scheduled_time="2026-11-26T16:00:00.000Z", state=state,
                         attempts=attempts, target=o.target, node_id=1)

    def test_kept_writes_go_in_order_ahead_of_later_ones(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = DiskFull("disk full")
        first = recorder.record([self.row("retrying", 1)], keep_trying=True)
        self.failureResultOf(first, DiskFull)
        ignore_failure(recorder.record([self.row("retrying", 2)], keep_trying=True))
        self.assertEqual(recorder.kept, 1)
        self.clock.advance(1)  # still failing: both kept, the backoff doubles
        self.assertEqual(recorder.kept, 2)
        self.commands.failing = None
        self.clock.advance(2)
        self.assertEqual((self.record(self.o)["state"], self.record(self.o)["attempts"]),
                         ("retrying", 2))
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)

    def test_a_waited_for_write_is_tried_at_once_and_not_kept(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = DiskFull("disk full")
        self.failureResultOf(recorder.record([self.row("scheduled", 0)]), DiskFull)
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.commands.failing = None
        self.successResultOf(recorder.record([self.row("retrying", 1)]))
        self.assertEqual(self.record(self.o)["state"], "retrying")
        self.flushLoggedErrors(DiskFull)

    def test_a_refused_write_is_not_tried_again(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = {"ok": False, "status": 400, "error": "malformed"}
        d = recorder.record([self.row("retrying", 1)], keep_trying=True)
        self.assertIn("malformed", str(self.failureResultOf(d, RecordRejected).value))
        self.assertEqual((recorder.kept, self.clock.getDelayedCalls()), (0, []))
        self.flushLoggedErrors(RecordRejected)

    def test_kept_records_are_bounded(self) -> None:
        recorder = ExecutionRecorder(self.clock, self.commands, max_kept=10)
        self.commands.failing = DiskFull("disk full")
        for _ in range(5):
            ignore_failure(recorder.record([self.row("retrying", 1)] * 4, keep_trying=True))
            self.clock.advance(30)
        self.assertLessEqual(recorder.kept, 10)
        self.assertGreaterEqual(recorder.dropped, 10)
        self.assertEqual(len(self.flushLoggedErrors(DiskFull)), 1)

    def test_a_refusal_by_the_log_is_one_warning_line_not_a_traceback(self) -> None:
        """No Raft leader for a moment (an election) refuses writes: an expected moment,
        logged as one line naming why; the records are kept and written afterwards."""
        recorder = ExecutionRecorder(self.clock, self.commands)
        self.commands.failing = NotAccepting("the cluster has no Raft leader right now")
        with capturedLogs() as logged:
            ignore_failure(recorder.record([self.row("retrying", 1)], keep_trying=True))
        self.assertEqual(self.flushLoggedErrors(NotAccepting), [])
        (line,) = [e for e in logged if "records was refused" in e.get("log_format", "")]
        self.assertEqual(line["log_level"], LogLevel.warn)
        self.assertIn("no Raft leader", line["error"])
        self.commands.failing = None
        self.clock.advance(1)
        self.assertEqual(self.record(self.o)["state"], "retrying")

