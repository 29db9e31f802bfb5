"""
Execution retention: every hour a pass prunes finished execution records, so the database
does not grow without end (C{ExecutionRetentionDays}, C{ExecutionRetentionPerJob}).

At 200,000 jobs firing every minute an hour adds 12 million records; deleting them in one
write held the writer thread (and with it every delivery's outbox write) for 10.7 s at
20,000 jobs (C{bench/retention_prune.py}). A pass therefore walks the job ids in ranges of
C{jobs_per_command}, one C{execution.prune} command after the other, each an indexed delete
of a few thousand rows (about 50 ms for 100 jobs), with a pause between them. The first
command of a pass also forgets applied command ids older than a day.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from ..consensus.interface import ICommandLog
from ..state.commands import issue
from ..state.payloads import PruneExecutions
from ..timestamps import format_time, from_seconds

log = Logger()

#: applied command ids are kept this long (seconds) to answer a resubmission the same way
COMMANDS_KEPT = 86400.0


class RetentionService(Service):
    """
    @param last_job_id: the highest job id ever used (the pass walks 1..that).
    @param pause: seconds between two commands of a pass, so other writes go between.
    """

    def __init__(self, clock: Any, commands: ICommandLog, days: int, per_job: int,
                 last_job_id: Callable[[], int], interval: float = 3600.0,
                 jobs_per_command: int = 100, pause: float = 0.05) -> None:
        self._clock = clock
        self._commands = commands
        self._days = days
        self._per_job = per_job
        self._last_job_id = last_job_id
        self._jobs_per_command = jobs_per_command
        self._pause = pause
        self._loop = LoopingCall(self.prune)
        self._loop.clock = clock
        self._interval = interval
        self._pass: Deferred | None = None

    def startService(self) -> None:
        Service.startService(self)
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()
        if self._pass is not None:
            self._pass.cancel()

    def prune(self) -> Deferred | None:
        """Start a pass (unless the previous one is still going); its Deferred fires with
        the number of records deleted."""
        if self._pass is not None:
            return None
        # a pass may end before ensureDeferred returns (a command log that answers at once)
        self._pass = running = ensureDeferred(self._prune_all())

        def done(result: Any) -> Any:
            self._pass = None
            return result

        def failed(failure: Any) -> None:
            if not failure.check(CancelledError):  # stopped mid-pass: the next start goes on
                log.failure("pruning execution records failed", failure)

        running.addBoth(done)
        running.addErrback(failed)
        return running

    async def _prune_all(self) -> int:
        now = self._clock.seconds()
        before = format_time(from_seconds(now - self._days * 86400))
        last = self._last_job_id()
        deleted = forgotten = 0
        low = 1
        while True:
            payload = PruneExecutions(
                before=before, keep_per_job=self._per_job,
                jobs=(low, low + self._jobs_per_command),
                commands_before=(format_time(from_seconds(now - COMMANDS_KEPT))
                                 if low == 1 else None))
            result = await self._commands.submit(issue(payload, self._clock.seconds()))
            deleted += result.get("deleted", 0)
            forgotten += result.get("commands", 0)
            low += self._jobs_per_command
            if low > last or not self.running:
                break
            await deferLater(self._clock, self._pause, lambda: None)
        log.info("pruned {deleted} execution records and {commands} applied command ids",
                 deleted=deleted, commands=forgotten)
        return deleted
