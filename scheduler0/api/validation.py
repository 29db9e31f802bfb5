"""
Turning request bodies into validated column values, with messages that say what to fix.

Field names are camelCase; the snake_case spellings the seed's Node client sends
(C{project_id}, C{callback_url}, ...) are accepted too. Fields the server owns (C{id},
C{dateCreated}, ...) are ignored on input so a client may send back what it read.

Every field has a documented maximum (README, "Limits") checked before any work is done on
it, and messages never echo an overlong value back. Integers are bounded so that nothing
past validation can overflow sqlite's 64-bit INTEGER.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from ..execution.callback_client import UnsupportedURL, request_host
from ..schedule.spec import SpecError, first_fire_or_error, load_zone, parse_spec
from ..timestamps import format_time, parse_time
from .errors import BadRequest

MAX_JOBS_PER_REQUEST = 10_000
MAX_PAGE = 10_000
#: The largest id (and offset) sqlite's INTEGER holds.
MAX_ID = 2**63 - 1
MAX_SPEC_CHARS = 1024
MAX_URL_CHARS = 2048
MAX_TIMEZONE_CHARS = 64
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 4096
MAX_DATA_BYTES = 64 * 1024
#: A century, like the longest @every: far below any overflow, far above any real need.
MAX_GRACE_SECONDS = 36500 * 86400
#: Parsing a cron spec costs up to a few microseconds per character, so the distinct cron
#: specs of one request are bounded in total (10,000 distinct typical specs are ~150,000
#: characters); @every and @at specs cost next to nothing and are not counted.
MAX_CRON_CHARS_PER_REQUEST = 256 * 1024
#: Values longer than this are described, not quoted, in error messages.
_ECHO_CHARS = 64
MISFIRE_POLICIES = ("skip", "fire_once", "fire_all")
EXECUTION_TYPES = ("http",)
SCOPES = ("read", "write", "execute", "admin")
DEFAULT_SCOPES = ("read", "write", "execute")
#: Most projects one credential can be limited to.
MAX_CREDENTIAL_PROJECTS = 1000

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
_CREDENTIAL_NAMES = _aliases({"scopes": "scopes", "archived": "archived",
                              "projectIds": "projectIds"},
                             frozenset({"id", "dateCreated", "dateModified", "apiKey",
                                        "apiSecret"}))


def _echo(value: Any) -> str:
    """A value for an error message: quoted when short, described when not."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _ECHO_CHARS else f"a {len(value)}-character string"
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -10**18 < value < 10**18 else "a very large integer"
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _bounded_text(value: Any, name: str, limit: int, where: str) -> None:
    """A string field's maximum length, checked before anything else looks at it."""
    if isinstance(value, str) and len(value) > limit:
        raise BadRequest(f"{where}{name}: at most {limit} characters (got {len(value)})")


def _normalise(raw: Any, names: Mapping[str, str | None], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}must be a JSON object")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            allowed = ", ".join(sorted(k for k, v in names.items() if v == k))
            shown = key if len(key) <= _ECHO_CHARS else f"a {len(key)}-character name"
            raise BadRequest(f"{where}{shown}: unknown field; the fields are {allowed}")
        camel = names[key]
        if camel is not None:
            fields[camel] = value
    return fields


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_ID


@lru_cache(maxsize=4096)
def _check_url(url: str) -> str | None:
    """None if C{url} (at most MAX_URL_CHARS long) is an absolute http(s) URL that the
    callback client can send (C{request_uri}), else what is wrong with it (the message
    after C{callbackUrl: }). User info is refused without echoing the URL: it holds a
    password."""
    if any(c.isspace() for c in url):
        return f"{url!r} must not contain spaces"
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError as e:
        return f"{url!r} is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (f"{url!r} must be an absolute http:// or https:// URL, e.g. "
                "http://127.0.0.1:3000/callback")
    if "@" in parts.netloc:
        return ("user:password@ in the URL is not supported; remove it (a receiver knows a "
                "callback is genuine by its X-Scheduler0-Signature header)")
    try:
        request_host(parts.hostname)  # what request_uri would refuse, the path never is
    except UnsupportedURL as e:
        return f"{url!r} cannot be delivered: {e}"
    return None


