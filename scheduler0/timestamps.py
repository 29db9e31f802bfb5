"""
One wire format for instants: RFC 3339 in UTC with millisecond precision and a ``Z``.

Every timestamp that enters the replicated state travels as such a string, so that
applying a command gives byte-identical rows on every node.
"""

from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc


def from_seconds(seconds: float) -> datetime:
    """An aware UTC datetime for a POSIX timestamp (what ``IReactorTime.seconds`` returns)."""
    return datetime.fromtimestamp(seconds, UTC)


def format_time(moment: datetime) -> str:
    """Render an aware datetime as ``2026-11-26T16:00:00.123Z``."""
    if moment.tzinfo is None:
        raise ValueError("refusing to format a naive datetime")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


#: Longest text read as a time: RFC 3339 with nanoseconds and an offset is 35 characters.
MAX_TIME_CHARS = 64


def parse_time(text: str) -> datetime:
    """
    Parse an RFC 3339 instant. An offset (or ``Z``) is required: a naive time would be
    read differently by every node's local zone. The instant must fall within years
    1-9999 once converted to UTC (what a datetime can hold).

    @raise ValueError: with a message fit for an API user (never echoing an overlong value).
    """
    if not isinstance(text, str):
        raise ValueError("expected an RFC 3339 time string such as 2027-01-01T09:00:00Z")
    if len(text) > MAX_TIME_CHARS:
        raise ValueError(f"at most {MAX_TIME_CHARS} characters (got {len(text)}); expected an "
                         "RFC 3339 time such as 2027-01-01T09:00:00Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an RFC 3339 time; expected e.g. 2027-01-01T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or an offset such as +02:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside years 1-9999 once converted to UTC") from None
