"""
The API's OpenAPI 3.1 contract, built here and nowhere else (issue 15 item 1).

It is written as code rather than as a JSON file so that what every operation shares (the
envelope, the auth schemes, the errors every route can answer) is said once, and the
limits come from L{scheduler0.api.validation} instead of being copied. C{GET
/api/v1/openapi.json} serves it (L{scheduler0.api.contract}); C{tests/test_openapi.py}
checks it against Klein's URL map (every route in it, nothing else) and validates it, and
C{tests/integration/test_openapi_fuzz.py} runs schemathesis with it against a real node.

It is one module of about 650 lines on purpose: it is one document, read top to bottom
(shared components, then every route's operation in the README's order), and the
operations refer to the components by name; split by resource, each piece would import
them all back.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import validation as V
from .envelope import encode_json

OPENAPI_PATH = "/api/v1/openapi.json"

#: What a status means, for every operation that can answer it.
ERROR_MEANING = {
    400: "Invalid input; the message names the field and says what to fix.",
    401: "No credentials, or credentials the node does not accept.",
    403: "The credential lacks the scope, or is limited to projects and the call is "
         "node-wide or about another project.",
    404: "Not found (also: something of a project this credential may not see).",
    408: "The request did not arrive within RequestReadTimeout; the connection is closed.",
    409: "Conflicts with the current state.",
    413: "The request body is larger than MaxRequestBodyMb.",
    429: "Too many requests from this address (RateLimitPerMinute) or too many connections "
         "from it (MaxConnectionsPerClient); see Retry-After.",
    503: "Not ready: no Raft leader, a write not applied in time, too many connections, a "
         "storage failure; see Retry-After.",
    507: "The disk holding the database is full; the write was not stored.",
}

#: Every operation can be answered these, before any handler runs (the edge of the site).
EDGE_ERRORS = (408, 429, 503)
#: An operation that needs a credential adds these.
AUTH_ERRORS = (401, 403)
#: An operation with a request body adds these.
BODY_ERRORS = (400, 413)
#: A write (applied through the command log) adds these.
WRITE_ERRORS = (503, 507)

_TIME = {"type": "string", "format": "date-time",
         "description": "RFC 3339 time in UTC, e.g. 2026-11-26T16:05:00.000Z"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time",
                  "description": _TIME["description"]}
_ID = {"type": "integer", "minimum": 1, "maximum": V.MAX_ID}
#: a time a client sends: RFC 3339 with an offset, within years 1-9999 in UTC; null or ""
#: for none
_INPUT_TIME = {"anyOf": [{"type": "string", "format": "date-time", "maxLength": 64},
                         {"enum": [None, ""]}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: tuple[str, ...] | None = None,
            closed: bool = True) -> dict[str, Any]:
    """A JSON object schema; C{required} defaults to every property (answers)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties if required is None else required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(items: str, item: str) -> dict[str, Any]:
    return _object({"total": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1, "maximum": V.MAX_PAGE},
                    items: {"type": "array", "items": _ref(item)}})


