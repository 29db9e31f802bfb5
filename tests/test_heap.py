"""
The heap service freezes the long-lived objects once the job set has settled after a
change, never while occurrences are about to fire, and never for small changes.
"""

from __future__ import annotations

import gc

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.operability.heap import HeapService


class FakeCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> None:
        self.calls.append("collect")

    def freeze(self) -> None:
        self.calls.append("freeze")

    def get_freeze_count(self) -> int:
        return 42


class HeapServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.jobs = 0
        self.busy = False
        self.gc = FakeCollector()
        self.service = HeapService(self.clock, lambda: self.jobs, lambda seconds: self.busy,
                                   interval=5, collector=self.gc)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    def advance(self, seconds: float) -> None:
        """In check intervals: a LoopingCall skips the checks a single jump passes over."""
        self.clock.pump([5] * int(seconds // 5))

    def test_freezes_once_the_job_set_has_settled(self) -> None:
        self.jobs = 50_000                      # created during the first interval
        self.advance(5)
        self.assertEqual(self.gc.calls, [])     # still changing
        self.advance(5)                   # unchanged for an interval: settled
        self.assertEqual(self.gc.calls, ["unfreeze", "collect", "freeze"])
        self.advance(50)
        self.assertEqual(self.service.freezes, 1)  # nothing changed since

    def test_freezes_without_collecting_while_occurrences_are_due(self) -> None:
        # a million jobs created over a minute are due every second: there is no quiet
        # moment for a full collection, and without a freeze every full collection walks
        # every plan in the middle of a burst
        self.jobs = 50_000
        self.busy = True
        self.advance(10)
        self.assertEqual(self.gc.calls, ["freeze"])
        self.advance(20)
        self.assertEqual(self.gc.calls, ["freeze"])  # frozen: nothing more while busy
        # the first quiet moment reclaims the garbage the quick freeze kept, once
        self.busy = False
        self.advance(5)
        self.assertEqual(self.gc.calls, ["freeze", "unfreeze", "collect", "freeze"])
        self.advance(30)
        self.assertEqual(self.service.freezes, 2)

    def test_small_changes_do_not_freeze_again(self) -> None:
        self.jobs = 100_000
        self.advance(10)
        self.assertEqual(self.service.freezes, 1)
        self.jobs = 104_000                     # under 5 % of 100,000
        self.advance(20)
        self.assertEqual(self.service.freezes, 1)
        self.jobs = 90_000                      # 10 % fewer: deleted jobs are reclaimed
        self.advance(10)
        self.assertEqual(self.service.freezes, 2)

    def test_a_few_jobs_are_not_worth_a_collection(self) -> None:
        self.jobs = 500
        self.advance(60)
        self.assertEqual(self.gc.calls, [])


class RealCollectorTests(SynchronousTestCase):
    def test_frozen_objects_leave_the_collectors_sight(self) -> None:
        self.addCleanup(gc.unfreeze)
        jobs = {"n": 0}
        service = HeapService(Clock(), lambda: jobs["n"], lambda seconds: False)
        kept = [[i] for i in range(5000)]
        jobs["n"] = len(kept)
        service.check()
        self.assertTrue(service.check())
        self.assertGreaterEqual(gc.get_freeze_count(), len(kept))
