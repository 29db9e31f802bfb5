"""
Turning request bodies into validated column values, with messages that say what to fix.

Field names are camelCase; the snake_case spellings the seed's Node client sends
(C{project_id}, C{callback_url}, ...) are accepted too. Fields the server owns (C{id},
C{dateCreated}, ...) are ignored on input so a client may send back what it read.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from ..schedule.spec import SpecError, first_fire_or_error, load_zone, parse_spec
from ..timestamps import format_time, parse_time
from .errors import BadRequest

MAX_JOBS_PER_REQUEST = 10_000
MAX_PAGE = 10_000
MISFIRE_POLICIES = ("skip", "fire_once", "fire_all")
EXECUTION_TYPES = ("http",)
SCOPES = ("read", "write", "execute", "admin")
DEFAULT_SCOPES = ("read", "write", "execute")

_JOB_FIELDS = {
    "projectId": "project_id",
    "spec": "spec",
    "callbackUrl": "callback_url",
    "data": "data",
    "executionType": "execution_type",
    "timezone": "timezone",
    "startDate": "start_date",
    "endDate": "end_date",
    "paused": "paused",
    "misfirePolicy": "misfire_policy",
    "misfireGraceSeconds": "misfire_grace_seconds",
}
_SERVER_OWNED = frozenset({"id", "dateCreated", "dateModified", "nextRunAt", "lastExecutionDate",
                           "executionId", "timezoneOffset"})


def _aliases(fields: Mapping[str, str], server_owned: frozenset[str]) -> dict[str, str | None]:
    """Every accepted spelling -> camelCase name (None for server-owned fields)."""
    names: dict[str, str | None] = {}
    for camel in list(fields) + list(server_owned):
        value = camel if camel in fields else None
        names[camel] = value
        names[_snake(camel)] = value
    return names


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


_JOB_NAMES = _aliases(_JOB_FIELDS, _SERVER_OWNED)
_PROJECT_NAMES = _aliases({"name": "name", "description": "description"},
                          frozenset({"id", "dateCreated", "dateModified"}))
_CREDENTIAL_NAMES = _aliases({"scopes": "scopes", "archived": "archived"},
                             frozenset({"id", "dateCreated", "dateModified", "apiKey",
                                        "apiSecret"}))


def _normalise(raw: Any, names: Mapping[str, str | None], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}must be a JSON object")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            allowed = ", ".join(sorted(k for k, v in names.items() if v == k))
            raise BadRequest(f"{where}{key}: unknown field; the fields are {allowed}")
        camel = names[key]
        if camel is not None:
            fields[camel] = value
    return fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@lru_cache(maxsize=4096)
def _check_url(url: str) -> str | None:
    """None if C{url} is an absolute http(s) URL, else what is wrong with it."""
    if len(url) > 2048:
        return "must be at most 2048 characters"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:3000/callback"
    return None


def _time_field(fields: Mapping[str, Any], name: str, where: str) -> datetime | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise BadRequest(f"{where}{name}: {e}") from None


def validate_job(raw: Any, *, now: datetime, default_grace: int, index: int | None = None,
                 existing: Mapping[str, Any] | None = None,
                 checked: set[tuple] | None = None,
                 url_policy: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """
    Validate one job object and return its column values (without C{id}).

    @param existing: the stored job (API record) when updating: absent fields keep its values.
    @raise BadRequest: naming the element index (in a batch) and the field.
    """
    where = f"jobs[{index}]." if index is not None else ""
    given = _normalise(raw, _JOB_NAMES, where)
    fields = {camel: existing[camel] for camel in _JOB_FIELDS} if existing else {}
    fields.update(given)

    project_id = fields.get("projectId")
    if isinstance(project_id, str) and project_id.isdigit():
        project_id = int(project_id)
    if not _is_int(project_id) or project_id < 1:
        raise BadRequest(f"{where}projectId: required, the integer id of an existing project")

    spec_text = fields.get("spec")
    if not isinstance(spec_text, str) or not spec_text.strip():
        raise BadRequest(f"{where}spec: required, e.g. \"*/5 * * * *\" or \"@every 1m\"")
    try:
        schedule = parse_spec(spec_text)
    except SpecError as e:
        raise BadRequest(f"{where}spec: {e}") from None

    url = fields.get("callbackUrl")
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}callbackUrl: required, an absolute http(s) URL")
    problem = _check_url(url)
    if problem:
        raise BadRequest(f"{where}callbackUrl: {url!r} {problem}")
    refused = url_policy(url) if url_policy is not None else None
    if refused:
        raise BadRequest(f"{where}{refused}")

    data = fields.get("data")
    if data is not None and not isinstance(data, str):
        raise BadRequest(f"{where}data: must be a string (encode structured data, e.g. with "
                         "JSON.stringify)")

    execution_type = fields.get("executionType") or "http"
    if execution_type not in EXECUTION_TYPES:
        raise BadRequest(f"{where}executionType: {execution_type!r} is not supported; "
                         f"use one of {', '.join(EXECUTION_TYPES)}")

    zone_name = fields.get("timezone") or "UTC"
    if not isinstance(zone_name, str):
        raise BadRequest(f"{where}timezone: must be an IANA zone name such as Europe/London")
    try:
        zone = load_zone(zone_name)
    except ValueError as e:
        raise BadRequest(f"{where}timezone: {e}") from None

    start = _time_field(fields, "startDate", where)
    end = _time_field(fields, "endDate", where)
    if start and end and end <= start:
        raise BadRequest(f"{where}endDate: must be later than startDate")

    paused = fields.get("paused", False)
    if paused is None:
        paused = False
    if not isinstance(paused, bool):
        raise BadRequest(f"{where}paused: must be true or false")

    policy = fields.get("misfirePolicy") or "fire_once"
    if policy not in MISFIRE_POLICIES:
        raise BadRequest(f"{where}misfirePolicy: {policy!r} is not one of "
                         f"{', '.join(MISFIRE_POLICIES)}")
    grace = fields.get("misfireGraceSeconds")
    if grace is None:
        grace = default_grace
    if not _is_int(grace) or grace < 0:
        raise BadRequest(f"{where}misfireGraceSeconds: must be a whole number of seconds >= 0")

    anchor = parse_time(existing["dateCreated"]) if existing else now
    # jobs of one batch share their anchor (now): a (spec, zone, start, end) that can fire
    # for one of them can fire for all, so it is checked once per batch
    key = (schedule.text, zone_name, start, end)
    if checked is None or key not in checked:
        try:
            first_fire_or_error(schedule, zone, now, anchor, start, end)
        except SpecError as e:
            raise BadRequest(f"{where}spec: {e}") from None
        if checked is not None:
            checked.add(key)

    return {
        "project_id": project_id,
        "spec": spec_text,
        "callback_url": url,
        "data": data,
        "execution_type": execution_type,
        "timezone": zone_name,
        "start_date": format_time(start) if start else None,
        "end_date": format_time(end) if end else None,
        "paused": int(paused),
        "misfire_policy": policy,
        "misfire_grace_seconds": grace,
    }


def validate_jobs(body: Any, *, now: datetime, default_grace: int,
                  url_policy: Callable[[str], str | None] | None = None
                  ) -> tuple[list[dict], bool]:
    """
    A job object or an array of them. The whole batch is checked before anything is
    stored. Returns the column values and whether the input was an array.
    """
    if isinstance(body, list):
        if not body:
            raise BadRequest("the array of jobs is empty; send at least one job")
        if len(body) > MAX_JOBS_PER_REQUEST:
            raise BadRequest(f"{len(body)} jobs in one request; the limit is "
                             f"{MAX_JOBS_PER_REQUEST}, split the batch")
        checked: set[tuple] = set()
        return [validate_job(raw, now=now, default_grace=default_grace, index=i,
                             checked=checked, url_policy=url_policy)
                for i, raw in enumerate(body)], True
    return [validate_job(body, now=now, default_grace=default_grace,
                         url_policy=url_policy)], False


def validate_project(raw: Any, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    fields = _normalise(raw, _PROJECT_NAMES, "")
    if existing is None and "name" not in fields:
        raise BadRequest("name: required, a non-empty string")
    out: dict[str, Any] = {}
    if "name" in fields:
        name = fields["name"]
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: must be a non-empty string")
        if len(name) > 200:
            raise BadRequest("name: must be at most 200 characters")
        out["name"] = name
    if "description" in fields or existing is None:
        description = fields.get("description")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise BadRequest("description: must be a string")
        out["description"] = description
    return out


def validate_credential(raw: Any, *, creating: bool) -> dict[str, Any]:
    fields = _normalise({} if raw is None else raw, _CREDENTIAL_NAMES, "")
    out: dict[str, Any] = {}
    if "scopes" in fields or creating:
        scopes = fields.get("scopes")
        if scopes is None:
            scopes = list(DEFAULT_SCOPES)
        if isinstance(scopes, str):
            scopes = [s.strip() for s in scopes.split(",") if s.strip()]
        if (not isinstance(scopes, list) or not scopes
                or not all(isinstance(s, str) and s in SCOPES for s in scopes)):
            raise BadRequest(f"scopes: must be a non-empty list drawn from {', '.join(SCOPES)}")
        out["scopes"] = ",".join(s for s in SCOPES if s in scopes)
    if "archived" in fields:
        if not isinstance(fields["archived"], bool):
            raise BadRequest("archived: must be true or false")
        out["archived"] = int(fields["archived"])
    return out


def page(args: Mapping[bytes, list[bytes]]) -> tuple[int, int]:
    """C{limit} (default 50) and C{offset} (default 0) from a query string."""
    return (_int_arg(args, "limit", 50, 1, MAX_PAGE), _int_arg(args, "offset", 0, 0, None))


def _int_arg(args: Mapping[bytes, list[bytes]], name: str, default: int, low: int,
             high: int | None) -> int:
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return default
    text = values[0].decode("utf-8", "replace")
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name}: {value} is out of range; use an integer {bound}")
    return value


def optional_int_arg(args: Mapping[bytes, list[bytes]], name: str) -> int | None:
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return None
    return _int_arg(args, name, 0, 1, None)


EXECUTION_STATES = ("scheduled", "dispatched", "succeeded", "failed", "retrying", "dead")
MAX_ROTATION_GRACE = 30 * 86400


def execution_filters(args: Mapping[bytes, list[bytes]]) -> dict[str, Any]:
    """C{projectId}, C{state}, C{from} and C{to} (RFC 3339, on the scheduled time)."""
    filters: dict[str, Any] = {"project_id": optional_int_arg(args, "projectId")}
    state = _text_arg(args, "state")
    if state is not None and state not in EXECUTION_STATES:
        raise BadRequest(f"state: {state!r} is not one of {', '.join(EXECUTION_STATES)}")
    filters["state"] = state
    for name, key in (("from", "since"), ("to", "until")):
        text = _text_arg(args, name)
        if text is None:
            filters[key] = None
            continue
        try:
            filters[key] = format_time(parse_time(text))
        except ValueError as e:
            raise BadRequest(f"{name}: {e}") from None
    return filters


def _text_arg(args: Mapping[bytes, list[bytes]], name: str) -> str | None:
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return None
    return values[0].decode("utf-8", "replace")


def validate_rotation(raw: Any) -> int:
    """Seconds the previous signing secret stays valid (C{graceSeconds}, default a day)."""
    fields = _normalise({} if raw is None else raw, _aliases({"graceSeconds": "graceSeconds"},
                                                             frozenset()), "")
    grace = fields.get("graceSeconds", 86400)
    if not _is_int(grace) or not 0 <= grace <= MAX_ROTATION_GRACE:
        raise BadRequest(f"graceSeconds: must be a whole number from 0 to {MAX_ROTATION_GRACE}")
    return grace
