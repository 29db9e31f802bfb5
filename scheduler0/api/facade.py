"""
The command facade: the one place the API turns a validated write into a L{Command} and
waits for the command log to apply it.

It allocates row ids (they travel inside the command), builds and submits commands under
the apply timeout, maps a failed or rejected submission to an L{ApiError}, and computes a
job's C{nextRunAt}. Handlers call one method here per write, so a change to how writes are
replicated (Raft) touches this module only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import attrs
from twisted.internet.defer import TimeoutError as DeferredTimeout

from ..consensus.interface import ICommandLog, NotAccepting, StorageFull
from ..execution.signing import new_signing_secret
from ..schedule.spec import FireTimeCache, load_zone, parse_spec
from ..state import commands as C
from ..state.commands import Command, new_command
from ..state.ids import IdAllocator
from ..state.machine import CREDENTIAL_PROJECTS_VERSION
from ..store.reads import Record, StateReader, job_record
from ..timestamps import format_time, from_seconds, parse_time
from .auth import hash_secret, new_api_key, new_api_secret
from .error_map import api_error_for, rejection_error
from .settings import ApiSettings


class CommandFacade:
    """
    @param reader: returns the current L{StateReader} (ids start above what it has used).
    @param commands: where writes go (L{ICommandLog}).
    @param clock: an C{IReactorTime}; the only source of "now".
    @param scheduler: the node's scheduler, whose plans know a job's next fire best (None
        in API-only wirings: the next run is then computed from the job's fields).
    """

    def __init__(self, reader: Callable[[], StateReader], commands: ICommandLog, clock: Any,
                 settings: ApiSettings, scheduler: Any = None) -> None:
        self.reader = reader
        self.commands = commands
        self.clock = clock
        self.settings = settings
        self.scheduler = scheduler
        self.ids = IdAllocator(lambda table: self.reader().sequence(table))
        #: shared with the scheduler on a node, so both compute a schedule's fires once
        self.fire_times = FireTimeCache()

    def now(self) -> datetime:
        return from_seconds(self.clock.seconds())

    # -- submitting ---------------------------------------------------------------------

    async def commit(self, kind: str, payload: dict[str, Any],
                     version: int | None = None) -> dict[str, Any]:
        """Submit a command; its result, with the command's C{issuedAt} added."""
        command = new_command(kind, payload, self.clock.seconds())
        if version is not None:
            command = attrs.evolve(command, version=version)
        result = await self.submit(command)
        return {**result, "issuedAt": command.issued_at}

    async def submit(self, command: Command) -> dict[str, Any]:
        """The applied command's result; an L{ApiError} if it was not applied in time, the
        node cannot take writes, or the state machine rejected it."""
        d = self.commands.submit(command)
        d.addTimeout(self.settings.apply_timeout, self.clock)
        try:
            result = await d
        except (StorageFull, NotAccepting, DeferredTimeout) as e:
            raise api_error_for(e, apply_timeout=self.settings.apply_timeout) from None
        if not result.get("ok"):
            raise rejection_error(result)
        return result

    # -- projects -----------------------------------------------------------------------

    async def create_project(self, fields: dict[str, Any]) -> int:
        """The new project's id."""
        (project_id,) = self.ids.allocate("projects")
        await self.commit(C.PROJECT_CREATE, {"project": {
            "id": project_id, "signing_secret": self._new_signing_secret(project_id),
            **fields}})
        return project_id

    async def update_project(self, project_id: int, changes: dict[str, Any]) -> None:
        await self.commit(C.PROJECT_UPDATE, {"id": project_id, "changes": changes})

    async def delete_project(self, project_id: int) -> None:
        await self.commit(C.PROJECT_DELETE, {"id": project_id})

    async def rotate_signing_secret(self, project_id: int, grace: int) -> None:
        """A new secret; the previous one keeps verifying for C{grace} seconds."""
        expires = format_time(from_seconds(self.clock.seconds() + grace))
        await self.commit(C.PROJECT_ROTATE_SECRET, {
            "id": project_id, "secret": self._new_signing_secret(project_id),
            "previous_expires": expires})

    def _new_signing_secret(self, project_id: int) -> str:
        """A new secret as the command carries it: sealed, so neither the command log nor
        the database ever holds it in plaintext."""
        secret = new_signing_secret()
        box = self.settings.signing_box
        return box.seal(project_id, secret) if box is not None else secret

    # -- jobs ---------------------------------------------------------------------------

    async def create_jobs(self, jobs: list[dict[str, Any]]) -> list[Record]:
        """Create validated jobs (their columns); their records, with C{nextRunAt}."""
        ids = self.ids.allocate("jobs", len(jobs))
        for job_id, job in zip(ids, jobs):
            job["id"] = job_id
        result = await self.commit(C.JOB_CREATE, {"jobs": jobs})
        # answer from the applied command (its rows are exactly what was stored) rather
        # than reading thousands of rows back
        stamp = result["issuedAt"]
        now = self.now()
        # the jobs of one batch share their anchor (the command's time), so jobs with the
        # same schedule fields share their next run
        next_runs: dict[tuple, Any] = {}
        created = []
        for job in jobs:
            record = job_record({**job, "date_created": stamp, "date_modified": stamp})
            key = (job["spec"], job["timezone"], job["start_date"], job["end_date"],
                   job["paused"])
            if key not in next_runs:
                next_runs[key] = self._next_run(record, now)
            record["nextRunAt"] = next_runs[key]
            created.append(record)
        return created

    async def update_job(self, job_id: int, changes: dict[str, Any]) -> None:
        await self.commit(C.JOB_UPDATE, {"id": job_id, "changes": changes})

    async def set_paused(self, job_id: int, paused: bool) -> None:
        await self.update_job(job_id, {"paused": int(paused)})

    async def delete_job(self, job_id: int) -> None:
        await self.commit(C.JOB_DELETE, {"id": job_id})

    def with_next_runs(self, jobs: list[Record]) -> list[Record]:
        """The jobs with C{nextRunAt} added, all as of one "now"."""
        now = self.now()
        return [self._with_next_run(job, now) for job in jobs]

    def with_next_run(self, job: Record) -> Record:
        return self._with_next_run(job, self.now())

    def _with_next_run(self, job: Record, now: datetime) -> Record:
        if self.scheduler is not None and job["id"] in self.scheduler.plans:
            fire = self.scheduler.next_fire(job["id"])
            job["nextRunAt"] = format_time(from_seconds(fire)) if fire is not None else None
        else:
            job["nextRunAt"] = self._next_run(job, now)
        return job

    def _next_run(self, job: Record, now: datetime) -> str | None:
        """A job's next run computed from its fields (before the scheduler has it)."""
        if job["paused"]:
            return None
        fire = self.fire_times.next_fire(
            parse_spec(job["spec"]), load_zone(job["timezone"]), now,
            parse_time(job["dateCreated"]),
            parse_time(job["startDate"]) if job["startDate"] else None,
            parse_time(job["endDate"]) if job["endDate"] else None,
        )
        return format_time(fire) if fire else None

    # -- credentials --------------------------------------------------------------------

    async def create_credential(self, fields: dict[str, Any]) -> tuple[int, str]:
        """The new credential's id and its API secret (shown once, stored only hashed)."""
        project_ids = fields.get("project_ids")
        (credential_id,) = self.ids.allocate("credentials")
        api_key, api_secret = new_api_key(), new_api_secret()
        credential = {
            "id": credential_id, "api_key": api_key, "secret_hash": hash_secret(api_secret),
            "scopes": fields["scopes"], "archived": fields.get("archived", 0),
        }
        if project_ids is not None:
            credential["project_ids"] = project_ids
        await self.commit(C.CREDENTIAL_CREATE, {"credential": credential},
                          CREDENTIAL_PROJECTS_VERSION if project_ids is not None else None)
        return credential_id, api_secret

    async def update_credential(self, credential_id: int, changes: dict[str, Any]) -> None:
        await self.commit(C.CREDENTIAL_UPDATE, {"id": credential_id, "changes": changes},
                          CREDENTIAL_PROJECTS_VERSION if "project_ids" in changes else None)

    async def delete_credential(self, credential_id: int) -> None:
        await self.commit(C.CREDENTIAL_DELETE, {"id": credential_id})
