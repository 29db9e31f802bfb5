"""What every schedule module shares: the Schedule protocol, the errors users see, time limits.

Kept apart from :mod:`.spec` so that the cron, interval and fire-time modules can use these
without importing the parser that imports them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

UTC = timezone.utc
_ONE_SECOND = timedelta(seconds=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The last whole second a datetime can hold; no schedule fires after it.
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

EXAMPLES = (
    "valid examples: '*/5 * * * *' (every 5 minutes), '0 9 * * mon-fri' (09:00 on weekdays), "
    "'30 0 9 * * *' (6 fields, seconds first: 09:00:30 daily), '@daily', '@every 1h30m', "
    "'@at 2027-01-01T09:00:00Z'"
)


class SpecError(ValueError):
    """A schedule spec is malformed or can never fire; the message is meant for the API user."""


class ZoneError(ValueError):
    """A time zone name is not a usable IANA zone; the message is meant for the API user."""


def _spec_error(text: object, problem: str) -> SpecError:
    return SpecError(f"invalid schedule {text!r}: {problem}; {EXAMPLES}")


def _require_aware(value: datetime, name: str) -> datetime:
    """Naive datetimes are ambiguous across zones, so they are refused instead of guessed."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def _utc_from_naive(wall_utc: datetime) -> datetime:
    return wall_utc.replace(tzinfo=UTC, microsecond=0)


@runtime_checkable
class Schedule(Protocol):
    """What the scheduler needs from a parsed spec."""

    text: str

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime) -> datetime | None:
        """First fire instant strictly after `after` (aware UTC, microsecond 0) or None.

        `anchor` is the job's phase origin (creation time or last run); only @every uses it.
        """

    def interval_hint(self) -> float | None:
        """Typical seconds between fires (for staleness scores); None for one-shot specs."""
