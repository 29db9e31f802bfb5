"""The shapes the API answers with, as typed dictionaries (new fields pass through)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Iterator, Optional, TypedDict, TypeVar

T = TypeVar("T")


class Project(TypedDict, total=False):
    id: int
    name: str
    description: str
    dateCreated: str
    dateModified: Optional[str]


class JobFields(TypedDict, total=False):
    """What a job is created or updated with (camelCase, as the API takes it)."""

    projectId: int
    spec: str
    callbackUrl: str
    data: str
    executionType: str
    timezone: str
    startDate: Optional[str]
    endDate: Optional[str]
    paused: bool
    misfirePolicy: str
    misfireGraceSeconds: int


class Job(JobFields, total=False):
    id: int
    dateCreated: str
    dateModified: Optional[str]
    nextRunAt: Optional[str]


class Execution(TypedDict, total=False):
    executionId: str
    jobId: int
    projectId: int
    state: str
    scheduledTime: str
    attempts: int
    target: str
    nodeId: Optional[str]
    lastStatus: Optional[int]
    lastError: Optional[str]
    errorCategory: Optional[str]
    durationMs: Optional[float]
    latenessMs: Optional[float]
    firstAttemptAt: Optional[str]
    lastAttemptAt: Optional[str]
    nextRetryAt: Optional[str]
    dateCreated: str
    dateModified: Optional[str]


class RunResult(TypedDict):
    executionId: str
    jobId: int
    scheduledTime: str


class Credential(TypedDict, total=False):
    id: int
    apiKey: str
    apiSecret: str  # only in the answer that created it
    scopes: list[str]
    projectIds: Optional[list[int]]
    archived: bool


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and where it sits (C{total_capped}: C{total} is a
    floor, the node stopped counting)."""

    items: list[T]
    total: int
    offset: int
    limit: int
    total_capped: bool = False

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def is_last(self) -> bool:
        if len(self.items) < self.limit:
            return True
        return not self.total_capped and self.offset + len(self.items) >= self.total

    @classmethod
    def from_answer(cls, answer: dict[str, Any], key: str) -> "Page[Any]":
        return cls(items=list(answer.get(key) or []), total=int(answer.get("total", 0)),
                   offset=int(answer.get("offset", 0)), limit=int(answer.get("limit", 0)),
                   total_capped=bool(answer.get("totalCapped", False)))


@dataclass(frozen=True)
class _Unset:
    """Marks an argument left out (None is a value: C{projectIds: null} is node-wide)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
