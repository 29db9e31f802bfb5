"""
Execution records go to the state as batched commands.

Records are buffered while a batch is being applied and go together in the next
C{execution.record} command, so at low load a record is written at once and under load
thousands share one command (one commit). Changes to the delivery outbox (a POST started,
a POST's outcome known) ride in the same commands. A caller that must know its write is
durable (the executor, before it sends a callback) waits on the returned Deferred.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ..consensus.interface import ICommandLog
from ..state import commands as C
from ..state.commands import new_command

log = Logger()


class ExecutionRecorder:
    """
    @param max_batch: most records per command.
    @param observe: sees every record as it is queued (metrics).
    """

    def __init__(self, clock: Any, commands: ICommandLog, max_batch: int = 5000,
                 observe: Callable[[list[dict]], None] | None = None) -> None:
        self._observe = observe
        self._clock = clock
        self._commands = commands
        self._max_batch = max_batch
        self._buffer: list[dict] = []
        self._started: list[dict] = []
        self._finished: list[dict] = []
        self._waiters: list[Deferred] = []
        self._in_flight = 0

    def record(self, records: list[dict], started: list[dict] = (),  # type: ignore[assignment]
               finished: list[dict] = ()) -> Deferred:  # type: ignore[assignment]
        """Queue records (dicts of L{scheduler0.state.machine.EXECUTION_COLUMNS}), outbox
        entries C{started} and outbox removals C{finished} (C{{"id": delivery id}}, with
        C{"executions"} to remove only some occurrences). The Deferred fires (with None)
        once they are applied, or fails if they were not."""
        d: Deferred = Deferred()
        if self._observe is not None and records:
            self._observe(records)
        self._buffer.extend(records)
        self._started.extend(started)
        self._finished.extend(finished)
        self._waiters.append(d)
        if self._in_flight == 0 or len(self._buffer) >= self._max_batch:
            self._flush()
        return d

    def _flush(self) -> None:
        if not self._waiters:
            return
        payload: dict = {"records": self._buffer}
        if self._started:
            payload["started"] = self._started
        if self._finished:
            payload["finished"] = self._finished
        records = self._buffer
        self._buffer, self._started, self._finished = [], [], []
        waiters, self._waiters = self._waiters, []
        command = new_command(C.EXECUTION_RECORD, payload, self._clock.seconds())
        self._in_flight += 1
        d = self._commands.submit(command)

        def done(result: Any) -> None:
            self._in_flight -= 1
            for waiter in waiters:
                if isinstance(result, dict):
                    waiter.callback(None)
                else:
                    waiter.errback(result)
            if self._in_flight == 0:
                self._flush()

        def failed(failure: Any) -> None:
            log.failure("recording {count} execution records failed", failure,
                        count=len(records))
            done(failure)

        d.addCallbacks(done, failed)
