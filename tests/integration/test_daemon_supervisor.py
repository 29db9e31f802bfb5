"""
End to end, the supervisor API of a real C{twistd scheduler0} node (issue 4): a halt
answers at once and nothing leaves the node while halted; a restart resumes every job and
the occurrences missed meanwhile follow each job's misfire policy. Visible in the health
answer and in C{/metrics}.
"""

from __future__ import annotations

import time

from .daemon import sleep
from .operability import EVERY_SECOND, OperabilityTestCase, job
from .receiver import Receiver


class SupervisorTests(OperabilityTestCase):
    async def test_halt_sends_nothing_and_restart_follows_the_misfire_policy(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        grace = {"misfireGraceSeconds": 60}
        created = await client.ok("POST", "/jobs", [
            job(pid, receiver.url, EVERY_SECOND, 0, misfirePolicy="fire_once", **grace),
            job(pid, receiver.url, EVERY_SECOND, 1, misfirePolicy="fire_once", **grace),
            job(pid, receiver.url, EVERY_SECOND, 2, misfirePolicy="skip"),
            job(pid, receiver.url, EVERY_SECOND, 3, misfirePolicy="fire_all", **grace),
        ], expect=201)
        ids = [j["id"] for j in created]
        fire_once, skip, fire_all = ids[:2], ids[2], ids[3]
        await receiver.wait_jobs(ids, 2, timeout=5)
        self.assertEqual(await self.api(node, "GET", "/api/supervisor/state"),
                         {"state": "RUNNING", "reason": None})

        halt_sent = time.time()
        halted = await self.api(node, "POST", "/api/supervisor/halt")
        halt_done = time.time()
        self.assertEqual(halted["state"], "HALTED")
        self.assertIn("operator", halted["reason"])
        self.assertLess(halt_done - halt_sent, 0.5, "halt did not answer at once")

        state = await self.api(node, "GET", "/api/supervisor/state")
        self.assertEqual(state["state"], "HALTED")
        _, snapshot = await self.health(node)
        self.assertIs(snapshot["enabled"], False)
        samples = await self.metrics(node)
        self.assertEqual(samples[("scheduler0_scheduler_halted", frozenset())], 1.0)

        await sleep(halt_done + 3 - time.time())
        self.assertEqual((await self.api(node, "GET", "/api/supervisor/state"))["state"],
                         "HALTED")
        # nothing left the node after the halt answer, except a delivery already in flight:
        # an occurrence scheduled before the halt, arriving within moments of it
        late = [(p.index, round(p.received - halt_done, 3), [h.scheduled_text for h in p.hits])
                for p in receiver.posts if p.received > halt_done
                and (p.received > halt_done + 0.25
                     or any(h.scheduled > halt_sent for h in p.hits))]
        self.assertEqual(late, [], f"callbacks while halted:\n{receiver.summary()}")
        before = [h for h in receiver.hits if h.received <= halt_done + 0.25]
        last_before = {j: max(h.scheduled for h in before if h.job_id == j) for j in ids}

        restart_sent = time.time()
        restarted = await self.api(node, "POST", "/api/supervisor/restart")
        restart_done = time.time()
        self.assertEqual(restarted, {"state": "RUNNING", "reason": None})
        self.assertEqual((await self.api(node, "GET", "/api/supervisor/state"))["state"],
                         "RUNNING")
        _, snapshot = await self.health(node)
        self.assertIs(snapshot["enabled"], True)
        await sleep(3)
        after = [h for h in receiver.hits if h.received > restart_sent]
        self.assertEqual(len(before) + len(after), len(receiver.hits), receiver.summary())

        def scheduled(job_id: int) -> list[float]:
            return sorted(h.scheduled for h in after if h.job_id == job_id)

        # skip: from the first slot after the restart (a slot due while halted, however
        # shortly before the restart, was missed)
        regular = scheduled(skip)[0]
        self.assertGreater(regular, restart_sent, receiver.summary())
        self.assertLessEqual(regular, restart_done + 1.0, receiver.summary())
        self.assertGreaterEqual(regular - last_before[skip], 3, "a slot from the halt ran")
        for job_id in ids:
            times = scheduled(job_id)
            self.assertEqual(times, [times[0] + k for k in range(len(times))],
                             f"job {job_id} after restart: {receiver.summary()}")
            self.assertGreaterEqual(len(times), 3, receiver.summary())
            self.assertTrue(all(h.attempt == 1 for h in after if h.job_id == job_id))
        # fire_once: exactly one catch-up, the latest missed slot, then the regular ones
        for job_id in fire_once:
            self.assertEqual(scheduled(job_id)[0], regular - 1,
                             f"job {job_id}: {receiver.summary()}")
            self.assertGreater(regular - 1, last_before[job_id] + 1)
        # fire_all: every slot missed while halted, in order
        self.assertEqual(scheduled(fire_all)[0], last_before[fire_all] + 1, receiver.summary())
        self.assertGreaterEqual(regular - scheduled(fire_all)[0], 2)
        # no executionId twice over the whole cycle
        eids = [h.execution_id for h in receiver.hits]
        self.assertEqual(len(eids), len(set(eids)), receiver.summary())
        samples = await self.metrics(node)
        self.assertEqual(samples[("scheduler0_scheduler_halted", frozenset())], 0.0)
