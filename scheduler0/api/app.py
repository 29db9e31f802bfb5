"""
The REST API (PRODUCT §4): projects, jobs, credentials and the healthcheck.

Every answer is the envelope C{{"success": bool, "data": ...}}. Handlers raise
L{scheduler0.api.errors.ApiError}s; the error handlers at the bottom are the one place
they (and routing errors, and anything unexpected) become JSON.

A write is validated here, turned into a L{Command} carrying its ids and timestamp, and
answered only once the command log has applied it.

Hostile input ends in a 4xx before it reaches a handler where possible: ids in paths are
ASCII digits up to 2^63-1 (L{IdConverter}), other path segments are bounded
(L{SegmentConverter}), C{//} is not merged (no redirect), a method or URL that is not
UTF-8 is refused by L{EdgeResource}, and request bodies are bounded in nesting and must be
valid Unicode (L{read_json}).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Callable

import attrs
from klein import Klein
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import BaseConverter, IntegerConverter, RequestRedirect

from ..consensus.interface import ICommandLog, NotAccepting, StorageFull
from ..schedule.spec import FireTimeCache, load_zone, parse_spec
from ..state import commands as C
from ..state.commands import Command, new_command
from ..state.machine import CREDENTIAL_PROJECTS_VERSION
from ..state.ids import IdAllocator
from ..store.reads import Record, StateReader, job_record
from ..timestamps import format_time, from_seconds, parse_time
from ..execution.signing import new_signing_secret
from ..secrets_at_rest import SigningKeyError, SigningSecretBox
from ..operability.repairs import RepairError
from . import validation as V
from .auth import Authenticator, hash_secret, new_api_key, new_api_secret
from .errors import (ApiError, BadRequest, InsufficientStorage, MethodNotAllowed, NotFound,
                     Unavailable, error_for_status)

log = Logger()

_JSON = "application/json"
_encode = json.JSONEncoder(separators=(",", ":")).encode


def respond(request: Any, status: int, data: Any) -> bytes:
    """Render the envelope. C{success} follows the status code."""
    request.setResponseCode(status)
    request.setHeader("content-type", _JSON)
    return _encode({"success": status < 400, "data": data}).encode()


def no_content(request: Any) -> bytes:
    request.setResponseCode(204)
    return b""


def requires(scope: str | None, *, node_wide: bool = False) -> Callable:
    """
    Authenticate the caller and check C{scope} before the handler runs. A C{node_wide}
    call (about the whole node rather than some projects) is refused to a credential
    limited to projects; the other calls are checked per project by the handler, through
    L{Api._project}, L{Api._job}, L{Api._execution} and the C{only} filter of the lists.
    """

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def wrapper(self: "Api", request: Any, *args: Any, **kwargs: Any) -> Any:
            if scope is not None:
                principal = self.authenticator.authenticate(request)
                if node_wide:
                    principal.require_node_wide(
                        f"{request.method.decode('ascii', 'replace')} {_shown_path(request)}")
                principal.require(scope)
                request.principal = principal
            return handler(self, request, *args, **kwargs)

        return wrapper

    return decorate


def _only(request: Any) -> frozenset[int] | None:
    """The projects the caller may see, for a list's filter (None: all of them)."""
    return request.principal.projects


#: Deepest nesting of arrays and objects in a request body (a batch of jobs is 2).
MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def read_json(request: Any, *, optional: bool = False) -> Any:
    """
    The request body as JSON: UTF-8, nested at most L{MAX_JSON_DEPTH} deep, strings valid
    Unicode (no lone surrogate escapes, which sqlite cannot store), no NaN or Infinity.
    """
    body = request.content.read() if request.content is not None else b""
    if not body.strip():
        if optional:
            return None
        raise BadRequest("a JSON request body is required")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the request body nests arrays and objects more than "
                         f"{MAX_JSON_DEPTH} levels deep") from None
    except ValueError as e:
        if str(e).startswith("Exceeds the limit"):
            raise BadRequest("the request body has a number with more than 4300 digits") \
                from None
        raise BadRequest(f"the request body is not valid JSON: {e}") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_json(value, surrogates)
    return value


