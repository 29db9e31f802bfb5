"""
The seam between the API and how commands are committed.

A single node applies commands itself (L{scheduler0.consensus.local.LocalCommandLog});
a cluster replicates them through Raft first. The API and the scheduler see only this
interface, so adding Raft touches neither.
"""

from __future__ import annotations

from typing import Any, Callable

from zope.interface import Interface

from ..state.commands import Command

Observer = Callable[[Command, dict], None]


class NotAccepting(Exception):
    """The log cannot take commands now (stopping, overloaded, or no leader)."""


class StorageFull(NotAccepting):
    """
    The disk holding the database is full: the command was not stored (nothing of its
    batch was). Writes succeed again by themselves once space is freed.
    """

    def __init__(self, message: str = "the disk holding the database is full; the write "
                 "was not stored (free space on the node and retry)") -> None:
        super().__init__(message)


class StorageFailed(NotAccepting):
    """
    The database could not be written (an I/O error, a damaged file): the command was not
    stored. Unlike a rejection, the same command can succeed once the storage is fixed.
    """

    def __init__(self, message: str = "the node could not write its database (an I/O "
                 "error); the write was not stored (retry later; the node's log says more)"
                 ) -> None:
        super().__init__(message)


class ICommandLog(Interface):
    def submit(command: Command) -> Any:
        """
        Commit C{command} and apply it to this node's state.

        @return: a Deferred firing with the command's result dict once it is applied here
            (C{{"ok": True, ...}} or C{{"ok": False, "status": int, "error": str}}); failing
            with L{NotAccepting} when the command was not taken. Submitting a command id that
            was already applied fires with the stored result and changes nothing.
        """

    def add_observer(observer: Observer) -> None:
        """Call C{observer(command, result)} in the reactor thread after each apply, in order."""

    def add_replaced_observer(callback: Callable[[], None]) -> None:
        """
        Call C{callback()} in the reactor thread after the whole state was replaced (a Raft
        snapshot installed on a node far behind): whatever was loaded from sqlite must be
        loaded again. A single node never replaces its state.
        """

    def status() -> dict[str, Any]:
        """Raft-style statistics for the healthcheck, all values strings."""

    def leader() -> tuple[str, str] | None:
        """C{(leader address, leader node id)}, or None while there is no leader."""
