"""
Commands: the only way the replicated state changes.

A command is a typed payload (L{scheduler0.state.payloads}) with an id, a kind and the
time it was issued. Everything that applying it needs (ids, timestamps, hashed secrets)
is inside it, decided by the node that proposes it, so every replica that applies the
same command ends with the same rows. Its JSON form (L{Command.to_json}) is what a log
carries; a command read back from JSON is typed again (L{Command.from_json}).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from ..timestamps import format_time, from_seconds
from .kinds import *  # noqa: F401,F403  (the kind names have always been importable here)
from .payloads import Payload, payload_from_json

COMMAND_FORMAT_VERSION = 1

#: one encoder for every command (C{json.dumps} with options makes a new one per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _typed(command: "Command") -> None:
    """A payload given in its JSON form is typed now when it can be; one that cannot
    (malformed, or of an unknown kind) stays as it is and is rejected when applied."""
    if isinstance(command.payload, Mapping):
        try:
            typed = payload_from_json(command.kind, command.payload)
        except Exception:
            return
        object.__setattr__(command, "payload", typed)


@attrs.frozen
class Command:
    """
    @ivar id: unique id chosen by the proposer; applying the same id twice changes nothing.
    @ivar kind: what to do (L{scheduler0.state.kinds}).
    @ivar issued_at: RFC 3339 UTC time the proposer stamped it with; every timestamp the
        command writes is this one.
    @ivar payload: the kind's typed payload; or its JSON form when that does not make one
        (the state machine then rejects the command as malformed).
    @ivar version: payload format version of this kind, for rolling upgrades.
    """

    id: str
    kind: str
    issued_at: str
    payload: Any
    version: int = COMMAND_FORMAT_VERSION

    def __attrs_post_init__(self) -> None:
        _typed(self)

    def payload_json(self) -> Any:
        """The payload's JSON form."""
        payload = self.payload
        return payload if isinstance(payload, Mapping) else payload.to_json()

    def to_json(self) -> str:
        return _ENCODER.encode(
            {
                "id": self.id,
                "kind": self.kind,
                "issuedAt": self.issued_at,
                "payload": self.payload_json(),
                "version": self.version,
            }
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


def issue(payload: Payload, now: float) -> Command:
    """A command carrying C{payload}, with a random id and the proposer's current time."""
    return Command(id=uuid.uuid4().hex, kind=payload.KIND,
                   issued_at=format_time(from_seconds(now)), payload=payload,
                   version=payload.version)


def new_command(kind: str, payload: Any, now: float) -> Command:
    """A C{kind} command from its payload (typed, or in its JSON form), with a random id and
    the proposer's current time."""
    return Command(id=uuid.uuid4().hex, kind=kind, issued_at=format_time(from_seconds(now)),
                   payload=payload)
