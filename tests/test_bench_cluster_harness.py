"""
The cluster harness's analysis (C{bench/cluster_harness.py}): what it reports about slots
received more than once and about where a node's threads spend their time must be right, or
BENCHMARKS.md says the wrong thing about the cluster.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def _harness() -> Any:
    if BENCH not in sys.path:
        sys.path.insert(0, BENCH)
    spec = importlib.util.spec_from_file_location("cluster_harness",
                                                  os.path.join(BENCH, "cluster_harness.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _harness()
T0 = 1_800_000_000.0  # window 0 is [T0, T0 + 60)


def dump(hits: list[tuple[int, str, float, float]]) -> dict[str, Any]:
    """A receiver dump of (job id, executionId, scheduled, received) hits, one POST each."""
    text = harness.seed.rfc3339
    return {"ids": [h[0] for h in hits], "execs": [h[1] for h in hits],
            "scheds": [text(h[2]) for h in hits], "recv_index": list(range(len(hits))),
            "posts": [(h[3], 1, True, True) for h in hits]}


class SlotCopiesTests(SynchronousTestCase):
    def test_copies_counted_per_window_by_execution_id(self) -> None:
        """A slot re-sent with its executionId is a same-id copy; one sent under a new id is
        a new-id copy; each lands in the window of its scheduled time."""
        bases = {1: T0 - 50, 2: T0 - 40}
        hits = [
            (1, "1-a", T0 + 10, T0 + 10.2),
            (1, "1-a", T0 + 10, T0 + 12.0),   # re-sent by a new leader
            (1, "1-a", T0 + 10, T0 + 13.0),   # and once more
            (2, "2-a", T0 + 20, T0 + 20.1),
            (1, "1-b", T0 + 70, T0 + 70.3),
            (1, "1-x", T0 + 70, T0 + 70.4),   # the same slot under another id
            (2, "2-b", T0 + 80, T0 + 80.1),
        ]
        windows = harness.slot_copies(dump(hits), bases, T0, 2)
        first, second = windows
        self.assertEqual((first["slots_more_than_once"], first["extra_copies"],
                          first["extra_copies_same_execution_id"],
                          first["extra_copies_new_execution_id"], first["max_copies"]),
                         (1, 2, 2, 0, 3))
        self.assertEqual((second["slots_more_than_once"], second["extra_copies"],
                          second["extra_copies_same_execution_id"],
                          second["extra_copies_new_execution_id"], second["max_copies"]),
                         (1, 1, 0, 1, 2))
        self.assertAlmostEqual(first["lateness_s"]["max"], 3.0, places=3)
        self.assertAlmostEqual(second["lateness_s"]["max"], 0.4, places=3)

    def test_hits_outside_the_windows_or_of_unknown_jobs_are_left_out(self) -> None:
        bases = {1: T0 - 50}
        hits = [(1, "1-early", T0 - 5, T0 - 4), (9, "9-a", T0 + 5, T0 + 6),
                (1, "1-late", T0 + 130, T0 + 131)]
        [window] = harness.slot_copies(dump(hits), bases, T0, 1)
        self.assertEqual((window["max_copies"], window["lateness_s"]["max"]), (0, None))


class VerdictTests(SynchronousTestCase):
    def result(self, **window: Any) -> dict[str, Any]:
        windows = [{"window": w, "max": 1, "extra_copies_new_execution_id": 0} for w in range(3)]
        windows[1].update(window)
        return {"windows": windows, "misses": 0, "lateness_s": {"p99": 0.5},
                "kill": {"new_leader_after_s": 1.5}}

    def test_copies_in_the_minute_of_the_kill_are_allowed_when_they_share_the_id(self) -> None:
        verdict = harness.seed_verdict(self.result(max=2), kill_minute=2)
        self.assertTrue(all(verdict.values()), verdict)

    def test_a_copy_under_a_new_execution_id_fails(self) -> None:
        verdict = harness.seed_verdict(self.result(max=2, extra_copies_new_execution_id=1),
                                       kill_minute=2)
        self.assertFalse(verdict["copies_share_the_execution_id"])

    def test_copies_outside_the_minute_of_the_kill_fail(self) -> None:
        verdict = harness.seed_verdict(self.result(max=2), kill_minute=3)
        self.assertFalse(verdict["each_slot_once_outside_the_kill_minute"])


class StackSummaryTests(SynchronousTestCase):
    def test_idle_and_busy_samples_per_thread(self) -> None:
        """Samples ending in epoll or a thread-pool wait are idle; the rest are busy and
        attributed to the frames they were in."""
        lines = [
            "thread (1): MainThread;run (twisted/internet/base.py:686);"
            "EPollReactor.doPoll (twisted/internet/epollreactor.py:227) 60",
            "thread (1): MainThread;run (twisted/internet/base.py:686);"
            "RaftCommandLog._tick (scheduler0/consensus/raft.py:423);"
            "dumps (pysyncobj/pickle.py:77) 30",
            "thread (1): MainThread;run (twisted/internet/base.py:686);"
            "SchedulerService._plan_created (scheduler0/schedule/service.py:259) 10",
            "thread (2): PoolThread-writer;work (twisted/python/threadpool.py:1);"
            "get (queue.py:171);wait (threading.py:320) 50",
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        self.addCleanup(os.unlink, f.name)
        summary = harness.summarize_stacks(f.name, top=5)
        main = summary["MainThread"]
        self.assertEqual((main["samples"], main["busy_percent"]), (100, 40.0))
        self.assertEqual(dict(main["busy_in"])[
            "RaftCommandLog._tick (scheduler0/consensus/raft.py:423)"], 75.0)
        self.assertEqual(main["busy_self"][0], ["dumps (pysyncobj/pickle.py:77)", 75.0])
        self.assertEqual(summary["PoolThread-writer"]["busy_percent"], 0.0)
