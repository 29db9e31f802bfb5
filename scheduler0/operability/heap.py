"""
Keeps Python's cyclic garbage collector off the jobs' plans.

A node holds a few long-lived objects per job (its plan) and, while a burst of occurrences
is delivered, a flood of short-lived ones (occurrences, records, request bodies). Some of
those live long enough (a POST's round trip) to reach the oldest generation, and every few
hundred thousand of them CPython runs a full collection that walks every object, plans
included: about 150 ms at 200,000 jobs, several times per burst, each one a stall of the
reactor that makes every callback of the burst later.

This service moves the long-lived objects out of the collector's sight with
C{gc.freeze()} once the set of jobs has settled after a change, at a moment when no
occurrence is due. It first unfreezes and runs one full collection, so garbage that was
frozen earlier is still reclaimed: the cost is one full collection per change of the job
set, taken when nothing is waiting for the reactor.

A node whose jobs are due every second (a million jobs created over a minute) never has such
a moment. There it freezes at once without collecting (C{gc.freeze()} only moves lists, it
walks nothing), accepting that the little garbage alive at that instant stays until the next
quiet moment, when the full pass runs and reclaims it.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: a change of the job set smaller than this does not call for a new freeze
MIN_CHANGE = 1000
#: nor one smaller than this fraction of the jobs
MIN_CHANGE_FRACTION = 0.05
#: no freeze when an occurrence is due within this many seconds (the collection stalls
#: the reactor)
QUIET = 1.0


class HeapService(Service):
    """
    @param jobs: how many jobs this node plans (the scheduler's plan count).
    @param busy: whether an occurrence is due within C{QUIET} seconds or work is queued.
    @param collector: the C{gc} module (tests pass a fake).
    """

    def __init__(self, clock: Any, jobs: Callable[[], int], busy: Callable[[float], bool],
                 interval: float = 5.0, collector: Any = gc,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._jobs = jobs
        self._busy = busy
        self._gc = collector
        self._timer = timer
        self._interval = interval
        self._frozen_at: int | None = None  # job count at the last freeze
        self._uncollected = False  # the last freeze skipped the collection (never quiet)
        self._seen: int | None = None  # job count at the previous check
        self.freezes = 0
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock

    def startService(self) -> None:
        Service.startService(self)
        self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()

    def check(self) -> bool:
        """Freeze if the job set changed enough and has settled; whether it froze."""
        jobs = self._jobs()
        seen, self._seen = self._seen, jobs
        if seen != jobs:
            return False  # still changing: wait until it settles
        base = self._frozen_at or 0
        changed = abs(jobs - base) >= max(MIN_CHANGE, MIN_CHANGE_FRACTION * base)
        if not changed and not self._uncollected:
            return False
        busy = self._busy(QUIET)
        if busy and not changed:
            return False  # reclaim what the quick freeze kept at a quiet moment
        started = self._timer()
        if busy:
            self._gc.freeze()
        else:
            self._gc.unfreeze()
            self._gc.collect()
            self._gc.freeze()
        self._uncollected = busy
        self._frozen_at = jobs
        self.freezes += 1
        log.info("froze {objects} long-lived objects for {jobs} jobs out of the garbage "
                 "collector's sight in {ms:.0f} ms{how}", objects=self._gc.get_freeze_count(),
                 jobs=jobs, ms=(self._timer() - started) * 1000,
                 how=" (no collection: occurrences are always due)" if busy else "")
        return True
