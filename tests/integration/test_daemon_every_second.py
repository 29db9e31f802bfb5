"""
End to end: per-second and C{@every} jobs on a real C{twistd scheduler0} node, delivered
once per slot, on time, batched into one POST per second and signed, and recorded as
succeeded executions.
"""

from __future__ import annotations

import math
import time

from scheduler0.timestamps import parse_time

from .daemon import sleep
from .receiver import Receiver
from .scheduling import EVERY_SECOND, SchedulingTestCase, created_second, job


class EverySecondTests(SchedulingTestCase):
    async def test_per_second_jobs_are_delivered_once_per_second_batched_and_signed(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        secret = (await client.ok("GET", f"/projects/{pid}/signing-secret"))["signingSecret"]
        self.assertTrue(secret)

        specs = [EVERY_SECOND] * 20 + ["@every 2s"] * 5
        created = await client.ok("POST", "/jobs", [job(pid, receiver.url, spec, n)
                                                    for n, spec in enumerate(specs)],
                                  expect=201)
        jobs = {j["id"]: j for j in created}
        per_second = [j["id"] for j in created[:20]]
        every_2s = [j["id"] for j in created[20:]]

        await sleep(6.5)
        end = time.time()
        posts = list(receiver.posts)
        hits = [h for p in posts for h in p.hits]
        self.assertEqual(sum(len(p.elements) for p in posts), len(hits),
                         "every element has id, executionId, scheduledTime and attempt")
        self.assertEqual(set(h.job_id for h in hits), set(jobs), receiver.summary())

        for job_id in per_second:
            mine = [h for h in hits if h.job_id == job_id]
            times = self.assert_consecutive(mine, 1.0, f"job {job_id}")
            created_at = parse_time(jobs[job_id]["dateCreated"]).timestamp()
            # from the first whole second after creation up to (about) now
            self.assertEqual(times[0], math.floor(created_at) + 1, jobs[job_id])
            self.assertGreaterEqual(times[-1], end - 1.5, receiver.summary())
            self.assertGreaterEqual(len(times), 5)
        for job_id in every_2s:
            mine = [h for h in hits if h.job_id == job_id]
            times = self.assert_consecutive(mine, 2.0, f"job {job_id}")
            anchor = created_second(jobs[job_id])
            self.assertEqual(times[0], anchor + 2, jobs[job_id])
            self.assertGreaterEqual(times[-1], end - 2.5, receiver.summary())
        self.assert_execution_ids(hits)

        late = [(h.execution_id, round(h.lateness, 3)) for h in hits if not h.lateness < 1.0]
        self.assertEqual(late, [], "hits 1 s late or more")
        self.assertEqual({h.attempt for h in hits}, {1})
        # the job's own fields travel with each element
        for h in hits:
            record = jobs[h.job_id]
            self.assertEqual({k: h.element[k] for k in ("projectId", "spec", "callbackUrl",
                                                        "data", "timezone", "dateCreated")},
                             {k: record[k] for k in ("projectId", "spec", "callbackUrl",
                                                     "data", "timezone", "dateCreated")})

        # batching: the 20 jobs due in the same second share one POST
        self.assertGreaterEqual(max(len(p.hits) for p in posts), 20, receiver.summary())
        self.assertLess(len(posts), len(hits) / 5, receiver.summary())
        for post in posts:
            self.assertEqual(post.status, 200)
            self.assertEqual(post.chunk_id, "0", post.headers)
            self.assertTrue(post.verifies(secret), (post.signature, post.body[:200]))
        self.assertFalse(posts[0].verifies("whsec_not-the-secret"))

        # execution records: every delivered occurrence succeeded at its first attempt, and
        # nothing was recorded that the receiver did not get
        await sleep(0.3)
        for job_id in jobs:
            listed = await client.ok("GET", f"/executions?jobId={job_id}&limit=10000")
            seen = {h.execution_id: h for h in hits if h.job_id == job_id}
            last_seen = max(h.scheduled for h in seen.values())
            records = {r["executionId"]: r for r in listed["executions"]
                       if parse_time(r["scheduledTime"]).timestamp() <= last_seen}
            self.assertEqual(set(records), set(seen))
            for eid, record in records.items():
                self.assertEqual((record["state"], record["attempts"], record["jobId"],
                                  record["lastStatus"]), ("succeeded", 1, job_id, 200), record)
                self.assertEqual(record["scheduledTime"], seen[eid].scheduled_text)
        per_job = await client.ok("GET", f"/jobs/{per_second[0]}/executions?limit=10000")
        self.assertTrue(all(r["jobId"] == per_second[0] for r in per_job["executions"]))
        self.assertGreaterEqual(per_job["total"], 5)
        await node.stop()
