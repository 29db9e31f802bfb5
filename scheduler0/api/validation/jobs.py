"""
Job bodies: the fields, the spec (and the cron parse budget of a batch), the callback URL
and the dates, checked before anything is stored, with messages that say what to fix.

Every field has a documented maximum (README, "Limits") checked before any work is done on
it, and messages never echo an overlong value back.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from ...domain import Job, JobFields
from ...execution.callback_client import UnsupportedURL, request_host
from ...schedule.spec import SpecError, first_fire_or_error, load_zone, parse_spec
from ...timestamps import format_time, parse_time
from ..errors import BadRequest
from ..shapes import JOB_JSON_NAMES
from .text import (MAX_CRON_CHARS_PER_REQUEST, MAX_DATA_BYTES, MAX_GRACE_SECONDS, MAX_ID,
                   MAX_JOBS_PER_REQUEST, MAX_SPEC_CHARS, MAX_TIMEZONE_CHARS, MAX_URL_CHARS,
                   _aliases, _bounded_text, _echo, _is_id, _is_int, _normalise)

MISFIRE_POLICIES = ("skip", "fire_once", "fire_all")
EXECUTION_TYPES = ("http",)

#: a job's fields by the names clients send them under
_JOB_FIELDS = {camel: name for name, camel in JOB_JSON_NAMES.items()}
_SERVER_OWNED = frozenset({"id", "dateCreated", "dateModified", "nextRunAt", "lastExecutionDate",
                           "executionId", "timezoneOffset"})

_JOB_NAMES = _aliases(_JOB_FIELDS, _SERVER_OWNED)


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


def _or_default(value: Any, default: str) -> Any:
    """C{default} for an absent (null) or empty field; anything else as it was sent, to
    be checked: C{{}}, C{[]}, C{0} and C{false} are mistakes, not a request for the
    default."""
    return default if value is None or value == "" else value


def _time_field(fields: Mapping[str, Any], name: str, where: str) -> datetime | None:
    """C{name} as a datetime (None when absent or empty), refused with the parse error."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value)  # bounded: at most MAX_TIME_CHARS, years 1-9999 in UTC
    except ValueError as e:
        raise BadRequest(f"{where}{name}: {e}") from None


def validate_job(raw: Any, *, now: datetime, default_grace: int, index: int | None = None,
                 existing: Job | None = None,
                 checked: set[tuple] | None = None,
                 url_policy: Callable[[str], str | None] | None = None) -> JobFields:
    """
    Validate one job object and return its fields.

    @param existing: the stored job when updating: absent fields keep its values.
    @raise BadRequest: naming the element index (in a batch) and the field.
    """
    where = f"jobs[{index}]." if index is not None else ""
    given = _normalise(raw, _JOB_NAMES, where)
    fields = ({camel: getattr(existing.fields, name) for camel, name in _JOB_FIELDS.items()}
              if existing else {})
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

    execution_type = _or_default(fields.get("executionType"), "http")
    if execution_type not in EXECUTION_TYPES:
        raise BadRequest(f"{where}executionType: {_echo(execution_type)} is not supported; "
                         f"use one of {', '.join(EXECUTION_TYPES)}")

    zone_name = _or_default(fields.get("timezone"), "UTC")
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

    policy = _or_default(fields.get("misfirePolicy"), "fire_once")
    if policy not in MISFIRE_POLICIES:
        raise BadRequest(f"{where}misfirePolicy: {_echo(policy)} is not one of "
                         f"{', '.join(MISFIRE_POLICIES)}")
    grace = fields.get("misfireGraceSeconds")
    if grace is None:
        grace = default_grace
    if not _is_int(grace) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise BadRequest(f"{where}misfireGraceSeconds: must be a whole number of seconds from "
                         f"0 to {MAX_GRACE_SECONDS}")

    anchor = parse_time(existing.date_created) if existing and existing.date_created else now
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

    return JobFields(
        project_id=project_id,
        spec=spec_text,
        callback_url=url,
        data=data,
        execution_type=execution_type,
        timezone=zone_name,
        start_date=format_time(start) if start else None,
        end_date=format_time(end) if end else None,
        paused=paused,
        misfire_policy=policy,
        misfire_grace_seconds=grace,
    )


def validate_jobs(body: Any, *, now: datetime, default_grace: int,
                  url_policy: Callable[[str], str | None] | None = None
                  ) -> tuple[list[JobFields], bool]:
    """
    A job object or an array of them. The whole batch is checked before anything is
    stored. Returns their fields and whether the input was an array.
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
    """The spec of a batch element that is an object (None otherwise), for the budget."""
    if not isinstance(raw, dict):
        return None
    return raw.get("spec")