def _schemas() -> dict[str, Any]:
    """Every shape of L{scheduler0.api.shapes}, and the request bodies."""
    text = {"type": "string"}
    nullable_text = {"type": ["string", "null"]}
    credential = {
        "id": _ID, "apiKey": text,
        "scopes": {"type": "array", "items": {"enum": list(V.SCOPES)}},
        "projectIds": {"type": ["array", "null"], "items": _ID},
        "archived": {"type": "boolean"}, "dateCreated": _TIME, "dateModified": _TIME,
    }
    return {
        "Error": _object({"success": {"const": False},
                          "data": {"type": "string", "description": "what to fix"}}),
        "Project": _object({"id": _ID, "name": text, "description": text,
                            "dateCreated": _TIME, "dateModified": _TIME}),
        "ProjectPage": _page("projects", "Project"),
        "ProjectInput": _object({
            "name": {"type": "string", "minLength": 1, "maxLength": V.MAX_NAME_CHARS,
                     "pattern": r"\S"},
            "description": {"type": ["string", "null"], "maxLength": V.MAX_DESCRIPTION_CHARS},
        }, required=("name",)),
        "ProjectChanges": _object({
            "name": {"type": "string", "minLength": 1, "maxLength": V.MAX_NAME_CHARS,
                     "pattern": r"\S"},
            "description": {"type": ["string", "null"], "maxLength": V.MAX_DESCRIPTION_CHARS},
        }, required=()),
        "SigningSecrets": _object({
            "signingSecret": text,
            "previousSigningSecret": nullable_text,
            "previousSecretExpires": _NULLABLE_TIME,
            "previousSigningSecrets": {"type": "array", "items": _object(
                {"secret": text, "expires": _TIME})},
        }),
        "Rotation": _object({"graceSeconds": {"type": "integer", "minimum": 0,
                                              "maximum": V.MAX_ROTATION_GRACE,
                                              "default": 86400}}, required=()),
        "Job": _object({
            "id": _ID, "projectId": _ID, "spec": text, "callbackUrl": text,
            "data": nullable_text, "executionType": {"enum": list(V.EXECUTION_TYPES)},
            "timezone": text, "startDate": _NULLABLE_TIME, "endDate": _NULLABLE_TIME,
            "paused": {"type": "boolean"}, "misfirePolicy": {"enum": list(V.MISFIRE_POLICIES)},
            "misfireGraceSeconds": {"type": "integer", "minimum": 0},
            "dateCreated": _NULLABLE_TIME, "dateModified": _NULLABLE_TIME,
            "nextRunAt": {**_NULLABLE_TIME, "description": "null: paused or finished"},
        }),
        "JobPage": _page("jobs", "Job"),
        "JobInput": _object(_job_input(), required=("projectId", "spec", "callbackUrl")),
        "JobChanges": _object(_job_input(), required=()),
        "RunNow": _object({"executionId": text, "jobId": _ID, "scheduledTime": _TIME}),
        "Execution": _object({
            "executionId": text, "jobId": _ID, "projectId": _ID, "scheduledTime": _TIME,
            "state": {"enum": list(V.EXECUTION_STATES)},
            "attempts": {"type": "integer", "minimum": 0},
            "target": nullable_text, "nodeId": {"type": ["integer", "null"]},
            "lastStatus": {"type": ["integer", "null"]}, "lastError": nullable_text,
            "errorCategory": {"enum": ["transient", "permanent", None]},
            "durationMs": {"type": ["number", "null"]},
            "latenessMs": {"type": ["number", "null"]},
            "firstAttemptAt": _NULLABLE_TIME, "lastAttemptAt": _NULLABLE_TIME,
            "nextRetryAt": _NULLABLE_TIME, "dateCreated": _NULLABLE_TIME,
            "dateModified": _NULLABLE_TIME,
        }),
        "ExecutionPage": {**_page("executions", "Execution"),
                          "required": ["total", "offset", "limit", "executions"],
                          "properties": {**_page("executions", "Execution")["properties"],
                                         "totalCapped": {"const": True}}},
        "Credential": _object(credential),
        "NewCredential": _object({**credential, "apiSecret": {
            "type": "string", "description": "shown in this answer only; stored hashed"}}),
        "CredentialPage": _page("credentials", "Credential"),
        "CredentialInput": _object(_credential_input(), required=()),
        "CredentialChanges": _object({**_credential_input(), "archived": {"type": "boolean"}},
                                     required=(), closed=True) | {"minProperties": 1},
        "Healthcheck": _object({"leaderAddress": text, "leaderId": text,
                                "raftStats": {"type": "object",
                                              "additionalProperties": {"type": "string"}}}),
        **_health_schemas(),
        "BreakerReset": _object({"instance": text,
                                 "breaker": {"enum": ["closed", "half_open", "open"]}}),
        "Retried": _object({"retried": {"type": "array", "items": text},
                            "skipped": {"type": "array", "items": text}}),
        "Deleted": _object({"deleted": {"type": "integer", "minimum": 0}}),
        "SupervisorState": _object({
            "state": {"enum": ["RUNNING", "HALTED", "FINISHED", "STANDBY", None],
                      "description": "null after a restart when no job is configured"},
            "reason": nullable_text, "role": {"enum": ["leader", "follower"]},
            "executing": {"type": "boolean"}}, required=("state", "reason")),
        "Hanging": _object({"hangingAfterSeconds": {"type": "number"},
                            "total": {"type": "integer", "minimum": 0},
                            "executions": {"type": "array", "items": _ref("Execution")}}),
        "Resolve": _object({"action": {"enum": ["complete", "rerun"]}}),
        "Resolved": {"oneOf": [_object({"completed": {"type": "array", "items": text}}),
                               _ref("Retried")]},
    }


