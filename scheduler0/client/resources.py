"""The API's resources, one small class each, over a shared L{Session}."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence, cast

from .batching import BatchLimits, encode_jobs, next_batch, rebase_message
from .errors import Scheduler0Error
from .session import Session, path_segment
from .models import UNSET, Credential, Execution, Job, JobFields, Page, Project, RunResult

API = "/api/v1"


def _pages(session: Session, path: str, key: str, query: Mapping[str, Any],
           page_size: int) -> Iterator[Page[Any]]:
    """Every page of a list, by offset, until one comes back short or the total is
    reached."""
    offset = 0
    while True:
        answer = session.call("GET", path, query={**query, "limit": page_size,
                                                  "offset": offset})
        page: Page[Any] = Page.from_answer(answer, key)
        yield page
        if page.is_last or not page.items:
            return
        offset += len(page.items)


class ProjectsApi:
    """Projects and their callback signing secrets."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, name: str, description: str | None = None) -> Project:
        body: dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        return cast(Project, self._session.call("POST", f"{API}/projects", json_body=body,
                                                idempotent=False))

    def get(self, project_id: int) -> Project:
        return cast(Project, self._session.call("GET", f"{API}/projects/{int(project_id)}"))

    def list(self, limit: int = 50, offset: int = 0) -> Page[Project]:
        answer = self._session.call("GET", f"{API}/projects",
                                    query={"limit": limit, "offset": offset})
        return Page.from_answer(answer, "projects")

    def pages(self, page_size: int = 1000) -> Iterator[Page[Project]]:
        return _pages(self._session, f"{API}/projects", "projects", {}, page_size)

    def update(self, project_id: int, *, name: str | None = None,
               description: str | None = None) -> Project:
        body = {k: v for k, v in (("name", name), ("description", description))
                if v is not None}
        return cast(Project, self._session.call("PUT", f"{API}/projects/{int(project_id)}",
                                                json_body=body))

    def delete(self, project_id: int) -> None:
        self._session.call("DELETE", f"{API}/projects/{int(project_id)}")

    def signing_secret(self, project_id: int) -> dict[str, Any]:
        """The secret(s) callbacks of this project are signed with (for the receiver)."""
        return cast(dict, self._session.call(
            "GET", f"{API}/projects/{int(project_id)}/signing-secret"))

    def rotate_signing_secret(self, project_id: int,
                              grace_seconds: int | None = None) -> dict[str, Any]:
        body = {} if grace_seconds is None else {"graceSeconds": grace_seconds}
        return cast(dict, self._session.call(
            "POST", f"{API}/projects/{int(project_id)}/signing-secret/rotate", json_body=body,
            idempotent=False))


class JobsApi:
    """Jobs: create (one or any number), read, change, pause, resume, run now."""

    def __init__(self, session: Session, limits: BatchLimits = BatchLimits()) -> None:
        self._session = session
        self.limits = limits

    def create(self, job: JobFields | Mapping[str, Any]) -> Job:
        return cast(Job, self._session.call("POST", f"{API}/jobs", json_body=dict(job),
                                            idempotent=False))

    def create_many(self, jobs: Sequence[JobFields | Mapping[str, Any]]) -> list[int]:
        """
        Create every job of C{jobs}, in as many requests as the node's limits need; the
        created ids, in the order of C{jobs}. A batch the node refuses raises
        L{Scheduler0Error} naming the element by its index in C{jobs} (C{jobs[i].field}),
        with C{created_ids} holding what earlier batches created (those jobs exist).
        A 413 makes the batches smaller (to the limit the node names) and goes on.
        """
        items = [dict(job) for job in jobs]
        encoded = encode_jobs(items)
        ids: list[int] = []
        start = 0
        while start < len(items):
            batch = next_batch(items, encoded, start, self.limits)
            try:
                created = self._session.call("POST", f"{API}/jobs", data=batch.body,
                                             idempotent=False)
            except Scheduler0Error as e:
                if e.status == 413 and batch.count > 1:
                    self.limits = self.limits.after_413(e.message, len(batch.body))
                    continue
                raise Scheduler0Error(e.status, rebase_message(e.message, batch.start),
                                      method=e.method, path=e.path, created_ids=ids) from e
            ids.extend(int(job["id"]) for job in created)
            start += batch.count
        return ids

    def get(self, job_id: int) -> Job:
        return cast(Job, self._session.call("GET", f"{API}/jobs/{int(job_id)}"))

    def list(self, project_id: int | None = None, limit: int = 50,
             offset: int = 0) -> Page[Job]:
        answer = self._session.call("GET", f"{API}/jobs", query={
            "projectId": project_id, "limit": limit, "offset": offset})
        return Page.from_answer(answer, "jobs")

    def pages(self, project_id: int | None = None,
              page_size: int = 1000) -> Iterator[Page[Job]]:
        return _pages(self._session, f"{API}/jobs", "jobs", {"projectId": project_id},
                      page_size)

    def update(self, job_id: int, fields: JobFields | Mapping[str, Any]) -> Job:
        return cast(Job, self._session.call("PUT", f"{API}/jobs/{int(job_id)}",
                                            json_body=dict(fields)))

    def delete(self, job_id: int) -> None:
        self._session.call("DELETE", f"{API}/jobs/{int(job_id)}")

    def pause(self, job_id: int) -> Job:
        return cast(Job, self._session.call("POST", f"{API}/jobs/{int(job_id)}/pause"))

    def resume(self, job_id: int) -> Job:
        return cast(Job, self._session.call("POST", f"{API}/jobs/{int(job_id)}/resume"))

    def run(self, job_id: int) -> RunResult:
        """One extra occurrence now; its C{executionId} (accepted, sent shortly)."""
        return cast(RunResult, self._session.call("POST", f"{API}/jobs/{int(job_id)}/run",
                                                  idempotent=False))


