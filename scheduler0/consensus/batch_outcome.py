"""
What a written batch tells the applier besides its results: a storage failure (the error
its commands fail with, logged once while it lasts) and commands their state-machine
function rejected (logged with their traceback; the rest of the batch committed).
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure

from ..state.commands import Command
from ..state.machine import EXCEPTION_KEY
from .interface import NotAccepting, StorageFailed, StorageFull

log = Logger(namespace="scheduler0.consensus.applier")


def storage_error(trouble: str) -> NotAccepting:
    """What the commands of a batch the database refused fail with (C{trouble}: "full",
    "io" or "damaged", from L{scheduler0.store.database.storage_failure})."""
    if trouble == "full":
        return StorageFull()
    if trouble == "damaged":
        return StorageFailed("the node's database file is damaged; the write was not "
                             "stored (the operator must restore it from a backup)")
    return StorageFailed()


def log_batch_failure(failure: Failure, trouble: str | None, before: str | None,
                       count: int, path: str) -> str | None:
    """Log a failed batch; a storage failure once when it starts, not for every batch."""
    if trouble is None:
        log.failure("writing {count} commands failed", failure, count=count)
    elif trouble != before:
        log.error("cannot write the database {path} ({trouble}: {error}); every write fails "
                  "until it can ({count} in this batch)", path=path, trouble=trouble,
                  error=str(failure.value), count=count)
    return trouble


def log_malformed(applied: list[tuple[Command, dict]]) -> None:
    """Log (with its traceback) each command its applier failed on; the rest committed."""
    for command, result in applied:
        error = result.pop(EXCEPTION_KEY, None)
        if error is not None:
            log.failure("command {command_id} ({kind}) failed in its applier; rejected it "
                        "({message}) and committed the rest of its batch",
                        Failure(error, type(error), error.__traceback__),
                        command_id=command.id, kind=command.kind, message=result["error"])
