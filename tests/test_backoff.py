"""Tests for scheduler0.execution.backoff.retry_delay."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.backoff import retry_delay


class FixedFactor(random.Random):
    """Returns one end of the jitter range, to pin the exponential part exactly."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return a if self.end == "low" else b


class RetryDelayTests(SynchronousTestCase):
    def test_doubles_from_base(self) -> None:
        rng = FixedFactor("low")
        delays = [retry_delay(n, 5.0, 1000.0, rng, jitter=0.0) for n in range(1, 6)]
        self.assertEqual(delays, [5.0, 10.0, 20.0, 40.0, 80.0])

    def test_capped_before_jitter(self) -> None:
        self.assertEqual(retry_delay(20, 5.0, 300.0, FixedFactor("low")), 240.0)
        self.assertEqual(retry_delay(20, 5.0, 300.0, FixedFactor("high")), 360.0)

    def test_jitter_range_is_symmetric(self) -> None:
        rng = FixedFactor("low")
        retry_delay(1, 1.0, 10.0, rng, jitter=0.25)
        self.assertEqual(rng.ranges, [(0.75, 1.25)])

    def test_jitter_spreads(self) -> None:
        rng = random.Random(7)
        delays = {retry_delay(3, 1.0, 100.0, rng) for _ in range(50)}
        self.assertGreater(len(delays), 40)
        self.assertTrue(all(3.2 <= d <= 4.8 for d in delays), delays)

    def test_zero_base_is_zero(self) -> None:
        self.assertEqual(retry_delay(4, 0.0, 300.0, random.Random(1)), 0.0)

    def test_huge_attempt_does_not_overflow(self) -> None:
        self.assertEqual(retry_delay(100_000, 1.0, 60.0, FixedFactor("high"), jitter=0.0), 60.0)

    def test_bad_arguments(self) -> None:
        rng = random.Random(1)
        self.assertRaises(ValueError, retry_delay, 0, 1.0, 10.0, rng)
        self.assertRaises(ValueError, retry_delay, 1, -1.0, 10.0, rng)
        self.assertRaises(ValueError, retry_delay, 1, 1.0, 10.0, rng, jitter=1.5)

    @given(attempt=st.integers(1, 2000),
           base=st.floats(0, 1e6, allow_nan=False),
           cap=st.floats(0, 1e7, allow_nan=False),
           jitter=st.floats(0, 1, allow_nan=False),
           seed=st.integers(0, 2**32))
    def test_within_jitter_of_capped_exponential(self, attempt: int, base: float, cap: float,
                                                 jitter: float, seed: int) -> None:
        delay = retry_delay(attempt, base, cap, random.Random(seed), jitter)
        nominal = min(cap, base * 2.0 ** min(attempt - 1, 1023))
        tolerance = 1e-9 * max(nominal, 1.0)
        self.assertGreaterEqual(delay, nominal * (1 - jitter) - tolerance)
        self.assertLessEqual(delay, nominal * (1 + jitter) + tolerance)
        self.assertLessEqual(delay, cap * (1 + jitter) + tolerance)
