"""
The payload of each command kind, typed.

A payload is what applying its command needs, decided by the proposer (secrets, times);
the ids of new rows are chosen when it is applied (L{scheduler0.state.rows.allocate_ids}) and
returned in its result. Each class names its command kind and converts to and from the JSON form a
command log carries (snake_case, as the appliers store it); an update's C{changes} keeps
only the names of the fields it may change, so a payload never carries a column an
applier would write blindly.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Union

import attrs

from ..domain import DeliveryFinished, DeliveryOutcome, DeliveryRecord, Execution, JobFields
from ..domain.execution import RECORDED_FIELDS
from ..domain.job import JOB_FIELD_NAMES
from . import kinds as K

#: The version of a credential command that limits it to projects (C{project_ids}). An
#: older release has no applier for it and rejects the command, where it would have
#: ignored the field and stored a node-wide credential.
CREDENTIAL_PROJECTS_VERSION = 2
#: The version of C{execution.record} that carries per-POST C{outcomes}: an older release
#: has no applier for it and rejects it, where it would have dropped the outcomes.
RECORD_OUTCOMES_VERSION = 2
#: The version of C{job.create} whose jobs are arrays of their L{JOB_FIELD_NAMES} values
#: (a command carries a thousand: less than half the size of objects, and read back three
#: times as fast): an older release has no applier for it and rejects it, where it would
#: have failed on every job.
JOB_ROWS_VERSION = 2

PROJECT_MUTABLE = frozenset({"name", "description"})
JOB_MUTABLE = frozenset(JOB_FIELD_NAMES)
CREDENTIAL_MUTABLE = frozenset({"archived", "scopes", "project_ids"})


def _changes(allowed: frozenset[str]) -> Any:
    """An update's C{changes}: a dict of the fields it may change, the others dropped."""
    def convert(value: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k in allowed}
    return attrs.field(converter=convert)


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(value)


