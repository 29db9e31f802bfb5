"""
A delivery's entry in the outbox: one POST about to go out, with the occurrences it
carries, kept until its outcome is recorded so a crash re-sends it with the same ids.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs


def _occurrences(value: Any) -> tuple[list, ...]:
    """Each occurrence a delivery carries as C{[execution id, job id, scheduled time,
    attempt]}: a list, as JSON reads it back and as it is stored (no object each: a POST
    carries thousands, written to JSON and read back once per POST)."""
    return tuple(o if type(o) is list else list(o) for o in value)


@attrs.frozen
class DeliveryRecord:
    """A POST entering the outbox: its id, sender, project, endpoint and start time."""

    id: str
    node_id: int
    project_id: int
    target: str
    started_at: str
    occurrences: tuple[list, ...] = attrs.field(converter=_occurrences)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "node_id": self.node_id, "project_id": self.project_id,
                "target": self.target, "started_at": self.started_at,
                "occurrences": self.occurrences}

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


@attrs.frozen
class DeliveryOutcome:
    """
    A POST's outcome, for every occurrence its outbox entry still lists: the delivery
    leaves the outbox and the state machine writes each occurrence's record from the entry
    (job, project, target, node, attempt, scheduled time) and these few fields.

    One per POST instead of a record per occurrence: a command carries, and every node of
    a cluster applies, a few dozen bytes for a POST of a thousand jobs. The state machine
    derives a first attempt's lateness from the entry's C{started_at}.

    C{state} is every occurrence's (C{succeeded}, C{retrying} or C{dead}); with C{retrying},
    the occurrences in C{dead} are dead instead (their retries are spent).
    """

    id: str
    state: str
    at: str  # when the outcome was known: the attempt's last_attempt_at
    duration_ms: float
    status: int | None = None
    error: str | None = None
    category: str | None = None
    next_retry_at: str | None = None
    dead: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def to_json(self) -> list[Any]:
        """An array (a command may carry hundreds): see L{from_json}."""
        raw = [self.id, self.state, self.at, self.duration_ms, self.status, self.error,
               self.category, self.next_retry_at]
        if self.dead:
            raw.append(list(self.dead))
        return raw

    @classmethod
    def from_json(cls, raw: Any) -> "DeliveryOutcome":
        return cls(*raw)