def _check_json(value: Any, surrogates: bool) -> None:
    """Nesting depth (iteratively: the value may be ~1000 deep) and, if the text had
    surrogate escapes, that every string is valid Unicode."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"the request body nests arrays and objects more than "
                             f"{MAX_JSON_DEPTH} levels deep")
        children = list(item.values()) if isinstance(item, dict) else item
        if surrogates and isinstance(item, dict):
            children.extend(item)
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif surrogates and isinstance(child, str) and not _is_unicode(child):
                raise BadRequest("the request body has a \\uD800-\\uDFFF escape that is not "
                                 "part of a surrogate pair; strings must be valid Unicode")
    if surrogates and isinstance(value, str) and not _is_unicode(value):
        raise BadRequest("the request body has a \\uD800-\\uDFFF escape that is not part of "
                         "a surrogate pair; strings must be valid Unicode")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class IdConverter(IntegerConverter):
    """C{<int:...>} path segments: ASCII digits only (werkzeug's C{\\d} takes full-width
    digits) and at most 2^63-1, so no id reaches sqlite that its INTEGER cannot hold."""

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0") or "0"
        if len(digits) > 19 or int(digits) > V.MAX_ID:
            # raised from routing, this reaches the error handlers like any ApiError
            raise NotFound(f"no such resource: ids are whole numbers from 1 to {V.MAX_ID}")
        return int(digits)


class SegmentConverter(BaseConverter):
    """Plain C{<name>} path segments (execution ids): at most 128 characters."""

    MAX_CHARS = 128

    def to_python(self, value: str) -> str:
        if len(value) > self.MAX_CHARS:
            raise NotFound(f"no such resource: a path segment is longer than "
                           f"{self.MAX_CHARS} characters")
        return value


def _shown_path(request: Any) -> str:
    """The request path for a message, cut short: paths can be up to 16 KB."""
    path = request.path.decode("utf-8", "replace")
    return path if len(path) <= 200 else path[:200] + "..."


class EdgeResource(Resource):
    """
    What Klein cannot route: a method that is not ASCII, or a host or path (percent-decoded)
    that is not UTF-8. Klein would answer plain text and log a traceback (or fail with a
    500); this answers 400 in the API's envelope and logs nothing.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped

    def render(self, request: Any) -> Any:
        problem = self._problem(request)
        if problem is not None:
            return respond(request, 400, problem)
        return self._wrapped.render(request)

    @staticmethod
    def _problem(request: Any) -> str | None:
        if not request.method.isascii():
            return "the request method is not an ASCII HTTP method"
        try:
            b"/".join(request.prepath + request.postpath).decode("utf-8")
        except UnicodeDecodeError:
            return "the request path is not valid UTF-8 once percent-decoded"
        try:
            # what werkzeug does when Klein binds the URL map (outside Klein's error
            # handling, so its BadHost would be a 500 with a traceback)
            host = request.getRequestHostname().decode("utf-8")
            host.lower().partition(":")[0].encode("idna")
        except UnicodeError:
            return "the Host header is not a valid host name"
        return None


@attrs.define
class Operations:
    """What the operability endpoints work with (absent in API-only tests)."""

    health: Any
    supervisor: Any
    repairs: Any
    metrics: Any = None


@attrs.define
class ApiSettings:
    node_id: int = 1
    default_misfire_grace: int = 60
    apply_timeout: float = 10.0
    #: C{url -> message or None}: refuses callback URLs in networks the operator bars
    url_policy: Callable[[str], str | None] | None = None
    #: seals new signing secrets before they become commands (a node always has one; None,
    #: in-process test wirings only, stores them as generated)
    signing_box: SigningSecretBox | None = None
    #: C{none}: /metrics answers anyone; C{basic}: only the node's AuthUsername/AuthPassword
    metrics_auth: str = "none"


