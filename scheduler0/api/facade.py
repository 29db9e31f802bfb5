"""
The command facade: the one place the API turns a validated write into a L{Command} and
waits for the command log to apply it.

It builds typed payloads (L{scheduler0.state.payloads}) and submits their commands under
the apply timeout, reads the ids of new rows from their results (ids are chosen when a
command is applied, so nodes proposing at once never collide), maps a failed or rejected
submission to an L{ApiError}, and computes a job's next run. Handlers
call one method here per write, so a change to how writes are replicated (Raft) touches
this module only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from twisted.internet.defer import TimeoutError as DeferredTimeout

from ..consensus.interface import ICommandLog, NotAccepting, StorageFull
from ..domain import Job, JobFields
from ..execution.signing import new_signing_secret
from ..schedule.occurrence import execution_id, target_of
from ..schedule.spec import FireTimeCache, load_zone, parse_spec
from ..state import payloads as P
from ..state.commands import Command, issue
from ..store.reads import StateReader
from ..timestamps import format_time, from_seconds, parse_time
from .auth import hash_secret, new_api_key, new_api_secret
from .error_map import api_error_for, rejection_error
from .settings import ApiSettings


class CommandFacade:
    """
    @param reader: returns the current L{StateReader}.
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
        #: shared with the scheduler on a node, so both compute a schedule's fires once
        self.fire_times = FireTimeCache()
        #: per job, the scheduled time of the latest run-now this node asked for
        self._last_run: dict[int, float] = {}

    def now(self) -> datetime:
        return from_seconds(self.clock.seconds())

    # -- submitting ---------------------------------------------------------------------

    async def commit(self, payload: P.Payload) -> dict[str, Any]:
        """Submit a command carrying C{payload}; its result, with the command's
        C{issuedAt} added."""
        command = issue(payload, self.clock.seconds())
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
        result = await self.commit(P.CreateProject(
            name=fields["name"], description=fields.get("description"),
            signing_secret=self._new_signing_secret(None)))
        return result["id"]

    async def update_project(self, project_id: int, changes: dict[str, Any]) -> None:
        await self.commit(P.UpdateProject(id=project_id, changes=changes))

    async def delete_project(self, project_id: int) -> None:
        await self.commit(P.DeleteProject(id=project_id))

    async def rotate_signing_secret(self, project_id: int, grace: int) -> None:
        """A new secret; the previous one keeps verifying for C{grace} seconds."""
        expires = format_time(from_seconds(self.clock.seconds() + grace))
        await self.commit(P.RotateProjectSecret(
            id=project_id, secret=self._new_signing_secret(project_id),
            previous_expires=expires))

    def _new_signing_secret(self, project_id: int | None) -> str:
        """A new secret as the command carries it: sealed, so neither the command log nor
        the database ever holds it in plaintext (to the project, or for a project being
        created, to a name of its own: L{scheduler0.secrets_at_rest})."""
        secret = new_signing_secret()
        box = self.settings.signing_box
        if box is None:
            return secret
        return box.seal_new(secret) if project_id is None else box.seal(project_id, secret)

    # -- jobs ---------------------------------------------------------------------------

    async def create_jobs(self, jobs: list[JobFields]) -> list[tuple[Job, str | None]]:
        """Create validated jobs; each stored job with its next run."""
        result = await self.commit(P.CreateJobs(jobs=jobs))
        ids = range(result["first_id"], result["first_id"] + len(jobs))
        # answer from the applied command (its rows are exactly what was stored) rather
        # than reading thousands of rows back
        stamp = result["issuedAt"]
        now = self.now()
        # the jobs of one batch share their anchor (the command's time), so jobs with the
        # same schedule fields share their next run
        next_runs: dict[tuple, str | None] = {}
        created = []
        for job_id, fields in zip(ids, jobs):
            job = Job(id=job_id, fields=fields, date_created=stamp, date_modified=stamp)
            key = (fields.spec, fields.timezone, fields.start_date, fields.end_date,
                   fields.paused)
            if key not in next_runs:
                next_runs[key] = self._next_run(job, now)
            created.append((job, next_runs[key]))
        return created

    async def update_job(self, existing: Job, fields: JobFields) -> None:
        """Store what changed from C{existing}: only those fields travel, so an update
        never undoes a concurrent change of another field (a pause, say)."""
        await self.commit(P.UpdateJob(id=existing.id,
                                      changes=fields.changed_from(existing.fields)))

    async def set_paused(self, job_id: int, paused: bool) -> None:
        await self.commit(P.UpdateJob(id=job_id, changes={"paused": paused}))

    async def delete_job(self, job_id: int) -> None:
        await self.commit(P.DeleteJob(id=job_id))

    async def run_now(self, job: Job) -> tuple[str, float]:
        """
        Ask the cluster for one extra occurrence of C{job} now: an C{execution.request}
        whose execution id and time are chosen here, so every node records the same and
        the job's owner delivers it (any node may answer). Its id and scheduled time.
        """
        scheduled = round(max(self.clock.seconds(), self._last_run.get(job.id, 0.0) + 0.001),
                          3)
        if scheduled == int(scheduled):
            # a whole second could be a slot of the job: keep the execution ids apart
            scheduled = round(scheduled + 0.001, 3)
        # two runs asked for within the same millisecond get their own execution ids
        self._last_run[job.id] = scheduled
        eid = execution_id(job.id, scheduled)
        await self.commit(P.RequestDeliveries(
            reason=P.RUN_NOW, node_id=self.settings.node_id, occurrences=[
            (eid, job.id, format_time(from_seconds(scheduled)), 0,
             target_of(job.fields.callback_url))]))
        return eid, scheduled

    def next_runs(self, jobs: list[Job]) -> list[str | None]:
        """Each job's next run (None: paused or finished), all as of one "now"."""
        now = self.now()
        return [self._next_run_of(job, now) for job in jobs]

    def next_run(self, job: Job) -> str | None:
        return self._next_run_of(job, self.now())

    def _next_run_of(self, job: Job, now: datetime) -> str | None:
        if self.scheduler is not None and job.id in self.scheduler.plans:
            fire = self.scheduler.next_fire(job.id)
            return format_time(from_seconds(fire)) if fire is not None else None
        return self._next_run(job, now)

    def _next_run(self, job: Job, now: datetime) -> str | None:
        """A job's next run computed from its fields (before the scheduler has it)."""
        fields = job.fields
        if fields.paused:
            return None
        fire = self.fire_times.next_fire(
            parse_spec(fields.spec), load_zone(fields.timezone), now,
            parse_time(job.date_created) if job.date_created else now,
            parse_time(fields.start_date) if fields.start_date else None,
            parse_time(fields.end_date) if fields.end_date else None,
        )
        return format_time(fire) if fire else None

    # -- credentials --------------------------------------------------------------------

    async def create_credential(self, fields: dict[str, Any]) -> tuple[int, str]:
        """The new credential's id and its API secret (shown once, stored only hashed)."""
        api_key, api_secret = new_api_key(), new_api_secret()
        result = await self.commit(P.CreateCredential(
            api_key=api_key, secret_hash=hash_secret(api_secret),
            scopes=fields["scopes"], archived=fields.get("archived", 0),
            project_ids=fields.get("project_ids")))
        return result["id"], api_secret

    async def update_credential(self, credential_id: int, changes: dict[str, Any]) -> None:
        await self.commit(P.UpdateCredential(id=credential_id, changes=changes))

    async def delete_credential(self, credential_id: int) -> None:
        await self.commit(P.DeleteCredential(id=credential_id))
