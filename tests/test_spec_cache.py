"""
Tests for scheduler0.schedule.spec: the fire-time cache (one croniter call per distinct
question, keyed by zone, bounded, the same answers as without it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import croniter as croniter_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import FireTimeCache, next_fire, parse_spec

from .spec_fixtures import LONDON, NY, PROPERTY_SPECS, PROPERTY_ZONES, T0, ZUTC, _instants, utc


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
