"""
End to end: scheduler0.client against a real C{twistd scheduler0} node, as a script uses it
(issue 15 item 2). The client blocks (http.client), so each call runs in a
thread and the test's reactor keeps serving the node's pipes and the callback receiver.

One flow: a credential made through peer Basic auth, a project, 2,500 jobs in one
C{create_many} against a node whose body limit needs two requests (the node's 413 teaches
the client the limit), the list in the same order, pause and resume, three runs whose
signed callbacks verify with C{verify_signature}, their execution records page by page,
and the node's 4xx messages raised as L{Scheduler0Error}.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from scheduler0.client import Client, PeerAuth, Scheduler0Error, verify_signature

from .daemon import Daemon, sleep
from .receiver import Receiver

#: far from now, so the 2,500 jobs stay quiet while the test runs
YEARLY = "0 0 1 1 *"
#: 0.25 MiB: 2,500 jobs (about 380 KB) need two requests
BODY_LIMIT_MB = 0.25


async def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking client call in a thread, so the reactor keeps running."""
    return await deferToThread(function, *args, **kwargs)


async def raises(function: Callable[..., Any], *args: Any) -> Scheduler0Error:
    try:
        await call(function, *args)
    except Scheduler0Error as e:
        return e
    raise AssertionError(f"{function.__name__}{args} did not raise Scheduler0Error")


class ClientEndToEndTests(TestCase):
    timeout = 120

    async def test_a_script_drives_a_node(self) -> None:
        node = Daemon(self, config={"MaxRequestBodyMb": BODY_LIMIT_MB})
        await node.start()
        receiver = Receiver(self)
        secrets = node.secrets()

        # peer Basic auth makes the first credential; the health check needs none
        operator = Client(node.base_url, auth=PeerAuth(secrets["AuthUsername"],
                                                       secrets["AuthPassword"]))
        credential = await call(operator.credentials.create)
        client = Client(node.base_url, api_key=credential["apiKey"],
                        api_secret=credential["apiSecret"])
        self.assertIn("leaderAddress", await call(Client(node.base_url).health.check))

        project = await call(client.projects.create, "client e2e", "made by scheduler0.client")
        pid = project["id"]
        jobs = [{"projectId": pid, "spec": YEARLY, "timezone": "America/New_York",
                 "callbackUrl": receiver.url, "data": json.dumps({"n": n, "pad": "x" * 40})}
                for n in range(2500)]
        ids = await call(client.jobs.create_many, jobs)
        self.assertEqual(len(ids), 2500)
        self.assertEqual(len(set(ids)), 2500)
        self.assertLessEqual(client.jobs.limits.max_body_bytes, int(BODY_LIMIT_MB * 1024 * 1024))

        # the ids are in the order of the list: job ids[i] holds jobs[i]
        listed = [job for page in await call(lambda: list(client.jobs.pages(pid, 1000)))
                  for job in page.items]
        self.assertEqual(len(listed), 2500)
        data_by_id = {job["id"]: job["data"] for job in listed}
        self.assertEqual([data_by_id[i] for i in ids], [j["data"] for j in jobs])
        first_page = await call(client.jobs.list, pid, 10)
        self.assertEqual((first_page.total, len(first_page.items)), (2500, 10))

        # pause and resume
        paused = await call(client.jobs.pause, ids[0])
        self.assertEqual((paused["paused"], paused["nextRunAt"]), (True, None))
        self.assertTrue((await call(client.jobs.get, ids[0]))["paused"])
        resumed = await call(client.jobs.resume, ids[0])
        self.assertEqual(resumed["paused"], False)
        self.assertIsNotNone(resumed["nextRunAt"])

        # run three jobs now: each callback is signed with the project's secret
        runs = [await call(client.jobs.run, job_id) for job_id in ids[1:4]]
        self.assertEqual([r["jobId"] for r in runs], ids[1:4])
        secret = (await call(client.projects.signing_secret, pid))["signingSecret"]
        for run in runs:
            hit, = await receiver.wait_hits(1, execution_id=run["executionId"], timeout=10)
            self.assertTrue(verify_signature(secret, hit.post.signature, hit.post.body,
                                             now=hit.post.received))
            self.assertFalse(verify_signature("whsec_wrong", hit.post.signature,
                                              hit.post.body, now=hit.post.received))

        # their records, two to a page
        expected = sorted(r["executionId"] for r in runs)
        pages: list[Any] = []
        for _ in range(200):
            pages = await call(lambda: list(client.executions.pages(
                project_id=pid, state="succeeded", page_size=2)))
            if sum(len(p.items) for p in pages) == 3:
                break
            await sleep(0.05)
        self.assertEqual([len(p.items) for p in pages], [2, 1])
        self.assertEqual(sorted(e["executionId"] for p in pages for e in p.items), expected)
        self.assertEqual(pages[0].total, 3)
        one_job = await call(lambda: list(client.executions.iterate(job_id=ids[2])))
        self.assertEqual([e["executionId"] for e in one_job], [runs[1]["executionId"]])

        # the node's 4xx answers, with its messages
        bad = await raises(client.jobs.create, {"projectId": pid, "spec": "61 * * * *",
                                                "callbackUrl": receiver.url})
        self.assertEqual(bad.status, 400)
        self.assertTrue(bad.message.startswith("spec: "), bad.message)
        batch = await raises(client.jobs.create_many, jobs[:3] + [{**jobs[3], "spec": "nope"}])
        self.assertEqual(batch.status, 400)
        self.assertTrue(batch.message.startswith("jobs[3].spec: "), batch.message)
        missing = await raises(client.jobs.get, 2 ** 40)
        self.assertEqual(missing.status, 404)
        reader = await call(operator.credentials.create, ["read"])
        read_only = Client(node.base_url, api_key=reader["apiKey"],
                           api_secret=reader["apiSecret"])
        forbidden = await raises(read_only.jobs.pause, ids[0])
        self.assertEqual(forbidden.status, 403)
        self.assertIn("write", forbidden.message)
        wrong = Client(node.base_url, api_key=credential["apiKey"], api_secret="not-it")
        self.assertEqual((await raises(wrong.projects.list)).status, 401)