class _Payload:
    """What every payload class has: its kind, its version, and its JSON form."""

    KIND: ClassVar[str]

    @property
    def version(self) -> int:
        return 1

    @property
    def rows(self) -> int:
        """How many rows it writes, about: what makes one command cost more than another."""
        return 1

    def to_json(self) -> dict[str, Any]:
        return _field_values(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Any:
        """The payload from its JSON form; fields it does not have are ignored.

        @raise KeyError: naming a required field that is missing."""
        return cls(**_known_fields(cls, raw))


#: payload class -> its field names, for L{_field_values}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_values(payload: Any) -> dict[str, Any]:
    """
    A payload's fields by name, as they are: each is a JSON value already (numbers, strings,
    a dict of them), so the JSON encoder takes them without the copy C{attrs.asdict} makes
    of each (half the cost of a small command's JSON, on the reactor of the node that
    proposes it).
    """
    cls = type(payload)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(field.name for field in attrs.fields(cls))
    return {name: getattr(payload, name) for name in names}


def _known_fields(cls: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    """C{raw}'s values of C{cls}'s fields; a KeyError if a required one is missing."""
    values = {}
    for field in attrs.fields(cls):
        if field.name in raw:
            values[field.name] = raw[field.name]
        elif field.default is attrs.NOTHING:
            raise KeyError(field.name)
    return values


# -- projects -------------------------------------------------------------------------

@attrs.frozen
class CreateProject(_Payload):
    """Its result's C{id} is the new project's."""

    KIND = K.PROJECT_CREATE
    name: str
    description: str | None
    signing_secret: str  # sealed (see scheduler0.secrets_at_rest)

    def to_json(self) -> dict[str, Any]:
        return {"project": _field_values(self)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "CreateProject":
        return cls(**_known_fields(cls, raw["project"]))


@attrs.frozen
class UpdateProject(_Payload):
    KIND = K.PROJECT_UPDATE
    id: int
    changes: dict[str, Any] = _changes(PROJECT_MUTABLE)


@attrs.frozen
class DeleteProject(_Payload):
    KIND = K.PROJECT_DELETE
    id: int


@attrs.frozen
class RotateProjectSecret(_Payload):
    KIND = K.PROJECT_ROTATE_SECRET
    id: int
    secret: str  # sealed
    previous_expires: str  # until when the secret it replaces still verifies


# -- jobs -----------------------------------------------------------------------------

@attrs.frozen
class CreateJobs(_Payload):
    """Its result's C{first_id} is the first job's id; the others follow it in order."""

    KIND = K.JOB_CREATE
    jobs: tuple[JobFields, ...] = attrs.field(converter=tuple)

    @property
    def version(self) -> int:
        return JOB_ROWS_VERSION

    @property
    def rows(self) -> int:
        return len(self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": [job.to_row() for job in self.jobs]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "CreateJobs":
        """From arrays (L{JOB_ROWS_VERSION}) or, as version 1 carried them, objects."""
        return cls(jobs=[JobFields.from_row(job) if type(job) is list
                         else JobFields.from_json(job) for job in raw["jobs"]])


@attrs.frozen
class UpdateJob(_Payload):
    """Only the fields that change: two updates of different fields never undo each other."""

    KIND = K.JOB_UPDATE
    id: int
    changes: dict[str, Any] = _changes(JOB_MUTABLE)


@attrs.frozen
class DeleteJob(_Payload):
    KIND = K.JOB_DELETE
    id: int


# -- credentials ----------------------------------------------------------------------

@attrs.frozen
class CreateCredential(_Payload):
    """Its result's C{id} is the new credential's."""

    KIND = K.CREDENTIAL_CREATE
    api_key: str
    secret_hash: str
    scopes: str
    archived: int = 0
    #: None: every project (a node-wide credential)
    project_ids: Any = None

    @property
    def version(self) -> int:
        return 1 if self.project_ids is None else CREDENTIAL_PROJECTS_VERSION

    def to_json(self) -> dict[str, Any]:
        credential = attrs.asdict(self)
        if self.project_ids is None:
            del credential["project_ids"]
        return {"credential": credential}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "CreateCredential":
        return cls(**_known_fields(cls, raw["credential"]))


@attrs.frozen
class UpdateCredential(_Payload):
    KIND = K.CREDENTIAL_UPDATE
    id: int
    changes: dict[str, Any] = _changes(CREDENTIAL_MUTABLE)

    @property
    def version(self) -> int:
        return CREDENTIAL_PROJECTS_VERSION if "project_ids" in self.changes else 1


@attrs.frozen
class DeleteCredential(_Payload):
    KIND = K.CREDENTIAL_DELETE
    id: int


# -- executions -----------------------------------------------------------------------

@attrs.frozen
class RecordExecutions(_Payload):
    """
    Execution records, and the outbox kept in step with them in the same transaction:
    C{finished} deliveries leave it, C{started} ones enter it, and each of C{outcomes}
    leaves it with a record written for every occurrence it listed.
    """

    KIND = K.EXECUTION_RECORD
    records: tuple[Execution, ...] = attrs.field(default=(), converter=tuple)
    started: tuple[DeliveryRecord, ...] = attrs.field(default=(), converter=tuple)
    finished: tuple[DeliveryFinished, ...] = attrs.field(default=(), converter=tuple)
    outcomes: tuple[DeliveryOutcome, ...] = attrs.field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"records": [r.to_json() for r in self.records]}
        if self.started:
            raw["started"] = [d.to_json() for d in self.started]
        if self.finished:
            raw["finished"] = [f.to_json() for f in self.finished]
        if self.outcomes:
            raw["outcomes"] = [o.to_json() for o in self.outcomes]
        return raw

    @property
    def version(self) -> int:
        return RECORD_OUTCOMES_VERSION if self.outcomes else 1

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "RecordExecutions":
        width = len(RECORDED_FIELDS)
        return cls(records=[Execution(*r) if type(r) is list and len(r) == width
                            else Execution.from_json(r) for r in raw.get("records", ())],
                   started=[DeliveryRecord.from_json(d) for d in raw.get("started", ())],
                   finished=[DeliveryFinished.from_json(f) for f in raw.get("finished", ())],
                   outcomes=[DeliveryOutcome.from_json(o) for o in raw.get("outcomes", ())])


@attrs.frozen
class DeleteExecutions(_Payload):
    KIND = K.EXECUTION_DELETE
    ids: tuple[str, ...] = attrs.field(converter=tuple)

    @property
    def rows(self) -> int:
        return len(self.ids)

    def to_json(self) -> dict[str, Any]:
        return {"ids": list(self.ids)}


@attrs.frozen
class PruneExecutions(_Payload):
    """
    Retention: finished executions scheduled before C{before} and beyond the newest
    C{keep_per_job} of each job go; with C{jobs} (C{[from, to)} job ids) only those jobs'.
    C{commands_before} also forgets applied command ids issued before it.
    """

    KIND = K.EXECUTION_PRUNE
    before: str
    keep_per_job: int
    jobs: tuple[int, int] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else _ints(v))
    commands_before: str | None = None

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"before": self.before, "keep_per_job": self.keep_per_job}
        if self.jobs is not None:
            raw["jobs"] = list(self.jobs)
        if self.commands_before is not None:
            raw["commands_before"] = self.commands_before
        return raw


#: why deliveries were requested (L{RequestDeliveries.reason})
RUN_NOW, RETRY_DEAD, RERUN_HANGING = "run", "retry", "rerun"


@attrs.frozen
class RequestDeliveries(_Payload):
    """
    Deliveries an operator asked for, each C{[execution id, job id, scheduled time,
    attempts made, target]}, chosen by the proposer (ids and times never come from the
    applier). Applying one writes a 'scheduled' record per occurrence whose job exists (so a
    node that dies before sending leaves it to recovery) and lists them in its result's
    C{requested}; every node observes it and the job's owner delivers them
    (L{scheduler0.execution.requests}). C{reason}: L{RUN_NOW} (a new record; 409 if its id
    exists), L{RETRY_DEAD} (only records still dead) or L{RERUN_HANGING} (C{finished}
    takes it out of the outbox in the same transaction).
    """

    KIND = K.EXECUTION_REQUEST
    reason: str
    occurrences: tuple[tuple[Any, ...], ...] = attrs.field(
        converter=lambda v: tuple(tuple(o) for o in v))
    finished: tuple[DeliveryFinished, ...] = attrs.field(default=(), converter=tuple)
    #: the node that asked (the records' node until the owner records an attempt)
    node_id: int = 0

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"reason": self.reason, "node_id": self.node_id,
                               "occurrences": [list(o) for o in self.occurrences]}
        if self.finished:
            raw["finished"] = [f.to_json() for f in self.finished]
        return raw

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "RequestDeliveries":
        return cls(reason=raw["reason"], occurrences=raw["occurrences"],
                   finished=[DeliveryFinished.from_json(f) for f in raw.get("finished", ())],
                   node_id=raw.get("node_id", 0))


