"""
End to end scheduling: a real C{twistd scheduler0} node and a real callback receiver
(L{tests.integration.receiver}) in the test's reactor. Per-second jobs, job control, retries
and dead letters, misfires across a restart, and the re-send of an occurrence that was in
flight when the node was killed.

Specs with six fields put seconds first, so C{* * * * * *} fires every second; C{@every}
fires at C{dateCreated + k x interval} (the anchor taken at its whole second).
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

from twisted.internet.defer import FirstError, ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import parse_time

from .daemon import Daemon, NodeClient, sleep
from .receiver import Hit, Receiver

EVERY_SECOND = "* * * * * *"
#: Settings that keep the tests short: quick retries, a short callback timeout.
FAST = {"JobExecutionTimeout": 2, "JobExecutionRetryDelay": 0.2, "RateLimitPerMinute": 0}
EPS = 1e-3


def job(project_id: int, url: str, spec: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {"projectId": project_id, "spec": spec, "callbackUrl": url,
            "data": json.dumps({"n": n}), **extra}


def at_spec(seconds_from_now: int) -> tuple[str, float]:
    """An C{@at} spec for a whole second at least C{seconds_from_now} ahead, and its time."""
    when = math.ceil(time.time()) + seconds_from_now
    text = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"@at {text}", float(when)


def created_second(record: dict[str, Any]) -> float:
    """A job's C{@every} anchor: its creation time at the whole second."""
    return math.floor(parse_time(record["dateCreated"]).timestamp())


async def gather(*coroutines: Any) -> list[Any]:
    """Run coroutines concurrently; the first failure is raised as it is."""
    try:
        return await gatherResults([ensureDeferred(c) for c in coroutines], consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()
        raise


class SchedulingTestCase(TestCase):
    timeout = 60

    async def start_node(self, **config: Any) -> tuple[Daemon, NodeClient, int]:
        node = Daemon(self, {**FAST, **config})
        await node.start()
        client = node.client(peer=True)
        project = await client.ok("POST", "/projects", {"name": "scheduling"}, expect=201)
        return node, client, project["id"]

    async def execution(self, client: NodeClient, eid: str) -> dict[str, Any]:
        return await client.ok("GET", f"/executions/{eid}")

    async def wait_state(self, client: NodeClient, eid: str, state: str,
                         timeout: float = 5) -> dict[str, Any]:
        """Poll an execution record until it is in C{state}; fail with the last one seen."""
        deadline = time.monotonic() + timeout
        while True:
            code, envelope = await client.request("GET", f"/executions/{eid}")
            record = envelope["data"] if code == 200 else None
            if record is not None and record["state"] == state:
                return record
            if time.monotonic() > deadline:
                self.fail(f"execution {eid} not {state!r} within {timeout} s: {code} {record}")
            await sleep(0.05)

    def assert_consecutive(self, hits: Iterable[Hit], step: float, what: str) -> list[float]:
        """Exactly one hit per slot between the first and the last: no duplicate
        executionId, no gap. Returns the scheduled times, sorted."""
        hits = list(hits)
        ids = [h.execution_id for h in hits]
        self.assertEqual(len(ids), len(set(ids)), f"{what}: duplicate executionIds {sorted(ids)}")
        times = sorted(h.scheduled for h in hits)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(abs(g - step) < EPS for g in gaps),
                        f"{what}: scheduled times are not {step:g} s apart: "
                        f"{[h.scheduled_text for h in sorted(hits, key=lambda h: h.scheduled)]}")
        return times

    def assert_execution_ids(self, hits: Iterable[Hit]) -> None:
        """Each executionId is the one derived from (job id, scheduled time)."""
        for h in hits:
            self.assertEqual(h.execution_id, execution_id(h.job_id, h.scheduled), h.element)


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


def client_after(node: Daemon) -> NodeClient:
    """A fresh peer client (the old one's pool closed with the process)."""
    return node.client(peer=True)


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


