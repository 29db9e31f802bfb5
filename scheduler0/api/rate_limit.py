"""
Per-client request rate limiting (PRODUCT §4: 429 rate limited; C{RateLimitPerMinute}).

One token bucket per client: C{per_minute} tokens, refilled continuously, so a client may
burst up to C{per_minute} requests and then sustain C{per_minute} a minute. The bucket is
kept as a single number per client (the GCRA form of a token bucket: the time at which the
bucket would be full again), which makes both the check and the memory bound simple: a
client whose bucket is full again is indistinguishable from one never seen, so it is
forgotten.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

# A request this close to its token's arrival is let through: clock readings near today's
# epoch (1.7e9 s) are only good to about 2e-7 s, and a rate limiter need not be finer.
_TOLERANCE_NS = 1_000
_NS = 10**9


class RateLimiter:
    """
    Token bucket per client IP: C{per_minute} tokens, refilled continuously; 0 disables it.

    Memory is bounded: buckets idle long enough to be full again are dropped, in a sweep
    that runs once a minute of clock time or when the table has doubled since the last
    sweep (amortised O(1) per check). So the table holds at most about twice the clients
    whose bucket is not yet full (no more than those seen in the last minute), plus 1024.

    @param clock: an C{IReactorTime}; only C{seconds()} is used.
    """

    MIN_SWEEP = 1024

    def __init__(self, per_minute: int, clock: Any) -> None:
        if per_minute < 0:
            raise ValueError(f"per_minute must be 0 (disabled) or more, not {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        # Times are integers in units of 1/per_minute ns, so a token is exactly 60e9 units
        # and a thousand tokens add up exactly (sums of 0.12 s in floating point do not).
        self._interval = 60 * _NS
        self._burst = self._interval * (per_minute - 1)  # how far ahead a client may run
        self._tolerance = _TOLERANCE_NS * per_minute
        self._full_at: dict[str, int] = {}  # client -> when its bucket is full again
        self._sweep_size = self.MIN_SWEEP
        self._sweep_at = self._now() + self._interval * per_minute  # a minute on

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def __len__(self) -> int:
        """Clients currently tracked (for tests and the curious)."""
        return len(self._full_at)

    def check(self, client: str) -> float | None:
        """
        Take a token for C{client}. None: allowed. Otherwise the exact number of seconds
        until a token is available (> 0); the caller rounds it with L{retry_after} for the
        C{Retry-After} header. A refused request takes no token.
        """
        if not self.per_minute:
            return None
        now = self._now()
        self._maybe_sweep(now)
        full_at = max(self._full_at.get(client, now), now)
        wait = full_at - self._burst - now
        if wait > self._tolerance:
            return wait / self.per_minute / _NS
        self._full_at[client] = full_at + self._interval
        return None

    def _now(self) -> int:
        return round(self._clock.seconds() * _NS) * self.per_minute

    def _maybe_sweep(self, now: int) -> None:
        if len(self._full_at) < self._sweep_size and now < self._sweep_at:
            return
        self._full_at = {c: t for c, t in self._full_at.items() if t > now}
        self._sweep_size = max(self.MIN_SWEEP, 2 * len(self._full_at))
        self._sweep_at = now + self._interval * self.per_minute


def retry_after(seconds: float) -> int:
    """The C{Retry-After} value for a delay from L{RateLimiter.check}: whole seconds,
    rounded up (waiting less would be refused again), at least 1."""
    return max(1, math.ceil(seconds - _TOLERANCE_NS / _NS))


def client_key(host: str) -> str:
    """
    The bucket key for a peer address: an IPv4 address as is, an IPv6 address as its /64
    (one host usually owns a whole /64, so per-address buckets would be trivially evaded),
    an IPv4-mapped IPv6 address as the IPv4 one. Anything unparseable is used verbatim.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
