"""
Execution records go to the state as batched commands.

Records are buffered while a batch is being applied and go together in the next
C{execution.record} command, so at low load a record is written at once and under load
thousands share one command (one commit). Changes to the delivery outbox (a POST started,
a POST's outcome known) ride in the same commands. A caller that must know its write is
durable (the executor, before it sends a callback) waits on the returned Deferred: it fails
when the command failed (a full disk, say) or was rejected, since either way nothing of it
was stored.

What must not be lost when a write fails (a callback's outcome, records of held or dropped
occurrences) is written with C{keep_trying}: it is kept, in order, ahead of what was
recorded after it, and tried again after a backoff until it is stored, so the history
recovers by itself once space returns (and a delivered callback's outbox row does not
make a restart send it again). An outbox entry is never kept that way: the executor holds
its callback and starts it again as a whole.

A full disk fails every write for as long as it lasts, so failures are logged as a streak
(L{FailureStreak}): the first with its traceback, then a summary at most once a minute,
then one line when writes work again.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..consensus.interface import ICommandLog, NotAccepting, StorageFailed, StorageFull
from ..domain import DeliveryFinished, DeliveryOutcome, DeliveryRecord, Execution
from ..state.commands import issue
from ..state.payloads import RecordExecutions

log = Logger()


class RecordRejected(Exception):
    """The state machine refused an C{execution.record} command: nothing of it was stored."""


def describe_failure(failure: Failure | BaseException) -> str:
    """One line for a log field or a health message: the error's type and text."""
    error = failure.value if isinstance(failure, Failure) else failure
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class FailureStreak:
    """
    Decides which failures of a run are worth a log line: the first, then one at most
    every C{every} seconds while they go on (with how many were not logged), and then the
    end of the run. A full disk fails every write; a line (and a traceback) per write or
    per occurrence would flood the log, which usually lives on that same disk.
    """

    def __init__(self, clock: Any, every: float = 60.0) -> None:
        self._clock = clock
        self._every = every
        self.failures = 0  # in the current run
        self.since: float | None = None  # when the current run began
        self.unlogged = 0  # failures skipped between the last two logged ones
        self._skipped = 0
        self._logged_at = 0.0

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self) -> bool:
        """Count a failure; True if this one should be logged (then L{unlogged} says how
        many were skipped since the last logged one)."""
        now = self._clock.seconds()
        self.failures += 1
        if self.since is None:
            self.since = self._logged_at = now
            self.unlogged = self._skipped = 0
            return True
        if now - self._logged_at >= self._every:
            self._logged_at = now
            self.unlogged, self._skipped = self._skipped, 0
            return True
        self._skipped += 1
        return False

    def succeeded(self) -> tuple[int, float] | None:
        """End the run, if there was one: C{(failures, seconds it lasted)}."""
        if self.since is None:
            return None
        ended = (self.failures, self._clock.seconds() - self.since)
        self.failures, self.since, self.unlogged, self._skipped = 0, None, 0, 0
        return ended


@attrs.define
class _Write:
    """One L{ExecutionRecorder.record} call, until its command is applied."""

    records: list[Execution]
    started: list[DeliveryRecord]
    finished: list[DeliveryFinished]
    outcomes: list[DeliveryOutcome]
    keep_trying: bool
    waiter: Deferred | None  # None once told about a failure (it is being tried again)
    size: int  # the occurrences it records (those of its records and outcomes)


