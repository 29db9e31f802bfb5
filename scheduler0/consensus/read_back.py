"""
Commands as a log delivers them (issue 12 item 4): read back from their JSON in the
applier's writer thread, never in the reactor. A replica's Raft entry is its command's JSON
text; a single node's (a one-node cluster, L{scheduler0.consensus.local}) is the command
itself, L{Unencoded}, written to JSON and read back there: one node applies what a replica
would, and its reactor encodes nothing.
"""

from __future__ import annotations

from typing import Any, Union

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


@attrs.frozen
class Unencoded:
    """
    A single node's entry: the command itself, as its journal never leaves the process. It
    is written to JSON and read back in the writer thread, as a replica reads its entries'
    text, so the reactor that proposed it pays for neither.
    """

    command: Command


#: what a log hands the applier: a replica's JSON text, a single node's L{Unencoded}, or a
#: command applied as it is (L{scheduler0.consensus.applier.CommandApplier.apply})
Entry = Union[Command, str, Unencoded]


def read_back(entry: Entry) -> Command | NotACommand:
    """The command as a log delivers it, read from its JSON text (a command given as one,
    to L{scheduler0.consensus.applier.CommandApplier.apply}, as it is)."""
    if isinstance(entry, Command):
        return entry
    try:
        text = entry.command.to_json() if isinstance(entry, Unencoded) else entry
        return Command.from_json(text)
    except Exception as error:
        return NotACommand(error)


def apply_entries(conn: Any, entries: list[Entry], applied_index: int | None = None
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
                      entries: list[tuple[Entry, int | None]]) -> None:
    """Log each Raft entry that was not a command (skipped; the others applied)."""
    for (command, _), (given, index) in zip(results, entries):
        if isinstance(command, NotACommand):
            error = command.error
            failure = Failure(error, type(error), error.__traceback__)
            if isinstance(given, Unencoded):
                log.failure("command {command_id} ({kind}) cannot be carried as JSON; "
                            "refused", failure, command_id=given.command.id,
                            kind=given.command.kind)
            else:
                log.failure("Raft entry {index} is not a command; skipped", failure,
                            index=index)
