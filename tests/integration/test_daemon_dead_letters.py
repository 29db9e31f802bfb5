"""
End to end, dead letters repaired by API on a real C{twistd scheduler0} node (issue 4): an
occurrence dead after a permanent failure shows in the health answer, and its replay
(C{POST /api/monitoring/dlq/retry}, admin only) keeps its executionId and ends succeeded.
"""

from __future__ import annotations

from scheduler0.schedule.occurrence import execution_id

from .daemon import sleep
from .operability import OperabilityTestCase, at_spec, endpoint_of, instance, job
from .receiver import Receiver


class DeadLetterTests(OperabilityTestCase):
    async def test_dlq_retry_keeps_the_execution_id(self) -> None:
        node, client, pid = await self.start_node()
        # no job configured: the supervisor state is 503
        self.assertIn("no job", await self.api(node, "GET", "/api/supervisor/state",
                                                expect=503))
        refusing = Receiver(self)
        refusing.answer(401)
        spec, when = at_spec(2)
        (created,) = await client.ok("POST", "/jobs", [job(pid, refusing.url, spec)],
                                     expect=201)
        eid = execution_id(created["id"], when)
        (first,) = await refusing.wait_hits(1, execution_id=eid, timeout=6)
        record = await self.wait_state(node, eid, "dead")
        self.assertEqual((record["attempts"], record["lastStatus"], record["errorCategory"]),
                         (1, 401, "permanent"), record)
        # the only job has no future occurrence
        self.assertEqual((await self.api(node, "GET", "/api/supervisor/state"))["state"],
                         "FINISHED")
        _, snapshot = await self.health(node)
        item = instance(snapshot, refusing)
        summary = {k: item["deadLetter"].get(k) for k in ("present", "reason", "retryCount")}
        self.assertEqual(summary,
                         {"present": True, "reason": "permanent_failure", "retryCount": 1}, item)
        self.assertEqual(snapshot["deadLetter"]["count"], 1)
        (task,) = snapshot["deadLetter"]["tasks"]
        self.assertEqual((task["instance"], task["type"], task["failures"], task["lastError"]),
                         (endpoint_of(refusing), "http", 1, "HTTP 401: {}"), task)

        # replay needs admin (or peer) auth
        await self.api(node, "POST", "/api/monitoring/dlq/retry", headers={}, expect=401)
        refusing.answer(200)
        retried = await self.api(node, "POST", "/api/monitoring/dlq/retry", expect=202)
        self.assertEqual(retried, {"retried": [eid], "skipped": []})
        hits = await refusing.wait_hits(2, execution_id=eid, timeout=5)
        second = hits[1]
        self.assertEqual((second.execution_id, second.scheduled_text, second.post.status),
                         (eid, first.scheduled_text, 200))
        self.assertEqual(second.element["data"], first.element["data"])
        self.assertGreater(second.attempt, first.attempt)
        record = await self.wait_state(node, eid, "succeeded")
        self.assertEqual(record["lastStatus"], 200, record)
        await sleep(0.5)
        self.assertEqual(len(refusing.hits), 2, refusing.summary())
        _, snapshot = await self.health(node)
        self.assertEqual(snapshot["deadLetter"], {"count": 0, "tasks": []})
        item = instance(snapshot, refusing)
        self.assertEqual(item["deadLetter"], {"present": False}, item)
        self.assertEqual(item["pollStatus"]["consecutiveFailures"], 0, item)
        self.assertIsNotNone(item["pollStatus"]["lastSuccess"], item)