class Api:
    """
    @param reader: returns the current L{StateReader}.
    @param commands: where writes go (L{ICommandLog}).
    @param clock: an C{IReactorTime}; the only source of "now".
    """

    app = Klein()
    # before any route is added: rules take these when they are bound
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["default"] = SegmentConverter
    # "//" in a path is a 404, not a 308 redirect to the merged path
    app.url_map.merge_slashes = False

    def __init__(self, reader: Callable[[], StateReader], commands: ICommandLog, clock: Any,
                 authenticator: Authenticator, settings: ApiSettings | None = None,
                 scheduler: Any = None, operations: "Operations | None" = None) -> None:
        self.reader = reader
        self.scheduler = scheduler
        self.operations = operations
        self.commands = commands
        self.clock = clock
        self.authenticator = authenticator
        self.settings = settings or ApiSettings()
        self.ids = IdAllocator(lambda table: self.reader().sequence(table))
        self.fire_times = FireTimeCache()

    def resource(self) -> Any:
        return EdgeResource(self.app.resource())

    # -- helpers ------------------------------------------------------------------------

    async def _commit(self, kind: str, payload: dict[str, Any],
                      version: int | None = None) -> dict[str, Any]:
        """Submit a command; its result, with the command's C{issuedAt} added."""
        command = new_command(kind, payload, self.clock.seconds())
        if version is not None:
            command = attrs.evolve(command, version=version)
        result = await self._submit(command)
        return {**result, "issuedAt": command.issued_at}

    async def _submit(self, command: Command) -> dict[str, Any]:
        d = self.commands.submit(command)
        d.addTimeout(self.settings.apply_timeout, self.clock)
        try:
            result = await d
        except StorageFull as e:
            raise InsufficientStorage(str(e)) from None
        except NotAccepting as e:
            raise Unavailable(str(e)) from None
        except DeferredTimeout:
            raise Unavailable(
                f"the write was not applied within {self.settings.apply_timeout:g} s; it may "
                "still be applied, check before retrying"
            ) from None
        if not result.get("ok"):
            raise error_for_status(result.get("status", 500), result.get("error", "rejected"))
        return result

    def _now(self):  # type: ignore[no-untyped-def]
        return from_seconds(self.clock.seconds())

    def _with_next_run(self, job: Record, now: Any) -> Record:
        if self.scheduler is not None and job["id"] in self.scheduler.plans:
            fire = self.scheduler.next_fire(job["id"])
            job["nextRunAt"] = format_time(from_seconds(fire)) if fire is not None else None
        else:
            job["nextRunAt"] = self._next_run(job, now)
        return job

    def _next_run(self, job: Record, now: Any) -> str | None:
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

    # -- health -------------------------------------------------------------------------

    @app.route("/api/v1/healthcheck", methods=["GET"])
    def healthcheck(self, request: Any) -> bytes:
        leader = self.commands.leader()
        return respond(request, 200, {
            "leaderAddress": leader[0] if leader else "",
            "leaderId": leader[1] if leader else "",
            "raftStats": self.commands.status(),
        })

    # -- projects -----------------------------------------------------------------------

    @app.route("/api/v1/projects", methods=["POST"])
    @requires("write", node_wide=True)
    async def create_project(self, request: Any) -> bytes:
        fields = V.validate_project(read_json(request))
        (project_id,) = self.ids.allocate("projects")
        await self._commit(C.PROJECT_CREATE, {"project": {
            "id": project_id, "signing_secret": self._new_signing_secret(project_id),
            **fields}})
        return respond(request, 201, self.reader().project(project_id))

    @app.route("/api/v1/projects", methods=["GET"])
    @requires("read")
    def list_projects(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        projects, total = self.reader().projects(limit, offset, only=_only(request))
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "projects": projects})

    @app.route("/api/v1/projects/<int:project_id>", methods=["GET"])
    @requires("read")
    def get_project(self, request: Any, project_id: int) -> bytes:
        return respond(request, 200, self._project(request, project_id))

    # -- what a credential limited to projects may see: the one place it is decided ----

    def _project(self, request: Any, project_id: int) -> Record:
        """The project, or 404: also when the caller may not see it, with the same message,
        so that a credential limited to projects cannot tell others exist."""
        project = self.reader().project(project_id)
        if project is None or not request.principal.sees(project_id):
            raise NotFound(f"project {project_id} does not exist")
        return project

    def _job(self, request: Any, job_id: int) -> Record:
        """The job, or 404 (also when it is in a project the caller may not see)."""
        job = self.reader().job(job_id)
        if job is None or not request.principal.sees(job["projectId"]):
            raise NotFound(f"job {job_id} does not exist")
        return job

    def _execution(self, request: Any, execution_id: str) -> Record:
        """The execution, or 404 (also when it is of a project the caller may not see)."""
        execution = self.reader().execution(execution_id)
        if execution is None or not request.principal.sees(execution["projectId"]):
            raise NotFound(f"execution {execution_id} does not exist")
        return execution

    @app.route("/api/v1/projects/<int:project_id>", methods=["PUT"])
    @requires("write")
    async def update_project(self, request: Any, project_id: int) -> bytes:
        existing = self._project(request, project_id)
        changes = V.validate_project(read_json(request), existing)
        await self._commit(C.PROJECT_UPDATE, {"id": project_id, "changes": changes})
        return respond(request, 200, self._project(request, project_id))

    @app.route("/api/v1/projects/<int:project_id>", methods=["DELETE"])
    @requires("write")
    async def delete_project(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        await self._commit(C.PROJECT_DELETE, {"id": project_id})
        return no_content(request)

    def _new_signing_secret(self, project_id: int) -> str:
        """A new secret as the command carries it: sealed, so neither the command log nor
        the database ever holds it in plaintext."""
        secret = new_signing_secret()
        box = self.settings.signing_box
        return box.seal(project_id, secret) if box is not None else secret

    def _signing_secrets(self, project_id: int) -> Record:
        """The project's signing secrets, opened; 503 if they do not open."""
        try:
            record = self.reader().signing_secret(project_id)
        except SigningKeyError as e:
            raise Unavailable(f"{e}; the node cannot read this project's signing secret") \
                from None
        if record is None:
            raise NotFound(f"project {project_id} does not exist")
        return record

    @app.route("/api/v1/projects/<int:project_id>/signing-secret", methods=["GET"])
    @requires("write")
    def get_signing_secret(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        return respond(request, 200, self._signing_secrets(project_id))

    @app.route("/api/v1/projects/<int:project_id>/signing-secret/rotate", methods=["POST"])
    @requires("write")
    async def rotate_signing_secret(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        grace = V.validate_rotation(read_json(request, optional=True))
        expires = format_time(from_seconds(self.clock.seconds() + grace))
        await self._commit(C.PROJECT_ROTATE_SECRET, {
            "id": project_id, "secret": self._new_signing_secret(project_id),
            "previous_expires": expires})
        return respond(request, 200, self._signing_secrets(project_id))

    # -- jobs ---------------------------------------------------------------------------

    @app.route("/api/v1/jobs", methods=["POST"])
    @requires("write")
    async def create_jobs(self, request: Any) -> bytes:
        now = self._now()
        jobs, many = V.validate_jobs(read_json(request), now=now,
                                     default_grace=self.settings.default_misfire_grace,
                                     url_policy=self.settings.url_policy)
        principal = request.principal
        if principal.projects is not None:
            # before existence, so the answer is the same for a project that does not exist
            for index, job in enumerate(jobs):
                principal.require_project(job["project_id"],
                                          f"jobs[{index}].projectId" if many else "projectId")
        known = self.reader().existing_project_ids(job["project_id"] for job in jobs)
        for index, job in enumerate(jobs):
            if job["project_id"] not in known:
                where = f"jobs[{index}]." if many else ""
                raise BadRequest(f"{where}projectId: project {job['project_id']} does not exist")
        ids = self.ids.allocate("jobs", len(jobs))
        for job_id, job in zip(ids, jobs):
            job["id"] = job_id
        result = await self._commit(C.JOB_CREATE, {"jobs": jobs})
        # answer from the applied command (its rows are exactly what was stored) rather
        # than reading thousands of rows back
        stamp = result["issuedAt"]
        now = self._now()
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
        return respond(request, 201, created if many else created[0])

    @app.route("/api/v1/jobs", methods=["GET"])
    @requires("read")
    def list_jobs(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        project_id = V.optional_int_arg(request.args, "projectId")
        if project_id is None:
            project_id = V.optional_int_arg(request.args, "project_id")
        jobs, total = self.reader().jobs(project_id, limit, offset, only=_only(request))
        now = self._now()
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "jobs": [self._with_next_run(j, now) for j in jobs]})

    @app.route("/api/v1/jobs/<int:job_id>", methods=["GET"])
    @requires("read")
    def get_job(self, request: Any, job_id: int) -> bytes:
        return respond(request, 200, self._with_next_run(self._job(request, job_id),
                                                         self._now()))

    @app.route("/api/v1/jobs/<int:job_id>", methods=["PUT"])
    @requires("write")
    async def update_job(self, request: Any, job_id: int) -> bytes:
        existing = self._job(request, job_id)
        columns = V.validate_job(read_json(request), now=self._now(),
                                 default_grace=self.settings.default_misfire_grace,
                                 existing=existing, url_policy=self.settings.url_policy)
        if columns["project_id"] != existing["projectId"]:
            request.principal.require_project(columns["project_id"])
            if not self.reader().project(columns["project_id"]):
                raise BadRequest(f"projectId: project {columns['project_id']} does not exist")
        await self._commit(C.JOB_UPDATE, {"id": job_id, "changes": columns})
        return respond(request, 200, self._with_next_run(self._job(request, job_id),
                                                         self._now()))

    @app.route("/api/v1/jobs/<int:job_id>", methods=["DELETE"])
    @requires("write")
    async def delete_job(self, request: Any, job_id: int) -> bytes:
        self._job(request, job_id)
        await self._commit(C.JOB_DELETE, {"id": job_id})
        return no_content(request)

    @app.route("/api/v1/jobs/<int:job_id>/pause", methods=["POST"])
    @requires("write")
    async def pause_job(self, request: Any, job_id: int) -> bytes:
        return await self._set_paused(request, job_id, True)

    @app.route("/api/v1/jobs/<int:job_id>/resume", methods=["POST"])
    @requires("write")
    async def resume_job(self, request: Any, job_id: int) -> bytes:
        return await self._set_paused(request, job_id, False)

    async def _set_paused(self, request: Any, job_id: int, paused: bool) -> bytes:
        self._job(request, job_id)
        await self._commit(C.JOB_UPDATE, {"id": job_id, "changes": {"paused": int(paused)}})
        return respond(request, 200, self._with_next_run(self._job(request, job_id),
                                                         self._now()))

    @app.route("/api/v1/jobs/<int:job_id>/run", methods=["POST"])
    @requires("execute")
    def run_job(self, request: Any, job_id: int) -> bytes:
        self._job(request, job_id)
        occurrence = self.scheduler.run_now(job_id) if self.scheduler is not None else None
        if occurrence is None:
            raise Unavailable(f"job {job_id} is not scheduled on this node; retry shortly")
        return respond(request, 202, {
            "executionId": occurrence.execution_id, "jobId": job_id,
            "scheduledTime": format_time(from_seconds(occurrence.scheduled))})

    @app.route("/api/v1/jobs/<int:job_id>/executions", methods=["GET"])
    @requires("read")
    def job_executions(self, request: Any, job_id: int) -> bytes:
        if not self.reader().has_executions(job_id, only=_only(request)):
            # 404 only when neither the job nor any history exists (that the caller sees)
            self._job(request, job_id)
        return self._executions(request, job_id=job_id)

    # -- executions ---------------------------------------------------------------------

    @app.route("/api/v1/executions", methods=["GET"])
    @requires("read")
    def list_executions(self, request: Any) -> bytes:
        return self._executions(request, job_id=V.optional_int_arg(request.args, "jobId"))

    def _executions(self, request: Any, job_id: int | None) -> bytes:
        limit, offset = V.page(request.args)
        filters = V.execution_filters(request.args)
        executions, total, capped = self.reader().executions(
            job_id=job_id, limit=limit, offset=offset, only=_only(request), **filters)
        page = {"total": total, "offset": offset, "limit": limit, "executions": executions}
        if capped:
            page["totalCapped"] = True  # at least `total` match; counting stopped there
        return respond(request, 200, page)

    @app.route("/api/v1/executions/<execution_id>", methods=["GET"])
    @requires("read")
    def get_execution(self, request: Any, execution_id: str) -> bytes:
        return respond(request, 200, self._execution(request, execution_id))

    # -- credentials --------------------------------------------------------------------

    @app.route("/api/v1/credentials", methods=["POST"])
    @requires("admin", node_wide=True)
    async def create_credential(self, request: Any) -> bytes:
        fields = V.validate_credential(read_json(request, optional=True), creating=True)
        project_ids = fields.get("project_ids")
        self._require_projects(project_ids)
        (credential_id,) = self.ids.allocate("credentials")
        api_key, api_secret = new_api_key(), new_api_secret()
        credential = {
            "id": credential_id, "api_key": api_key, "secret_hash": hash_secret(api_secret),
            "scopes": fields["scopes"], "archived": fields.get("archived", 0),
        }
        if project_ids is not None:
            credential["project_ids"] = project_ids
        await self._commit(C.CREDENTIAL_CREATE, {"credential": credential},
                           CREDENTIAL_PROJECTS_VERSION if project_ids is not None else None)
        record = self.reader().credential(credential_id)
        assert record is not None
        record["apiSecret"] = api_secret
        return respond(request, 201, record)

    @app.route("/api/v1/credentials", methods=["GET"])
    @requires("admin", node_wide=True)
    def list_credentials(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        credentials, total = self.reader().credentials(limit, offset)
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "credentials": credentials})

    def _require_projects(self, project_ids: list[int] | None) -> None:
        """400 when a credential would be limited to a project that does not exist (the
        caller is node-wide: it may know)."""
        if project_ids is None:
            return
        missing = set(project_ids) - self.reader().existing_project_ids(project_ids)
        if missing:
            raise BadRequest(f"projectIds: project {min(missing)} does not exist")

    def _credential(self, credential_id: int) -> Record:
        credential = self.reader().credential(credential_id)
        if credential is None:
            raise NotFound(f"credential {credential_id} does not exist")
        return credential

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["GET"])
    @requires("admin", node_wide=True)
    def get_credential(self, request: Any, credential_id: int) -> bytes:
        return respond(request, 200, self._credential(credential_id))

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["PUT"])
    @requires("admin", node_wide=True)
    async def update_credential(self, request: Any, credential_id: int) -> bytes:
        existing = self._credential(credential_id)
        changes = V.validate_credential(read_json(request), creating=False, existing=existing)
        if not changes:
            raise BadRequest('nothing to change; send e.g. {"archived": true}')
        self._require_projects(changes.get("project_ids"))
        await self._commit(C.CREDENTIAL_UPDATE, {"id": credential_id, "changes": changes},
                           CREDENTIAL_PROJECTS_VERSION if "project_ids" in changes else None)
        return respond(request, 200, self._credential(credential_id))

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["DELETE"])
    @requires("admin", node_wide=True)
    async def delete_credential(self, request: Any, credential_id: int) -> bytes:
        self._credential(credential_id)
        await self._commit(C.CREDENTIAL_DELETE, {"id": credential_id})
        return no_content(request)

    # -- operability: health, dead letters, breakers, supervisor, metrics ----------------

    def _ops(self) -> Operations:
        if self.operations is None:
            raise Unavailable("operability endpoints are not available on this node")
        return self.operations

    @app.route("/api/monitoring/scheduler/health", methods=["GET"])
    @requires("read", node_wide=True)
    def scheduler_health(self, request: Any) -> bytes:
        # the seed's shape: the snapshot itself, so its jq queries work unchanged
        request.setHeader("content-type", _JSON)
        return _encode(self._ops().health.snapshot()).encode()

    @app.route("/api/monitoring/breakers/<path:target>/reset", methods=["POST"])
    @requires("admin", node_wide=True)
    def reset_breaker(self, request: Any, target: str) -> bytes:
        return respond(request, 200, self._repair(self._ops().repairs.reset_breaker, target))

    @app.route("/api/monitoring/dlq/retry", methods=["POST"])
    @requires("admin", node_wide=True)
    def retry_all_dead(self, request: Any) -> bytes:
        return respond(request, 202, self._repair(self._ops().repairs.retry_dead))

    @app.route("/api/monitoring/dlq/<path:target>/retry", methods=["POST"])
    @requires("admin", node_wide=True)
    def retry_dead_of(self, request: Any, target: str) -> bytes:
        return respond(request, 202, self._repair(self._ops().repairs.retry_dead, target))

    @app.route("/api/monitoring/dlq/<path:target>", methods=["DELETE"])
    @requires("admin", node_wide=True)
    async def delete_dead_of(self, request: Any, target: str) -> bytes:
        result = await self._repair(self._ops().repairs.delete_dead, target)
        return respond(request, 200, result)

    @app.route("/api/v1/executions/<execution_id>/retry", methods=["POST"])
    @requires("execute")
    def retry_execution(self, request: Any, execution_id: str) -> bytes:
        self._execution(request, execution_id)
        return respond(request, 202,
                       self._repair(self._ops().repairs.retry_execution, execution_id))

    @app.route("/api/v1/executions/<execution_id>", methods=["DELETE"])
    @requires("write")
    async def delete_execution(self, request: Any, execution_id: str) -> bytes:
        self._execution(request, execution_id)
        await self._repair(self._ops().repairs.delete_execution, execution_id)
        return no_content(request)

    @app.route("/api/supervisor/state", methods=["GET"])
    @requires("admin", node_wide=True)
    def supervisor_state(self, request: Any) -> bytes:
        supervisor = self._ops().supervisor
        state = supervisor.state()
        if state is None:
            raise Unavailable("no job is configured on this node")
        return respond(request, 200, {"state": state, "reason": supervisor.reason()})

    @app.route("/api/supervisor/halt", methods=["POST"])
    @requires("admin", node_wide=True)
    def supervisor_halt(self, request: Any) -> bytes:
        self._ops().supervisor.halt()
        return respond(request, 200, {"state": "HALTED", "reason": self._ops().supervisor.reason()})

    @app.route("/api/supervisor/restart", methods=["POST"])
    @requires("admin", node_wide=True)
    def supervisor_restart(self, request: Any) -> bytes:
        supervisor = self._ops().supervisor
        supervisor.restart()
        return respond(request, 200, {"state": supervisor.state(), "reason": supervisor.reason()})

    @app.route("/api/supervisor/hanging", methods=["GET"])
    @requires("admin", node_wide=True)
    def supervisor_hanging(self, request: Any) -> bytes:
        repairs = self._ops().repairs
        hanging = [{k: v for k, v in record.items() if k != "deliveryId"}
                   for record in repairs.hanging()]
        return respond(request, 200, {"hangingAfterSeconds": repairs.hanging_after,
                                      "total": len(hanging), "executions": hanging})

    @app.route("/api/supervisor/hanging/<execution_id>/resolve", methods=["POST"])
    @requires("admin", node_wide=True)
    async def supervisor_resolve(self, request: Any, execution_id: str) -> bytes:
        body = read_json(request)
        action = body.get("action") if isinstance(body, dict) else None
        result = await maybeDeferred(self._repair, self._ops().repairs.resolve, execution_id,
                                     action)
        return respond(request, 200, result)

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: Any) -> bytes:
        if self.settings.metrics_auth == "basic":
            try:
                self.authenticator.authenticate_basic(request)
            except ApiError:
                request.setHeader("www-authenticate", 'Basic realm="scheduler0 metrics"')
                raise
        metrics = self._ops().metrics
        if metrics is None:
            raise NotFound("metrics are not enabled on this node")
        body, content_type = metrics.render()
        request.setHeader("content-type", content_type)
        return body

    def _repair(self, action: Callable, *args: Any) -> Any:
        try:
            return action(*args)
        except RepairError as e:
            raise error_for_status(e.status, e.message) from None

    # -- errors: the one place exceptions become JSON ------------------------------------

    @app.handle_errors(ApiError)
    def _api_error(self, request: Any, failure: Any) -> bytes:
        error = failure.value
        return respond(request, error.status, error.message)

    @app.handle_errors(RouteNotFound, RequestRedirect)
    def _no_route(self, request: Any, failure: Any) -> bytes:
        return respond(request, 404, f"no such endpoint: {_shown_path(request)}")

    @app.handle_errors(RouteMethodNotAllowed)
    def _wrong_method(self, request: Any, failure: Any) -> bytes:
        allowed = ", ".join(getattr(failure.value, "valid_methods", None) or [])
        if allowed:
            request.setHeader("allow", allowed)
        error = MethodNotAllowed(
            f"{request.method.decode('ascii', 'replace')} is not allowed on "
            f"{_shown_path(request)}" + (f"; use {allowed}" if allowed else ""))
        return respond(request, error.status, error.message)

    @app.handle_errors(HTTPException)
    def _routing_error(self, request: Any, failure: Any) -> bytes:
        """Any other werkzeug routing answer (none is expected): its status, as JSON."""
        code = failure.value.code or 400
        if code >= 500:
            return self._unexpected(request, failure)
        return respond(request, code, f"cannot route {_shown_path(request)}: "
                                      f"{failure.value.name}")

    @app.handle_errors(Exception)
    def _unexpected(self, request: Any, failure: Any) -> bytes:
        method, path = request.method.decode("ascii", "replace"), _shown_path(request)
        if getattr(request, "principal", None) is None:
            # an unauthenticated caller must not be able to fill the log with tracebacks
            log.error("unexpected {error} ({detail}) serving unauthenticated {method} {path}",
                      error=failure.type.__name__, detail=str(failure.value)[:200],
                      method=method, path=path)
        else:
            log.failure("unexpected error serving {method} {path}", failure,
                        method=method, path=path)
        return respond(request, 500, "internal error; the node logged the details")
