"""
A delivery's entry in the outbox: one POST about to go out, with the occurrences it
carries, kept until its outcome is recorded so a crash re-sends it with the same ids.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import attrs


class OutboxOccurrence(NamedTuple):
    """An occurrence a delivery carries (a JSON array of four, as stored)."""

    execution_id: str
    job_id: int
    scheduled_time: str
    attempt: int


def _occurrences(value: Any) -> tuple[OutboxOccurrence, ...]:
    return tuple(OutboxOccurrence(*o) for o in value)


@attrs.frozen
class DeliveryRecord:
    """A POST entering the outbox: its id, sender, project, endpoint and start time."""

    id: str
    node_id: int
    project_id: int
    target: str
    started_at: str
    occurrences: tuple[OutboxOccurrence, ...] = attrs.field(converter=_occurrences)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "node_id": self.node_id, "project_id": self.project_id,
                "target": self.target, "started_at": self.started_at,
                "occurrences": [list(o) for o in self.occurrences]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "DeliveryRecord":
        return cls(id=raw["id"], node_id=raw["node_id"], project_id=raw["project_id"],
                   target=raw["target"], started_at=raw["started_at"],
                   occurrences=raw["occurrences"])


def _optional_ids(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class DeliveryFinished:
    """A delivery (or, with C{executions}, some of its occurrences) leaving the outbox:
    their outcome is recorded by the same command."""

    id: str
    executions: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_ids)

    def to_json(self) -> dict[str, Any]:
        if self.executions is None:
            return {"id": self.id}
        return {"id": self.id, "executions": list(self.executions)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "DeliveryFinished":
        return cls(id=raw["id"], executions=raw.get("executions"))