def _health_schemas() -> dict[str, Any]:
    """The scheduler health (L{scheduler0.operability.health}), in the seed's shape."""
    text, nullable_text = {"type": "string"}, {"type": ["string", "null"]}
    count = {"type": "integer", "minimum": 0}
    breaker_state = {"enum": ["closed", "half_open", "open", "unknown"]}
    kind = {"const": "http"}
    return {
        "SchedulerHealth": _object({
            "updatedAt": _TIME, "enabled": {"type": "boolean"},
            "queue": _object({"depth": count, "retryWaiting": count, "dueWithinSeconds": count,
                              "perType": {"type": "object", "additionalProperties": count}}),
            "deadLetter": _object({"count": count, "tasks": {"type": "array", "items": _object({
                "instance": nullable_text, "type": kind, "nextRun": _NULLABLE_TIME,
                "lastError": nullable_text, "failures": count, "executionId": text,
                "jobId": _ID})}}),
            "skipped": _object({"total": count,
                                "byReason": {"type": "object", "additionalProperties": count},
                                "lastAt": _NULLABLE_TIME}),
            "breakers": {"type": "array", "items": _object({
                "instance": text, "type": kind, "state": breaker_state, "failures": count,
                "retryAt": _NULLABLE_TIME})},
            "staleness": {"type": "array", "items": _object({
                "instance": text, "type": kind, "score": {"type": "number", "minimum": 0},
                "lastSuccess": _NULLABLE_TIME, "lastError": _NULLABLE_TIME})},
            "instances": {"type": "array", "items": _ref("HealthInstance")},
            "role": {"enum": ["leader", "follower"]}, "executing": {"type": "boolean"},
        }, required=("updatedAt", "enabled", "queue", "deadLetter", "skipped", "breakers",
                     "staleness", "instances")),
        "HealthInstance": _object({
            "key": text, "type": kind, "displayName": text, "instance": text,
            "connection": text, "host": text,
            "pollStatus": _object({
                "lastSuccess": _NULLABLE_TIME,
                "lastError": {"oneOf": [{"type": "null"}, _object({
                    "at": _TIME, "message": nullable_text,
                    "category": {"enum": ["transient", "permanent", None]}})]},
                "consecutiveFailures": count, "firstFailureAt": _NULLABLE_TIME}),
            "breaker": _object({"state": breaker_state, "since": _NULLABLE_TIME,
                                "lastTransition": _NULLABLE_TIME, "retryAt": _NULLABLE_TIME,
                                "failureCount": count,
                                "scope": {"enum": ["endpoint", "host"]}}),
            "deadLetter": _object({
                "present": {"type": "boolean"},
                "reason": {"enum": ["permanent_failure", "max_retry_attempts"]},
                "firstAttempt": _NULLABLE_TIME, "lastAttempt": _NULLABLE_TIME,
                "retryCount": count, "count": count, "nextRetry": {"type": "null"}},
                required=("present",)),
        }),
    }


def _job_input() -> dict[str, Any]:
    """A job's writable fields (camelCase; the snake_case spellings are accepted too)."""
    return {
        "projectId": {"anyOf": [_ID, {"type": "string", "pattern": "^[0-9]{1,19}$"}],
                      "description": "a project id (a string of digits is accepted too)"},
        "spec": {"type": "string", "minLength": 1, "maxLength": V.MAX_SPEC_CHARS,
                 "description": 'cron (5 or 6 fields), a descriptor, "@every 90s" or '
                                '"@at <RFC 3339>"; one that can never fire is a 400'},
        "callbackUrl": {"type": "string", "minLength": 1, "maxLength": V.MAX_URL_CHARS,
                        "description": "absolute http(s) URL the network policy allows"},
        "data": {"type": ["string", "null"],
                 "description": f"opaque, at most {V.MAX_DATA_BYTES} bytes of UTF-8"},
        "executionType": {"enum": list(V.EXECUTION_TYPES) + [None, ""]},
        "timezone": {"type": ["string", "null"], "maxLength": V.MAX_TIMEZONE_CHARS,
                     "description": "IANA zone name, default UTC"},
        "startDate": _INPUT_TIME,
        "endDate": _INPUT_TIME,
        "paused": {"type": ["boolean", "null"]},
        "misfirePolicy": {"enum": list(V.MISFIRE_POLICIES) + [None, ""]},
        "misfireGraceSeconds": {"type": ["integer", "null"], "minimum": 0,
                                "maximum": V.MAX_GRACE_SECONDS},
    }


def _credential_input() -> dict[str, Any]:
    return {
        "scopes": {"type": ["array", "null"], "minItems": 1,
                   "items": {"enum": list(V.SCOPES)},
                   "description": "default read, write, execute; admin only node-wide"},
        "projectIds": {"type": ["array", "null"], "minItems": 1,
                       "maxItems": V.MAX_CREDENTIAL_PROJECTS, "items": _ID,
                       "description": "null or absent: node-wide"},
    }


