"""
The cluster harness's analysis (C{bench/cluster_harness.py}): what it reports about slots
received more than once, about which node sent what (the spread of execution over the
followers, a killed node's share moving to the others), about the targets and about where a
node's threads spend their time must be right, or BENCHMARKS.md says the wrong thing about
the cluster.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import sys
import tempfile
from typing import Any, Sequence

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


def dump(hits: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """A receiver dump of (job id, executionId, scheduled, received[, sending node]) hits,
    one POST each (a hit without a node came without C{X-Scheduler0-Node})."""
    text = harness.seed.rfc3339
    return {"ids": [h[0] for h in hits], "execs": [h[1] for h in hits],
            "scheds": [text(h[2]) for h in hits], "recv_index": list(range(len(hits))),
            "posts": [(h[3], 1, True, True) for h in hits],
            "post_nodes": [h[4] if len(h) > 4 else None for h in hits]}


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
    """The issue's criteria, with a follower killed in minute 2 and the leader in minute 4."""

    def result(self, **changes: Any) -> dict[str, Any]:
        """Five clean minutes of two executing followers; C{changes} maps a minute to the
        fields it changes."""
        windows = []
        for w in range(5):
            windows.append({"window": w, "max": 1, "extra_copies_new_execution_id": 0,
                            "lateness_s": {"p99": 0.5}, "leader_hits": 0, "alive_nodes": 3,
                            "share_max_over_mean": 1.02})
        for minute in (2, 3, 4):  # a node died or came back in these minutes
            windows[minute - 1]["alive_nodes"] = None
        windows[4]["alive_nodes"] = 2
        for minute, fields in changes.items():
            windows[int(minute[1:]) - 1].update(fields)
        return {"windows": windows, "misses": 0, "lateness_s": {"p99": 0.5},
                "kill": {"role": "leader", "new_leader_after_s": 1.5}}

    def verdict(self, result: dict[str, Any]) -> dict[str, bool]:
        return harness.seed_verdict(result, (2, 4))

    def test_a_clean_run_meets_every_target(self) -> None:
        verdict = self.verdict(self.result())
        self.assertTrue(all(verdict.values()), verdict)

    def test_copies_in_either_kill_minute_are_allowed_when_they_share_the_id(self) -> None:
        verdict = self.verdict(self.result(m2={"max": 2}, m4={"max": 3}))
        self.assertTrue(all(verdict.values()), verdict)

    def test_a_copy_under_a_new_execution_id_fails_even_in_a_kill_minute(self) -> None:
        verdict = self.verdict(self.result(m2={"max": 2, "extra_copies_new_execution_id": 1}))
        self.assertFalse(verdict["copies_share_the_execution_id"])

    def test_copies_outside_the_kill_minutes_fail(self) -> None:
        """Minute 3 (the killed follower came back) is not a failover: no slot twice."""
        verdict = self.verdict(self.result(m3={"max": 2}))
        self.assertFalse(verdict["each_slot_once_outside_the_kill_minutes"])

    def test_p99_over_1s_is_allowed_only_in_a_kill_minute(self) -> None:
        self.assertTrue(self.verdict(self.result(m4={"lateness_s": {"p99": 6.0}}))[
            "p99_lateness_le_1s_outside_the_kill_minutes"])
        self.assertFalse(self.verdict(self.result(m5={"lateness_s": {"p99": 1.2}}))[
            "p99_lateness_le_1s_outside_the_kill_minutes"])

    def test_a_miss_fails(self) -> None:
        result = self.result()
        result["misses"] = 1
        self.assertFalse(self.verdict(result)["no_missed_slot"])

    def test_the_leader_sending_in_a_steady_minute_fails(self) -> None:
        """Minute 1 had three nodes up throughout: the leader must send nothing; in minute 4
        leadership moved, so hits sent by a leader there are not held against it."""
        self.assertTrue(self.verdict(self.result(m4={"leader_hits": 900}))[
            "leader_executes_nothing"])
        self.assertFalse(self.verdict(self.result(m1={"leader_hits": 1}))[
            "leader_executes_nothing"])

    def test_a_node_more_than_10_percent_above_the_mean_in_a_steady_minute_fails(self) -> None:
        self.assertTrue(self.verdict(self.result(m3={"share_max_over_mean": 2.0}))[
            "no_node_more_than_10pct_above_the_mean"])
        self.assertFalse(self.verdict(self.result(m5={"share_max_over_mean": 1.11}))[
            "no_node_more_than_10pct_above_the_mean"])

    def test_a_slow_election_fails(self) -> None:
        result = self.result()
        result["kill"]["new_leader_after_s"] = 3.5
        self.assertFalse(self.verdict(result)["new_leader_within_3s"])


