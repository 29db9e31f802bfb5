"""
End to end: a real C{twistd scheduler0} node stopped and started again. Occurrences missed
while it was down follow each job's misfire policy (also for a slot due just before the
process started), C{@every} keeps its phase, and an occurrence in flight when the node was
killed (SIGKILL) is sent again under the same executionId.
"""

from __future__ import annotations

import math
import signal
import time
from collections import Counter

from scheduler0.schedule.occurrence import execution_id

from .daemon import sleep
from .receiver import Hit, Receiver
from .scheduling import (
    EPS,
    EVERY_SECOND,
    SchedulingTestCase,
    at_spec,
    client_after,
    created_second,
    job,
)


class RestartTests(SchedulingTestCase):
    async def test_misfires_after_sigterm_follow_the_policy_and_every_keeps_its_phase(
            self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        grace = {"misfireGraceSeconds": 60}
        created = await client.ok("POST", "/jobs", [
            *(job(pid, receiver.url, EVERY_SECOND, n, misfirePolicy="fire_once", **grace)
              for n in range(3)),
            *(job(pid, receiver.url, EVERY_SECOND, n, misfirePolicy="skip") for n in range(3)),
            job(pid, receiver.url, "@every 2s", 6, misfirePolicy="fire_once", **grace),
            job(pid, receiver.url, "@every 2s", 7, misfirePolicy="skip"),
        ], expect=201)
        ids = [j["id"] for j in created]
        fire_once, skip, every = ids[:3], ids[3:6], ids[6:]
        await receiver.wait_jobs(ids, 2, timeout=6)

        status = await node.stop()
        stopped_at = time.time()
        self.assertTrue(status.clean, status)
        before = len(receiver.hits)
        last_before = {j: max(h.scheduled for h in receiver.hits[:before] if h.job_id == j)
                       for j in ids}
        await sleep(3)
        self.assertEqual(len(receiver.hits), before, "a hit while the node was down")
        restart_at = time.time()
        await node.start()
        healthy_at = time.time()
        await sleep(3)
        after = receiver.hits[before:]
        log = node.log_text()

        def after_for(job_id: int) -> list[Hit]:
            return sorted((h for h in after if h.job_id == job_id), key=lambda h: h.scheduled)

        # every per-second job resumes; all of them share the first regular slot
        firsts = {}
        for job_id in fire_once + skip:
            mine = after_for(job_id)
            times = self.assert_consecutive(mine, 1.0, f"job {job_id} after the restart")
            self.assertGreaterEqual(len(times), 3, f"{receiver.summary()}\n{log[-2000:]}")
            self.assertGreaterEqual(times[-1], time.time() - 1.5)
            firsts[job_id] = times[0]
        regular = min(firsts[j] for j in skip)
        # skip: nothing from the downtime: the first slot is after the process started
        # (DowntimeEdgeTests checks the second just before the restart on its own)
        for job_id in skip:
            self.assertEqual(firsts[job_id], regular)
            self.assertGreaterEqual(regular - last_before[job_id], 3,
                                    f"occurrences from the downtime delivered for job {job_id}")
        self.assertGreater(regular, restart_at)
        self.assertLessEqual(regular, healthy_at + 1.0)
        # fire_once: exactly one catch-up, the latest missed occurrence, then the regular ones
        for job_id in fire_once:
            catch_up = firsts[job_id]
            self.assertEqual(catch_up, regular - 1.0,
                             f"job {job_id}: expected one catch-up at {regular - 1}; "
                             f"{[h.scheduled_text for h in after_for(job_id)[:4]]}")
            self.assertGreater(catch_up, stopped_at, "the catch-up is not from the downtime")
            # the downtime lasts until the scheduler starts, which under load may be a
            # second or more after the process was started: bound it by the healthy answer
            self.assertLess(catch_up, healthy_at, "the catch-up is not from the downtime")
            self.assertGreaterEqual(catch_up - last_before[job_id], 2,
                                    "every missed occurrence ran (fire_all?)")
            hit = after_for(job_id)[0]
            self.assertEqual(hit.attempt, 1)
            # delivered once the node was back, so late by at least the restart's duration
            self.assertGreater(hit.received, restart_at)
            self.assertGreater(hit.lateness, 0)

        # @every keeps its phase from dateCreated across the restart
        for record in created[6:]:
            mine = sorted((h for h in receiver.hits if h.job_id == record["id"]),
                          key=lambda h: h.scheduled)
            self.assertTrue(any(h in after for h in mine), receiver.summary())
            anchor = created_second(record)
            offsets = [h.scheduled - anchor for h in mine]
            self.assertTrue(all(o > 0 and abs(o / 2 - round(o / 2)) < EPS for o in offsets),
                            f"job {record['id']} created {record['dateCreated']}: "
                            f"{[h.scheduled_text for h in mine]}")
            self.assertEqual(len({h.execution_id for h in mine}), len(mine))

        # a clean stop leaves nothing to re-send: no executionId twice
        eids = [h.execution_id for h in receiver.hits]
        self.assertEqual(len(eids), len(set(eids)), receiver.summary())
        self.assert_execution_ids(receiver.hits)
        await node.stop()


class CrashTests(SchedulingTestCase):
    async def test_in_flight_occurrence_is_sent_again_after_kill_9(self) -> None:
        # a callback timeout longer than the hang, so the attempt stays in flight
        node, client, pid = await self.start_node(JobExecutionTimeout=30)
        receiver = Receiver(self)
        receiver.hang()
        spec, when = at_spec(2)
        (created,) = await client.ok("POST", "/jobs", [job(pid, receiver.url, spec)],
                                     expect=201)
        eid = execution_id(created["id"], when)
        (first,) = await receiver.wait_hits(1, execution_id=eid, timeout=6)
        self.assertEqual(first.attempt, 1)
        record = await self.wait_state(client, eid, "dispatched")
        self.assertEqual(record["attempts"], 1)

        status = await node.kill()
        self.assertEqual(status.signal, signal.SIGKILL)
        self.assertIsNone(first.post.status, "the hung request was answered")
        receiver.answer(200)
        await node.start()
        hits = await receiver.wait_hits(2, execution_id=eid, timeout=5)
        second = hits[1]
        self.assertEqual((second.execution_id, second.attempt, second.scheduled_text,
                          second.post.status), (eid, 2, first.scheduled_text, 200))
        self.assertEqual(second.element["data"], first.element["data"])
        secret = (await client_after(node).ok(
            "GET", f"/projects/{pid}/signing-secret"))["signingSecret"]
        self.assertTrue(second.post.verifies(secret))
        record = await self.wait_state(client_after(node), eid, "succeeded")
        self.assertEqual((record["attempts"], record["lastStatus"]), (2, 200), record)
        await sleep(1)
        self.assertEqual(len(receiver.by_execution(eid)), 2, receiver.summary())
        self.assertEqual(len(receiver.hits), 2, receiver.summary())
        await node.stop()


class DowntimeEdgeTests(SchedulingTestCase):
    async def test_an_occurrence_due_before_the_process_started_is_missed(self) -> None:
        """
        README: missed occurrences (the node was down) follow the misfire policy. An
        occurrence whose time passed while no node process existed is missed, even when the
        restarted node gets to it less than a second later: C{skip} must not deliver it, and
        C{fire_once} delivers exactly one occurrence from the downtime.

        The restart is timed 50 ms after a whole second, so the node (ready in well under a
        second) starts scheduling less than 1 s after that second.
        """
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        once, skip = (j["id"] for j in await client.ok("POST", "/jobs", [
            job(pid, receiver.url, EVERY_SECOND, 1, misfirePolicy="fire_once"),
            job(pid, receiver.url, EVERY_SECOND, 2, misfirePolicy="skip")], expect=201))
        await receiver.wait_jobs([once, skip], 1, timeout=4)
        self.assertTrue((await node.stop()).clean)
        before = len(receiver.hits)
        await sleep(math.floor(time.time()) + 3.05 - time.time())
        restart_at = time.time()
        await node.start()

        def resumed() -> bool:
            counts = Counter(h.job_id for h in receiver.hits[before:])
            return counts[once] >= 3 and counts[skip] >= 2

        await receiver.wait_until(resumed, 5, "hits after the restart")
        after = receiver.hits[before:]
        context = (f"process spawned at {restart_at:.3f}, healthy {node.ready_after:.3f} s "
                   f"later; after the restart: "
                   f"{[(h.job_id, h.scheduled_text, round(h.lateness, 3)) for h in after]}")
        skip_from_downtime = [h.scheduled_text for h in after
                              if h.job_id == skip and h.scheduled < restart_at]
        self.assertEqual(skip_from_downtime, [], context)
        # The downtime lasts until the scheduler starts, a moment before the node answers
        # healthy (more than a second on a busy machine): fire_once runs the latest slot
        # missed by then, exactly one, and then every slot, while skip starts with the
        # first slot after the start. So fire_once's first is one second before skip's.
        once_times = sorted(h.scheduled for h in after if h.job_id == once)
        skip_times = sorted(h.scheduled for h in after if h.job_id == skip)
        self.assertLess(once_times[0], restart_at + node.ready_after, context)
        self.assertEqual(once_times[0], skip_times[0] - 1.0, context)
        self.assertEqual(once_times, [once_times[0] + i for i in range(len(once_times))],
                         context)
        await node.stop()
