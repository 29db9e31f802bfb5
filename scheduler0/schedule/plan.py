"""
What the scheduler keeps per job: a L{JobPlan}, built from the job's record.

A node holds one per job it schedules (a million on one node), so it is a slotted class and
everything the hot path needs is computed once here: the parsed spec, the zone, the anchor,
the body item of its callbacks, and, for a plain C{@every} job, the numbers that make its
next fire float arithmetic.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from zoneinfo import ZoneInfo

from ..domain import Job
from ..timestamps import parse_time
from .occurrence import job_payload, target_of
from .spec import EverySchedule, Schedule, load_zone, parse_spec


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> datetime:
    """Jobs created together share their timestamps: parse (and keep) each one once."""
    return parse_time(text)


class JobPlan:
    """What the scheduler keeps per job. Slots keep 200,000 of them small."""

    __slots__ = ("job_id", "project_id", "schedule", "zone", "anchor", "every", "start", "end",
                 "paused", "policy", "grace", "callback_url", "target", "payload",
                 "next_fire", "generation", "last_scheduled", "last_extra")

    def __init__(self, job: Job, generation: int) -> None:
        fields = job.fields
        self.job_id: int = job.id
        self.project_id: int = fields.project_id
        self.schedule: Schedule = parse_spec(fields.spec)
        self.zone: ZoneInfo = load_zone(fields.timezone)
        self.anchor: datetime = _parsed(job.date_created)
        self.start = _parsed(fields.start_date) if fields.start_date else None
        self.end = _parsed(fields.end_date) if fields.end_date else None
        # (whole-second anchor, interval) for a plain @every job: its next fire is float
        # arithmetic, the hot path when thousands fire in the same second
        self.every: tuple[int, int] | None = None
        if (isinstance(self.schedule, EverySchedule) and self.start is None
                and self.end is None):
            self.every = (math.floor(self.anchor.timestamp()), self.schedule.seconds)
        self.paused: bool = fields.paused
        self.policy: str = fields.misfire_policy
        self.grace: int = fields.misfire_grace_seconds
        self.callback_url: str = fields.callback_url
        self.target: str = target_of(fields.callback_url)
        self.payload: bytes = job_payload(job)
        self.next_fire: float | None = None
        self.generation = generation
        self.last_scheduled: float | None = None
        self.last_extra: float = 0.0  # the scheduled time of the latest run-now