T1 = T0 + 60  # window 1 (minute 2) starts


class NodeCountsTests(SynchronousTestCase):
    def test_hits_counted_per_sending_node_per_minute_and_in_total(self) -> None:
        """Each hit counts for the node named by its POST's X-Scheduler0-Node, in the minute
        of its scheduled time; a POST without the header counts as "none"."""
        bases = {1: T0 - 50, 2: T0 - 40, 3: T0 - 30}
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "2"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (3, "3-a", T0 + 30, T0 + 30.1, "3"), (1, "1-b", T1 + 10, T1 + 10.1, "2"),
                (2, "2-b", T1 + 20, T1 + 20.1, "2"), (3, "3-b", T1 + 30, T1 + 30.2),
                (9, "9-a", T0 + 5, T0 + 5.1, "2")]  # not one of the bench's jobs
        counts = harness.node_counts(dump(hits), bases, T0, 2)
        self.assertEqual(counts["per_window"], [{"2": 1, "3": 2}, {"2": 2, "none": 1}])
        self.assertEqual(counts["total"], {"2": 3, "3": 2, "none": 1})

    def test_hits_sent_by_the_leader_of_the_moment(self) -> None:
        """Node 1 leads until T0 + 65, node 2 after: a hit counts as the leader's when its
        sender led when it arrived."""
        bases = {1: T0 - 50, 2: T0 - 40}
        timeline = [(T0 - 5, "1"), (T0 + 65, "2")]
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "1"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (1, "1-b", T1 + 10, T1 + 10.1, "1"), (2, "2-b", T1 + 20, T1 + 20.1, "2")]
        counts = harness.node_counts(dump(hits), bases, T0, 2, timeline)
        self.assertEqual(counts["leader_hits"], [1, 1])

    def test_share_is_the_busiest_node_over_the_mean_of_the_expected_executors(self) -> None:
        self.assertEqual(harness.share({"2": 500, "3": 500}, 2), 1.0)
        self.assertEqual(harness.share({"2": 600, "3": 400}, 2), 1.2)
        # one of two live followers sent nothing (or the leader sent everything)
        self.assertEqual(harness.share({"1": 1000}, 2), 2.0)
        self.assertEqual(harness.share({"1": 1000}, 1), 1.0)
        self.assertIsNone(harness.share({}, 2))

    def test_nodes_alive_and_expected_to_execute_per_minute(self) -> None:
        """Three nodes; one killed in minute 2 and back in minute 3, another killed in minute
        4: only minutes 1 and 5 had the same nodes throughout."""
        kills = [(T0 + 119, T0 + 139), (T0 + 239, None)]
        alive = harness.alive_per_window(3, kills, T0, 5)
        self.assertEqual(alive, [3, None, None, None, 2])
        self.assertEqual([harness.executors(a) for a in alive], [2, None, None, None, 1])
        self.assertEqual(harness.executors(1), 1)

    def test_the_follower_the_receiver_heard_most_from_is_killed(self) -> None:
        self.assertEqual(harness.executing_follower(["2", "3"], {"1": 5, "2": 3, "3": 9}), "3")
        self.assertIsNone(harness.executing_follower(["2", "3"], {"1": 20000}))