# -- operations ---------------------------------------------------------------------------

_SECURITY = [{"apiKey": [], "apiSecret": []}, {"bearer": []}, {"peerBasic": [], "peer": []}]


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return _object({"success": {"const": True}, "data": data})


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(operation_id: str, summary: str, *, scope: str | None, ok: int,
               data: dict[str, Any] | None, errors: tuple[int, ...] = (),
               body: str | None = None, body_required: bool = True,
               params: list[dict[str, Any]] | None = None, raw: dict[str, Any] | None = None,
               links: dict[str, Any] | None = None, example: Any = None) -> dict[str, Any]:
    """One operation: its success answer (the envelope around C{data}, none for a 204, or
    C{raw} content) and every error status it can answer, each with the error envelope."""
    statuses = set(errors) | set(EDGE_ERRORS)
    if scope is not None:
        statuses |= set(AUTH_ERRORS)
    if body is not None:
        statuses |= set(BODY_ERRORS)
    success: dict[str, Any] = {"description": summary}
    if raw is not None:
        success["content"] = raw
    elif data is not None:
        success["content"] = _json(_envelope(data))
    if links:
        success["links"] = links
    responses: dict[str, Any] = {str(ok): success}
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    operation: dict[str, Any] = {
        "operationId": operation_id, "summary": summary,
        "description": f"Scope: {scope or 'none (no credentials)'}.",
        "responses": responses,
        "security": _SECURITY if scope is not None else [],
    }
    if scope is not None:
        operation["x-scope"] = scope
    if params:
        operation["parameters"] = params
    if body is not None:
        schema = _ref(body) if body_required else {
            "anyOf": [_ref(body), {"type": "null"}],
            "description": "no body, or null: the defaults"}
        content = _json(schema)
        if example is not None:
            content["application/json"]["example"] = example
        operation["requestBody"] = {"required": body_required, "content": content}
    return operation


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _ID}


