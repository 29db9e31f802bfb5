"""
Tests for scheduler0.schedule.spec: C{@every} and C{@at} specs, their parsing and errors,
and C{@every}'s phase kept from its anchor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import AtSchedule, EverySchedule, Schedule, SpecError, parse_spec

from .spec_fixtures import LONDON, LORD_HOWE, NY, T0, UTC, ZUTC, utc


class ParseEveryAndAtTests(SynchronousTestCase):
    def test_every_forms(self) -> None:
        cases = {
            "@every 90s": (90, "@every 1m30s"),
            "@every 1h30m": (5400, "@every 1h30m"),
            "@every 1.5h": (5400, "@every 1h30m"),
            "@every 2d12h": (216000, "@every 2d12h"),
            "@every 1s": (1, "@every 1s"),
            "@every .5m": (30, "@every 30s"),
            "@EVERY 3D": (259200, "@every 3d"),
            "@every 72h": (259200, "@every 3d"),
        }
        for text, (seconds, normal) in cases.items():
            schedule = parse_spec(text)
            self.assertIsInstance(schedule, EverySchedule)
            self.assertEqual((schedule.seconds, schedule.text), (seconds, normal), text)

    def test_at_forms(self) -> None:
        cases = {
            "@at 2027-01-01T09:00:00Z": utc(2027, 1, 1, 9),
            "@at 2027-01-01t09:00:00z": utc(2027, 1, 1, 9),
            "@at 2027-01-01T11:00:00+02:00": utc(2027, 1, 1, 9),
            "@at 2027-01-01 04:30:00-04:30": utc(2027, 1, 1, 9),
            "@at 2027-01-01T09:00:00.000Z": utc(2027, 1, 1, 9),
        }
        for text, when in cases.items():
            schedule = parse_spec(text)
            self.assertIsInstance(schedule, AtSchedule)
            self.assertEqual(schedule.at, when, text)
            self.assertEqual(schedule.text, "@at 2027-01-01T09:00:00Z")
            self.assertEqual(schedule.next_after(when - timedelta(seconds=1), NY, T0), when)
            self.assertIsNone(schedule.next_after(when, NY, T0))

    def test_errors(self) -> None:
        cases = {
            "": "empty",
            "   ": "empty",
            "* * *": "expected 5 fields",
            "* * * * * * *": "got 7",
            "61 * * * *": "minute value 61 is out of range 0-59",
            "0 24 * * *": "hour value 24 is out of range 0-23",
            "0 0 0 * *": "day-of-month value 0 is out of range 1-31",
            "0 0 * 13 *": "month value 13 is out of range 1-12",
            "0 0 * * 8": "day-of-week value 8 is out of range 0-7",
            "60 * * * * *": "second value 60",
            "0 0 * foo *": "unknown name 'foo' in the month field",
            "0 0 * * jan": "unknown name 'jan' in the day-of-week field",
            "0 mon * * *": "'mon' is not a number in the hour field",
            "*/0 * * * *": "step '0'",
            "*/x * * * *": "step 'x'",
            "0 0 * * fri-mon": "runs backwards",
            "1,,2 * * * *": "empty list item",
            "0 0 L * *": "'l' is not a number in the day-of-month field",
            "0 0 * * 5#3": "cannot read '5#3'",
            "H * * * *": "'h' is not a number",
            "@reboot": "unknown descriptor '@reboot'",
            "@daily now": "@daily takes no argument",
            "@every": "@every needs a duration",
            "@every 0s": "is zero",
            "@every 0.4s": "whole number of seconds",
            "@every 1.5s": "whole number of seconds",
            "@every -1h": "negative",
            "@every 500ms": "unit 'ms' is not supported",
            "@every 1w": "unit 'w' is unknown",
            "@every 90": "has no unit",
            "@every 1h 30m": "cannot read @every duration",
            "@every 1h-30m": "cannot read @every duration",
            "@every 36501d": "longer than the maximum",
            "@at": "RFC 3339",
            "@at tomorrow": "RFC 3339",
            "@at 2027-01-01": "RFC 3339",
            "@at 2027-01-01T09:00:00": "an offset or Z is required",
            "@at 2027-01-01T09:00:00.5Z": "whole second",
            "@at 2027-02-30T09:00:00Z": "not a valid date/time",
            "@at 2027-01-01T09:00:00+24:00": "out of range",
        }
        for text, fragment in cases.items():
            with self.assertRaises(SpecError, msg=text) as caught:
                parse_spec(text)
            message = str(caught.exception)
            self.assertIn(fragment, message, text)
            self.assertIn("valid examples: '*/5 * * * *'", message, text)
            self.assertIsInstance(caught.exception, ValueError)

    def test_non_string(self) -> None:
        self.assertRaises(SpecError, parse_spec, None)
        self.assertRaises(SpecError, parse_spec, 5)


class EveryTests(SynchronousTestCase):
    def test_phase_across_restart(self) -> None:
        every = parse_spec("@every 3d")
        created = utc(2027, 1, 1, 8, 15, 30)
        # The process was down for 4 days; the next run is still on day 6, not day 7.
        self.assertEqual(
            every.next_after(created + timedelta(days=4), NY, created),
            created + timedelta(days=6),
        )
        self.assertEqual(every.next_after(created, NY, created), created + timedelta(days=3))
        self.assertEqual(
            every.next_after(created + timedelta(days=6), NY, created), created + timedelta(days=9)
        )

    def test_anchor_sub_second_and_before_anchor(self) -> None:
        every = parse_spec("@every 90s")
        anchor = utc(2027, 1, 1, 0, 0, 0) + timedelta(microseconds=700_000)
        self.assertEqual(every.next_after(anchor, ZUTC, anchor), utc(2027, 1, 1, 0, 1, 30))
        # Before the anchor the first fire is still one interval after it.
        self.assertEqual(
            every.next_after(utc(2026, 1, 1), ZUTC, anchor), utc(2027, 1, 1, 0, 1, 30)
        )

    def test_zone_independent_across_dst(self) -> None:
        every = parse_spec("@every 1h")
        anchor = utc(2027, 11, 7, 4, 30)
        for zone in (NY, LONDON, LORD_HOWE, ZUTC):
            self.assertEqual(
                fires_every(every, zone, anchor, 4),
                [utc(2027, 11, 7, h, 30) for h in (5, 6, 7, 8)],
            )

    def test_is_constant_time(self) -> None:
        # A far-away `after` is one division away, not one step per interval: from year 1
        # to year 9999 is about 3 * 10**11 one-second steps, which no loop would finish, so
        # returning at all (exactly, to the second) proves there is none.
        every = parse_spec("@every 1s")
        anchor = datetime(1, 1, 1, tzinfo=UTC)
        after = utc(9999, 12, 31, 23, 59, 58)
        self.assertGreater((after - anchor).total_seconds(), 3 * 10**11)
        self.assertEqual(every.next_after(after, ZUTC, anchor), utc(9999, 12, 31, 23, 59, 59))
        self.assertEqual(every.next_after(utc(2126, 1, 1), ZUTC, utc(2027, 1, 1)),
                         utc(2126, 1, 1, 0, 0, 1))

    @settings(database=None, max_examples=300, deadline=None)
    @given(
        seconds=st.integers(min_value=1, max_value=400 * 86400),
        anchor=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                            timezones=st.just(UTC)),
        offset_us=st.integers(min_value=-10**13, max_value=10**15),
    )
    def test_property_anchor_plus_k_intervals(
        self, seconds: int, anchor: datetime, offset_us: int
    ) -> None:
        every = EverySchedule(text="x", seconds=seconds)
        after = anchor + timedelta(microseconds=offset_us)
        result = every.next_after(after, NY, anchor)
        base = anchor.replace(microsecond=0)
        k, rest = divmod(result - base, timedelta(seconds=seconds))
        self.assertEqual(rest, timedelta(0))
        self.assertGreaterEqual(k, 1)
        self.assertGreater(result, after)
        if k > 1:
            self.assertLessEqual(result - timedelta(seconds=seconds), after)


def fires_every(every: Schedule, zone: ZoneInfo, anchor: datetime, count: int) -> list[datetime]:
    out, after = [], anchor
    for _ in range(count):
        after = every.next_after(after, zone, anchor)
        out.append(after)
    return out
