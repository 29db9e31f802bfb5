"""
What the end-to-end scheduling tests share: a node started with short retries and a short
callback timeout, job bodies, and checks on the hits a receiver got (L{SchedulingTestCase}).

Specs with six fields put seconds first, so C{* * * * * *} fires every second; C{@every}
fires at C{dateCreated + k x interval} (the anchor taken at its whole second).
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from twisted.internet.defer import FirstError, ensureDeferred, gatherResults
from twisted.trial.unittest import TestCase

from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import parse_time

from .daemon import Daemon, NodeClient, sleep
from .receiver import Hit

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


def client_after(node: Daemon) -> NodeClient:
    """A fresh peer client (the old one's pool closed with the process)."""
    return node.client(peer=True)