class KillEffectTests(SynchronousTestCase):
    """Node 2 executes job 1, node 3 job 2 (slots at T0 + 10 + 60k and T0 + 20 + 60k);
    node 3 is killed at T0 + 75 (minute 2), before its slot at T0 + 80."""

    bases = {1: T0 - 50, 2: T0 - 40}

    def test_the_share_moves_and_the_node_comes_back(self) -> None:
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "2"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (1, "1-b", T1 + 10, T1 + 10.1, "2"),
                (2, "2-b", T1 + 20, T1 + 23.0, "2"),  # node 2 took job 2 over, 3 s late
                (1, "1-c", T0 + 130, T0 + 130.1, "2"),
                (2, "2-c", T0 + 140, T0 + 140.1, "3")]  # restarted at T0 + 100, owns it again
        effect = harness.kill_effect(dump(hits), self.bases, T0, 3, "3", T0 + 75, T0 + 100)
        self.assertEqual(effect["kill_minute"], 2)
        self.assertEqual(effect["jobs_it_had_delivered"], 1)
        self.assertEqual((effect["their_next_slot"]["delivered"],
                          effect["their_next_slot"]["missing"]), (1, 0))
        self.assertAlmostEqual(effect["their_next_slot"]["lateness_s"]["max"], 3.0, places=3)
        self.assertEqual(effect["their_next_slot"]["delivered_by"], {"2": 1})
        self.assertEqual(effect["others_first_delivered_one_after_s"], 8.0)
        self.assertEqual(effect["others_deliver_all_its_jobs_from_minute"], 2)
        self.assertEqual(effect["delivers_again_from_minute"], 3)

    def test_a_node_back_before_its_next_slot_keeps_its_share(self) -> None:
        """Node 3 (jobs 2 and 3) sent its slots of minute 2 and died; node 2 sent one of
        them again (same id) 4.5 s after the kill; node 3, restarted, sent the next ones
        itself: its share never moved for a whole minute, and the report says so instead of
        naming a minute."""
        bases = {**self.bases, 3: T0 - 30}
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "2"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (3, "3-a", T0 + 30, T0 + 30.1, "3"),
                (1, "1-b", T1 + 10, T1 + 10.1, "2"), (2, "2-b", T1 + 20, T1 + 20.1, "3"),
                (3, "3-b", T1 + 30, T1 + 30.1, "3"), (2, "2-b", T1 + 20, T1 + 35.0, "2"),
                (1, "1-c", T0 + 130, T0 + 130.1, "2"), (2, "2-c", T0 + 140, T0 + 140.1, "3"),
                (3, "3-c", T0 + 150, T0 + 150.1, "3")]
        effect = harness.kill_effect(dump(hits), bases, T0, 3, "3", T1 + 30.5, T1 + 45)
        self.assertEqual((effect["others_first_delivered_one_after_s"],
                          effect["slots_it_had_sent_sent_again_by_others"]), (4.5, 1))
        self.assertEqual(effect["their_next_slot"]["delivered_by"], {"3": 2})
        self.assertIsNone(effect["others_deliver_all_its_jobs_from_minute"])
        self.assertEqual(effect["delivers_again_from_minute"], 3)

    def test_a_slot_nobody_took_over_is_missing(self) -> None:
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "2"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (1, "1-b", T1 + 10, T1 + 10.1, "2"),
                (1, "1-c", T0 + 130, T0 + 130.1, "2"), (2, "2-c", T0 + 140, T0 + 145, "2")]
        effect = harness.kill_effect(dump(hits), self.bases, T0, 3, "3", T0 + 75, None)
        self.assertEqual((effect["their_next_slot"]["delivered"],
                          effect["their_next_slot"]["missing"]), (0, 1))
        self.assertEqual(effect["others_first_delivered_one_after_s"], 70.0)
        self.assertEqual(effect["others_deliver_all_its_jobs_from_minute"], 3)
        self.assertIsNone(effect["delivers_again_from_minute"])

    def test_a_node_that_delivered_nothing_leaves_nothing_to_move(self) -> None:
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "1"), (2, "2-a", T0 + 20, T0 + 20.1, "1"),
                (1, "1-b", T1 + 10, T1 + 10.1, "1"), (2, "2-b", T1 + 20, T1 + 20.1, "1")]
        effect = harness.kill_effect(dump(hits), self.bases, T0, 2, "3", T0 + 75, None)
        self.assertEqual(effect["jobs_it_had_delivered"], 0)
        self.assertIsNone(effect["their_next_slot"]["lateness_s"]["max"])
        self.assertIsNone(effect["others_first_delivered_one_after_s"])
        self.assertIsNone(effect["others_deliver_all_its_jobs_from_minute"])