@attrs.frozen
class ResetBreaker(_Payload):
    """An operator's breaker reset (C{scope} "endpoint" or "host", and its key): nothing is
    stored; every node resets its own breaker when it observes the command."""

    KIND = K.BREAKER_RESET
    scope: str
    key: str


# -- the operator ---------------------------------------------------------------------

@attrs.frozen
class SetSupervisor(_Payload):
    """The operator's halt or restart of the scheduler, kept so a restart keeps it."""

    KIND = K.SUPERVISOR_SET
    halted: bool
    reason: str | None = None
    at: str | None = None


@attrs.frozen
class AssignJobs(_Payload):
    """
    The owner (NodeId, 0 for none) of each job bucket, as the leader computed it; stored
    only over revision C{revision - 1}, so a proposal made from an older assignment is
    refused. (Not named C{version}: that is the command format's.)
    """

    KIND = K.CLUSTER_ASSIGN
    revision: int
    owners: tuple[int, ...] = attrs.field(converter=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "owners": list(self.owners)}


@attrs.frozen
class SetMembers(_Payload):
    """
    The cluster's whole member list after a membership change (the proposer computed it):
    C{members} are C{{node_id, raft_address, client_address, suffrage}} mappings. With
    C{seed}, it is only stored when no list is (the first leader writes C{Replicas}).
    """

    KIND = K.CLUSTER_MEMBERS
    members: tuple[Any, ...] = attrs.field(converter=lambda v: tuple(dict(m) for m in v))
    seed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"members": [dict(m) for m in self.members], "seed": self.seed}


Payload = Union[
    CreateProject, UpdateProject, DeleteProject, RotateProjectSecret, CreateJobs, UpdateJob,
    DeleteJob, CreateCredential, UpdateCredential, DeleteCredential, RecordExecutions,
    DeleteExecutions, PruneExecutions, SetSupervisor, SetMembers, RequestDeliveries,
    ResetBreaker, AssignJobs,
]

#: the payload class of each command kind
PAYLOADS: dict[str, type] = {cls.KIND: cls for cls in Payload.__args__}  # type: ignore


def payload_from_json(kind: str, raw: Mapping[str, Any]) -> Payload:
    """
    The typed payload of a C{kind} command from its JSON form.

    @raise KeyError: a required field is missing, or the kind is unknown.
    @raise TypeError: a field is unknown or has the wrong shape.
    """
    return PAYLOADS[kind].from_json(raw)
