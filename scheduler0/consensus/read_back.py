"""
Commands as a log delivers them (issue 12 item 4): read back from their JSON in the
applier's writer thread, never in the reactor. A Raft entry is its command's JSON text; a
single node's command is written to JSON and read back (C{trip}), so it applies what a
replica would, except the kinds in L{NOT_READ_BACK}.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..state import commands as C
from ..state.commands import Command
from ..state.machine import Result, apply_batch

log = Logger()


#: What a single node applies as it made it, without the trip through JSON: the scheduler's
#: own execution records (typed by the node, never from a client; their trip is checked by
#: tests/test_determinism.py). Measured with 1,000,000 jobs a minute, their trip cost 6 %
#: of a core and p99 lateness 0.57 -> 0.68 s (the read-back of job creations costs up to a
#: tenth of their rate: BENCHMARKS.md).
NOT_READ_BACK = frozenset({C.EXECUTION_RECORD})


@attrs.frozen
class NotACommand:
    """A Raft entry whose text is not a command (read back in the writer): skipped."""

    error: Exception


def read_back(entry: Command | str, trip: bool) -> Command | NotACommand:
    """The command as a log delivers it: read from its JSON text, or (C{trip}) written to
    JSON and read back, so a single node applies what a replica would."""
    try:
        if isinstance(entry, str):
            return Command.from_json(entry)
        if trip and entry.kind not in NOT_READ_BACK:
            return Command.from_json(entry.to_json())
        return entry
    except Exception as error:
        return NotACommand(error)


def apply_entries(conn: Any, entries: list[Command | str], trip: bool,
                   applied_index: int | None = None
                   ) -> list[tuple[Command | NotACommand, Result | None]]:
    """In the writer thread: read each entry back and apply the commands in one batch."""
    read = [read_back(entry, trip) for entry in entries]
    commands = [c for c in read if isinstance(c, Command)]
    results = iter(apply_batch(conn, commands, applied_index))
    return [(c, next(results) if isinstance(c, Command) else None) for c in read]


def not_carried(command: Command) -> dict:
    return {"ok": False, "status": 500,
            "error": f"malformed {command.kind} command: it cannot be carried as JSON (an "
                     "internal error; the node's log has details)"}


def log_not_commands(results: list[tuple[Command | NotACommand, Result | None]],
                      entries: list[tuple[Command | str, int | None]]) -> None:
    """Log each Raft entry that was not a command (skipped; the others applied)."""
    for (command, _), (given, index) in zip(results, entries):
        if isinstance(command, NotACommand):
            error = command.error
            failure = Failure(error, type(error), error.__traceback__)
            if isinstance(given, Command):
                log.failure("command {command_id} ({kind}) cannot be carried as JSON; "
                            "refused", failure, command_id=given.id, kind=given.kind)
            else:
                log.failure("Raft entry {index} is not a command; skipped", failure,
                            index=index)
