"""
An occurrence: one scheduled run of one job, the unit the executor delivers.

Its execution id is derived from the job id and the scheduled instant only, so it is the
same across retries, restarts and leader changes, and receivers can deduplicate on it.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone

import attrs

from ..domain import Job
from ..timestamps import format_time

UTC = timezone.utc


@functools.lru_cache(maxsize=4096)
def _compact(scheduled: float) -> str:
    moment = datetime.fromtimestamp(scheduled, UTC)
    text = moment.strftime("%Y%m%dT%H%M%S")
    millis = int(round((scheduled - int(scheduled)) * 1000)) % 1000
    return f"{text}{f'.{millis:03d}' if millis else ''}Z"


@functools.lru_cache(maxsize=4096)
def scheduled_text(scheduled: float) -> str:
    """The RFC 3339 form of a scheduled instant. Occurrences due together share it, so it is
    formatted once per instant, not once per occurrence."""
    return format_time(datetime.fromtimestamp(scheduled, UTC))


def execution_id(job_id: int, scheduled: float) -> str:
    """C{"<job id>-<scheduled UTC time, compact ISO>"}, e.g. C{"7-20261126T160500Z"};
    milliseconds are added only when the instant is not a whole second (a run-now)."""
    return f"{job_id}-{_compact(scheduled)}"


@functools.lru_cache(maxsize=65_536)
def target_of(url: str) -> str:
    """The callback target a URL belongs to: C{scheme://host:port}, the unit of isolation."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


@functools.lru_cache(maxsize=65_536)
def endpoint_of(url: str) -> str:
    """
    The callback endpoint a URL belongs to, the unit of breaker isolation:
    C{scheme://host:port/path?query}, with the port explicit, the path C{/} when empty,
    and without user info or fragment (never sent, and never shown). Two URLs of one
    endpoint reach the same resource of the same receiver; a host's other endpoints
    fail or succeed on their own.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{target_of(url)}{parts.path or '/'}{query}"


def host_of(key: str) -> str:
    """The target (C{scheme://host:port}) of an endpoint (L{endpoint_of}) or of a target
    (returned as it is): a cheap cut, for keys these functions made."""
    slash = key.find("/", key.find("://") + 3)
    return key if slash < 0 else key[:slash]


@attrs.frozen(slots=True)
class Occurrence:
    """
    @ivar payload: the job's JSON object without its closing brace (see L{job_payload});
        the delivery appends the per-occurrence fields.
    """

    execution_id: str
    job_id: int
    project_id: int
    scheduled: float
    callback_url: str
    target: str
    payload: bytes
    attempt: int = 1

    def next_attempt(self) -> "Occurrence":
        return attrs.evolve(self, attempt=self.attempt + 1)

    def body_item(self) -> bytes:
        """This occurrence's element of the callback body."""
        return self.payload + (
            ',"executionId":"%s","scheduledTime":"%s","attempt":%d}'
            % (self.execution_id, scheduled_text(self.scheduled), self.attempt)
        ).encode()


_encode = json.JSONEncoder(separators=(",", ":")).encode


def job_payload(job: Job) -> bytes:
    """The fixed part of a job's callback element: its public fields (camelCase, the
    callbacks' shape), open-ended."""
    fields = job.fields
    return _encode({
        "id": job.id, "projectId": fields.project_id, "spec": fields.spec,
        "callbackUrl": fields.callback_url, "data": fields.data,
        "executionType": fields.execution_type, "timezone": fields.timezone,
        "startDate": fields.start_date, "endDate": fields.end_date,
        "dateCreated": job.date_created,
    })[:-1].encode()
