"""
Commands: the only way the replicated state changes.

A command is plain, versioned, JSON-able data. Everything that applying it needs (ids,
timestamps, hashed secrets) is inside it, decided by the node that proposes it, so every
replica that applies the same command ends with the same rows.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Mapping

import attrs

from ..timestamps import format_time, from_seconds

COMMAND_FORMAT_VERSION = 1

PROJECT_CREATE = "project.create"
PROJECT_UPDATE = "project.update"
PROJECT_DELETE = "project.delete"
PROJECT_ROTATE_SECRET = "project.rotate_secret"
JOB_CREATE = "job.create"
JOB_UPDATE = "job.update"
JOB_DELETE = "job.delete"
CREDENTIAL_CREATE = "credential.create"
CREDENTIAL_UPDATE = "credential.update"
CREDENTIAL_DELETE = "credential.delete"
EXECUTION_RECORD = "execution.record"
EXECUTION_DELETE = "execution.delete"
EXECUTION_PRUNE = "execution.prune"
#: the operator's halt or restart of the scheduler: {"halted": bool, "reason": str | None,
#: "at": RFC 3339 time}, kept so that a restart of the process does not undo it
SUPERVISOR_SET = "supervisor.set"


@attrs.frozen
class Command:
    """
    @ivar id: unique id chosen by the proposer; applying the same id twice changes nothing.
    @ivar kind: what to do, one of the module's C{*_CREATE}/C{*_UPDATE}/... names.
    @ivar issued_at: RFC 3339 UTC time the proposer stamped it with; every timestamp the
        command writes is this one.
    @ivar payload: kind-specific JSON-able data.
    @ivar version: payload format version of this kind, for rolling upgrades.
    """

    id: str
    kind: str
    issued_at: str
    payload: Mapping[str, Any]
    version: int = COMMAND_FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "kind": self.kind,
                "issuedAt": self.issued_at,
                "payload": self.payload,
                "version": self.version,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "Command":
        raw = json.loads(text)
        return cls(
            id=raw["id"],
            kind=raw["kind"],
            issued_at=raw["issuedAt"],
            payload=raw["payload"],
            version=raw.get("version", COMMAND_FORMAT_VERSION),
        )


def new_command(kind: str, payload: Mapping[str, Any], now: float) -> Command:
    """Stamp a fresh command with a random id and the proposer's current time."""
    return Command(
        id=uuid.uuid4().hex, kind=kind, issued_at=format_time(from_seconds(now)), payload=payload
    )
