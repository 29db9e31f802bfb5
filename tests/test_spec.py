"""Tests for scheduler0.schedule.spec: spec parsing, DST rules, start/end, caching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import croniter as croniter_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule import spec as spec_module
from scheduler0.schedule.spec import (
    AtSchedule,
    CronSchedule,
    EverySchedule,
    FireTimeCache,
    Schedule,
    SpecError,
    ZoneError,
    first_fire_or_error,
    load_zone,
    next_fire,
    parse_spec,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
APIA = ZoneInfo("Pacific/Apia")
ZUTC = ZoneInfo("UTC")

#: 2027 DST changes, checked against zoneinfo in DstFactsTests below.
NY_SPRING = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
NY_FALL = datetime(2027, 11, 7, 6, 0, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST
LONDON_SPRING = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 01:00 GMT -> 02:00 BST
LONDON_FALL = datetime(2027, 10, 31, 1, 0, tzinfo=UTC)  # 02:00 BST -> 01:00 GMT
LH_FALL = datetime(2027, 4, 3, 15, 0, tzinfo=UTC)  # 02:00 +11 -> 01:30 +10:30
LH_SPRING = datetime(2027, 10, 2, 15, 30, tzinfo=UTC)  # 02:00 +10:30 -> 02:30 +11

TRANSITIONS = [
    (NY, NY_SPRING),
    (NY, NY_FALL),
    (LONDON, LONDON_SPRING),
    (LONDON, LONDON_FALL),
    (LORD_HOWE, LH_FALL),
    (LORD_HOWE, LH_SPRING),
]

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(text: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """`count` consecutive fires of `text` strictly after `after`."""
    schedule = parse_spec(text)
    out: list[datetime] = []
    for _ in range(count):
        nxt = schedule.next_after(after, zone, T0)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


def local_strings(instants: list[datetime], zone: ZoneInfo) -> list[str]:
    return [i.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S%z") for i in instants]


class DstFactsTests(SynchronousTestCase):
    """The transition instants the DST tests rely on really are transitions in tzdata."""

    def test_transitions(self) -> None:
        for zone, change in TRANSITIONS:
            before = (change - timedelta(seconds=1)).astimezone(zone).utcoffset()
            after = change.astimezone(zone).utcoffset()
            self.assertNotEqual(before, after, f"{zone.key} {change}")
        self.assertEqual(
            (LH_FALL - timedelta(seconds=1)).astimezone(LORD_HOWE).utcoffset()
            - LH_FALL.astimezone(LORD_HOWE).utcoffset(),
            timedelta(minutes=30),
        )


class ParseCronTests(SynchronousTestCase):
    def test_five_field_normalised(self) -> None:
        schedule = parse_spec("  0   9 ? JAN-Mar MON-fri ")
        self.assertIsInstance(schedule, CronSchedule)
        self.assertEqual(schedule.text, "0 9 * jan-mar mon-fri")
        self.assertEqual(schedule.expr, "0 9 * 1,2,3 1,2,3,4,5")
        self.assertFalse(schedule.seconds)
        self.assertFalse(schedule.wildcard_hour)
        self.assertFalse(schedule.day_or)  # "?" is "*": both day fields must match
        self.assertIsInstance(schedule, Schedule)

    def test_five_field_is_minute_first(self) -> None:
        # Standard crontab, unlike the Go original: "0 0 * * *" is daily, not hourly.
        self.assertEqual(
            fires("0 0 * * *", ZUTC, utc(2027, 3, 10, 12, 0), 2),
            [utc(2027, 3, 11), utc(2027, 3, 12)],
        )
        self.assertEqual(
            fires("* * * * *", ZUTC, utc(2027, 3, 10, 12, 0, 5), 2),
            [utc(2027, 3, 10, 12, 1), utc(2027, 3, 10, 12, 2)],
        )

    def test_names_weekdays_and_sunday_seven(self) -> None:
        # 2027-03-12 is a Friday.
        self.assertEqual(
            fires("0 9 * * mon-fri", ZUTC, utc(2027, 3, 12, 10), 2),
            [utc(2027, 3, 15, 9), utc(2027, 3, 16, 9)],
        )
        self.assertEqual(fires("0 0 * * 7", ZUTC, utc(2027, 3, 10), 1), [utc(2027, 3, 14)])
        self.assertEqual(fires("0 0 * * sun", ZUTC, utc(2027, 3, 10), 1), [utc(2027, 3, 14)])
        self.assertEqual(fires("0 0 1 feb *", ZUTC, utc(2027, 3, 10), 1), [utc(2028, 2, 1)])

    def test_lists_ranges_steps(self) -> None:
        self.assertEqual(
            fires("5,35 */6 * * *", ZUTC, utc(2027, 3, 10, 0, 30), 4),
            [utc(2027, 3, 10, 0, 35), utc(2027, 3, 10, 6, 5), utc(2027, 3, 10, 6, 35),
             utc(2027, 3, 10, 12, 5)],
        )
        self.assertEqual(
            fires("10-20/5 1 * * *", ZUTC, utc(2027, 3, 10), 4),
            [utc(2027, 3, 10, 1, 10), utc(2027, 3, 10, 1, 15), utc(2027, 3, 10, 1, 20),
             utc(2027, 3, 11, 1, 10)],
        )
        # "a/n" means a-max/n.
        self.assertEqual(parse_spec("50/5 * * * *").expr, "50,55 * * * *")
        self.assertEqual(
            fires("50/5 * * * *", ZUTC, utc(2027, 3, 10, 0, 0), 3),
            [utc(2027, 3, 10, 0, 50), utc(2027, 3, 10, 0, 55), utc(2027, 3, 10, 1, 50)],
        )

    def test_one_value_ranges(self) -> None:
        # croniter reads a range of one value ("3-3", "59/5" = 59-59/5) as "*": 0 3-3 * * *
        # ran every hour. Found by tests/test_spec_property.py.
        self.assertEqual(
            fires("0 3-3 * * *", ZUTC, utc(2027, 3, 10), 2),
            [utc(2027, 3, 10, 3), utc(2027, 3, 11, 3)],
        )
        self.assertEqual(
            fires("59/5 * * * *", ZUTC, utc(2027, 3, 10), 2),
            [utc(2027, 3, 10, 0, 59), utc(2027, 3, 10, 1, 59)],
        )
        self.assertEqual(
            fires("0 0 1-1 dec-dec *", ZUTC, utc(2027, 3, 10), 2),
            [utc(2027, 12, 1), utc(2028, 12, 1)],
        )
        self.assertEqual(
            fires("0 0 * * fri-fri/2", ZUTC, utc(2027, 3, 10), 2),
            [utc(2027, 3, 12), utc(2027, 3, 19)],
        )

    def test_open_weekday_step_stops_at_saturday(self) -> None:
        # "5/2" is 5-6/2 = {fri}; 7 is only an alias of Sunday, not part of the range.
        self.assertEqual(parse_spec("0 0 * * 5/2").expr, "0 0 * * 5")
        self.assertEqual(
            fires("0 0 * * 5/2", ZUTC, utc(2027, 3, 10), 2), [utc(2027, 3, 12), utc(2027, 3, 19)]
        )

    def test_day_of_month_or_day_of_week(self) -> None:
        # Vixie semantics: both restricted -> either matches. 2027-03-15 is a Monday.
        self.assertEqual(
            fires("0 0 13 * mon", ZUTC, utc(2027, 3, 10), 2),
            [utc(2027, 3, 13), utc(2027, 3, 15)],
        )

    def test_six_fields_are_seconds_first(self) -> None:
        schedule = parse_spec("*/20 * * * * *")
        self.assertTrue(schedule.seconds)
        self.assertEqual(
            fires("*/20 * * * * *", ZUTC, utc(2027, 3, 10, 12, 0, 0), 4),
            [utc(2027, 3, 10, 12, 0, 20), utc(2027, 3, 10, 12, 0, 40),
             utc(2027, 3, 10, 12, 1, 0), utc(2027, 3, 10, 12, 1, 20)],
        )
        self.assertEqual(
            fires("30 0 9 * * *", ZUTC, utc(2027, 3, 10, 12), 1), [utc(2027, 3, 11, 9, 0, 30)]
        )

    def test_descriptors(self) -> None:
        after = utc(2027, 3, 10, 12, 34, 56)  # a Wednesday
        expected = {
            "@yearly": utc(2028, 1, 1),
            "@annually": utc(2028, 1, 1),
            "@monthly": utc(2027, 4, 1),
            "@weekly": utc(2027, 3, 14),
            "@daily": utc(2027, 3, 11),
            "@midnight": utc(2027, 3, 11),
            "@hourly": utc(2027, 3, 10, 13),
        }
        for text, when in expected.items():
            schedule = parse_spec(text.upper())
            self.assertEqual(schedule.text, text)
            self.assertEqual(schedule.next_after(after, ZUTC, T0), when, text)
        self.assertTrue(parse_spec("@hourly").wildcard_hour)
        self.assertFalse(parse_spec("@daily").wildcard_hour)

    def test_wildcard_hour_detection(self) -> None:
        # Text starting with "*" (cronie), or every one of the 24 hours.
        for text in ("0 * * * *", "0 */1 * * *", "0 0-23 * * *", "*/5 ? * * *", "0 0 * * * *",
                     "0 */2 * * *", "0 *,5 * * *", "0 0-11,12-23 * * *"):
            self.assertTrue(parse_spec(text).wildcard_hour, text)
        for text in ("0 1 * * *", "0 0-22 * * *", "0 0 1 * * *", "*/15 2 * * *",
                     "0 1-23/2 * * *", "@daily"):
            self.assertFalse(parse_spec(text).wildcard_hour, text)

    def test_parse_is_cached(self) -> None:
        self.assertIs(parse_spec("*/7 * * * *"), parse_spec("*/7 * * * *"))

    def test_interval_hint(self) -> None:
        self.assertEqual(parse_spec("*/5 * * * *").interval_hint(), 300.0)
        self.assertEqual(parse_spec("@hourly").interval_hint(), 3600.0)
        self.assertEqual(parse_spec("*/20 * * * * *").interval_hint(), 20.0)
        self.assertEqual(parse_spec("@every 1h30m").interval_hint(), 5400.0)
        self.assertIsNone(parse_spec("@at 2027-01-01T09:00:00Z").interval_hint())
        self.assertIsNone(parse_spec("0 0 30 2 *").interval_hint())


class DayRuleTests(SynchronousTestCase):
    """Vixie cron / cronie: a day field whose text starts with ``*`` makes both required.

    March 2027 starts on a Monday: its Mondays are the 1st, 8th, 15th, 22nd and 29th.
    """

    MAR1 = utc(2027, 3, 1)

    def test_star_step_day_of_month_and_weekday_must_both_match(self) -> None:
        # The issue's example: odd dates that are Mondays, not odd dates or Mondays.
        self.assertEqual(
            fires("0 0 */2 * 1", ZUTC, self.MAR1, 4),
            [utc(2027, 3, 15), utc(2027, 3, 29), utc(2027, 4, 5), utc(2027, 4, 19)],
        )
        # `*/1`, `*,5` and the `?` alias start with `*` too: Mondays only.
        for text in ("0 0 */1 * 1", "0 0 *,5 * 1", "0 0 ? * 1"):
            self.assertEqual(
                fires(text, ZUTC, self.MAR1, 2), [utc(2027, 3, 8), utc(2027, 3, 15)], text
            )

    def test_star_step_weekday_with_restricted_day_of_month(self) -> None:
        # dom 1-10 and every other weekday from Sunday (sun, tue, thu, sat): both required.
        self.assertEqual(
            fires("0 0 1-10 * */2", ZUTC, self.MAR1, 4),
            [utc(2027, 3, 2), utc(2027, 3, 4), utc(2027, 3, 6), utc(2027, 3, 7)],
        )

    def test_both_restricted_either_matches(self) -> None:
        self.assertEqual(
            fires("0 0 1 * 1", ZUTC, self.MAR1, 6),
            [utc(2027, 3, 8), utc(2027, 3, 15), utc(2027, 3, 22), utc(2027, 3, 29),
             utc(2027, 4, 1), utc(2027, 4, 5)],
        )
        # A restricted field that happens to list every value is still restricted (cronie
        # looks at the text): with OR it lets every day through. (croniter alone got the
        # last one wrong: a "*" inside the day-of-month list made it require both.)
        for text in ("0 0 1-31 * 1", "0 0 1 * 0-6", "0 0 1 * sun-sat", "0 0 31,*/10 * 0-6"):
            self.assertEqual(
                fires(text, ZUTC, self.MAR1, 2), [utc(2027, 3, 2), utc(2027, 3, 3)], text
            )

    def test_one_field_star(self) -> None:
        self.assertEqual(
            fires("0 0 * * 1", ZUTC, self.MAR1, 2), [utc(2027, 3, 8), utc(2027, 3, 15)]
        )
        self.assertEqual(
            fires("0 0 1-7 * *", ZUTC, utc(2027, 3, 6, 12), 3),
            [utc(2027, 3, 7), utc(2027, 4, 1), utc(2027, 4, 2)],
        )

    def test_six_fields_names_and_sunday_seven(self) -> None:
        self.assertEqual(
            fires("0 0 0 */2 * 1", ZUTC, self.MAR1, 2), [utc(2027, 3, 15), utc(2027, 3, 29)]
        )
        self.assertEqual(
            fires("0 0 */2 * mon-fri", ZUTC, self.MAR1, 4),
            [utc(2027, 3, 3), utc(2027, 3, 5), utc(2027, 3, 9), utc(2027, 3, 11)],
        )
        # Odd-dated Sundays: March 7 and 21, then April 11 (not 4, 18, 25).
        for text in ("0 0 */2 * 7", "0 0 */2 * sun", "0 0 */2 * 0"):
            self.assertEqual(
                fires(text, ZUTC, self.MAR1, 3),
                [utc(2027, 3, 7), utc(2027, 3, 21), utc(2027, 4, 11)],
                text,
            )

    def test_descriptors_unchanged(self) -> None:
        self.assertEqual(fires("@weekly", ZUTC, self.MAR1, 2), [utc(2027, 3, 7), utc(2027, 3, 14)])
        self.assertEqual(fires("@monthly", ZUTC, self.MAR1, 2), [utc(2027, 4, 1), utc(2027, 5, 1)])

    def test_both_required_can_be_eleven_or_twelve_years_apart(self) -> None:
        # The 1st of February on a Monday: 2027, then 2038. Not "can never fire".
        now = utc(2027, 2, 2)
        spec = parse_spec("0 0 */31 2 mon")
        self.assertEqual(first_fire_or_error(spec, ZUTC, now, now), utc(2038, 2, 1))
        # Across 2100 (not a leap year) the 1st of January on a Monday: 2091, then 2103.
        self.assertEqual(
            parse_spec("0 0 */31 1 mon").next_after(utc(2091, 1, 2), ZUTC, T0), utc(2103, 1, 1)
        )


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


class ZoneTests(SynchronousTestCase):
    def test_valid(self) -> None:
        self.assertEqual(load_zone("America/New_York").key, "America/New_York")
        self.assertEqual(load_zone("UTC").key, "UTC")

    def test_invalid(self) -> None:
        cases = {
            "": "not an IANA zone",
            "Local": "not an IANA zone",
            "localtime": "not an IANA zone",
            "Mars/Olympus_Mons": "unknown time zone",
            "america/new_york": "did you mean 'America/New_York'",
            "../etc/passwd": "unknown time zone",
            "/etc/localtime": "unknown time zone",
        }
        for name, fragment in cases.items():
            with self.assertRaises(ZoneError, msg=name) as caught:
                load_zone(name)
            self.assertIn(fragment, str(caught.exception))
            self.assertIsInstance(caught.exception, ValueError)


class DstGapTests(SynchronousTestCase):
    """Spring forward, fixed-time specs: a missing wall time fires once, at the first instant
    after the gap."""

    def test_new_york_fixed_time_in_gap(self) -> None:
        result = fires("30 2 * * *", NY, utc(2027, 3, 13, 12), 3)
        self.assertEqual(
            result, [utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30), utc(2027, 3, 16, 6, 30)]
        )
        self.assertEqual(local_strings(result, NY)[0], "2027-03-14 03:00:00-0400")

    def test_new_york_gap_slot_and_gap_end_fire_once(self) -> None:
        # 02:00, 02:15, 02:30, 02:45 do not exist; with 03:00 they make one fire at 07:00Z.
        # (The hour field is fixed, so the minute wildcard does not make the slots skip.)
        self.assertEqual(
            fires("*/15 2,3 * * *", NY, utc(2027, 3, 14, 6, 40), 3),
            [utc(2027, 3, 14, 7, 0), utc(2027, 3, 14, 7, 15), utc(2027, 3, 14, 7, 30)],
        )

    def test_london(self) -> None:
        # 01:00 -> 02:00 on 2027-03-28; 01:30 fires at 02:00 BST = 01:00Z.
        self.assertEqual(
            fires("30 1 * * *", LONDON, utc(2027, 3, 27, 12), 2),
            [utc(2027, 3, 28, 1, 0), utc(2027, 3, 29, 0, 30)],
        )

    def test_lord_howe_half_hour_gap(self) -> None:
        result = fires("15 2 * * *", LORD_HOWE, utc(2027, 10, 2, 0), 2)
        self.assertEqual(result, [LH_SPRING, utc(2027, 10, 3, 15, 15)])
        self.assertEqual(local_strings(result, LORD_HOWE)[0], "2027-10-03 02:30:00+1100")
        # A slot just before the gap is unaffected.
        self.assertEqual(
            fires("45 1 * * *", LORD_HOWE, utc(2027, 10, 2, 0), 1), [utc(2027, 10, 2, 15, 15)]
        )

    def test_six_field_seconds_in_gap(self) -> None:
        self.assertEqual(
            fires("10 20 2 * * *", NY, utc(2027, 3, 13, 12), 2),
            [NY_SPRING, utc(2027, 3, 15, 6, 20, 10)],
        )


class DstGapWildcardHourTests(SynchronousTestCase):
    """A spec whose hour field is a wildcard skips the slots of a spring-forward gap."""

    def test_issue_example_fires_once_per_real_hour(self) -> None:
        # New York 2024-03-10: 02:00 EST -> 03:00 EDT at 07:00Z. 02:30 does not exist; it
        # used to fire at 07:00Z, 30 minutes after 01:30 EST and 30 before 03:30 EDT.
        result = fires("30 * * * *", NY, utc(2024, 3, 10, 6), 3)
        self.assertEqual(result, [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30),
                                  utc(2024, 3, 10, 8, 30)])
        self.assertEqual(local_strings(result, NY)[:2],
                         ["2024-03-10 01:30:00-0500", "2024-03-10 03:30:00-0400"])

    def test_star_step_and_full_range_hours_count_as_wildcards(self) -> None:
        # */2 starts with "*" (cronie's rule); 0-23 names every hour.
        self.assertEqual(
            fires("30 */2 * * *", NY, utc(2024, 3, 10, 5), 2),
            [utc(2024, 3, 10, 5, 30), utc(2024, 3, 10, 8, 30)],
        )
        self.assertEqual(
            fires("30 0-23 * * *", NY, utc(2024, 3, 10, 6), 2),
            [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7, 30)],
        )
        # Six fields (seconds first) and @hourly's wall slots are all real here.
        self.assertEqual(
            fires("15 30 * * * *", NY, utc(2024, 3, 10, 6, 31), 1), [utc(2024, 3, 10, 7, 30, 15)]
        )

    def test_slot_at_the_gap_end_still_fires(self) -> None:
        # 02:00, 02:15, 02:30 and 02:45 are skipped; 03:00 EDT (07:00Z) is a real slot.
        self.assertEqual(
            fires("*/15 * * * *", NY, utc(2027, 3, 14, 6, 40), 3),
            [utc(2027, 3, 14, 6, 45), utc(2027, 3, 14, 7, 0), utc(2027, 3, 14, 7, 15)],
        )

    def test_santiago_midnight_gap(self) -> None:
        # 2024-09-08 00:00 -04 -> 01:00 -03 (04:00Z): midnight does not exist that day.
        self.assertEqual(
            fires("0 */2 * * *", SANTIAGO, utc(2024, 9, 8, 1), 2),
            [utc(2024, 9, 8, 2), utc(2024, 9, 8, 5)],  # Sat 22:00 -04, Sun 02:00 -03
        )
        # A fixed-time spec keeps the old rule: 00:00 fires at the gap's end, 01:00 -03.
        self.assertEqual(
            fires("0 0 * * *", SANTIAGO, utc(2024, 9, 7, 12), 2),
            [utc(2024, 9, 8, 4), utc(2024, 9, 9, 3)],
        )

    def test_lord_howe_half_hour_gap(self) -> None:
        # 02:00 +10:30 -> 02:30 +11 at 15:30Z: 02:15 is skipped, 02:45 is real.
        self.assertEqual(
            fires("15,45 * * * *", LORD_HOWE, utc(2027, 10, 2, 15, 0), 2),
            [utc(2027, 10, 2, 15, 15), utc(2027, 10, 2, 15, 45)],
        )


class LongGapTests(SynchronousTestCase):
    """Samoa skipped Friday 2011-12-30: 23:59:59 -10 on the 29th was followed by 00:00 +14
    on the 31st (10:00Z). A gap of 3 hours or more is not a DST change: its slots never fire."""

    def test_weekday_job_is_not_moved_onto_saturday(self) -> None:
        result = fires("0 9 * * 1-5", APIA, utc(2011, 12, 29, 20), 2)
        self.assertEqual(result, [utc(2012, 1, 1, 19), utc(2012, 1, 2, 19)])
        self.assertEqual(local_strings(result, APIA)[0], "2012-01-02 09:00:00+1400")
        self.assertEqual(fires("0 9 * * mon-fri", APIA, utc(2011, 12, 29, 20), 1)[0],
                         utc(2012, 1, 1, 19))

    def test_daily_job_fires_once_on_the_day_after(self) -> None:
        # 09:00 on the 30th does not exist; the 31st's 09:00 is its only fire that day.
        self.assertEqual(
            fires("0 9 * * *", APIA, utc(2011, 12, 29, 20), 2),
            [utc(2011, 12, 30, 19), utc(2011, 12, 31, 19)],
        )
        # A slot at the gap's end is real.
        self.assertEqual(fires("0 0 * * *", APIA, utc(2011, 12, 29, 20), 1),
                         [utc(2011, 12, 30, 10)])
        self.assertEqual(fires("0 0 30 12 *", APIA, utc(2011, 12, 29, 20), 1),
                         [utc(2012, 12, 29, 10)])


class DstOverlapTests(SynchronousTestCase):
    """Fall back: a fixed-hour slot fires once (first occurrence); every-hour specs keep going."""

    def test_new_york_fixed_hour_once(self) -> None:
        result = fires("30 1 * * *", NY, utc(2027, 11, 6, 12), 2)
        self.assertEqual(result, [utc(2027, 11, 7, 5, 30), utc(2027, 11, 8, 6, 30)])
        self.assertEqual(local_strings(result, NY)[0], "2027-11-07 01:30:00-0400")

    def test_new_york_fixed_hour_from_inside_second_half(self) -> None:
        # 06:10Z is 01:10 EST, after 01:30 EDT already fired: next is the following day.
        self.assertEqual(
            parse_spec("30 1 * * *").next_after(utc(2027, 11, 7, 6, 10), NY, T0),
            utc(2027, 11, 8, 6, 30),
        )
        self.assertEqual(
            parse_spec("30 1 * * *").next_after(utc(2027, 11, 7, 5, 10), NY, T0),
            utc(2027, 11, 7, 5, 30),
        )

    def test_new_york_hourly_every_real_hour(self) -> None:
        result = fires("0 * * * *", NY, utc(2027, 11, 7, 3, 30), 5)
        self.assertEqual(
            result,
            [utc(2027, 11, 7, 4), utc(2027, 11, 7, 5), utc(2027, 11, 7, 6), utc(2027, 11, 7, 7),
             utc(2027, 11, 7, 8)],
        )
        self.assertEqual(
            local_strings(result, NY)[1:3], ["2027-11-07 01:00:00-0400", "2027-11-07 01:00:00-0500"]
        )
        # The same with @hourly and a half-hourly spec, started inside the first half.
        self.assertEqual(fires("@hourly", NY, utc(2027, 11, 7, 5), 2), [NY_FALL, utc(2027, 11, 7, 7)])
        self.assertEqual(
            fires("*/30 * * * *", NY, utc(2027, 11, 7, 5, 10), 4),
            [utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6), utc(2027, 11, 7, 6, 30),
             utc(2027, 11, 7, 7)],
        )

    def test_new_york_every_hour_from_inside_second_half(self) -> None:
        self.assertEqual(
            fires("*/30 * * * *", NY, utc(2027, 11, 7, 6, 10), 2),
            [utc(2027, 11, 7, 6, 30), utc(2027, 11, 7, 7)],
        )

    def test_new_york_fixed_hour_minutely(self) -> None:
        # Every minute of hour 1 fires in the first pass only: 60 fires, then tomorrow.
        result = fires("* 1 * * *", NY, utc(2027, 11, 7, 4, 59), 61)
        self.assertEqual(result[0], utc(2027, 11, 7, 5, 0))
        self.assertEqual(result[59], utc(2027, 11, 7, 5, 59))
        self.assertEqual(result[60], utc(2027, 11, 8, 6, 0))

    def test_london_once(self) -> None:
        result = fires("30 1 * * *", LONDON, utc(2027, 10, 30, 12), 2)
        self.assertEqual(result, [utc(2027, 10, 31, 0, 30), utc(2027, 11, 1, 1, 30)])
        self.assertEqual(
            fires("30 * * * *", LONDON, utc(2027, 10, 30, 23, 45), 3),
            [utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 30), utc(2027, 10, 31, 2, 30)],
        )

    def test_star_step_hour_repeats_in_the_overlap(self) -> None:
        # Apia 2020-04-05 04:00 +14 -> 03:00 +13 (14:00Z): 03:00 happens twice, and an hour
        # field starting with "*" fires at both (cronie); a fixed 3 fires at the first.
        self.assertEqual(
            fires("0 */3 * * *", APIA, utc(2020, 4, 4, 12), 3),
            [utc(2020, 4, 4, 13), utc(2020, 4, 4, 14), utc(2020, 4, 4, 17)],
        )
        self.assertEqual(
            fires("0 3,6 * * *", APIA, utc(2020, 4, 4, 12), 2),
            [utc(2020, 4, 4, 13), utc(2020, 4, 4, 17)],
        )

    def test_lord_howe_half_hour_overlap(self) -> None:
        # Overlap: wall 01:30-02:00 exists at +11 (14:30-15:00Z) and at +10:30 (15:00-15:30Z).
        result = fires("45 1 * * *", LORD_HOWE, utc(2027, 4, 3, 0), 2)
        self.assertEqual(result, [utc(2027, 4, 3, 14, 45), utc(2027, 4, 4, 15, 15)])
        self.assertEqual(local_strings(result, LORD_HOWE)[0], "2027-04-04 01:45:00+1100")
        self.assertEqual(
            fires("45 * * * *", LORD_HOWE, utc(2027, 4, 3, 13, 50), 3),
            [utc(2027, 4, 3, 14, 45), utc(2027, 4, 3, 15, 15), utc(2027, 4, 3, 16, 15)],
        )


def _hm_sets(text: str) -> tuple[set[int], set[int], bool]:
    """Minute and hour sets of a simple 5-field spec (test oracle, independent of spec.py)."""

    def expand(raw: str, top: int) -> set[int]:
        out: set[int] = set()
        for item in raw.split(","):
            base, _, step = item.partition("/")
            lo, hi = (0, top) if base == "*" else (
                (int(base.split("-")[0]), int(base.split("-")[1])) if "-" in base
                else (int(base), int(base))
            )
            out.update(range(lo, hi + 1, int(step or 1)))
        return out

    minute, hour, *rest = text.split()
    assert rest == ["*", "*", "*"]
    hours = expand(hour, 23)
    return expand(minute, 59), hours, hour.startswith("*") or len(hours) == 24


def oracle(text: str, zone: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """The documented DST rules applied by brute force, minute by minute, over (lo, hi]."""
    minutes, hours, wildcard_hour = _hm_sets(text)

    def matches(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours

    out = []
    t = lo.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= hi:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        fire = matches(wall) and (wildcard_hour or local.fold == 0)
        jump = local.utcoffset() - (t - timedelta(minutes=1)).astimezone(zone).utcoffset()
        if jump > timedelta(0) and not wildcard_hour:  # a gap ended at t: its slots fire now
            gap_minutes = int(jump / timedelta(minutes=1))
            fire = fire or any(
                matches(wall - timedelta(minutes=k)) for k in range(1, gap_minutes + 1)
            )
        if fire:
            out.append(t)
        t += timedelta(minutes=1)
    return out


ORACLE_SPECS = [
    "*/15 * * * *",
    "0 * * * *",
    "45 * * * *",
    "30 1 * * *",
    "30 2 * * *",
    "15 2 * * *",
    "45 1 * * *",
    "*/20 1,2 * * *",
    "0,30 0-3 * * *",
    "10 */2 * * *",
    "* 1 * * *",
]


class DstOracleTests(SynchronousTestCase):
    """next_after agrees with a brute-force reading of the rule around every 2027 change."""

    def test_against_oracle(self) -> None:
        for zone, change in TRANSITIONS:
            lo, hi = change - timedelta(hours=5), change + timedelta(hours=5)
            for text in ORACLE_SPECS:
                expected = oracle(text, zone, lo, hi)
                self.assertTrue(expected, f"{text} {zone.key}: window without fires")
                schedule = parse_spec(text)
                probe = lo
                while probe < hi - timedelta(hours=1):
                    want = next((e for e in expected if e > probe), None)
                    if want is not None:
                        got = schedule.next_after(probe, zone, T0)
                        self.assertEqual(got, want, f"{text} {zone.key} after {probe}")
                    probe += timedelta(minutes=11, seconds=17)
                chain, after = [], lo
                while True:
                    nxt = schedule.next_after(after, zone, T0)
                    if nxt is None or nxt > hi:
                        break
                    chain.append(nxt)
                    after = nxt
                self.assertEqual(chain, expected, f"{text} {zone.key}")


class StartEndTests(SynchronousTestCase):
    def test_start_is_inclusive(self) -> None:
        daily = parse_spec("0 9 * * *")
        start = utc(2027, 5, 1, 9)
        self.assertEqual(next_fire(daily, ZUTC, utc(2027, 1, 1), T0, start=start), start)
        self.assertEqual(
            next_fire(daily, ZUTC, utc(2027, 1, 1), T0, start=start + timedelta(seconds=1)),
            utc(2027, 5, 2, 9),
        )
        # A start in the past does not hold anything back.
        self.assertEqual(
            next_fire(daily, ZUTC, utc(2027, 6, 1, 10), T0, start=start), utc(2027, 6, 2, 9)
        )

    def test_end_is_inclusive(self) -> None:
        daily = parse_spec("0 9 * * *")
        end = utc(2027, 5, 2, 9)
        self.assertEqual(next_fire(daily, ZUTC, utc(2027, 5, 2, 8), T0, end=end), end)
        self.assertIsNone(
            next_fire(daily, ZUTC, utc(2027, 5, 2, 8), T0, end=end - timedelta(seconds=1))
        )
        self.assertIsNone(next_fire(daily, ZUTC, utc(2027, 5, 2, 9), T0, end=end))

    def test_every_with_start_keeps_phase(self) -> None:
        every = parse_spec("@every 1h")
        anchor = utc(2027, 1, 1, 0, 20)
        self.assertEqual(
            next_fire(every, ZUTC, anchor, anchor, start=utc(2027, 1, 2, 5, 0)),
            utc(2027, 1, 2, 5, 20),
        )

    def test_first_fire(self) -> None:
        now = utc(2027, 3, 10, 12)
        self.assertEqual(
            first_fire_or_error(parse_spec("0 0 29 2 *"), ZUTC, now, now, None, None),
            utc(2028, 2, 29),
        )
        self.assertEqual(
            first_fire_or_error(parse_spec("@at 2027-03-10T12:00:01Z"), NY, now, now), now
            + timedelta(seconds=1),
        )


class NeverFiresTests(SynchronousTestCase):
    def count_search_steps(self) -> list[int]:
        """Count croniter's search steps: each candidate it tries asks for the distance to
        the nearest allowed value of a field, so the count is the work a refusal costs."""
        steps = [0]
        cls = croniter_module.croniter
        # the staticmethod itself, to put back as it was (self.patch would restore the
        # plain function, which then gets bound to the instance)
        original = cls.__dict__["_get_next_nearest_diff"]

        def counting(*args: object) -> object:
            steps[0] += 1
            return original.__func__(*args)

        cls._get_next_nearest_diff = staticmethod(counting)
        self.addCleanup(setattr, cls, "_get_next_nearest_diff", original)
        return steps

    def test_impossible_cron_is_refused_quickly(self) -> None:
        # The search is bounded to MAX_YEARS_BETWEEN_MATCHES (12 years: at most a few
        # hundred steps here) rather than croniter's default, or year 9999 (tens of
        # thousands): a create request with such a spec is answered at once.
        steps = self.count_search_steps()
        now = utc(2027, 3, 10, 12)
        for text in ("0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 0 31 2 *"):
            steps[0] = 0
            with self.assertRaises(SpecError) as caught:
                first_fire_or_error(parse_spec(text), NY, now, now, None, None)
            self.assertTrue(0 < steps[0] <= 1000, (text, steps[0]))
            self.assertIn("can never fire", str(caught.exception))
            self.assertIn(repr(parse_spec(text).text), str(caught.exception))

    def test_leap_day_across_2100(self) -> None:
        # 2100 is not a leap year: the longest legitimate gap, 8 years.
        self.assertEqual(
            parse_spec("0 0 29 2 *").next_after(utc(2096, 3, 1), ZUTC, T0), utc(2104, 2, 29)
        )

    def test_at_in_the_past(self) -> None:
        now = utc(2027, 3, 10, 12)
        at = parse_spec("@at 2027-03-10T12:00:00Z")
        with self.assertRaises(SpecError) as caught:
            first_fire_or_error(at, ZUTC, now, now, None, None)
        self.assertIn("can never fire", str(caught.exception))
        self.assertIn("not after now", str(caught.exception))
        future = parse_spec("@at 2027-03-11T12:00:00Z")
        with self.assertRaises(SpecError) as caught:
            first_fire_or_error(future, ZUTC, now, now, utc(2027, 3, 12), None)
        self.assertIn("before startDate", str(caught.exception))

    def test_end_before_first_fire(self) -> None:
        now = utc(2027, 3, 10, 12)
        with self.assertRaises(SpecError) as caught:
            first_fire_or_error(parse_spec("0 9 * * *"), ZUTC, now, now, None, utc(2027, 3, 11))
        message = str(caught.exception)
        self.assertIn("can never fire", message)
        self.assertIn("endDate 2027-03-11T00:00:00+00:00", message)
        self.assertIn("2027-03-11T09:00:00+00:00", message)

    def test_naive_datetimes_refused(self) -> None:
        for schedule in (parse_spec("@daily"), parse_spec("@every 1h"),
                         parse_spec("@at 2027-01-01T00:00:00Z")):
            self.assertRaises(ValueError, schedule.next_after, datetime(2027, 1, 1), ZUTC, T0)
        self.assertRaises(
            ValueError, next_fire, parse_spec("@daily"), ZUTC, T0, T0, datetime(2027, 1, 1)
        )


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


PROPERTY_SPECS = [
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 9 * * mon-fri",
    "0 0 1 * *",
    "15,45 */3 * * *",
    "0 0 29 2 *",
    "*/20 * * * * *",
    "10 30 1 * * *",
    "@hourly",
    "@weekly",
]
PROPERTY_ZONES = [NY, LONDON, LORD_HOWE, ZUTC, ZoneInfo("Asia/Kolkata"),
                  ZoneInfo("Pacific/Chatham")]


def _instants() -> st.SearchStrategy[datetime]:
    """Uniform instants plus instants within a few hours of a DST change."""
    uniform = st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    )
    near = st.tuples(
        st.sampled_from([change for _, change in TRANSITIONS]),
        st.integers(min_value=-4 * 3600 * 10**6, max_value=4 * 3600 * 10**6),
    ).map(lambda pair: pair[0] + timedelta(microseconds=pair[1]))
    return st.one_of(uniform, near)


class CronPropertyTests(SynchronousTestCase):
    @settings(database=None, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=st.sampled_from(PROPERTY_SPECS), zone=st.sampled_from(PROPERTY_ZONES),
           after=_instants())
    def test_result_after_and_matching(self, text: str, zone: ZoneInfo, after: datetime) -> None:
        schedule = parse_spec(text)
        result = schedule.next_after(after, zone, T0)
        self.assertIsNotNone(result)
        self.assertGreater(result, after)
        self.assertIs(result.tzinfo, UTC)
        self.assertEqual(result.microsecond, 0)
        wall = result.astimezone(zone).replace(tzinfo=None)
        gap_end = (result - timedelta(seconds=1)).astimezone(zone).utcoffset() < result.astimezone(
            zone
        ).utcoffset()
        if not gap_end:
            self.assertTrue(
                croniter_module.croniter.match(schedule.expr, wall, day_or=schedule.day_or,
                                               second_at_beginning=schedule.seconds),
                f"{text} {zone.key} {result} wall {wall}",
            )
            if not schedule.seconds:
                self.assertEqual(wall.second, 0)
        # No earlier instant with a matching, non-repeated wall time was skipped.
        if not schedule.wildcard_hour and not schedule.seconds:
            previous = result - timedelta(minutes=1)
            while previous > after and previous > result - timedelta(minutes=90):
                local = previous.astimezone(zone)
                if local.fold == 0:
                    self.assertFalse(
                        croniter_module.croniter.match(schedule.expr, local.replace(tzinfo=None),
                                                       day_or=schedule.day_or),
                        f"{text} {zone.key}: skipped {previous}",
                    )
                previous -= timedelta(minutes=1)


class FireTimeCacheTests(SynchronousTestCase):
    def count_croniter_calls(self) -> list[int]:
        calls = [0]
        original = croniter_module.croniter.get_next

        def counting(self_: object, *args: object, **kwargs: object) -> object:
            calls[0] += 1
            return original(self_, *args, **kwargs)

        self.patch(croniter_module.croniter, "get_next", counting)
        return calls

    def test_one_croniter_call_per_distinct_second(self) -> None:
        cache = FireTimeCache()
        schedule = parse_spec("*/5 * * * *")
        calls = self.count_croniter_calls()
        base = utc(2027, 6, 1, 12, 0, 0)
        results = set()
        for job in range(20_000):
            after = base + timedelta(microseconds=job * 37 % 1_000_000)
            results.add(cache.next_fire(schedule, NY, after, T0))
        self.assertEqual(calls[0], 1)
        self.assertEqual(results, {utc(2027, 6, 1, 12, 5)})
        for second in range(10):
            for _ in range(100):
                cache.next_fire(schedule, NY, base + timedelta(seconds=second), T0)
        self.assertEqual(calls[0], 10)  # second 0 was already cached
        self.assertEqual((cache.misses, len(cache)), (10, 10))
        self.assertEqual(cache.hits, 20_000 + 1000 - 10)
        # Another zone or spec is another key.
        cache.next_fire(schedule, LONDON, base, T0)
        cache.next_fire(parse_spec("*/10 * * * *"), NY, base, T0)
        self.assertEqual(calls[0], 12)

    def test_keyed_by_zone(self) -> None:
        cache = FireTimeCache()
        daily = parse_spec("0 9 * * *")
        after = utc(2027, 6, 1)
        self.assertEqual(cache.next_fire(daily, ZUTC, after, T0), utc(2027, 6, 1, 9))
        self.assertEqual(cache.next_fire(daily, NY, after, T0), utc(2027, 6, 1, 13))
        self.assertEqual(cache.next_fire(daily, LONDON, after, T0), utc(2027, 6, 1, 8))

    def test_lru_bound(self) -> None:
        cache = FireTimeCache(maxsize=3)
        schedule = parse_spec("@daily")
        calls = self.count_croniter_calls()
        for second in (0, 1, 2, 0, 3):  # touching 0 makes 1 the oldest
            cache.next_fire(schedule, ZUTC, T0 + timedelta(seconds=second), T0)
        self.assertEqual((calls[0], len(cache)), (4, 3))
        cache.next_fire(schedule, ZUTC, T0, T0)
        self.assertEqual(calls[0], 4)
        cache.next_fire(schedule, ZUTC, T0 + timedelta(seconds=1), T0)
        self.assertEqual(calls[0], 5)

    def test_every_and_at_bypass(self) -> None:
        cache = FireTimeCache()
        every = parse_spec("@every 3d")
        self.assertEqual(cache.next_fire(every, NY, T0 + timedelta(days=4), T0),
                         T0 + timedelta(days=6))
        at = parse_spec("@at 2027-01-02T00:00:00Z")
        self.assertEqual(cache.next_fire(at, NY, T0, T0), utc(2027, 1, 2))
        self.assertEqual(len(cache), 0)

    def test_start_and_end(self) -> None:
        cache = FireTimeCache()
        daily = parse_spec("0 9 * * *")
        start, end = utc(2027, 5, 1, 9), utc(2027, 5, 3, 9)
        self.assertEqual(cache.next_fire(daily, ZUTC, T0, T0, start, end), start)
        self.assertIsNone(cache.next_fire(daily, ZUTC, end, T0, start, end))
        self.assertIsNone(
            cache.next_fire(daily, ZUTC, T0, T0, start, start - timedelta(seconds=1))
        )

    @settings(database=None, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=st.sampled_from(PROPERTY_SPECS), zone=st.sampled_from(PROPERTY_ZONES),
           after=_instants(), start_shift=st.none() | st.integers(-86400, 86400),
           end_shift=st.none() | st.integers(0, 40 * 86400))
    def test_same_answers_as_uncached(
        self, text: str, zone: ZoneInfo, after: datetime, start_shift: int | None,
        end_shift: int | None,
    ) -> None:
        schedule = parse_spec(text)
        start = None if start_shift is None else after + timedelta(seconds=start_shift)
        end = None if end_shift is None else after + timedelta(seconds=end_shift)
        cache = FireTimeCache()
        uncached = next_fire(schedule, zone, after, T0, start, end)
        self.assertEqual(cache.next_fire(schedule, zone, after, T0, start, end), uncached)
        # A warm entry for the same second answers the same.
        later_in_second = after.replace(microsecond=999_999)
        self.assertEqual(
            cache.next_fire(schedule, zone, later_in_second, T0, start, end),
            next_fire(schedule, zone, later_in_second, T0, start, end),
        )


class ReadmeScheduleExamplesTests(SynchronousTestCase):
    """Each example of the README's "Schedules" section, as written there."""

    def test_day_rule(self) -> None:
        # 2024-07-01 is a Monday.
        self.assertEqual(
            fires("0 0 */2 * 1", ZUTC, utc(2024, 7, 1), 2), [utc(2024, 7, 15), utc(2024, 7, 29)]
        )
        self.assertEqual(
            fires("0 0 1 * 1", ZUTC, utc(2024, 7, 28), 3),
            [utc(2024, 7, 29), utc(2024, 8, 1), utc(2024, 8, 5)],
        )

    def test_new_york_2024(self) -> None:
        self.assertEqual(local_strings(fires("30 2 * * *", NY, utc(2024, 3, 9, 12), 1), NY),
                         ["2024-03-10 03:00:00-0400"])
        self.assertEqual(local_strings(fires("30 * * * *", NY, utc(2024, 3, 10, 6), 2), NY),
                         ["2024-03-10 01:30:00-0500", "2024-03-10 03:30:00-0400"])
        self.assertEqual(local_strings(fires("30 1 * * *", NY, utc(2024, 11, 2, 12), 2), NY),
                         ["2024-11-03 01:30:00-0400", "2024-11-04 01:30:00-0500"])
        self.assertEqual(local_strings(fires("0 * * * *", NY, utc(2024, 11, 3, 4, 30), 3), NY),
                         ["2024-11-03 01:00:00-0400", "2024-11-03 01:00:00-0500",
                          "2024-11-03 02:00:00-0500"])

    def test_apia_2011(self) -> None:
        self.assertEqual(local_strings(fires("0 9 * * 1-5", APIA, utc(2011, 12, 29, 20), 1), APIA),
                         ["2012-01-02 09:00:00+1400"])


class ModuleTests(SynchronousTestCase):
    def test_docstring_documents_dst_rule(self) -> None:
        doc = spec_module.__doc__ or ""
        self.assertIn("Spring-forward gap", doc)
        self.assertIn("is **skipped** by a wildcard-hour spec", doc)
        self.assertIn("Long gap", doc)
        self.assertIn("fires **once, at its first occurrence**", doc)
        self.assertIn("hour field is a wildcard", doc)
        self.assertIn("a day must match **both**", doc)