def _path_text(name: str, description: str, max_length: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if max_length is not None:
        schema["maxLength"] = max_length
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query argument; sent empty (C{?limit=}) it counts as absent."""
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "allowEmptyValue": True, "description": f"{description}; empty: as if absent"}


_PAGE = [_query("limit", {"type": "integer", "minimum": 1, "maximum": V.MAX_PAGE,
                          "default": 50}, "page size"),
         _query("offset", {"type": "integer", "minimum": 0, "maximum": V.MAX_ID,
                           "default": 0}, "items skipped")]
_EXECUTION_FILTERS = [
    _query("projectId", _ID, "only this project's"),
    _query("state", {"enum": list(V.EXECUTION_STATES)}, "only those in this state"),
    _query("from", {"type": "string", "format": "date-time", "maxLength": 64},
           "scheduled at or after (RFC 3339)"),
    _query("to", {"type": "string", "format": "date-time", "maxLength": 64},
           "scheduled at or before (RFC 3339)"),
]
_EXECUTION_ID = _path_text("executionId", "an execution id, e.g. 7-20261126T160500Z",
                           128)
_TARGET = _path_text("target", "a callback endpoint (its URL, percent-encoded) or a host "
                               "(http://host:port or host:port)")

_JOB_EXAMPLE = {"projectId": 1, "spec": "*/5 * * * *", "timezone": "Europe/London",
                "callbackUrl": "http://127.0.0.1:9/callback", "data": "{\"invoice\":42}"}


def _link(operation_id: str, name: str, field: str = "id") -> dict[str, Any]:
    return {"operationId": operation_id,
            "parameters": {name: f"$response.body#/data/{field}"}}


def _project_links() -> dict[str, Any]:
    return {f"{op}": _link(op, "projectId") for op in
            ("getProject", "updateProject", "deleteProject", "getSigningSecret",
             "rotateSigningSecret")}


def _job_links() -> dict[str, Any]:
    return {op: _link(op, "jobId") for op in
            ("getJob", "updateJob", "deleteJob", "pauseJob", "resumeJob", "runJob",
             "listJobExecutions")}


def _execution_links(pointer: str) -> dict[str, Any]:
    """From a page of executions to the operations on its first one."""
    return {op: {"operationId": op,
                 "parameters": {"executionId": f"$response.body#{pointer}/0/executionId"}}
            for op in ("getExecution", "deleteExecution", "retryExecution",
                       "supervisorResolve")}


def _target_links() -> dict[str, Any]:
    """From the scheduler health to the repairs of its first instance."""
    return {op: {"operationId": op,
                 "parameters": {"target": "$response.body#/instances/0/instance"}}
            for op in ("resetBreaker", "retryDeadLettersOf", "deleteDeadLettersOf")}


def _credential_links() -> dict[str, Any]:
    return {op: _link(op, "credentialId") for op in
            ("getCredential", "updateCredential", "deleteCredential")}


def _paths() -> dict[str, dict[str, Any]]:
    J = _ref
    project_id, job_id, credential_id = (_path_id("projectId"), _path_id("jobId"),
                                         _path_id("credentialId"))
    return {
        "/api/v1/projects": {
            "post": _operation("createProject", "Create a project (201); a duplicate name is "
                               "409.", scope="write", ok=201, data=J("Project"),
                               errors=(409,) + WRITE_ERRORS, body="ProjectInput",
                               links=_project_links(), example={"name": "billing"}),
            "get": _operation("listProjects", "The projects this credential sees.",
                              scope="read", ok=200, data=J("ProjectPage"), errors=(400,),
                              params=_PAGE),
        },
        "/api/v1/projects/{projectId}": {
            "parameters": [project_id],
            "get": _operation("getProject", "A project.", scope="read", ok=200,
                              data=J("Project"), errors=(404,)),
            "put": _operation("updateProject", "Change a project's name or description.",
                              scope="write", ok=200, data=J("Project"),
                              errors=(404, 409) + WRITE_ERRORS, body="ProjectChanges"),
            "delete": _operation("deleteProject", "Delete a project (409 while it has jobs).",
                                 scope="write", ok=204, data=None,
                                 errors=(404, 409) + WRITE_ERRORS),
        },
        "/api/v1/projects/{projectId}/signing-secret": {
            "parameters": [project_id],
            "get": _operation("getSigningSecret", "The project's callback signing secret(s).",
                              scope="write", ok=200, data=J("SigningSecrets"),
                              errors=(404, 503)),
        },
        "/api/v1/projects/{projectId}/signing-secret/rotate": {
            "parameters": [project_id],
            "post": _operation("rotateSigningSecret", "A new signing secret; the old one "
                               "signs beside it for graceSeconds.", scope="write", ok=200,
                               data=J("SigningSecrets"), errors=(404,) + WRITE_ERRORS,
                               body="Rotation", body_required=False),
        },
        "/api/v1/jobs": {
            "post": _operation("createJobs", "Create one job, or an array of up to "
                               f"{V.MAX_JOBS_PER_REQUEST} (validated whole first).",
                               scope="write", ok=201,
                               data={"oneOf": [J("Job"), {"type": "array",
                                                          "items": J("Job")}]},
                               errors=WRITE_ERRORS, body="JobsInput",
                               links=_job_links(), example=_JOB_EXAMPLE),
            "get": _operation("listJobs", "The jobs this credential sees.", scope="read",
                              ok=200, data=J("JobPage"), errors=(400,),
                              params=[_query("projectId", _ID, "only this project's"),
                                      _query("project_id", _ID, "the seed's client's "
                                             "spelling of projectId") | {"deprecated": True}]
                              + _PAGE),
        },
        "/api/v1/jobs/{jobId}": {
            "parameters": [job_id],
            "get": _operation("getJob", "A job, with when it runs next.", scope="read",
                              ok=200, data=J("Job"), errors=(404,)),
            "put": _operation("updateJob", "Change any writable field (re-planned at once).",
                              scope="write", ok=200, data=J("Job"),
                              errors=(404,) + WRITE_ERRORS, body="JobChanges"),
            "delete": _operation("deleteJob", "Delete a job (its records stay).",
                                 scope="write", ok=204, data=None,
                                 errors=(404,) + WRITE_ERRORS),
        },
        "/api/v1/jobs/{jobId}/pause": {
            "parameters": [job_id],
            "post": _operation("pauseJob", "Pause a job.", scope="write", ok=200,
                               data=J("Job"), errors=(404,) + WRITE_ERRORS),
        },
        "/api/v1/jobs/{jobId}/resume": {
            "parameters": [job_id],
            "post": _operation("resumeJob", "Resume a job (no catch-up).", scope="write",
                               ok=200, data=J("Job"), errors=(404,) + WRITE_ERRORS),
        },
        "/api/v1/jobs/{jobId}/run": {
            "parameters": [job_id],
            "post": _operation("runJob", "One extra occurrence now (202), on any node: the "
                               "node that owns the job delivers it with this executionId.",
                               scope="execute", ok=202, data=J("RunNow"),
                               errors=(404, 409) + WRITE_ERRORS),
        },
        "/api/v1/jobs/{jobId}/executions": {
            "parameters": [job_id],
            "get": _operation("listJobExecutions", "A job's execution records, newest first "
                              "(a deleted job's too).", scope="read", ok=200,
                              data=J("ExecutionPage"), errors=(400, 404),
                              params=_EXECUTION_FILTERS + _PAGE,
                              links=_execution_links("/data/executions")),
        },
        "/api/v1/executions": {
            "get": _operation("listExecutions", "Execution records, newest first.",
                              scope="read", ok=200, data=J("ExecutionPage"), errors=(400,),
                              params=[_query("jobId", _ID, "only this job's")]
                              + _EXECUTION_FILTERS + _PAGE,
                              links=_execution_links("/data/executions")),
        },
        "/api/v1/executions/{executionId}": {
            "parameters": [_EXECUTION_ID],
            "get": _operation("getExecution", "An execution record.", scope="read", ok=200,
                              data=J("Execution"), errors=(404,)),
            "delete": _operation("deleteExecution", "Delete a finished or dead execution.",
                                 scope="write", ok=204, data=None,
                                 errors=(404, 409) + WRITE_ERRORS),
        },
        "/api/v1/executions/{executionId}/retry": {
            "parameters": [_EXECUTION_ID],
            "post": _operation("retryExecution", "Send a dead letter again (same "
                               "executionId), on any node: the job's owner sends it.",
                               scope="execute", ok=202, data=J("Retried"),
                               errors=(404, 409) + WRITE_ERRORS),
        },
        "/api/v1/credentials": {
            "post": _operation("createCredential", "A new credential: the only answer with "
                               "its apiSecret.", scope="admin", ok=201, data=J("NewCredential"),
                               errors=WRITE_ERRORS, body="CredentialInput",
                               body_required=False, links=_credential_links()),
            "get": _operation("listCredentials", "Every credential (never a secret).",
                              scope="admin", ok=200, data=J("CredentialPage"),
                              errors=(400,), params=_PAGE),
        },
        "/api/v1/credentials/{credentialId}": {
            "parameters": [credential_id],
            "get": _operation("getCredential", "A credential (never its secret).",
                              scope="admin", ok=200, data=J("Credential"), errors=(404,)),
            "put": _operation("updateCredential", "Change scopes or projectIds, or archive.",
                              scope="admin", ok=200, data=J("Credential"),
                              errors=(404,) + WRITE_ERRORS, body="CredentialChanges"),
            "delete": _operation("deleteCredential", "Delete a credential.", scope="admin",
                                 ok=204, data=None, errors=(404,) + WRITE_ERRORS),
        },
        "/api/v1/healthcheck": {
            "get": _operation("healthcheck", "The Raft leader and statistics; a probe.",
                              scope=None, ok=200, data=J("Healthcheck")),
        },
        OPENAPI_PATH: {
            "get": _operation("openapi", "This document.", scope=None, ok=200, data=None,
                              raw=_json({"type": "object", "required": ["openapi", "paths"]})),
        },
        "/api/monitoring/scheduler/health": {
            "get": _operation("schedulerHealth", "The scheduler's health in the seed's "
                              "shape (not enveloped, so its jq queries work).", scope="read",
                              ok=200, data=None, raw=_json(J("SchedulerHealth")),
                              errors=(503,), links=_target_links()),
        },
        "/api/monitoring/breakers/{target}/reset": {
            "parameters": [_TARGET],
            "post": _operation("resetBreaker", "Close an endpoint's or a host's breaker on "
                               "every node; the state answered is this node's.",
                               scope="admin", ok=200, data=J("BreakerReset"),
                               errors=(404,) + WRITE_ERRORS),
        },
        "/api/monitoring/dlq/retry": {
            "post": _operation("retryDeadLetters", "Send every dead letter again (any node; "
                               "each job's owner sends them).", scope="admin", ok=202,
                               data=J("Retried"), errors=WRITE_ERRORS),
        },
        "/api/monitoring/dlq/{target}/retry": {
            "parameters": [_TARGET],
            "post": _operation("retryDeadLettersOf", "Send one endpoint's or host's dead "
                               "letters again (any node).", scope="admin", ok=202,
                               data=J("Retried"), errors=(404,) + WRITE_ERRORS),
        },
        "/api/monitoring/dlq/{target}": {
            "parameters": [_TARGET],
            "delete": _operation("deleteDeadLettersOf", "Drop one endpoint's or host's dead "
                                 "letters.", scope="admin", ok=200, data=J("Deleted"),
                                 errors=(404,) + WRITE_ERRORS),
        },
        "/api/supervisor/state": {
            "get": _operation("supervisorState", "RUNNING, HALTED, FINISHED or STANDBY; 503 "
                              "when no job is configured.", scope="admin", ok=200,
                              data=J("SupervisorState"), errors=(503,)),
        },
        "/api/supervisor/halt": {
            "post": _operation("supervisorHalt", "Halt: no new occurrence or delivery starts.",
                               scope="admin", ok=200, data=J("SupervisorState"),
                               errors=(503,)),
        },
        "/api/supervisor/restart": {
            "post": _operation("supervisorRestart", "Resume after a halt.", scope="admin",
                               ok=200, data=J("SupervisorState"), errors=(503,)),
        },
        "/api/supervisor/hanging": {
            "get": _operation("supervisorHanging", "Executions dispatched without an outcome "
                              "for too long.", scope="admin", ok=200, data=J("Hanging"),
                              errors=(503,)),
        },
        "/api/supervisor/hanging/{executionId}/resolve": {
            "parameters": [_EXECUTION_ID],
            "post": _operation("supervisorResolve", "Record a hanging execution done, or "
                               "send it again.", scope="admin", ok=200, data=J("Resolved"),
                               errors=(404, 409) + WRITE_ERRORS, body="Resolve"),
        },
        **_cluster_paths(),
        "/metrics": {
            "get": _operation("metrics", "Prometheus text; HTTP Basic with the node's "
                              "credentials under MetricsAuth: basic.", scope=None, ok=200,
                              data=None, raw={"text/plain": {"schema": {"type": "string"}}},
                              errors=(401, 404)) | {"security": [{}, {"metricsBasic": []}]},
        },
    }


def _cluster_paths() -> dict[str, dict[str, Any]]:
    """The seed's cluster-management API (L{scheduler0.api.cluster}): peer Basic auth with
    X-Peer only, API keys are refused whatever their scopes."""
    nullable_int = {"type": ["integer", "null"]}
    nullable_text = {"type": ["string", "null"]}
    node_id = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    node = _object({
        "id": node_id, "address": {"type": "string", "description": "Raft address"},
        "isLeader": {"type": "boolean"}, "suffrage": {"enum": ["Voter", "Nonvoter"]},
        "clientAddress": {"type": "string", "description": "API address"},
        "self": {"type": "boolean", "description": "the node that answered"},
        "connected": {"type": ["boolean", "null"]},
        "lastContact": {**nullable_text, "description": "e.g. 12ms; known on the leader "
                                                        "for voters, and for the answering "
                                                        "node"},
        "matchIndex": nullable_int,
        "lag": {**nullable_int, "description": "entries behind the leader's log (known on "
                                               "the leader, for voters)"}})
    time = _NULLABLE_TIME
    dumps = {
        "schedule-queue": _object({
            "nodeId": {"type": "integer"}, "total": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
            "items": {"type": "array", "items": _object({
                "jobId": _ID, "projectId": _ID, "nextFire": time, "target": nullable_text,
                "paused": {"type": "boolean"}})}}),
        "job-executions-cache": _object({
            "nodeId": {"type": "integer"}, "total": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
            "jobs": {"type": "object", "additionalProperties": _object(
                {"lastScheduled": time, "nextFire": time})}}),
        "job-queues": {"type": "array", "items": _object({
            "nodeId": {"type": "integer"}, "buckets": {"type": "integer", "minimum": 0},
            "bucketIds": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "version": {"type": "integer"}})},
        "job-queue-versions": {"type": "array", "items": _object({
            "version": {"type": "integer"}, "numberOfActiveNodes": {"type": "integer"},
            "buckets": {"type": "integer"},
            "shares": {"type": "object", "additionalProperties": {"type": "integer"}}})},
    }

    def peer_only(operation: dict[str, Any]) -> dict[str, Any]:
        return operation | {"security": [{"peerBasic": [], "peer": []}], "x-scope": "peer",
                            "description": "Peer Basic auth with X-Peer only (API keys: "
                                           "403)."}

    def required(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": True, "schema": schema,
                "description": description}

    def change(operation_id: str, summary: str, status: str,
               params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"post": peer_only(_operation(
            operation_id, summary, scope="admin", ok=200,
            data=_object({"status": {"const": status}}), params=params,
            errors=(400, 403, 404, 409, 503)))}

    node_param = [required("nodeId", node_id, "the node's NodeId")]
    paths: dict[str, dict[str, Any]] = {
        "/api/v1/cluster/list-nodes": {"get": peer_only(_operation(
            "clusterListNodes", "Every member of the cluster, as the replicated list holds "
            "them.", scope="admin", ok=200, data={"type": "array", "items": node},
            errors=(503,)))},
        "/api/v1/cluster/add-node": change(
            "clusterAddNode", "Add a voter (leader-only; answers once it caught up).",
            "node added", [
                required("nodeId", node_id, "the new node's NodeId"),
                required("nodeAddress", {"type": "string", "minLength": 1},
                         "its Raft address, host:port"),
                required("clientAddress", {"type": "string", "minLength": 1},
                         "its API address, host:port or http(s)://host:port")]),
        "/api/v1/cluster/remove-node": change(
            "clusterRemoveNode", "Remove a member (leader-only).", "node removed", node_param),
        "/api/v1/cluster/add-self": change(
            "clusterAddSelf", "Ask the cluster's leader to add this node.", "added"),
        "/api/v1/cluster/remove-self": change(
            "clusterRemoveSelf", "Leave the cluster (not on the leader).", "removed"),
        "/api/v1/cluster/promote-node": change(
            "clusterPromoteNode", "Make a non-voter a voter (leader-only).",
            "node promoted to voter", node_param),
        "/api/v1/cluster/demote-node": change(
            "clusterDemoteNode", "Make a voter a non-voter (leader-only).",
            "node demoted to non-voter", node_param),
        "/api/v1/cluster/transfer-leadership": change(
            "clusterTransferLeadership", "Hand the leadership to another voter "
            "(leader-only).", "leadership transferred"),
        "/api/v1/cluster/force-rebuild": change(
            "clusterForceRebuild", "After a loss of quorum, on the named survivor: a "
            "one-node cluster with its data.", "rebuild initiated",
            [required("seedNodeId", node_id, "this node's NodeId")]),
        "/api/v1/cluster/reset-raft": change(
            "clusterResetRaft", "Answer, delete this node's Raft state and exit (status 3).",
            "raft reset"),
    }
    for name, schema in dumps.items():
        words = "".join(part.title() for part in name.split("-"))
        paths[f"/api/v1/cluster/dump/{name}"] = {"get": peer_only(_operation(
            f"clusterDump{words}", f"Debug dump: {name} of the answering node.",
            scope="admin", ok=200, data=schema, errors=(503,)))}
    return paths


#: Statuses whose answer says when to try again.
RETRY_AFTER = (429, 503)


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, meaning in ERROR_MEANING.items():
        responses[f"E{status}"] = {"description": meaning, "content": _json(_ref("Error"))}
        if status in RETRY_AFTER:
            responses[f"E{status}"]["headers"] = {"Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0}}}
    return responses


def build_document(api_version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the node serves."""
    schemas = _schemas()
    schemas["JobsInput"] = {"oneOf": [_ref("JobInput"), {
        "type": "array", "minItems": 1, "maxItems": V.MAX_JOBS_PER_REQUEST,
        "items": _ref("JobInput")}]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scheduler0",
            "version": api_version,
            "description": "A distributed cron-job server. Every answer is the envelope "
                           '{"success": bool, "data": ...}; on error data is a message that '
                           "says what to fix. Field names are camelCase (the snake_case "
                           "spellings are accepted too).",
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "responses": _responses(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "apiSecret": {"type": "apiKey", "in": "header", "name": "x-secret-key"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Authorization: Bearer <apiKey>:<apiSecret>"},
                "peerBasic": {"type": "http", "scheme": "basic",
                              "description": "the node's AuthUsername and AuthPassword "
                                             "(all scopes), with X-Peer"},
                "peer": {"type": "apiKey", "in": "header", "name": "X-Peer",
                         "description": "cmd (the CLI, an operator) or peer (a node)"},
                "metricsBasic": {"type": "http", "scheme": "basic",
                                 "description": "MetricsAuth: basic"},
            },
        },
    }


def installed_version() -> str:
    """The installed package's version (the fallback: running from a source tree)."""
    try:
        return version("scheduler0")
    except PackageNotFoundError:
        return "0.1.0"


@lru_cache(maxsize=1)
def document_bytes() -> bytes:
    """The document as served: built once, it never changes while the node runs."""
    return encode_json(build_document(installed_version())).encode()
