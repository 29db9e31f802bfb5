"""Cron and descriptor specs: field parsing, the day rule, and DST rules (see :mod:`.spec`).

The module docstring of :mod:`scheduler0.schedule.spec` states the rules implemented here
(day rule, spring-forward gaps, long gaps, fall-back overlaps) and why croniter only ever
sees naive wall clocks and plain value lists.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
from croniter import CroniterError, croniter

from .base import _EPOCH, _ONE_SECOND, UTC, _require_aware, _spec_error, _utc_from_naive

#: Longest legitimate gap between two fires: a day rule that needs both fields (the 1st of
#: a month on a given weekday) around 2100, 12 years (2091-01-01 -> 2103-01-01, Mondays);
#: Feb 29 around 2100 is 8 (2096 -> 2104).
MAX_YEARS_BETWEEN_MATCHES = 12

#: A spring-forward gap this long or longer is skipped by every spec (cronie's 3-hour
#: "the clock jumped" threshold); shorter ones are DST changes.
LONG_GAP = timedelta(hours=3)


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
        # croniter's iterator is stateful: fine, every search runs in the reactor thread
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
