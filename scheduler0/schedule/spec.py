"""Job schedule specs: parsing and "when does this fire next" (PRODUCT.md section 5).

Accepted specs
--------------
* 5 fields, standard crontab: ``minute hour day-of-month month day-of-week``.
* 6 fields, **seconds first** (Quartz / the Go original):
  ``second minute hour day-of-month month day-of-week``.
  Per field: ``*`` (``?`` is accepted as an alias), numbers, ``a-b``, ``*/n``, ``a-b/n``,
  ``a/n`` (= ``a-max/n``), comma lists; month names ``jan..dec``, weekday names ``sun..sat``
  (``0`` and ``7`` are both Sunday). ``L``, ``W``, ``#``, ``H`` and ``R`` are refused: they
  are not standard and ``H``/``R`` would make fire times depend on hidden state.
* Day rule (Vixie cron / cronie): when the text of either day field (day-of-month or
  day-of-week) starts with ``*`` (``*``, ``*/2``, ``?``), a day must match **both**; only
  when both are restricted does a day matching **either** fire. ``0 0 */2 * 1`` runs on
  odd-dated Mondays, ``0 0 1 * 1`` on the 1st and on every Monday. Like cronie this reads
  the text, not the values: ``1-31`` is restricted, ``*/1`` is not.
* Descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` with their
  standard meaning (no hashing).
* ``@every <duration>``: Go duration syntax restricted to whole seconds, units ``s m h d``
  (``90s``, ``1h30m``, ``1.5h``, ``2d12h``); at least 1 s. Fires at ``anchor + k*duration``
  (``k >= 1``) in absolute time, independent of the zone, so the phase survives restarts.
* ``@at <RFC 3339 time with Z or offset>``: one shot.

Time zones and daylight saving (cron and descriptor specs)
----------------------------------------------------------
Fields are matched on the wall clock of the job's IANA zone. Wall-clock slots that the
spec names are turned into instants by cronie's rules, which tell two kinds of spec apart:

* the **hour field is a wildcard** when its text starts with ``*`` (``*``, ``*/2``, ``?``,
  ``@hourly``) or it lists all 24 hours (``0-23``): the job is periodic, a missed period is
  not made up and a repeated one runs again;
* otherwise the spec is **fixed-time** (``30 2 * * *``, ``*/15 2 * * *``, ``@daily``): each
  of its slots runs once a day, so none is lost and none is repeated.

* **Spring-forward gap** (shorter than 3 hours). A slot that does not exist (02:30 on the
  day New York jumps from 02:00 to 03:00) is **skipped** by a wildcard-hour spec
  (``30 * * * *`` runs at 01:30 EST and 03:30 EDT, one real hour apart) and fires at the
  first instant after the gap (03:00 EDT) for a fixed-time spec; several slots of one gap
  (``*/15 2 * * *``) collapse into that one instant, which fires once.
* **Long gap** (3 hours or more: not a DST change but a zone moving across the date line,
  Pacific/Apia skipped 2011-12-30). Its slots are skipped by every spec, as cronie skips
  them after a clock jump of 3 hours or more, so ``0 9 * * 1-5`` is not moved onto
  Saturday 2011-12-31 00:00: it next runs on Monday 2012-01-02 at 09:00.
* **Fall-back overlap.** A slot that exists twice fires **once, at its first occurrence**
  (fold=0: 01:30 EDT, not again at 01:30 EST) for a fixed-time spec. A wildcard-hour spec
  fires at every real instant whose wall time matches, in both halves of the overlap, so an
  hourly job keeps running every 60 real minutes (and ``0 */3 * * *`` runs twice at 03:00
  when 03:00 repeats).

Where this differs from cronie: cronie also counts a minute field starting with ``*`` as
periodic (``*/15 2 * * *`` would lose the gap's slots and repeat the overlap's), does not
count ``0-23`` (it reads only the text), and runs fixed-time jobs again after a clock jump
back of more than 3 hours (a zone moving back across the date line); here a fixed-time slot
fires once however long the overlap.

croniter is only ever given naive wall-clock datetimes (its own DST handling fires overlap
slots twice) and fields as plain value lists (it misreads some ranges and lists, see
``_croniter_field``); the day rule is decided here and passed as ``day_or``, and the
mapping from wall clock to instants is done here with zoneinfo. One croniter object is kept
per spec (it is zone independent) and searches are capped at ``MAX_YEARS_BETWEEN_MATCHES``
years so that an impossible spec (``0 0 30 2 *``) fails fast while a leap-day spec
(``0 0 29 2 *``, up to 8 years apart around 2100) or the 1st of a month on a weekday
(``0 0 */31 1 mon``, up to 12) still works.

All returned instants are aware UTC datetimes with ``microsecond == 0``. Searches never go
past the end of year 9999 (the last instant a datetime can hold): a schedule whose next fire
would be later has none (``None``), and at job creation that is a SpecError.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import attrs
from croniter import CroniterError, croniter

__all__ = [
    "EXAMPLES",
    "LAST_INSTANT",
    "LONG_GAP",
    "MAX_YEARS_BETWEEN_MATCHES",
    "AtSchedule",
    "CronSchedule",
    "EverySchedule",
    "FireTimeCache",
    "Schedule",
    "SpecError",
    "ZoneError",
    "first_fire_or_error",
    "load_zone",
    "next_fire",
    "parse_spec",
]

UTC = timezone.utc
_ONE_SECOND = timedelta(seconds=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The last whole second a datetime can hold; no schedule fires after it.
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

#: Longest legitimate gap between two fires: a day rule that needs both fields (the 1st of
#: a month on a given weekday) around 2100, 12 years (2091-01-01 -> 2103-01-01, Mondays);
#: Feb 29 around 2100 is 8 (2096 -> 2104).
MAX_YEARS_BETWEEN_MATCHES = 12

#: A spring-forward gap this long or longer is skipped by every spec (cronie's 3-hour
#: "the clock jumped" threshold); shorter ones are DST changes.
LONG_GAP = timedelta(hours=3)

#: Longest every-duration accepted; keeps anchor arithmetic far from datetime's limits.
_MAX_EVERY_SECONDS = 36500 * 86400

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


# --------------------------------------------------------------------------- cron fields


@attrs.frozen
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int]
    #: Upper end of ``*`` and ``a/n``: 6 for day-of-week, whose 7 is only an alias of 0.
    open_hi: int | None = None


_MONTH_NAMES = {
    n: i + 1
    for i, n in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DOW_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}

_SECOND = _Field("second", 0, 59, {})
_MINUTE = _Field("minute", 0, 59, {})
_HOUR = _Field("hour", 0, 23, {})
_DOM = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, _DOW_NAMES, open_hi=6)

_FIVE = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)
_SIX = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)

_ITEM_RE = re.compile(r"^(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[^/]*))?$")

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _field_value(text: str, token: str, field: _Field) -> int:
    if token.isdigit():
        value = int(token)
    elif token in field.names:
        value = field.names[token]
    elif token.isalpha() and field.names:
        raise _spec_error(
            text,
            f"unknown name {token!r} in the {field.name} field "
            f"(use {', '.join(field.names)} or numbers {field.lo}-{field.hi})",
        )
    else:
        raise _spec_error(
            text, f"{token!r} is not a number in the {field.name} field ({field.lo}-{field.hi})"
        )
    if not field.lo <= value <= field.hi:
        raise _spec_error(
            text, f"{field.name} value {value} is out of range {field.lo}-{field.hi}"
        )
    return value


def _parse_field(text: str, raw: str, field: _Field) -> frozenset[int]:
    """Validate one field; return the set of values it matches (day-of-week 7 kept as 7)."""
    values: set[int] = set()
    for item in raw.split(","):
        if item == "":
            raise _spec_error(text, f"empty list item in the {field.name} field {raw!r}")
        if item == "?":
            item = "*"
        match = _ITEM_RE.match(item)
        if match is None:
            raise _spec_error(
                text,
                f"cannot read {item!r} in the {field.name} field "
                "(use *, n, a-b, */n, a-b/n or a comma list of those)",
            )
        base, step_text = match["base"], match["step"]
        step = 1
        open_hi = field.hi if field.open_hi is None else field.open_hi
        if step_text is not None:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _spec_error(
                    text, f"step {step_text!r} in the {field.name} field must be a whole number >= 1"
                )
            step = int(step_text)
        if base == "*":
            lo, hi = field.lo, open_hi
        elif "-" in base:
            first, last = base.split("-", 1)
            lo, hi = _field_value(text, first, field), _field_value(text, last, field)
            if lo > hi:
                raise _spec_error(
                    text, f"range {base!r} in the {field.name} field runs backwards (start > end)"
                )
        else:
            lo = _field_value(text, base, field)
            hi = open_hi if step_text is not None else lo
        values.update(range(lo, hi + 1, step))
    return frozenset(values)


def _croniter_field(field: _Field, values: frozenset[int]) -> str:
    """The field as croniter gets it: ``*`` when it matches every value, else the values.

    croniter 7 misreads some ranges and lists (a one-value range such as ``3-3`` or
    ``59/5`` becomes ``*``; a ``*`` item inside a day-of-month list turns a full
    day-of-week into ``*``), so it is never given anything but plain numbers.
    """
    if field is _DOW:
        values = frozenset(v % 7 for v in values)  # 7 is Sunday
    top = field.hi if field.open_hi is None else field.open_hi
    if len(values) == top - field.lo + 1:
        return "*"
    return ",".join(str(v) for v in sorted(values))


# --------------------------------------------------------------------------- zone helpers


def _offset_at(zone: ZoneInfo, ts: int) -> timedelta:
    offset = datetime.fromtimestamp(ts, tz=zone).utcoffset()
    assert offset is not None
    return offset


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """First whole second in (lo, hi] whose UTC offset differs from lo's (binary search).

    zoneinfo has no public transition list; gaps and overlaps are at most a few hours wide,
    so this costs ~15 offset look-ups and only runs near a DST change.
    """
    lo_s = (lo - _EPOCH) // _ONE_SECOND
    hi_s = -((_EPOCH - hi) // _ONE_SECOND)  # ceil
    before = _offset_at(zone, lo_s)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _offset_at(zone, mid) == before:
            lo_s = mid
        else:
            hi_s = mid
    return _EPOCH + timedelta(seconds=hi_s)


# --------------------------------------------------------------------------- schedules


def _make_croniter(expr: str, seconds: bool, day_or: bool) -> croniter:
    return croniter(
        expr,
        datetime(2000, 1, 1),
        max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
        second_at_beginning=seconds,
        day_or=day_or,
    )


@attrs.frozen
class CronSchedule:
    """A crontab (5 fields, or 6 with seconds first) or descriptor spec."""

    text: str
    expr: str
    seconds: bool
    #: The hour field is a wildcard (module docstring): gap slots are skipped, overlap
    #: slots fire in both halves.
    wildcard_hour: bool
    #: Either day field may match (both are restricted); otherwise both must.
    day_or: bool
    _iter: croniter = attrs.field(eq=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, eq=False, repr=False)
    _memo: dict[str, float | None] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def build(
        cls, text: str, expr: str, seconds: bool, wildcard_hour: bool, day_or: bool
    ) -> CronSchedule:
        try:
            it = _make_croniter(expr, seconds, day_or)
        except CroniterError as exc:  # our own validation should make this unreachable
            raise _spec_error(text, str(exc)) from exc
        return cls(
            text=text, expr=expr, seconds=seconds, wildcard_hour=wildcard_hour, day_or=day_or,
            iter=it,
        )

    def _next_wall(self, wall: datetime) -> datetime | None:
        """Next naive wall-clock slot strictly after naive `wall`, None if none in range.

        A search that runs past year 9999 ends in OverflowError or ValueError ("year 10000
        is out of range") inside croniter/dateutil: there is no such slot.
        """
        with self._lock:
            try:
                result = self._iter.get_next(datetime, start_time=wall)
            except (CroniterError, OverflowError, ValueError):
                return None
        assert isinstance(result, datetime) and result.tzinfo is None
        return result

    def _instant(self, slot: datetime | None, zone: ZoneInfo) -> datetime | None:
        """The instant wall-clock `slot` fires at once (module docstring), or, when the
        slot lies in a gap this spec skips, the instant of the next slot that fires.

        Outside gaps this is one offset look-up per fold, as cheap as before the gap rules.
        """
        while slot is not None:
            off0 = slot.replace(tzinfo=zone).utcoffset()
            off1 = slot.replace(tzinfo=zone, fold=1).utcoffset()
            assert off0 is not None and off1 is not None
            if off0 >= off1:  # unambiguous, or an overlap: first occurrence
                return _utc_from_naive(slot - off0)
            # In a spring-forward gap fold=0 uses the offset before the change and fold=1
            # the one after, so the change lies in (slot - off1, slot - off0].
            change = _transition(zone, _utc_from_naive(slot - off1), _utc_from_naive(slot - off0))
            if not self.wildcard_hour and off1 - off0 < LONG_GAP:
                return change
            # Skipped: so are the gap's other slots. Go on from the first wall time after it.
            gap_end = change.replace(tzinfo=None) + off1
            slot = self._next_wall(gap_end - _ONE_SECOND)
        return None

    def next_after(self, after: datetime, zone: ZoneInfo, anchor: datetime) -> datetime | None:
        after_utc = _require_aware(after, "after").astimezone(UTC)
        try:
            return self._next_after(after_utc, zone)
        except (OverflowError, ValueError):
            # a wall clock or an offset conversion past year 9999 (or before year 1): the
            # schedule has no fire left that a datetime can hold
            return None

    def _next_after(self, after_utc: datetime, zone: ZoneInfo) -> datetime | None:
        local = after_utc.astimezone(zone)
        wall = local.replace(tzinfo=None, microsecond=0)
        off_here = local.utcoffset()
        assert off_here is not None

        if local.fold == 1:
            off0 = local.replace(fold=0).utcoffset()
            assert off0 is not None
            if off0 > off_here:
                # `after` is in the second half of a fall-back overlap. Overlap slots after
                # it fire again (second occurrence) only for wildcard-hour specs.
                change = _transition(zone, after_utc - (off0 - off_here), after_utc)
                overlap_end = change.replace(tzinfo=None) + off0
                if self.wildcard_hour:
                    slot = self._next_wall(wall)
                    if slot is not None and slot < overlap_end:
                        return _utc_from_naive(slot - off_here)
                    return self._instant(slot, zone)
                return self._instant(self._next_wall(overlap_end - _ONE_SECOND), zone)

        result = self._instant(self._next_wall(wall), zone)

        if self.wildcard_hour:
            off1 = local.replace(fold=1).utcoffset()
            assert off1 is not None
            if off1 < off_here:
                # `after` is in the first half of an overlap: the second occurrences of the
                # overlap's slots (all later than `after`) are candidates too.
                change = _transition(zone, after_utc, after_utc + (off_here - off1))
                overlap_start = change.replace(tzinfo=None) + off1
                overlap_end = change.replace(tzinfo=None) + off_here
                second = self._next_wall(overlap_start - _ONE_SECOND)
                if second is not None and second < overlap_end:
                    candidate = _utc_from_naive(second - off1)
                    if result is None or candidate < result:
                        result = candidate
        return result

    def interval_hint(self) -> float | None:
        """Mean gap over 16 fires from a fixed reference (cached; the spec is immutable)."""
        if "hint" not in self._memo:
            it = _make_croniter(self.expr, self.seconds, self.day_or)
            try:
                fires = [it.get_next(float) for _ in range(17)]
            except (CroniterError, OverflowError):
                self._memo["hint"] = None
            else:
                self._memo["hint"] = (fires[-1] - fires[0]) / 16
        return self._memo["hint"]


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


# --------------------------------------------------------------------------- parsing

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


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)


def _parse_at(text: str, arg: str) -> AtSchedule:
    example = "e.g. @at 2027-01-01T09:00:00Z or @at 2027-01-01T11:00:00+02:00"
    match = _RFC3339_RE.match(arg)
    if match is None:
        raise _spec_error(text, f"@at needs an RFC 3339 time with seconds and an offset, {example}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        raise _spec_error(
            text, f"@at time {arg!r} has no UTC offset; an offset or Z is required, {example}"
        )
    if fraction is not None and int(fraction[1:]) != 0:
        raise _spec_error(text, f"@at time {arg!r} must be a whole second, {example}")
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            raise _spec_error(text, f"@at offset {offset!r} is out of range, {example}")
        tz = timezone(sign * timedelta(hours=off_h, minutes=off_m))
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz
        )
        at = local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _spec_error(text, f"@at time {arg!r} is not a valid date/time ({exc})") from exc
    return AtSchedule(text=f"@at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}", at=at)


def _parse_cron(text: str, fields: list[str]) -> CronSchedule:
    if len(fields) == 5:
        layout = _FIVE
    elif len(fields) == 6:
        layout = _SIX
    else:
        raise _spec_error(
            text,
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields with "
            f"seconds first, got {len(fields)}",
        )
    values = [_parse_field(text, raw, field) for raw, field in zip(fields, layout)]
    exprs = [_croniter_field(field, v) for field, v in zip(layout, values)]
    dom, dow = layout.index(_DOM), layout.index(_DOW)
    hour = layout.index(_HOUR)
    # cronie reads the text: a day field starting with "*" (or "?") makes both required
    day_star = fields[dom].startswith(("*", "?")) or fields[dow].startswith(("*", "?"))
    day_or = not day_star and "*" not in (exprs[dom], exprs[dow])
    if not day_star and not day_or:  # "either" with a field matching every day: every day
        exprs[dom] = exprs[dow] = "*"
    normalised = " ".join("*" if raw == "?" else raw for raw in fields)
    return CronSchedule.build(
        text=normalised,
        expr=" ".join(exprs),
        seconds=len(fields) == 6,
        wildcard_hour=fields[hour].startswith(("*", "?")) or exprs[hour] == "*",
        day_or=day_or,
    )


@functools.lru_cache(maxsize=4096)
def parse_spec(text: str) -> Schedule:
    """Parse a spec (cached by text: schedules are immutable and shared); SpecError if bad."""
    if not isinstance(text, str):
        raise _spec_error(text, "a schedule must be a string")
    stripped = text.strip()
    if not stripped:
        raise _spec_error(text, "the schedule is empty")
    if stripped.startswith("@"):
        head, _, rest = stripped.partition(" ")
        head, rest = head.lower(), rest.strip()
        if head in _DESCRIPTORS:
            if rest:
                raise _spec_error(text, f"{head} takes no argument")
            expr = _DESCRIPTORS[head]
            return CronSchedule.build(
                text=head, expr=expr, seconds=False, wildcard_hour=head == "@hourly",
                day_or=False,  # every descriptor has a "*" day field
            )
        if head == "@every":
            return _parse_every(text, rest.lower())
        if head == "@at":
            return _parse_at(text, rest)
        raise _spec_error(
            text,
            f"unknown descriptor {head!r} (supported: {', '.join(_DESCRIPTORS)}, @every, @at)",
        )
    return _parse_cron(text, stripped.lower().split())


# --------------------------------------------------------------------------- zones


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


_NOT_IANA = {"", "local", "localtime", "posixrules"}


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ZoneError for anything else (host-dependent names included)."""
    if not isinstance(name, str) or name.strip().lower() in _NOT_IANA:
        raise ZoneError(
            f"time zone {name!r} is not an IANA zone name; use e.g. 'UTC' or 'Europe/London'"
        )
    if name not in _zone_names():
        hint = ""
        folded = [z for z in _zone_names() if z.lower() == name.lower()]
        if folded:
            hint = f" (did you mean {folded[0]!r}?)"
        raise ZoneError(
            f"unknown time zone {name!r}{hint}; use an IANA name such as 'UTC' or "
            "'America/New_York'"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ZoneError(f"time zone {name!r} cannot be loaded ({exc})") from exc


# --------------------------------------------------------------------------- next fire


def _effective_after(after: datetime, start: datetime | None) -> datetime:
    _require_aware(after, "after")
    if start is not None:
        try:
            just_before = _require_aware(start, "start") - _ONE_MICROSECOND
        except OverflowError:  # start is the first representable instant: after is later
            return after
        if just_before > after:
            return just_before
    return after


def next_fire(
    spec: Schedule,
    zone: ZoneInfo,
    after: datetime,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime | None:
    """First fire > after that is >= start and <= end (start/end inclusive), else None."""
    result = spec.next_after(_effective_after(after, start), zone, anchor)
    if result is None or (end is not None and result > _require_aware(end, "end")):
        return None
    return result


def first_fire_or_error(
    spec: Schedule,
    zone: ZoneInfo,
    now: datetime,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime:
    """next_fire at job creation, turning "never" into a SpecError that says why."""
    first = next_fire(spec, zone, now, anchor, start, end)
    if first is not None:
        return first
    unbounded = next_fire(spec, zone, now, anchor, start, None)
    if unbounded is not None and end is not None:
        raise SpecError(
            f"schedule {spec.text!r} can never fire: endDate {end.isoformat()} is before its "
            f"first fire time {unbounded.isoformat()}"
        )
    if isinstance(spec, AtSchedule):
        if start is not None and start > now:
            reason = f"it is before startDate {start.isoformat()}"
        else:
            reason = f"it is not after now ({now.isoformat()})"
        raise SpecError(f"schedule {spec.text!r} can never fire: {reason}")
    searched_from = start if start is not None and start > now else now
    if isinstance(spec, EverySchedule):  # it only runs out past year 9999
        raise SpecError(
            f"schedule {spec.text!r} can never fire: its first fire after "
            f"{searched_from.isoformat()} would be after the end of year 9999 (the latest "
            "time a schedule can reach)"
        )
    if searched_from.year + MAX_YEARS_BETWEEN_MATCHES >= LAST_INSTANT.year:
        raise SpecError(
            f"schedule {spec.text!r} can never fire: no matching time between "
            f"{searched_from.isoformat()} and the end of year 9999 (the latest time a "
            "schedule can reach)"
        )
    raise SpecError(
        f"schedule {spec.text!r} can never fire: no matching time within "
        f"{MAX_YEARS_BETWEEN_MATCHES} years (e.g. '0 0 30 2 *', February 30th, does not exist)"
    )


def _zone_key(zone: ZoneInfo) -> str:
    return getattr(zone, "key", None) or repr(zone)


_MISSING = object()


class FireTimeCache:
    """Shares cron next-fire computations between jobs with the same spec and zone.

    Results depend only on (spec text, zone, whole second of the effective `after`) because
    every cron slot is a whole second, so 200,000 jobs on one spec cost one croniter search
    per distinct second. Bounded LRU. @every/@at bypass it: they are O(1) already.
    """

    def __init__(self, maxsize: int = 65_536) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str, int], datetime | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def next_fire(
        self,
        spec: Schedule,
        zone: ZoneInfo,
        after: datetime,
        anchor: datetime,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> datetime | None:
        if not isinstance(spec, CronSchedule):
            return next_fire(spec, zone, after, anchor, start, end)
        effective = _effective_after(after, start)
        second = (effective - _EPOCH) // _ONE_SECOND
        key = (spec.text, _zone_key(zone), second)
        with self._lock:
            result = self._entries.get(key, _MISSING)
            if result is not _MISSING:
                self._entries.move_to_end(key)
                self.hits += 1
        if result is _MISSING:
            result = spec.next_after(_EPOCH + timedelta(seconds=second), zone, anchor)
            with self._lock:
                self.misses += 1
                self._entries[key] = result
                self._entries.move_to_end(key)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        assert result is None or isinstance(result, datetime)
        if result is None or (end is not None and result > _require_aware(end, "end")):
            return None
        return result
