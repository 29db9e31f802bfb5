"""
End to end: retries and dead letters on a real C{twistd scheduler0} node. A transient
failure is retried with backoff under the same executionId; a permanent one (401) and one
that keeps failing past JobExecutionRetryMax end dead.
"""

from __future__ import annotations

from scheduler0.schedule.occurrence import execution_id

from .daemon import sleep
from .receiver import Receiver
from .scheduling import SchedulingTestCase, at_spec, job


class RetryTests(SchedulingTestCase):
    async def test_retries_keep_the_execution_id_and_permanent_failures_are_dead(self) -> None:
        node, client, pid = await self.start_node(JobExecutionRetryMax=2)
        flaky, refusing, broken = Receiver(self), Receiver(self), Receiver(self)
        flaky.fail_first(2, 500)
        refusing.answer(401)
        broken.answer(503)
        spec, when = at_spec(2)
        created = await client.ok("POST", "/jobs", [
            job(pid, flaky.url, spec, 1), job(pid, refusing.url, spec, 2),
            job(pid, broken.url, spec, 3)], expect=201)
        j1, j2, j3 = (j["id"] for j in created)

        hits = await flaky.wait_hits(3, job_id=j1, timeout=8)
        await broken.wait_hits(3, job_id=j3, timeout=8)
        await sleep(1.5)  # room for attempts that must not happen

        # 500, 500, 200: the same occurrence three times, attempts 1, 2, 3
        hits = flaky.hits_for(j1)
        self.assertEqual([(h.execution_id, h.attempt, h.post.status) for h in hits],
                         [(execution_id(j1, when), n, s) for n, s in ((1, 500), (2, 500),
                                                                       (3, 200))])
        self.assertEqual({h.scheduled for h in hits}, {when})
        # exponential backoff from JobExecutionRetryDelay 0.2 (+-20 % jitter)
        waits = [b.received - a.received for a, b in zip(hits, hits[1:])]
        self.assertGreaterEqual(waits[0], 0.16, waits)
        self.assertGreaterEqual(waits[1], 0.32, waits)
        record = await self.wait_state(client, execution_id(j1, when), "succeeded")
        self.assertEqual((record["attempts"], record["lastStatus"]), (3, 200), record)

        # 401 is permanent: one attempt, then dead
        self.assertEqual(len(refusing.hits_for(j2)), 1, refusing.summary())
        refused = refusing.hits_for(j2)[0]
        self.assertEqual((refused.execution_id, refused.attempt),
                         (execution_id(j2, when), 1))
        record = await self.wait_state(client, refused.execution_id, "dead")
        self.assertEqual((record["attempts"], record["lastStatus"]), (1, 401), record)

        # 503 every time: JobExecutionRetryMax (2) retries after the first attempt, then dead
        self.assertEqual([(h.execution_id, h.attempt) for h in broken.hits_for(j3)],
                         [(execution_id(j3, when), n) for n in (1, 2, 3)])
        record = await self.wait_state(client, execution_id(j3, when), "dead")
        self.assertEqual((record["attempts"], record["lastStatus"]), (3, 503), record)

        dead = await client.ok("GET", "/executions?state=dead&limit=10000")
        self.assertEqual(sorted(r["executionId"] for r in dead["executions"]),
                         sorted([execution_id(j2, when), execution_id(j3, when)]))
        self.assertTrue(all(r["state"] == "dead" for r in dead["executions"]))
        await node.stop()
