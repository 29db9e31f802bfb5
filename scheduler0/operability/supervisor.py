"""
The supervisor (seed "Scheduler Admin API"): halt and restart the scheduler without
stopping the process, and a memory guard that pauses it under pressure.

Two things can hold the scheduler: an operator's halt and memory pressure (at 70 % of
C{MaxMemory} the node stops taking new occurrences, below 60 % it takes them again). The
scheduler runs only when neither holds it; occurrences missed meanwhile follow each job's
misfire policy when it resumes. The executor is halted only by an operator: callbacks
already queued keep going out under memory pressure, so memory drains.

An operator's halt is a decision that must outlive the process: it is stored (a
C{supervisor.set} command) and restored at start (L{Supervisor.restore}) before anything
is dispatched, so a crash-restart does not resume the scheduler silently. The API stays
synchronous: the halt (or restart) takes effect in memory at once and its command is
submitted beside it; a command that fails is logged with what it means. Memory pressure
is not a decision and is not stored.

In a cluster only the Raft leader executes (L{scheduler0.consensus.leadership}): a
follower's state is C{STANDBY} (or C{HALTED} under an operator's halt), and its answers
carry its C{role}. The operator's halt is the cluster's: a halt or restart stored through
any node is taken by the others as they apply it, and a node that becomes leader takes the
stored one before it starts executing.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..domain import SupervisorHalt
from ..state.commands import Command, issue
from ..state.kinds import SUPERVISOR_SET
from ..state.payloads import SetSupervisor
from ..timestamps import format_time, from_seconds

log = Logger()

#: why the scheduler is held when an operator halted it
OPERATOR_REASON = "halted by an operator (POST /api/supervisor/halt)"

RUNNING = "RUNNING"
HALTED = "HALTED"
FINISHED = "FINISHED"
#: a cluster follower: the leader executes the jobs, this node does not
STANDBY = "STANDBY"

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
    """
    @param commands: where the operator's halt and restart are stored (an
        L{scheduler0.consensus.interface.ICommandLog}); None keeps them in memory only.
    @param clock: C{IReactorTime}, for the time a halt is stamped with.
    @param role: in a cluster, whether this node executes (C{executing}, C{role}) and who
        does (C{standby_reason()}); None on a single node, which always executes.
    """

    def __init__(self, scheduler: Any, executor: Any, commands: Any = None,
                 clock: Any = None, role: Any = None) -> None:
        if commands is not None and clock is None:
            raise ValueError("a supervisor that stores its halt needs a clock")
        self._scheduler = scheduler
        self._executor = executor
        self._commands = commands
        self._clock = clock
        self.operator_halted = False
        #: when the operator's halt began (RFC 3339), as stored
        self.halted_since: str | None = None
        self.memory_pressure = False
        self.memory_reason: str | None = None
        self.role = role
        self._own: set[str] = set()  # ids of the halts and restarts this node stored

    @property
    def follower(self) -> bool:
        """A cluster node that does not execute now (another node leads)."""
        return self.role is not None and not self.role.executing

    def view(self) -> dict[str, Any]:
        """What C{GET /api/supervisor/state} answers (the state must not be None); a
        cluster node adds its C{role} and whether it C{executing} jobs."""
        answer: dict[str, Any] = {"state": self.state(), "reason": self.reason()}
        if self.role is not None:
            answer.update(role=self.role.role, executing=self.role.executing)
        return answer

    @property
    def halted(self) -> bool:
        """Whether the scheduler is held (by an operator or by memory pressure)."""
        return self.operator_halted or self.memory_pressure

    def state(self) -> str | None:
        """RUNNING, HALTED or FINISHED (no job has a future occurrence); None when no job
        is configured at all. A cluster follower is STANDBY (HALTED under an operator's
        halt): it plans nothing."""
        if self.follower:
            return HALTED if self.operator_halted else STANDBY
        if not self._scheduler.plans:
            return None
        if self.halted:
            return HALTED
        return RUNNING if self._scheduler.pending() else FINISHED

    def reason(self) -> str | None:
        if self.operator_halted:
            since = f" since {self.halted_since}" if self.halted_since else ""
            return f"{OPERATOR_REASON}{since}"
        if self.memory_pressure:
            return self.memory_reason
        if self.follower:
            return self.role.standby_reason()
        return None

    def restore(self, saved: SupervisorHalt | None) -> None:
        """
        At start, before the scheduler and the executor start: an operator's halt stored
        before the process stopped holds them again, so nothing is dispatched (no
        catch-up, no re-sent delivery) until an operator restarts the supervisor.
        """
        if saved is None or not saved.halted:
            return
        self.operator_halted = True
        self.halted_since = saved.at
        self._scheduler.halt()
        self._executor.halt()
        log.warn("the scheduler is halted by an operator since {since} (kept across the "
                 "restart): nothing is dispatched until POST /api/supervisor/restart",
                 since=self.halted_since)

    def adopt(self, saved: SupervisorHalt | None) -> None:
        """
        A cluster node about to execute (it became leader), its scheduler and executor
        stopped: take the cluster's stored halt or restart, whichever node stored it, so
        a halt outlives the leader that took it and a restart ends a halt this node kept.
        """
        halted = saved is not None and saved.halted
        if halted and not self.operator_halted:
            log.warn("the scheduler is halted by an operator since {since} (stored in the "
                     "cluster): nothing is dispatched until POST /api/supervisor/restart",
                     since=saved.at if saved else None)
        self.operator_halted = halted
        self.halted_since = saved.at if halted and saved is not None else None
        self._scheduler.halted = halted or self.memory_pressure
        self._executor.halted = halted

    def observe(self, command: Command, result: dict) -> None:
        """
        A command log observer: in a cluster, a halt or restart another node stored holds
        or frees this node too (the leader executes, wherever the operator asked). Its own
        are already in effect; a single node has no others.
        """
        if command.kind != SUPERVISOR_SET or not result.get("ok"):
            return
        if command.id in self._own:
            self._own.discard(command.id)
            return
        if self.role is None:
            return
        payload = command.payload
        if not self.role.executing:
            self.adopt(SupervisorHalt(payload.halted, payload.reason, payload.at))
        elif payload.halted:
            if not self.operator_halted:
                log.info("scheduler halted by an operator (through another node)")
            self.operator_halted = True
            self.halted_since = payload.at
            self._scheduler.halt()
            self._executor.halt()
        elif self.operator_halted:
            log.info("scheduler restarted by an operator (through another node)")
            self.operator_halted = False
            self.halted_since = None
            self._executor.resume()
            if not self.memory_pressure:
                self._scheduler.resume()

    def halt(self) -> None:
        """No new occurrence and no new delivery starts; callbacks in flight finish and are
        recorded. Takes effect at once; the halt is stored so a restart keeps it."""
        if not self.operator_halted:
            log.info("scheduler halted by an operator")
            self.halted_since = self._now()
        self.operator_halted = True
        self._scheduler.halt()
        self._executor.halt()
        self._store(True)

    def restart(self) -> None:
        if self.operator_halted:
            log.info("scheduler restarted by an operator")
        self.operator_halted = False
        self.halted_since = None
        self._executor.resume()
        if not self.memory_pressure:
            self._scheduler.resume()
        self._store(False)

    def _now(self) -> str | None:
        return format_time(from_seconds(self._clock.seconds())) if self._clock else None

    def _store(self, halted: bool) -> None:
        """Submit the operator's decision (stored again on every request: a repeated halt
        stores one whose first write failed); a failure is logged, never raised."""
        if self._commands is None:
            return
        payload = SetSupervisor(halted=halted, reason=OPERATOR_REASON if halted else None,
                                at=self.halted_since if halted else self._now())
        what = "halt" if halted else "restart"
        after = ("a restart of the process would resume the scheduler" if halted else
                 "a restart of the process would come up halted")

        def stored(result: dict) -> None:
            if not result.get("ok"):
                log.error("the operator's {what} was refused by the store ({error}); it "
                          "holds in memory, but {after}", what=what,
                          error=result.get("error"), after=after)

        def failed(failure: Any) -> None:
            log.failure("the operator's {what} could not be stored; it holds in memory, but "
                        "{after}: repeat the request once the node can write", failure,
                        what=what, after=after)

        try:
            command = issue(payload, self._clock.seconds())
            if self.role is not None:
                self._own.add(command.id)
            d = self._commands.submit(command)
        except Exception:
            log.failure("the operator's {what} could not be stored; it holds in memory, but "
                        "{after}: repeat the request once the node can write",
                        what=what, after=after)
            return
        d.addCallbacks(stored, failed)

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
