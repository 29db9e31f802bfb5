"""
End to end delivery (issue 9) with a real C{twistd scheduler0} node and real receivers
(L{tests.integration.receiver}):

  - isolation per endpoint: jobs whose endpoints answer 500 beside a hundred healthy
    ones on the same receiver; the healthy ones get every second, first time, on time;
  - a clean SIGTERM while callbacks are in flight logs no critical error and no unhandled
    Deferred error, and what was cut off is sent again after a restart.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.trial.unittest import TestCase

from .daemon import Daemon, NodeClient, sleep
from .receiver import HANG, Post, Receiver

EVERY_SECOND = "* * * * * *"
FAST = {"JobExecutionTimeout": 30, "JobExecutionRetryDelay": 0.2, "JobExecutionRetryMax": 3,
        "RateLimitPerMinute": 0}
HEALTH = "/api/monitoring/scheduler/health"


def job(project_id: int, url: str, spec: str, n: int = 0) -> dict[str, Any]:
    return {"projectId": project_id, "spec": spec, "callbackUrl": url,
            "data": json.dumps({"n": n})}


class DeliveryTestCase(TestCase):
    timeout = 90

    async def start_node(self, **config: Any) -> tuple[Daemon, NodeClient, int]:
        node = Daemon(self, {**FAST, **config})
        await node.start()
        client = node.client(peer=True)
        project = await client.ok("POST", "/projects", {"name": "delivery"}, expect=201)
        return node, client, project["id"]


class IsolationTests(DeliveryTestCase):
    async def test_failing_endpoints_do_not_hold_back_a_hundred_healthy_ones(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        receiver.answer(lambda post: 500 if "/fail/" in post.path else 200)
        jobs = [job(pid, f"{receiver.url}/fail/{n}", EVERY_SECOND, n) for n in range(3)]
        jobs += [job(pid, f"{receiver.url}/ok/{n}", EVERY_SECOND, n) for n in range(100)]
        created = await client.ok("POST", "/jobs", jobs, expect=201)
        failing = [j["id"] for j in created[:3]]
        healthy = [j["id"] for j in created[3:]]
        started = time.time()
        await sleep(9)
        ended = time.time() - 1.5  # what was due by then has surely been delivered
        for job_id in healthy:
            hits = receiver.hits_for(job_id)
            seconds = sorted(h.scheduled for h in hits if h.scheduled <= ended)
            self.assertGreaterEqual(len(seconds), 6, f"job {job_id}: {receiver.summary()}")
            self.assertEqual(seconds, [seconds[0] + k for k in range(len(seconds))],
                             f"job {job_id} missed a second:\n{receiver.summary()}")
            self.assertLessEqual(seconds[0], started + 2)
            self.assertEqual({h.attempt for h in hits}, {1}, f"job {job_id}")
            worst = max(h.lateness for h in hits)
            self.assertLess(worst, 1.0, f"job {job_id} was held back {worst:.2f} s")
        # the failing endpoints' own breakers opened (each at its first round's retries)
        snapshot = await self.health(node)
        by_instance = {i["instance"]: i for i in snapshot["instances"]}
        for n in range(3):
            item = by_instance[f"{receiver.url}/fail/{n}"]
            self.assertNotEqual(item["breaker"]["state"], "closed", item)
            self.assertEqual(item["breaker"]["scope"], "endpoint", item)
        self.assertEqual(by_instance[f"{receiver.url}/ok/0"]["breaker"]["state"], "closed")
        # the failing ones were attempted a few times, then held by their breakers
        for job_id in failing:
            self.assertLess(len(receiver.hits_for(job_id)), 12, receiver.summary())

    async def health(self, node: Daemon) -> dict[str, Any]:
        d = node.http().get(node.base_url + HEALTH, headers=node.peer_headers())
        response = await d
        self.assertEqual(response.code, 200)
        return json.loads(await response.content())


class ShutdownTests(DeliveryTestCase):
    async def test_sigterm_with_callbacks_in_flight_logs_no_critical_error(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        held: list[Post] = []

        def hold_first_round(post: Post) -> int | None:
            if len(held) < 4:
                held.append(post)
                return HANG
            return 200

        receiver.answer(hold_first_round)
        created = await client.ok("POST", "/jobs", [
            job(pid, f"{receiver.url}/{n}", EVERY_SECOND, n) for n in range(4)], expect=201)
        await receiver.wait_until(lambda: len(held) == 4, 5, "4 callbacks held by the receiver")
        cut = sorted(h.execution_id for post in held for h in post.hits)
        status = await node.stop(timeout=30)
        log = node.log_text()
        self.assertEqual((status.code, status.signal), (0, None), log[-3000:])
        self.assertIn("Server Shut Down", log)
        for bad in ("critical", "Unhandled error in Deferred", "Traceback"):
            self.assertNotIn(bad, log, log[-3000:])
        self.assertNotIn("circuit for", log, "our own stop counted as the receiver's failure")
        self.assertIn("are cancelled; they are sent again after a restart", log)
        # what the stop cut off is sent again after a restart, with the same ids
        receiver.answer(200)
        await node.start()
        client = node.client(peer=True)  # the old one's pool went with the old process
        await receiver.wait_until(
            lambda: set(cut) <= {h.execution_id for h in receiver.hits if h.post.status == 200},
            10, "the cut-off callbacks sent again")
        # and recorded as succeeded (the outcome is written just after the answer arrives)
        deadline = time.monotonic() + 5
        while True:
            states = {}
            for job_ in created:
                record = await client.ok("GET", f"/jobs/{job_['id']}/executions?limit=1000")
                states.update({r["executionId"]: r["state"] for r in record["executions"]})
            if all(states.get(eid) == "succeeded" for eid in cut) or time.monotonic() > deadline:
                break
            await sleep(0.1)
        self.assertEqual({eid: states.get(eid) for eid in cut},
                         {eid: "succeeded" for eid in cut})
