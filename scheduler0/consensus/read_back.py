"""
Commands as a log delivers them (issue 12 item 4): read back from their JSON in the
applier's writer thread, never in the reactor. A Raft entry is its command's JSON text, on
a single node (a one-node cluster, L{scheduler0.consensus.local}) as on every replica, so
one node applies what a replica would.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..state.commands import Command
from ..state.machine import Result, apply_batch

log = Logger()


@attrs.frozen
class NotACommand:
    """A Raft entry whose text is not a command (read back in the writer): skipped."""

    error: Exception


def read_back(entry: Command | str) -> Command | NotACommand:
    """The command as a log delivers it, read from its JSON text (a command given as one,
    to L{scheduler0.consensus.applier.CommandApplier.apply}, as it is)."""
    if not isinstance(entry, str):
        return entry
    try:
        return Command.from_json(entry)
    except Exception as error:
        return NotACommand(error)


def apply_entries(conn: Any, entries: list[Command | str], applied_index: int | None = None
                  ) -> list[tuple[Command | NotACommand, Result | None]]:
    """In the writer thread: read each entry back and apply the commands in one batch."""
    read = [read_back(entry) for entry in entries]
    commands = [c for c in read if isinstance(c, Command)]
    results = iter(apply_batch(conn, commands, applied_index))
    return [(c, next(results) if isinstance(c, Command) else None) for c in read]


def not_carried(kind: str) -> dict:
    """The answer to a command JSON cannot carry (a bug, logged): stable, stored nowhere."""
    return {"ok": False, "status": 500,
            "error": f"malformed {kind} command: it cannot be carried as JSON (an "
                     "internal error; the node's log has details)"}


def log_not_commands(results: list[tuple[Command | NotACommand, Result | None]],
                      entries: list[tuple[Command | str, int | None]]) -> None:
    """Log each Raft entry that was not a command (skipped; the others applied)."""
    for (command, _), (given, index) in zip(results, entries):
        if isinstance(command, NotACommand):
            error = command.error
            log.failure("Raft entry {index} is not a command; skipped",
                        Failure(error, type(error), error.__traceback__), index=index)
