"""
Tests for scheduler0.schedule.spec: cron specs across DST changes (spring-forward gaps,
long gaps, fall-back overlaps), checked against zoneinfo's transitions and a brute-force
oracle, and the module docstring that documents the rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule import spec as spec_module
from scheduler0.schedule.spec import parse_spec

from .spec_fixtures import (
    APIA,
    LH_FALL,
    LH_SPRING,
    LONDON,
    LORD_HOWE,
    NY,
    NY_FALL,
    NY_SPRING,
    SANTIAGO,
    T0,
    TRANSITIONS,
    fires,
    local_strings,
    utc,
)


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


class ModuleTests(SynchronousTestCase):
    def test_docstring_documents_dst_rule(self) -> None:
        doc = spec_module.__doc__ or ""
        self.assertIn("Spring-forward gap", doc)
        self.assertIn("is **skipped** by a wildcard-hour spec", doc)
        self.assertIn("Long gap", doc)
        self.assertIn("fires **once, at its first occurrence**", doc)
        self.assertIn("hour field is a wildcard", doc)
        self.assertIn("a day must match **both**", doc)