def _time_field(fields: Mapping[str, Any], name: str, where: str) -> datetime | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value)  # bounded: at most MAX_TIME_CHARS, years 1-9999 in UTC
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
    if (isinstance(project_id, str) and project_id.isascii() and project_id.isdigit()
            and len(project_id) <= 19):
        project_id = int(project_id)
    if not _is_id(project_id):
        raise BadRequest(f"{where}projectId: required, the integer id of an existing project "
                         f"(1 to {MAX_ID})")

    spec_text = fields.get("spec")
    _bounded_text(spec_text, "spec", MAX_SPEC_CHARS, where)
    if not isinstance(spec_text, str) or not spec_text.strip():
        raise BadRequest(f"{where}spec: required, e.g. \"*/5 * * * *\" or \"@every 1m\"")
    try:
        schedule = parse_spec(spec_text)
    except SpecError as e:
        raise BadRequest(f"{where}spec: {e}") from None

    url = fields.get("callbackUrl")
    _bounded_text(url, "callbackUrl", MAX_URL_CHARS, where)
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}callbackUrl: required, an absolute http(s) URL")
    problem = _check_url(url)
    if problem:
        raise BadRequest(f"{where}callbackUrl: {problem}")
    refused = url_policy(url) if url_policy is not None else None
    if refused:
        raise BadRequest(f"{where}{refused}")

    data = fields.get("data")
    if data is not None and not isinstance(data, str):
        raise BadRequest(f"{where}data: must be a string (encode structured data, e.g. with "
                         "JSON.stringify)")
    # a character is at most 4 bytes in UTF-8: only long strings need encoding to measure
    if data is not None and len(data) > MAX_DATA_BYTES // 4:
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_DATA_BYTES:
            raise BadRequest(f"{where}data: at most {MAX_DATA_BYTES} bytes in UTF-8 "
                             f"(got {size})")

    execution_type = fields.get("executionType") or "http"
    if execution_type not in EXECUTION_TYPES:
        raise BadRequest(f"{where}executionType: {_echo(execution_type)} is not supported; "
                         f"use one of {', '.join(EXECUTION_TYPES)}")

    zone_name = fields.get("timezone") or "UTC"
    _bounded_text(zone_name, "timezone", MAX_TIMEZONE_CHARS, where)
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
        raise BadRequest(f"{where}misfirePolicy: {_echo(policy)} is not one of "
                         f"{', '.join(MISFIRE_POLICIES)}")
    grace = fields.get("misfireGraceSeconds")
    if grace is None:
        grace = default_grace
    if not _is_int(grace) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise BadRequest(f"{where}misfireGraceSeconds: must be a whole number of seconds from "
                         f"0 to {MAX_GRACE_SECONDS}")

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
        _check_cron_budget(body)
        checked: set[tuple] = set()
        return [validate_job(raw, now=now, default_grace=default_grace, index=i,
                             checked=checked, url_policy=url_policy)
                for i, raw in enumerate(body)], True
    return [validate_job(body, now=now, default_grace=default_grace,
                         url_policy=url_policy)], False


def _check_cron_budget(body: list) -> None:
    """Refuse a batch whose distinct cron specs would take long to parse (before parsing)."""
    distinct: set[str] = set()
    total = 0
    for raw in body:
        spec = _spec_of(raw)
        if (isinstance(spec, str) and len(spec) <= MAX_SPEC_CHARS
                and not spec.lstrip().startswith("@") and spec not in distinct):
            distinct.add(spec)
            total += len(spec)
    if total > MAX_CRON_CHARS_PER_REQUEST:
        raise BadRequest(f"the distinct cron specs of this batch total {total} characters; "
                         f"the limit per request is {MAX_CRON_CHARS_PER_REQUEST}, split the "
                         "batch")


