"""
Tests for scheduler0.schedule.spec: cron specs (five and six fields, names, lists, ranges,
steps, descriptors), the day-of-month/day-of-week rule, a property test of the next fire
time, and the README's schedule examples as written there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import croniter as croniter_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import CronSchedule, Schedule, first_fire_or_error, parse_spec

from .spec_fixtures import (
    APIA,
    NY,
    PROPERTY_SPECS,
    PROPERTY_ZONES,
    T0,
    UTC,
    ZUTC,
    _instants,
    fires,
    local_strings,
    utc,
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
        # The example: odd dates that are Mondays, not odd dates or Mondays.
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
