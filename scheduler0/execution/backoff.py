"""
Exponential backoff with jitter, shared by callback retries and the circuit breaker.

Jitter matters more than the exact curve: when a receiver recovers, every job that failed
against it would otherwise retry in the same instant and knock it over again.
"""

from __future__ import annotations

import random

# 2.0 ** 1023 is the largest power of two a float holds; past it the delay is the cap anyway.
_MAX_EXPONENT = 1023


def retry_delay(attempt: int, base: float, cap: float, rng: random.Random,
                jitter: float = 0.2) -> float:
    """
    Delay before attempt C{attempt + 1} after C{attempt} failed attempts (C{attempt >= 1}):
    C{base * 2**(attempt-1)}, capped at C{cap}, then multiplied by a uniform factor in
    C{[1-jitter, 1+jitter]} (jitter spreads retries so a recovering receiver is not hit by a
    thundering herd). C{base} 0 gives 0.

    The cap applies before the jitter, so capped delays still spread out: with a cap of
    300 s and the default jitter they fall anywhere in [240, 360].
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, not {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be between 0 and 1, not {jitter}")
    # A float product overflows to inf rather than raising, and min() then picks the cap.
    exponential = base * 2.0 ** min(attempt - 1, _MAX_EXPONENT) if base else 0.0
    delay = min(cap, exponential)
    return delay * rng.uniform(1 - jitter, 1 + jitter)