def _spec_of(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return None
    return raw.get("spec")


def validate_project(raw: Any, existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    fields = _normalise(raw, _PROJECT_NAMES, "")
    if existing is None and "name" not in fields:
        raise BadRequest("name: required, a non-empty string")
    out: dict[str, Any] = {}
    if "name" in fields:
        name = fields["name"]
        _bounded_text(name, "name", MAX_NAME_CHARS, "")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: must be a non-empty string")
        out["name"] = name
    if "description" in fields or existing is None:
        description = fields.get("description")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise BadRequest("description: must be a string")
        _bounded_text(description, "description", MAX_DESCRIPTION_CHARS, "")
        out["description"] = description
    return out


def validate_credential(raw: Any, *, creating: bool,
                        existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """
    Columns of a new credential, or the changes to C{existing}. C{project_ids} is a sorted
    list of ids, or None for a node-wide credential. A credential limited to projects
    cannot have C{admin}: what only admin may do is node-wide.
    """
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
    if "projectIds" in fields:
        out["project_ids"] = _project_ids(fields["projectIds"])
    scopes = out.get("scopes", ",".join(existing["scopes"]) if existing else "")
    projects = out.get("project_ids", existing["projectIds"] if existing else None)
    if projects is not None and "admin" in scopes.split(","):
        raise BadRequest("scopes: admin is node-wide (it manages credentials, monitoring and "
                         "the supervisor), so a credential limited to projects (projectIds) "
                         "can have read, write and execute only")
    return out


def _project_ids(value: Any) -> list[int] | None:
    """C{projectIds}: null (node-wide) or a non-empty list of project ids."""
    if value is None:
        return None
    if (not isinstance(value, list) or not value or len(value) > MAX_CREDENTIAL_PROJECTS
            or not all(_is_id(i) for i in value)):
        got = (f" (got {len(value)})" if isinstance(value, list)
               and len(value) > MAX_CREDENTIAL_PROJECTS else "")
        raise BadRequest(f"projectIds: must be a non-empty list of at most "
                         f"{MAX_CREDENTIAL_PROJECTS} project ids (whole numbers from 1 to "
                         f"{MAX_ID}){got}, or null for a node-wide credential")
    return sorted(set(value))


def page(args: Mapping[bytes, list[bytes]]) -> tuple[int, int]:
    """C{limit} (default 50) and C{offset} (default 0) from a query string."""
    return (_int_arg(args, "limit", 50, 1, MAX_PAGE), _int_arg(args, "offset", 0, 0, MAX_ID))


_INTEGER = re.compile(rb"-?[0-9]{1,20}")


def _int_arg(args: Mapping[bytes, list[bytes]], name: str, default: int, low: int,
             high: int) -> int:
    """An integer query argument in C{[low, high]}: ASCII digits only (C{int()} would take
    full-width digits, underscores and spaces)."""
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return default
    raw = values[0]
    if _INTEGER.fullmatch(raw) is None:
        shown = (repr(raw.decode("utf-8", "replace")) if len(raw) <= _ECHO_CHARS
                 else f"a {len(raw)}-byte value")
        raise BadRequest(f"{name}: {shown} is not an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {_echo(value)} is out of range; use an integer from {low} "
                         f"to {high}")
    return value


def optional_int_arg(args: Mapping[bytes, list[bytes]], name: str) -> int | None:
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return None
    return _int_arg(args, name, 0, 1, MAX_ID)


EXECUTION_STATES = ("scheduled", "dispatched", "succeeded", "failed", "retrying", "dead")
MAX_ROTATION_GRACE = 30 * 86400


def execution_filters(args: Mapping[bytes, list[bytes]]) -> dict[str, Any]:
    """C{projectId}, C{state}, C{from} and C{to} (RFC 3339, on the scheduled time)."""
    filters: dict[str, Any] = {"project_id": optional_int_arg(args, "projectId")}
    state = _text_arg(args, "state")
    if state is not None and state not in EXECUTION_STATES:
        raise BadRequest(f"state: {_echo(state)} is not one of {', '.join(EXECUTION_STATES)}")
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
