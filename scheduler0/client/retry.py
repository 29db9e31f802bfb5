"""
When a refused request is sent again: 429 and 503 mean the node did not take it (rate
limit, connection cap, no Raft leader, a job not scheduled yet), so the client waits what
C{Retry-After} says and tries again, a bounded number of times.

The one 503 that may follow a write which still happens (C{the write was not applied within
N s; it may still be applied, check before retrying}) is not retried for a request that is
not idempotent (creating jobs, running one now), so no retry can create a job twice.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

RETRYABLE = frozenset({429, 503})
MAYBE_APPLIED = "may still be applied"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a C{Retry-After} value (delta seconds or an HTTP date);
    None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """
    @param attempts: tries in all, the first included (1: never retry).
    @param max_delay: the longest wait the client accepts; a C{Retry-After} past it ends
        the retries at once (the error is raised) rather than waiting less than asked.
    @param base_delay: without C{Retry-After}, wait C{base_delay * 2**n} (capped).
    """

    attempts: int = 5
    max_delay: float = 30.0
    base_delay: float = 0.5

    def should_retry(self, status: int, message: str, attempt: int, idempotent: bool) -> bool:
        """Whether try number C{attempt} (from 1), answered C{status}, is tried again."""
        if status not in RETRYABLE or attempt >= self.attempts:
            return False
        return idempotent or MAYBE_APPLIED not in message

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before try C{attempt + 1}; None when the node asks for longer
        than C{max_delay}."""
        if retry_after is None:
            return min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return retry_after if retry_after <= self.max_delay else None


NO_RETRY = RetryPolicy(attempts=1)