class ExecutionRecorder:
    """
    @param max_batch: most records per command.
    @param observe: sees every record as it is queued (metrics).
    @param observe_outcome: sees every POST's outcome as it is queued, with how many
        occurrences it carried (metrics).
    @param max_kept: most records kept for another try while writes fail; past it the
        oldest are dropped (and logged), so a long outage cannot exhaust memory.
    """

    def __init__(self, clock: Any, commands: ICommandLog, max_batch: int = 5000,
                 observe: Callable[[list[Execution]], None] | None = None,
                 observe_outcome: Callable[[DeliveryOutcome, int], None] | None = None,
                 max_kept: int = 100_000, retry_delay: float = 1.0,
                 retry_cap: float = 30.0) -> None:
        self._observe = observe
        self._observe_outcome = observe_outcome
        self._clock = clock
        self._commands = commands
        self._max_batch = max_batch
        self._max_kept = max_kept
        self._retry_delay = retry_delay
        self._retry_cap = retry_cap
        self._writes: list[_Write] = []
        self._buffered = 0  # records in self._writes, not counting kept ones
        self._in_flight = 0
        self._retry: Any = None  # the DelayedCall that tries kept writes again
        self._backoffs = 0
        self.streak = FailureStreak(clock)
        self.dropped = 0  # kept records given up on (over max_kept)

    def record(self, records: list[Execution],
               started: list[DeliveryRecord] = (),  # type: ignore[assignment]
               finished: list[DeliveryFinished] = (),  # type: ignore[assignment]
               keep_trying: bool = False) -> Deferred:
        """Queue execution records, outbox entries C{started} and outbox removals
        C{finished}. The Deferred fires (with None)
        once they are applied, or fails if they were not (the command failed, or was
        rejected: L{RecordRejected}); the failure is logged here, so a caller that has
        nothing to do about it may ignore it (see L{ignore_failure}). With C{keep_trying}
        (records and removals only) they are also written again later, until stored."""
        d: Deferred = Deferred()
        if self._observe is not None and records:
            self._observe(records)
        keep = keep_trying and not started
        self._writes.append(_Write(list(records), list(started), list(finished), [], keep, d,
                                   len(records)))
        self._buffered += len(records)
        # while kept writes wait out their backoff, more of the same kind wait with them;
        # a caller waiting for its write (a dispatch) has it tried at once
        if ((self._in_flight == 0 and (self._retry is None or not keep))
                or self._buffered >= self._max_batch):
            self._flush()
        return d

    def record_outcome(self, outcome: DeliveryOutcome, occurrences: int) -> Deferred:
        """Queue a POST's outcome (for its C{occurrences}), kept and tried again until it
        is stored, as L{record} with C{keep_trying}: the state machine writes the
        occurrences' records from the delivery's outbox entry."""
        d: Deferred = Deferred()
        if self._observe_outcome is not None:
            self._observe_outcome(outcome, occurrences)
        self._writes.append(_Write([], [], [], [outcome], True, d, occurrences))
        self._buffered += occurrences
        if ((self._in_flight == 0 and self._retry is None)
                or self._buffered >= self._max_batch):
            self._flush()
        return d

    @property
    def kept(self) -> int:
        """Records waiting for another try after a failed write."""
        return sum(w.size for w in self._writes if w.waiter is None)

    def _flush(self) -> None:
        if self._retry is not None:
            if self._retry.active():
                self._retry.cancel()
            self._retry = None
        if not self._writes:
            return
        writes, self._writes, self._buffered = self._writes, [], 0
        payload = RecordExecutions(records=[r for w in writes for r in w.records],
                                   started=[e for w in writes for e in w.started],
                                   finished=[e for w in writes for e in w.finished],
                                   outcomes=[e for w in writes for e in w.outcomes])
        count = sum(w.size for w in writes)
        command = issue(payload, self._clock.seconds())
        self._in_flight += 1
        d = self._commands.submit(command)

        def done(result: Any) -> None:
            self._in_flight -= 1
            rejected = isinstance(result, dict) and result.get("ok") is False
            if rejected:
                result = Failure(RecordRejected(
                    f"execution records refused: {result.get('error', 'no reason given')}"))
                self._failed(result, count)
            if isinstance(result, dict):
                self._succeeded()
                for write in writes:
                    if write.waiter is not None:
                        write.waiter.callback(None)
            else:
                waiters = [w.waiter for w in writes if w.waiter is not None]
                for write in writes:
                    write.waiter = None
                if not rejected:  # a refusal would only be refused again
                    self._keep(writes)
                for waiter in waiters:
                    waiter.errback(result)
            if self._in_flight == 0:
                if self._writes and all(w.waiter is None for w in self._writes):
                    self._retry_later()  # only kept writes: after a backoff
                else:
                    self._flush()

        def failed(failure: Any) -> None:
            self._failed(failure, count)
            done(failure)

        d.addCallbacks(done, failed)

    def _keep(self, writes: list[_Write]) -> None:
        """Put a failed command's keep-trying writes back ahead of later ones, within
        C{max_kept} records (the oldest go first)."""
        kept = [w for w in writes if w.keep_trying]
        if not kept:
            return
        self._writes[:0] = kept
        over = self.kept - self._max_kept
        dropped = 0
        while over > 0 and self._writes and self._writes[0].waiter is None:
            gone = self._writes.pop(0)
            over -= max(gone.size, 1)
            dropped += gone.size
        if dropped:
            self.dropped += dropped
            log.error("gave up on {count} execution records after failed writes (more than "
                      "{most} were waiting); their executions keep their previous state",
                      count=dropped, most=self._max_kept)

    def _retry_later(self) -> None:
        if self._retry is not None:
            return
        delay = min(self._retry_delay * 2.0 ** min(self._backoffs, 30), self._retry_cap)
        self._backoffs += 1
        self._retry = self._clock.callLater(delay, self._flush)

    def _failed(self, failure: Failure, count: int) -> None:
        if not self.streak.failed():
            return
        if self.streak.failures == 1:
            if failure.check(NotAccepting) and not failure.check(StorageFull, StorageFailed):
                # the log does not take writes now (no Raft leader during an election, a
                # stopping node): an expected moment, not a fault; a line, no traceback
                log.warn("recording {count} execution records was refused ({error}); they "
                         "are kept and written again once the log takes writes",
                         count=count, error=describe_failure(failure))
            else:
                log.failure("recording {count} execution records failed", failure,
                            count=count)
        else:
            log.error("recording execution records still fails ({error}): {failures} failed "
                      "writes in {seconds:.0f} s, {unlogged} not logged since the last report",
                      error=describe_failure(failure), failures=self.streak.failures,
                      seconds=self._clock.seconds() - (self.streak.since or 0),
                      unlogged=self.streak.unlogged)

    def _succeeded(self) -> None:
        self._backoffs = 0
        ended = self.streak.succeeded()
        if ended is not None:
            log.info("recording execution records works again after {failures} failed "
                     "writes in {seconds:.0f} s", failures=ended[0], seconds=ended[1])


def ignore_failure(d: Deferred) -> Deferred:
    """For a fire-and-forget L{ExecutionRecorder.record}: its failure is already logged
    (rate-limited), so it must not surface again as an unhandled error in a Deferred."""
    return d.addErrback(lambda _: None)
