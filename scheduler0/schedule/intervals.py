"""``@every <duration>`` and ``@at <time>`` specs: parsing and next fire (see :mod:`.spec`).

An ``@at`` time is read by :func:`scheduler0.timestamps.parse_time`, with a spec's stricter
shape checked first (explicit seconds and an offset: ``fromisoformat`` alone would take a
bare date or ``09:00Z``) and a whole second after; its errors carry the spec examples.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import attrs

from ..timestamps import parse_time
from .base import _ONE_MICROSECOND, UTC, _require_aware, _spec_error

#: Longest every-duration accepted; keeps anchor arithmetic far from datetime's limits.
_MAX_EVERY_SECONDS = 36500 * 86400


@attrs.frozen
class EverySchedule:
    """``@every <duration>``: anchor + k*interval in absolute time."""

    text: str
    seconds: int

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime) -> datetime | None:
        _require_aware(after, "after")
        base = _require_aware(anchor, "anchor").astimezone(UTC).replace(microsecond=0)
        step_us = self.seconds * 1_000_000
        elapsed_us = (after.astimezone(UTC) - base) // _ONE_MICROSECOND
        k = max(1, elapsed_us // step_us + 1)
        try:
            return base + timedelta(seconds=k * self.seconds)
        except OverflowError:
            return None

    def interval_hint(self) -> float | None:
        return float(self.seconds)


@attrs.frozen
class AtSchedule:
    """``@at <RFC 3339>``: a single instant."""

    text: str
    at: datetime

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime) -> datetime | None:
        return self.at if self.at > _require_aware(after, "after") else None

    def interval_hint(self) -> float | None:
        return None


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SUBSECOND_UNITS = {"ns", "us", "µs", "μs", "ms"}
_DURATION_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]*)")


def _format_seconds(total: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _parse_every(text: str, arg: str) -> EverySchedule:
    if not arg:
        raise _spec_error(text, "@every needs a duration such as 90s, 1h30m or 2d12h")
    if arg.startswith("-"):
        raise _spec_error(text, f"@every duration {arg!r} is negative; it must be at least 1s")
    pos = 0
    total = Decimal(0)
    for match in _DURATION_PART_RE.finditer(arg):
        if match.start() != pos:
            break
        number, unit = match.group(1), match.group(2)
        if not unit:
            raise _spec_error(
                text, f"@every number {number!r} has no unit; use s, m, h or d (e.g. 90s)"
            )
        if unit in _SUBSECOND_UNITS:
            raise _spec_error(
                text, f"@every unit {unit!r} is not supported; use whole seconds with s, m, h or d"
            )
        if unit not in _UNIT_SECONDS:
            raise _spec_error(
                text, f"@every unit {unit!r} is unknown; use s, m, h or d (e.g. 1h30m)"
            )
        try:
            total += Decimal(number) * _UNIT_SECONDS[unit]
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise _spec_error(text, f"bad number {number!r} in @every") from exc
        pos = match.end()
    if pos != len(arg) or pos == 0:
        raise _spec_error(
            text,
            f"cannot read @every duration {arg!r}; write numbers with units s, m, h, d and "
            "no spaces (90s, 1h30m, 1.5h, 2d12h)",
        )
    if total != total.to_integral_value():
        raise _spec_error(
            text, f"@every duration {arg!r} is {total} seconds; it must be a whole number of seconds"
        )
    seconds = int(total)
    if seconds < 1:
        raise _spec_error(text, f"@every duration {arg!r} is zero; it must be at least 1s")
    if seconds > _MAX_EVERY_SECONDS:
        raise _spec_error(text, f"@every duration {arg!r} is longer than the maximum 36500d")
    return EverySchedule(text=f"@every {_format_seconds(seconds)}", seconds=seconds)


#: the shape of an @at time: a date, a time with seconds, an optional fraction, an offset
_AT_SHAPE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


def _parse_at(text: str, arg: str) -> AtSchedule:
    example = "e.g. @at 2027-01-01T09:00:00Z or @at 2027-01-01T11:00:00+02:00"
    match = _AT_SHAPE.match(arg)
    if match is None:
        raise _spec_error(text, f"@at needs an RFC 3339 time with seconds and an offset, {example}")
    fraction, offset = match.groups()
    if offset is None:
        raise _spec_error(
            text, f"@at time {arg!r} has no UTC offset; an offset or Z is required, {example}"
        )
    if fraction is not None and int(fraction[1:]) != 0:
        raise _spec_error(text, f"@at time {arg!r} must be a whole second, {example}")
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        raise _spec_error(text, f"@at offset {offset!r} is out of range, {example}")
    try:
        at = parse_time(arg.upper())  # RFC 3339 allows t and z; fromisoformat does not
    except ValueError as exc:
        raise _spec_error(text, f"@at time {arg!r} is not a valid date/time ({exc})") from None
    return AtSchedule(text=f"@at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}", at=at)
