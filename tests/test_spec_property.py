"""Property test: next_fire agrees with a brute-force reading of the documented cron rules.

The reference below shares nothing with scheduler0.schedule.spec (no croniter, no offset
binary search, no parser): the generator builds each spec's text together with the set of
values every field matches, and the reference walks calendar days and wall-clock minutes
of the job's zone with zoneinfo, applying the rules of the module docstring and README
("Schedules"):

* a day fires when day-of-month AND day-of-week match if either field's text starts with
  ``*``, when either matches if both are restricted;
* the hour field is a wildcard when its text starts with ``*`` or it names all 24 hours;
* a wall-clock slot that exists once fires at that instant; one that exists twice fires at
  its first occurrence, and also at its second when the hour field is a wildcard;
* a slot in a spring-forward gap fires at the gap's end for a fixed-time spec when the gap
  is shorter than 3 hours, and never otherwise.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import next_fire, parse_spec

UTC = timezone.utc
ZONES = [ZoneInfo(name) for name in (
    "America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago",
    "Pacific/Apia", "Asia/Tehran", "UTC",
)]
APIA = ZoneInfo("Pacific/Apia")
LONG_GAP = timedelta(hours=3)
#: Longer than any overlap or short gap in ZONES 2020-2035 (ReferenceSanityTests).
MARGIN = timedelta(hours=6)
#: The reference looks this many days ahead; a later (or no) fire is compared as "later".
HORIZON_DAYS = 4 * 366 + 10
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _offset_changes(zone: ZoneInfo, first: int, last: int) -> list[datetime]:
    """Instants (whole seconds) where `zone`'s UTC offset changes in years first..last."""

    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, zone).utcoffset()

    out: list[datetime] = []
    ts = int(datetime(first, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(last + 1, 1, 1, tzinfo=UTC).timestamp())
    step = 6 * 3600
    while ts < end:
        if offset(ts) != offset(ts + step):
            lo, hi = ts, ts + step  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            out.append(datetime.fromtimestamp(hi, UTC))
        ts += step
    return out


#: (zone, change) for every offset change 2020-2035, plus Samoa's skipped day in 2011.
CHANGES = [(zone, change) for zone in ZONES for change in _offset_changes(zone, 2020, 2035)]
CHANGES.append((APIA, datetime(2011, 12, 30, 10, tzinfo=UTC)))


# --------------------------------------------------------------------------- spec grammar


def _item(lo: int, hi: int, top: int, names: list[str] | None, hot: list[int]):
    """One list item of a field as (text, values); `top` is where `*` and `a/n` stop."""
    value = st.one_of(st.integers(lo, hi), st.sampled_from(hot))

    def show(v: int) -> st.SearchStrategy[str]:
        if names is None or v - lo >= len(names):
            return st.just(str(v))
        return st.sampled_from([str(v), names[v - lo]])

    single = value.flatmap(lambda v: show(v).map(lambda t: (t, {v})))
    ranged = st.tuples(value, value).map(sorted).flatmap(
        lambda ab: st.tuples(show(ab[0]), show(ab[1])).map(
            lambda ts: (f"{ts[0]}-{ts[1]}", set(range(ab[0], ab[1] + 1)))
        )
    )
    stepped_range = st.tuples(value, value, st.integers(1, 12)).map(
        lambda t: (min(t[0], t[1]), max(t[0], t[1]), t[2])
    ).map(lambda t: (f"{t[0]}-{t[1]}/{t[2]}", set(range(t[0], t[1] + 1, t[2]))))
    open_step = st.tuples(st.integers(lo, top), st.integers(1, 12)).map(
        lambda t: (f"{t[0]}/{t[1]}", set(range(t[0], top + 1, t[1])))
    )
    star_step = st.integers(1, 13).map(lambda n: (f"*/{n}", set(range(lo, top + 1, n))))
    return st.one_of(single, ranged, stepped_range, open_step, star_step)


def _field(lo: int, hi: int, top: int | None = None, names: list[str] | None = None,
           hot: list[int] | None = None, stars: int = 2):
    """A whole field: `*` (`stars` times out of `stars` + 1), or a list of 1-3 items."""
    top = hi if top is None else top
    star = st.just(("*", set(range(lo, top + 1))))
    listed = st.lists(_item(lo, hi, top, names, hot or [lo]), min_size=1, max_size=3).map(
        lambda items: (",".join(t for t, _ in items), set().union(*(v for _, v in items)))
    )
    return st.one_of(*[star] * stars, listed)


EVERY_DAY = (("*", set(range(1, 32))), ("*", set(range(1, 13))), ("*", set(range(7))))


@st.composite
def specs(draw, every_day: bool = False) -> "Spec":
    """Random 5-field specs (6 fields, seconds first, now and then); `every_day` keeps the
    day fields at ``*`` so that the day of a DST change always has slots."""
    seconds = draw(st.one_of(
        st.none(), st.sampled_from([("0", {0}), ("*/20", {0, 20, 40}), ("5,50", {5, 50})])
    ))
    # every minute would rarely reach a change a few fires later: fewer of those then
    minute = draw(_field(0, 59, hot=[0, 15, 30, 45, 59], stars=0 if every_day else 2))
    hour = draw(_field(0, 23, hot=[0, 1, 2, 3, 23]))
    if every_day:
        dom, month, dow = EVERY_DAY
    else:
        dom = draw(_field(1, 31, hot=[1, 29, 30, 31]))
        month = draw(_field(1, 12, names=MONTHS))
        dow = draw(_field(0, 7, top=6, names=DAYS))
    return Spec(seconds, minute, hour, dom, month, dow)


class Spec:
    """A generated spec: its text and, per field, the values it matches."""

    def __init__(self, seconds, minute, hour, dom, month, dow) -> None:
        fields = [minute, hour, dom, month, dow]
        if seconds is not None:
            fields.insert(0, seconds)
        self.text = " ".join(text for text, _ in fields)
        self.seconds = sorted(seconds[1]) if seconds is not None else [0]
        self.minutes = sorted(minute[1])
        self.hours = sorted(hour[1])
        self.doms = dom[1]
        self.months = month[1]
        self.dows = {v % 7 for v in dow[1]}  # 7 is Sunday
        self.either_day = not (dom[0].startswith("*") or dow[0].startswith("*"))
        self.wildcard_hour = hour[0].startswith("*") or len(self.hours) == 24

    def __repr__(self) -> str:
        return f"Spec({self.text!r})"

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.doms
        dow_ok = day.isoweekday() % 7 in self.dows
        return (dom_ok or dow_ok) if self.either_day else (dom_ok and dow_ok)


# --------------------------------------------------------------------------- reference


def slot_instants(spec: Spec, wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The real instants at which the wall-clock slot `wall` fires (module docstring)."""
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:  # the slot exists
        if second != first and spec.wildcard_hour:  # it exists twice
            return [first, second]
        return [first]
    # In a gap: fold=0 reads the wall with the offset before the change, fold=1 after it.
    if spec.wildcard_hour or first - second >= LONG_GAP:
        return []
    later = wall
    while True:  # the gap's end: the first wall-clock minute after the slot that exists
        later = later.replace(second=0) + timedelta(minutes=1)
        instant = later.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == later:
            return [instant]


def reference_next(spec: Spec, zone: ZoneInfo, after: datetime) -> datetime | None:
    """First fire strictly after `after`, found by walking days and their wall-clock slots
    in order; None if none within HORIZON_DAYS.

    Instants follow wall-clock order except inside an overlap (a second occurrence comes
    after later walls' first ones) and at a gap's end (a slot fires at a later wall time).
    Both are shorter than MARGIN in these zones (checked below), so slots more than MARGIN
    before `after`'s wall time, or after the best fire's, cannot change the answer.
    """
    after_wall = after.astimezone(zone).replace(tzinfo=None)
    day = after_wall.date() - timedelta(days=1)
    best: datetime | None = None
    stop = datetime.max  # walls after this cannot fire before `best`
    for _ in range(HORIZON_DAYS):
        if datetime(day.year, day.month, day.day) > stop:
            return best
        if spec.day_matches(day):
            for hour in spec.hours:
                for minute in spec.minutes:
                    for second in spec.seconds:
                        wall = datetime(day.year, day.month, day.day, hour, minute, second)
                        if wall < after_wall - MARGIN:
                            continue
                        if wall > stop:
                            return best
                        for instant in slot_instants(spec, wall, zone):
                            if instant > after and (best is None or instant < best):
                                best = instant
                                stop = instant.astimezone(zone).replace(tzinfo=None) + MARGIN
        day += timedelta(days=1)
    return best


# --------------------------------------------------------------------------- the property


def _near_change(before: float, after: float) -> st.SearchStrategy[tuple[ZoneInfo, datetime]]:
    """(zone, an instant from `before` hours before one of its offset changes to `after`
    hours after it)."""
    return st.tuples(
        st.sampled_from(CHANGES),
        st.integers(int(-before * 3600 * 10**6), int(after * 3600 * 10**6)),
    ).map(lambda p: (p[0][0], p[0][1] + timedelta(microseconds=p[1])))


def _afters() -> st.SearchStrategy[tuple[ZoneInfo | None, datetime]]:
    """Instants 2020-2035: uniform (any zone), and within two days of an offset change."""
    uniform = st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    )
    return st.one_of(uniform.map(lambda t: (None, t)), _near_change(48, 48))


def bounded(examples: int) -> settings:
    """Bounded and repeatable enough for CI: no example database, no deadline."""
    return settings(database=None, deadline=None, max_examples=examples,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class NextFireAgainstReferenceTests(SynchronousTestCase):
    """spec.next_fire == the brute-force reference, for several fires in a row."""

    def check(self, spec: Spec, zone: ZoneInfo, after: datetime, fires: int = 4) -> None:
        schedule = parse_spec(spec.text)
        horizon = after + timedelta(days=HORIZON_DAYS - 3)
        for _ in range(fires):
            want = reference_next(spec, zone, after)
            got = next_fire(schedule, zone, after, after)
            context = f"{spec.text!r} in {zone.key} after {after.isoformat()}"
            if want is None:
                # no fire within the reference's horizon: spec.py must not find an earlier one
                self.assertTrue(got is None or got > horizon, f"{context}: got {got}")
                return
            self.assertEqual(got, want, context)
            after = got

    @bounded(200)
    @given(spec=specs(), zone=st.sampled_from(ZONES), start=_afters())
    def test_any_spec(
        self, spec: Spec, zone: ZoneInfo, start: tuple[ZoneInfo | None, datetime]
    ) -> None:
        near_zone, after = start
        self.check(spec, near_zone or zone, after)  # near a change: in that change's zone

    @bounded(150)
    @given(spec=specs(every_day=True), start=_near_change(2, 0.25))
    def test_every_day_spec_across_a_change(
        self, spec: Spec, start: tuple[ZoneInfo, datetime]
    ) -> None:
        zone, after = start
        self.check(spec, zone, after, fires=8)


class ReferenceSanityTests(SynchronousTestCase):
    """The reference itself reads the rules as documented (hand-checked cases)."""

    def spec(self, minute, hour, dom=("*", set(range(1, 32))), month=("*", set(range(1, 13))),
             dow=("*", set(range(7)))) -> Spec:
        return Spec(None, minute, hour, dom, month, dow)

    def test_gap_rules(self) -> None:
        ny = ZoneInfo("America/New_York")
        after = datetime(2024, 3, 10, 6, 0, tzinfo=UTC)  # 01:00 EST; 02:00 -> 03:00 at 07:00Z
        wildcard = self.spec(("30", {30}), ("*", set(range(24))))
        self.assertEqual(reference_next(wildcard, ny, datetime(2024, 3, 10, 6, 30, tzinfo=UTC)),
                         datetime(2024, 3, 10, 7, 30, tzinfo=UTC))
        fixed = self.spec(("30", {30}), ("2", {2}))
        self.assertEqual(reference_next(fixed, ny, after), datetime(2024, 3, 10, 7, tzinfo=UTC))

    def test_long_gap_and_day_rule(self) -> None:
        weekdays = self.spec(("0", {0}), ("9", {9}), dow=("1-5", {1, 2, 3, 4, 5}))
        self.assertEqual(reference_next(weekdays, APIA, datetime(2011, 12, 29, 20, tzinfo=UTC)),
                         datetime(2012, 1, 1, 19, tzinfo=UTC))
        odd_mondays = self.spec(("0", {0}), ("0", {0}), dom=("*/2", set(range(1, 32, 2))),
                                dow=("1", {1}))
        self.assertEqual(reference_next(odd_mondays, ZoneInfo("UTC"),
                                        datetime(2027, 3, 1, tzinfo=UTC)),
                         datetime(2027, 3, 15, tzinfo=UTC))

    def test_changes_cover_every_zone_with_transitions(self) -> None:
        zones = {zone.key for zone, _ in CHANGES}
        self.assertEqual(zones, {z.key for z in ZONES} - {"UTC"})

    def test_changes_are_shorter_than_the_margin(self) -> None:
        # Every change but Samoa's skipped day is a DST change of an hour or less.
        for zone, change in CHANGES:
            size = abs(change.astimezone(zone).utcoffset()
                       - (change - timedelta(seconds=1)).astimezone(zone).utcoffset())
            if change.year != 2011:
                self.assertLessEqual(size, timedelta(hours=1), f"{zone.key} {change}")
        self.assertLess(timedelta(hours=1), MARGIN)
