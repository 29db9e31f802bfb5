"""An execution: one occurrence of a job, and what its delivery attempts ended with."""

from __future__ import annotations

import operator
from typing import Any, Mapping, Sequence

import attrs

#: the states an execution ends in; retention prunes only these
TERMINAL_STATES = ("succeeded", "failed", "dead")


@attrs.define
class Execution:
    """
    An execution record. The executor writes one per occurrence each time its state
    changes, leaving out (None) what it does not know at that moment: a later record of
    the same execution replaces its state, attempts, target, node and retry time, and
    keeps what it leaves out of the rest (a first attempt's lateness, say). Times are RFC
    3339 UTC text. C{date_created} and C{date_modified} are set when it is read back.
    """

    id: str
    job_id: int
    project_id: int
    scheduled_time: str
    state: str
    attempts: int
    target: str | None = None
    node_id: int | None = None
    last_status: int | None = None
    last_error: str | None = None
    error_category: str | None = None
    duration_ms: float | None = None
    lateness_ms: float | None = None
    first_attempt_at: str | None = None
    last_attempt_at: str | None = None
    next_retry_at: str | None = None
    date_created: str | None = None
    date_modified: str | None = None

    def to_json(self) -> list[Any]:
        """The record as a command carries it: its L{RECORDED_FIELDS} values in order (a
        command carries thousands: an array is half the size of an object, and twice as
        quick to write and read)."""
        return list(_recorded_values(self))

    @classmethod
    def from_json(cls, raw: Sequence[Any] | Mapping[str, Any]) -> "Execution":
        """From L{to_json}'s array, or from an object of field names.

        @raise KeyError: naming a field every record has, if it is missing.
        @raise TypeError: an array of the wrong length."""
        if isinstance(raw, Mapping):
            return cls(**{name: raw[name] if name in REQUIRED else raw.get(name)
                          for name in RECORDED_FIELDS})
        if len(raw) != len(RECORDED_FIELDS):
            raise TypeError(f"an execution record has {len(RECORDED_FIELDS)} values")
        return cls(*raw)


#: the fields every record of an execution has
REQUIRED = frozenset(a.name for a in attrs.fields(Execution) if a.default is attrs.NOTHING)
#: what an execution record carries in a command, in declaration order (not its dates)
RECORDED_FIELDS: tuple[str, ...] = tuple(
    a.name for a in attrs.fields(Execution) if a.name not in ("date_created", "date_modified"))
_recorded_values = operator.attrgetter(*RECORDED_FIELDS)
