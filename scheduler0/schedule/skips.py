"""
Occurrences a misfire policy did not run: counted by reason and logged, rate-limited.

A stalled node may skip thousands of occurrences a second; the counts feed
C{scheduler0_occurrences_skipped_total} and the health snapshot, and the log gets one line
at the first skip, then at most one per L{SKIP_LOG_INTERVAL}, each saying how many since the
previous one, so together the lines account for every skip.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

log = Logger(namespace="scheduler0.schedule.service")

#: Seconds between two log lines about skipped occurrences.
SKIP_LOG_INTERVAL = 10.0

_WHY = {"late": "the scheduler ran more than 1 s behind",
        "downtime": "they were due while the node was down or halted"}


class SkippedOccurrences:
    """
    @param clock: C{IReactorTime}.
    @param running: whether the scheduler still runs (no log timer is left behind a stop).
    """

    def __init__(self, clock: Any, running: Callable[[], bool]) -> None:
        self._clock = clock
        self._running = running
        self.counts: dict[str, int] = {"late": 0, "downtime": 0}
        self.last_at: float | None = None
        self._unlogged: dict[str, int] = {}
        self._call: Any = None

    def count(self, reason: str, skipped: int) -> None:
        if skipped <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + skipped
        self.last_at = self._clock.seconds()
        self._unlogged[reason] = self._unlogged.get(reason, 0) + skipped
        if self._call is None or not self._call.active():
            self._call = self._clock.callLater(0, self._log)

    def flush(self) -> None:
        """Log what is not logged yet (the scheduler is stopping)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._log()

    def _log(self) -> None:
        self._call = None
        if not self._unlogged:
            return
        counts, self._unlogged = self._unlogged, {}
        for reason, count in sorted(counts.items()):
            log.warn(
                "skipped {count} occurrences by their misfire policy ({reason}: {why}); "
                "see scheduler0_occurrences_skipped_total", count=count, reason=reason,
                why=_WHY.get(reason, reason))
        if self._running():
            self._call = self._clock.callLater(SKIP_LOG_INTERVAL, self._log)
