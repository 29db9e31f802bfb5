"""
End to end: job control on a real C{twistd scheduler0} node. Pause and delete stop
deliveries from the answer on, run sends exactly one occurrence with the executionId it
returns, resume starts again without a catch-up and a PUT of the spec takes effect at once.
"""

from __future__ import annotations

import time
from typing import Any

from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import parse_time

from .daemon import sleep
from .receiver import Receiver
from .scheduling import EPS, EVERY_SECOND, SchedulingTestCase, gather, job


class JobControlTests(SchedulingTestCase):
    async def test_pause_resume_run_update_delete(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        paused_job, hourly, deleted = await client.ok("POST", "/jobs", [
            job(pid, receiver.url, EVERY_SECOND, 1),
            job(pid, receiver.url, "@every 1h", 2),
            job(pid, receiver.url, EVERY_SECOND, 3)], expect=201)
        a, b, c = paused_job["id"], hourly["id"], deleted["id"]
        await receiver.wait_jobs([a, c], 2, timeout=5)

        async def timed(method: str, path: str, body: Any = None,
                        expect: int = 200) -> tuple[float, Any, float]:
            sent = time.time()
            data = await client.ok(method, path, body, expect=expect)
            return sent, data, time.time()

        (_, paused, pause_done), (_, _, delete_done), (_, run, _) = await gather(
            timed("POST", f"/jobs/{a}/pause"), timed("DELETE", f"/jobs/{c}", expect=204),
            timed("POST", f"/jobs/{b}/run", expect=202))
        self.assertEqual((paused["paused"], paused["nextRunAt"]), (True, None))
        self.assertEqual((run["jobId"], run["executionId"]),
                         (b, execution_id(b, parse_time(run["scheduledTime"]).timestamp())))

        # run: exactly one occurrence carrying the returned executionId
        await receiver.wait_hits(1, execution_id=run["executionId"], timeout=3)
        await sleep(max(0.0, pause_done + 2.5 - time.time()))
        self.assertEqual(len(receiver.hits_for(b)), 1, receiver.summary())
        ran = receiver.hits_for(b)[0]
        self.assertEqual((ran.execution_id, ran.scheduled_text, ran.attempt),
                         (run["executionId"], run["scheduledTime"], 1))
        self.assertLess(ran.lateness, 1.0)
        self.assertEqual((await self.execution(client, run["executionId"]))["state"],
                         "succeeded")

        # pause and delete: nothing scheduled after the answer, nothing arriving later
        for job_id, done in ((a, pause_done), (c, delete_done)):
            after = [(h.execution_id, round(h.received - done, 3))
                     for h in receiver.hits_for(job_id)
                     if h.scheduled >= done or h.received > done + 0.5]
            self.assertEqual(after, [], f"job {job_id} still delivered: {receiver.summary()}")
        code, _ = await client.request("GET", f"/jobs/{c}")
        self.assertEqual(code, 404)

        # resume (no catch-up for the paused time) and PUT to every second: hits at once
        a_before = len(receiver.hits_for(a))
        (resume_sent, resumed, resume_done), (put_sent, updated, _) = await gather(
            timed("POST", f"/jobs/{a}/resume"),
            timed("PUT", f"/jobs/{b}", {"spec": EVERY_SECOND}))
        self.assertEqual(updated["spec"], EVERY_SECOND)
        self.assertLessEqual(parse_time(updated["nextRunAt"]).timestamp(), put_sent + 1.5,
                             updated)
        self.assertFalse(resumed["paused"])
        self.assertIsNotNone(resumed["nextRunAt"])
        await sleep(3)
        resumed_hits = receiver.hits_for(a)[a_before:]
        times = self.assert_consecutive(resumed_hits, 1.0, f"job {a} after resume")
        self.assertGreaterEqual(len(times), 2, receiver.summary())
        self.assertGreater(times[0], resume_sent, "a catch-up for the paused time")
        self.assertLessEqual(times[0], resume_done + 1.0)
        self.assertTrue(all(h.lateness < 1.0 for h in resumed_hits))

        per_second = [h for h in receiver.hits_for(b) if h is not ran]
        times = self.assert_consecutive(per_second, 1.0, f"job {b} after PUT")
        self.assertGreaterEqual(len(times), 2, receiver.summary())
        self.assertGreater(times[0], put_sent - EPS)
        self.assertLessEqual(times[0], put_sent + 1.5, "per-second hits did not start at once")
        self.assertTrue(all(h.lateness < 1.0 for h in per_second))
        self.assert_execution_ids(receiver.hits)
        await node.stop()