class ExecutionsApi:
    """Execution records, newest first."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def pages(self, *, job_id: int | None = None, project_id: int | None = None,
              state: str | None = None, since: str | None = None, until: str | None = None,
              page_size: int = 500) -> Iterator[Page[Execution]]:
        """
        Every page of matching records (C{since}/C{until}: RFC 3339, on the scheduled time).
        With C{job_id} a job that never existed is a 404. Records keep arriving while you
        page, newest first, so a record may show again on the next page: use L{iterate}
        for each record once.
        """
        query = {"projectId": project_id, "state": state, "from": since, "to": until}
        path = f"{API}/executions"
        if job_id is not None:
            path = f"{API}/jobs/{int(job_id)}/executions"
        return _pages(self._session, path, "executions", query, page_size)

    def iterate(self, **filters: Any) -> Iterator[Execution]:
        """Each matching record once (L{pages}' arguments)."""
        seen: set[str] = set()
        for page in self.pages(**filters):
            for execution in page.items:
                if execution.get("executionId") not in seen:
                    seen.add(execution.get("executionId"))  # type: ignore[arg-type]
                    yield execution

    def get(self, execution_id: str) -> Execution:
        return cast(Execution, self._session.call(
            "GET", f"{API}/executions/{path_segment(execution_id)}"))

    def retry(self, execution_id: str) -> dict[str, Any]:
        """Send a dead or failed occurrence again."""
        return cast(dict, self._session.call(
            "POST", f"{API}/executions/{path_segment(execution_id)}/retry",
            idempotent=False))


class CredentialsApi:
    """API credentials (needs C{admin}, or peer auth)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, scopes: Sequence[str] | None = None,
               project_ids: Sequence[int] | None = None) -> Credential:
        """A new credential; its C{apiSecret} is in this answer only. Without
        C{project_ids} it is node-wide."""
        body: dict[str, Any] = {}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if project_ids is not None:
            body["projectIds"] = list(project_ids)
        return cast(Credential, self._session.call("POST", f"{API}/credentials",
                                                   json_body=body, idempotent=False))

    def get(self, credential_id: int) -> Credential:
        return cast(Credential, self._session.call(
            "GET", f"{API}/credentials/{int(credential_id)}"))

    def list(self, limit: int = 50, offset: int = 0) -> Page[Credential]:
        answer = self._session.call("GET", f"{API}/credentials",
                                    query={"limit": limit, "offset": offset})
        return Page.from_answer(answer, "credentials")

    def update(self, credential_id: int, *, scopes: Sequence[str] | None = None,
               project_ids: Any = UNSET, archived: bool | None = None) -> Credential:
        """Change what is given (C{project_ids=None}: make it node-wide)."""
        body: dict[str, Any] = {}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if project_ids is not UNSET:
            body["projectIds"] = None if project_ids is None else list(project_ids)
        if archived is not None:
            body["archived"] = archived
        return cast(Credential, self._session.call(
            "PUT", f"{API}/credentials/{int(credential_id)}", json_body=body))

    def archive(self, credential_id: int) -> Credential:
        return self.update(credential_id, archived=True)

    def delete(self, credential_id: int) -> None:
        self._session.call("DELETE", f"{API}/credentials/{int(credential_id)}")


class HealthApi:
    """The node's health."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def check(self) -> dict[str, Any]:
        """C{GET /api/v1/healthcheck} (no auth): C{leaderAddress}, C{leaderId},
        C{raftStats}."""
        return cast(dict, self._session.call("GET", f"{API}/healthcheck"))

    def scheduler(self) -> dict[str, Any]:
        """The scheduler's health: queue, dead letters, breakers, supervisor state
        (C{read}, node-wide)."""
        return cast(dict, self._session.call("GET", "/api/monitoring/scheduler/health"))
