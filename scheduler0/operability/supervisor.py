"""
The supervisor (seed "Scheduler Admin API"): halt and restart the scheduler without
stopping the process, and a memory guard that pauses it under pressure.

Two things can hold the scheduler: an operator's halt and memory pressure (at 70 % of
C{MaxMemory} the node stops taking new occurrences, below 60 % it takes them again). The
scheduler runs only when neither holds it; occurrences missed meanwhile follow each job's
misfire policy when it resumes. The executor is halted only by an operator: callbacks
already queued keep going out under memory pressure, so memory drains.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

RUNNING = "RUNNING"
HALTED = "HALTED"
FINISHED = "FINISHED"

HIGH_WATER = 0.70
LOW_WATER = 0.60


def resident_memory_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Supervisor:
    def __init__(self, scheduler: Any, executor: Any) -> None:
        self._scheduler = scheduler
        self._executor = executor
        self.operator_halted = False
        self.memory_pressure = False
        self.memory_reason: str | None = None

    @property
    def halted(self) -> bool:
        """Whether the scheduler is held (by an operator or by memory pressure)."""
        return self.operator_halted or self.memory_pressure

    def state(self) -> str | None:
        """RUNNING, HALTED or FINISHED (no job has a future occurrence); None when no job
        is configured at all."""
        if not self._scheduler.plans:
            return None
        if self.halted:
            return HALTED
        return RUNNING if self._scheduler.pending() else FINISHED

    def reason(self) -> str | None:
        if self.operator_halted:
            return "halted by an operator (POST /api/supervisor/halt)"
        if self.memory_pressure:
            return self.memory_reason
        return None

    def halt(self) -> None:
        """No new occurrence and no new delivery starts; callbacks in flight finish and are
        recorded."""
        if not self.operator_halted:
            log.info("scheduler halted by an operator")
        self.operator_halted = True
        self._scheduler.halt()
        self._executor.halt()

    def restart(self) -> None:
        if self.operator_halted:
            log.info("scheduler restarted by an operator")
        self.operator_halted = False
        self._executor.resume()
        if not self.memory_pressure:
            self._scheduler.resume()

    def memory(self, used: int, limit: int) -> None:
        """Feed one memory reading (bytes) against the limit (bytes; 0 = no limit)."""
        if limit <= 0:
            return
        share = used / limit
        if not self.memory_pressure and share >= HIGH_WATER:
            self.memory_pressure = True
            self.memory_reason = (
                f"memory use {used // 2**20} MB is {share:.0%} of MaxMemory "
                f"{limit // 2**20} MB; new occurrences wait until it is below "
                f"{LOW_WATER:.0%}")
            log.warn("{reason}", reason=self.memory_reason)
            self._scheduler.halt()
        elif self.memory_pressure and share < LOW_WATER:
            self.memory_pressure = False
            self.memory_reason = None
            log.info("memory use back to {share:.0%} of MaxMemory; taking occurrences again",
                     share=share)
            if not self.operator_halted:
                self._scheduler.resume()


class MemoryGuardService(Service):
    """Reads the process's memory every C{interval} seconds and tells the supervisor."""

    def __init__(self, clock: Any, supervisor: Supervisor, limit_mb: int,
                 read: Callable[[], int] = resident_memory_bytes, interval: float = 1.0) -> None:
        self._supervisor = supervisor
        self._limit = limit_mb * 2**20
        self._read = read
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._interval = interval

    def check(self) -> None:
        self._supervisor.memory(self._read(), self._limit)

    def startService(self) -> None:
        Service.startService(self)
        if self._limit > 0:
            self._loop.start(self._interval, now=True)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()
