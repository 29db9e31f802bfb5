"""A job: what a client sets (L{JobFields}) and what the node adds when it stores it."""

from __future__ import annotations

import sys
from typing import Any, Mapping

import attrs


@attrs.define(eq=True)
class JobFields:
    """
    Everything a client decides about a job, validated. Times are RFC 3339 UTC text, as
    they are stored and shown; C{data} is the client's opaque text (None when not given).

    A value: nothing changes one once it is made (not frozen only because a frozen attrs
    class takes three times as long to make, and a node makes one per job created).
    """

    project_id: int
    spec: str
    callback_url: str
    data: str | None
    execution_type: str
    timezone: str
    start_date: str | None
    end_date: str | None
    paused: bool
    misfire_policy: str
    misfire_grace_seconds: int

    def changed_from(self, other: "JobFields") -> dict[str, Any]:
        """The fields whose value differs from C{other}'s: what an update must send."""
        return {name: getattr(self, name) for name in JOB_FIELD_NAMES
                if getattr(self, name) != getattr(other, name)}

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in JOB_FIELD_NAMES}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "JobFields":
        fields = cls(**{name: raw[name] for name in JOB_FIELD_NAMES})
        fields.paused = bool(fields.paused)
        return fields

    def to_row(self) -> list[Any]:
        """The values in L{JOB_FIELD_NAMES} order: how a job creation carries a job."""
        return [self.project_id, self.spec, self.callback_url, self.data, self.execution_type,
                self.timezone, self.start_date, self.end_date, self.paused,
                self.misfire_policy, self.misfire_grace_seconds]

    @classmethod
    def from_row(cls, row: list[Any]) -> "JobFields":
        """From L{to_row}'s array.

        @raise TypeError: an array of the wrong length."""
        if len(row) != len(JOB_FIELD_NAMES):
            raise TypeError(f"a job row has {len(JOB_FIELD_NAMES)} values, not {len(row)}")
        (project_id, spec, callback_url, data, execution_type, timezone, start_date, end_date,
         paused, misfire_policy, misfire_grace_seconds) = row
        # the texts most jobs share are shared again (JSON reads each anew): a node plans a
        # million jobs from what it reads back, 75 bytes each less
        return cls(project_id, _shared(spec), _shared(callback_url), data,
                   _shared(execution_type), _shared(timezone), start_date, end_date,
                   bool(paused), _shared(misfire_policy), misfire_grace_seconds)


def _shared(text: Any) -> Any:
    """C{text} interned (one copy for every job with the same), other values as they are."""
    return sys.intern(text) if type(text) is str else text


#: the names of L{JobFields}, in declaration order
JOB_FIELD_NAMES: tuple[str, ...] = tuple(a.name for a in attrs.fields(JobFields))


@attrs.define(eq=True)
class Job:
    """
    A stored job: its id, its fields, and when it was created and last changed (None in a
    command creating it: the command's time stamps them). A value, like L{JobFields}.
    """

    id: int
    fields: JobFields
    date_created: str | None = None
    date_modified: str | None = None

    @property
    def project_id(self) -> int:
        return self.fields.project_id

    def to_json(self) -> dict[str, Any]:
        """The job as a command carries it: its id and its fields (the command's time is
        its creation time)."""
        return {"id": self.id, **self.fields.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Job":
        return cls(id=raw["id"], fields=JobFields.from_json(raw))
