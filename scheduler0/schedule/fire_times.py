"""When a parsed spec fires next, within a job's start/end dates, and a cache shared by jobs.

The scheduler asks "next fire after t" for every job on every round; jobs with the same cron
spec and zone ask the same question, so :class:`FireTimeCache` answers it once per second.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .base import (
    _EPOCH,
    _ONE_MICROSECOND,
    _ONE_SECOND,
    LAST_INSTANT,
    Schedule,
    SpecError,
    _require_aware,
)
from .cron import MAX_YEARS_BETWEEN_MATCHES, CronSchedule
from .intervals import AtSchedule, EverySchedule


def _effective_after(after: datetime, start: datetime | None) -> datetime:
    _require_aware(after, "after")
    if start is not None:
        try:
            just_before = _require_aware(start, "start") - _ONE_MICROSECOND
        except OverflowError:  # start is the first representable instant: after is later
            return after
        if just_before > after:
            return just_before
    return after


def next_fire(
    spec: Schedule,
    zone: ZoneInfo,
    after: datetime,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime | None:
    """First fire > after that is >= start and <= end (start/end inclusive), else None."""
    result = spec.next_after(_effective_after(after, start), zone, anchor)
    if result is None or (end is not None and result > _require_aware(end, "end")):
        return None
    return result


def first_fire_or_error(
    spec: Schedule,
    zone: ZoneInfo,
    now: datetime,
    anchor: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> datetime:
    """next_fire at job creation, turning "never" into a SpecError that says why."""
    first = next_fire(spec, zone, now, anchor, start, end)
    if first is not None:
        return first
    unbounded = next_fire(spec, zone, now, anchor, start, None)
    if unbounded is not None and end is not None:
        raise SpecError(
            f"schedule {spec.text!r} can never fire: endDate {end.isoformat()} is before its "
            f"first fire time {unbounded.isoformat()}"
        )
    if isinstance(spec, AtSchedule):
        if start is not None and start > now:
            reason = f"it is before startDate {start.isoformat()}"
        else:
            reason = f"it is not after now ({now.isoformat()})"
        raise SpecError(f"schedule {spec.text!r} can never fire: {reason}")
    searched_from = start if start is not None and start > now else now
    if isinstance(spec, EverySchedule):  # it only runs out past year 9999
        raise SpecError(
            f"schedule {spec.text!r} can never fire: its first fire after "
            f"{searched_from.isoformat()} would be after the end of year 9999 (the latest "
            "time a schedule can reach)"
        )
    if searched_from.year + MAX_YEARS_BETWEEN_MATCHES >= LAST_INSTANT.year:
        raise SpecError(
            f"schedule {spec.text!r} can never fire: no matching time between "
            f"{searched_from.isoformat()} and the end of year 9999 (the latest time a "
            "schedule can reach)"
        )
    raise SpecError(
        f"schedule {spec.text!r} can never fire: no matching time within "
        f"{MAX_YEARS_BETWEEN_MATCHES} years (e.g. '0 0 30 2 *', February 30th, does not exist)"
    )


def _zone_key(zone: ZoneInfo) -> str:
    return getattr(zone, "key", None) or repr(zone)


class FireTimeCache:
    """Shares cron next-fire computations between jobs with the same spec and zone.

    Results depend only on (spec text, zone, whole second of the effective `after`) because
    every cron slot is a whole second, so 200,000 jobs on one spec cost one croniter search
    per distinct second. Bounded LRU. @every/@at bypass it: they are O(1) already.

    An OrderedDict rather than ``functools.lru_cache``: the key must hold only the spec text
    and zone name (not the schedule and zone objects the search needs), and ``clear`` keeps
    the hit/miss counts. No lock: it is only used from the reactor thread.
    """

    def __init__(self, maxsize: int = 65_536) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str, int], datetime | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def next_fire(
        self,
        spec: Schedule,
        zone: ZoneInfo,
        after: datetime,
        anchor: datetime,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> datetime | None:
        """Same answer as :func:`next_fire`, computed once per (spec, zone, second)."""
        if not isinstance(spec, CronSchedule):
            return next_fire(spec, zone, after, anchor, start, end)
        effective = _effective_after(after, start)
        second = (effective - _EPOCH) // _ONE_SECOND
        key = (spec.text, _zone_key(zone), second)
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            result = self._entries[key]
        else:
            result = spec.next_after(_EPOCH + timedelta(seconds=second), zone, anchor)
            self.misses += 1
            self._entries[key] = result
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        if result is None or (end is not None and result > _require_aware(end, "end")):
            return None
        return result