class ReportTests(SynchronousTestCase):
    def test_report_of_a_run_with_both_kills(self) -> None:
        """The whole analysis of a dump, its targets and its text: two jobs over three
        minutes, node 3 (a follower) killed in minute 2, node 1 (the leader) in minute 3."""
        bases = {1: T0 - 50, 2: T0 - 40}
        hits = [(1, "1-a", T0 + 10, T0 + 10.1, "2"), (2, "2-a", T0 + 20, T0 + 20.1, "3"),
                (1, "1-b", T1 + 10, T1 + 10.1, "2"), (2, "2-b", T1 + 20, T1 + 21.0, "2"),
                (1, "1-c", T0 + 130, T0 + 130.2, "2"), (2, "2-c", T0 + 140, T0 + 140.2, "2"),
                (2, "2-c", T0 + 140, T0 + 143.0, "2")]  # re-sent after the leader's kill
        kills = [({"role": "follower", "killed": "3"}, T0 + 75, None),
                 ({"role": "leader", "killed": "1", "new_leader_after_s": 1.2}, T0 + 141, None)]
        result = harness.cluster_analysis(dump(hits), bases, T0, 3, 3,
                                          [(T0 - 5, "1"), (T0 + 142, "2")], kills)
        first, second, third = result["windows"]
        self.assertEqual((first["node_hits"], first["alive_nodes"],
                          first["executors_expected"], first["share_max_over_mean"],
                          first["leader_hits"]), ({"2": 1, "3": 1}, 3, 2, 1.0, 0))
        self.assertEqual((second["node_hits"], second["alive_nodes"]), ({"2": 2}, None))
        self.assertEqual((third["max"], third["extra_copies_same_execution_id"],
                          third["leader_hits"]), (2, 1, 1))
        self.assertEqual(result["hits_per_node"], {"2": 6, "3": 1})
        self.assertEqual([k["others_deliver_all_its_jobs_from_minute"]
                          for k in result["kills"]], [2, None])
        self.assertEqual(result["kill"]["killed"], "1")
        result.update({
            "system": "test", "code": "test", "jobs": 2, "created": 2, "minutes": 3,
            "batch": 1000, "machine": {"nproc": 2, "cpu": "test", "python": "3"},
            "create_wall_s": 0.1, "jobs_per_s": 20.0, "load_start": "0", "load_end": "0",
            "flush_wait_s": 0.0, "rss": {}, "leader_at_start": "1",
            "kill_minutes": {"follower": 2, "leader": 3}, "leader_changes": [],
            "cpu_percent_per_node": {}, "node_log_problem_lines": {}})
        result["verdict"] = harness.seed_verdict(result, (2, 3))
        self.assertTrue(all(result["verdict"].values()), result["verdict"])
        text = harness.seed_text(result)
        self.assertIn("minute 2 (follower killed)", text)
        self.assertIn("hits per node {'2': 1, '3': 1}", text)
        self.assertIn("hits per node, all minutes: {'2': 6, '3': 1}", text)


class KillPlanTests(SynchronousTestCase):
    def test_the_issue_run_restarts_the_follower_before_the_leader_kill(self) -> None:
        """Follower in minute 2, leader in minute 4 on three nodes: a majority survives only
        if the follower is back first."""
        self.assertIsNone(harness.kill_plan_error(3, 5, 2, 4, 20))
        problem = harness.kill_plan_error(3, 5, 2, 4, 0)
        self.assertIn("no majority", problem)
        self.assertIn("--restart-follower-after", problem)
        self.assertIsNone(harness.kill_plan_error(5, 5, 2, 4, 0))

    def test_kills_outside_the_minutes_or_in_the_same_minute_are_refused(self) -> None:
        self.assertIn("measured minutes", harness.kill_plan_error(3, 3, 4, 0, 20))
        self.assertIn("different minutes", harness.kill_plan_error(5, 5, 2, 2, 20))
        self.assertIn("no majority", harness.kill_plan_error(2, 3, 0, 2, 20))


class ReceiverTests(SynchronousTestCase):
    def test_hits_are_counted_per_sending_node(self) -> None:
        """The receiver process keeps each POST's X-Scheduler0-Node and counts hits per
        node over a span of arrival times."""
        receiver = harness.seed.Receiver()
        self.addCleanup(receiver.stop)
        for node, items in (("2", 2), ("3", 1), (None, 1)):
            body = json.dumps([{"id": i, "executionId": f"{node}-{i}",
                                "scheduledTime": "2027-01-15T10:00:00.000Z"}
                               for i in range(items)])
            headers = {"Content-Type": "application/json"}
            if node is not None:
                headers["X-Scheduler0-Node"] = node
            conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
            conn.request("POST", "/callback", body=body, headers=headers)
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
        self.assertEqual(receiver.nodes(), {"2": 2, "3": 1, "none": 1})
        self.assertEqual(receiver.nodes(after=4_000_000_000), {})
        self.assertEqual(receiver.dump()["post_nodes"], ["2", "3", None])


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
