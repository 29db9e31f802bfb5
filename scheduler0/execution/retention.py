"""
Execution retention: an hourly command prunes finished execution records, so the database
does not grow without end (C{ExecutionRetentionDays}, C{ExecutionRetentionPerJob}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..consensus.interface import ICommandLog
from ..state import commands as C
from ..state.commands import new_command
from ..timestamps import format_time, from_seconds

log = Logger()


class RetentionService(Service):
    def __init__(self, clock: Any, commands: ICommandLog, days: int, per_job: int,
                 interval: float = 3600.0) -> None:
        self._clock = clock
        self._commands = commands
        self._days = days
        self._per_job = per_job
        self._loop = LoopingCall(self.prune)
        self._loop.clock = clock
        self._interval = interval

    def startService(self) -> None:
        Service.startService(self)
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()

    def prune(self) -> Any:
        now = self._clock.seconds()
        command = new_command(C.EXECUTION_PRUNE, {
            "before": format_time(from_seconds(now - self._days * 86400)),
            "keep_per_job": self._per_job,
        }, now)
        d = self._commands.submit(command)
        d.addCallback(lambda result: log.info("pruned {deleted} execution records",
                                              deleted=result.get("deleted", 0)))
        d.addErrback(lambda f: log.failure("pruning execution records failed", f))
        return d
