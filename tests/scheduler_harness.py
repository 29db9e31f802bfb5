"""
Shared by the tests of scheduler0.schedule.service (test_scheduler_*): L{Harness}, a
L{SchedulerService} on a L{Clock} over an in-memory job store that records every
dispatched round, fed job commands as the command log would feed it; L{job} builds a job
in the API's shape.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from twisted.internet.task import Clock

from scheduler0.schedule.occurrence import Occurrence
from scheduler0.schedule.service import SchedulerService
from scheduler0.schedule.spec import FireTimeCache
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.timestamps import format_time

from .records import job_of


UTC = timezone.utc

#: 2026-11-26T16:00:00Z
T0 = 1795708800.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def iso(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


def job(job_id: int, spec: str, created: float = T0, *, zone: str = "UTC",
        start: float | None = None, end: float | None = None, paused: bool = False,
        policy: str = "skip", grace: int = 3600, project: int = 1,
        url: str = "http://receiver.example:8080/hook") -> dict[str, Any]:
    """A job in the API's shape (L{tests.records.job_of} makes it a L{Job})."""
    return {
        "id": job_id, "projectId": project, "spec": spec, "callbackUrl": url,
        "data": f"payload-{job_id}", "executionType": "http", "timezone": zone,
        "startDate": iso(start) if start is not None else None,
        "endDate": iso(end) if end is not None else None,
        "paused": paused, "misfirePolicy": policy, "misfireGraceSeconds": grace,
        "dateCreated": iso(created), "dateModified": iso(created),
    }


_command_ids = itertools.count(1)


def command(kind: str, payload: dict, now: float) -> Command:
    return Command(id=f"c{next(_command_ids)}", kind=kind, issued_at=iso(now), payload=payload)


class Harness:
    """A scheduler over a dict of job records, on a Clock, recording dispatched rounds."""

    def __init__(self, records: list[dict] = (), last: dict[int, float] | None = None,
                 now: float = T0, fire_times: FireTimeCache | None = None,
                 plan_budget: int | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(now)
        self.store: dict[int, dict] = {r["id"]: dict(r) for r in records}
        self.last = {k: iso(v) for k, v in (last or {}).items()}
        self.rounds: list[list[Occurrence]] = []
        self.scheduler = SchedulerService(
            clock=self.clock,
            load=lambda: ([job_of(r) for r in self.store.values()], dict(self.last)),
            job_records=lambda ids: [job_of(self.store[i]) for i in ids if i in self.store],
            dispatch=self.rounds.append,
            fire_times=fire_times,
            plan_budget=plan_budget,
        )

    def start(self) -> "Harness":
        self.scheduler.startService()
        return self

    @property
    def now(self) -> float:
        return self.clock.seconds()

    @property
    def occurrences(self) -> list[Occurrence]:
        return [o for r in self.rounds for o in r]

    def fired(self, job_id: int | None = None) -> list[float]:
        """Scheduled times dispatched so far (of one job, or of all)."""
        return [o.scheduled for o in self.occurrences if job_id is None or o.job_id == job_id]

    def take(self) -> list[float]:
        """Scheduled times dispatched since the last take."""
        times = self.fired()
        self.rounds.clear()
        return times

    def advance_to(self, when: float, step: float | None = None) -> None:
        """Move the clock to `when`, in one jump or in increments of `step`."""
        if step is None:
            self.clock.advance(when - self.now)
            return
        while self.now + step < when:
            self.clock.advance(step)
        self.clock.advance(when - self.now)

    # -- the command log -----------------------------------------------------------------

    def create(self, record: dict, ok: bool = True) -> None:
        self.store[record["id"]] = dict(record)
        row = {"id": record["id"], "project_id": record["projectId"], "spec": record["spec"],
               "callback_url": record["callbackUrl"], "data": record["data"],
               "execution_type": record["executionType"], "timezone": record["timezone"],
               "start_date": record["startDate"], "end_date": record["endDate"],
               "paused": int(record["paused"]), "misfire_policy": record["misfirePolicy"],
               "misfire_grace_seconds": record["misfireGraceSeconds"]}
        # the job's dateCreated is the command's timestamp, as when the API creates it
        created = command(C.JOB_CREATE, {"jobs": [row]}, self.now)
        self.store[record["id"]]["dateCreated"] = created.issued_at
        self.scheduler.observe(created, {"ok": True, "count": 1, "first_id": record["id"]}
                               if ok else {"ok": False, "status": 400})

    def update(self, job_id: int, ok: bool = True, **changes: Any) -> None:
        if ok:
            self.store[job_id].update(changes)
            self.store[job_id]["dateModified"] = iso(self.now)
        self.scheduler.observe(command(C.JOB_UPDATE, {"id": job_id, "changes": changes},
                                       self.now),
                               {"ok": True} if ok else {"ok": False, "status": 400})

    def delete(self, job_id: int, ok: bool = True) -> None:
        if ok:
            del self.store[job_id]
        self.scheduler.observe(command(C.JOB_DELETE, {"id": job_id}, self.now),
                               {"ok": True} if ok else {"ok": False, "status": 404})


def every(start: float, stop: float, step: float) -> list[float]:
    """start, start+step, ... up to and including stop."""
    count = int(round((stop - start) / step))
    return [start + i * step for i in range(count + 1)]
