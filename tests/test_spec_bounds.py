"""
Tests for scheduler0.schedule.spec: a job's start and end dates, and specs that never fire
(refused quickly, with a message).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import croniter as croniter_module
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import SpecError, first_fire_or_error, next_fire, parse_spec

from .spec_fixtures import NY, T0, ZUTC, utc


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
