"""
What the end-to-end operability tests share: a real C{twistd scheduler0} node started with
the settings the operability brief fixes (one-second callback timeout, short retries), raw
HTTP calls to paths outside C{/api/v1} (the health, supervisor and DLQ APIs, C{/metrics}),
and lookups into the health answer by receiver (L{OperabilityTestCase}).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import attrs
from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.trial.unittest import TestCase

from scheduler0.timestamps import parse_time

from .daemon import Daemon, sleep
from .receiver import Receiver
from .scheduling import EVERY_SECOND, at_spec, job

__all__ = ["EVERY_SECOND", "at_spec", "job"]  # re-exported: one job body for every node test

reactor: Any = _reactor

HEALTH = "/api/monitoring/scheduler/health"
#: the node settings the brief fixes for these tests
FAST = {"JobExecutionTimeout": 1, "JobExecutionRetryDelay": 0.2, "JobExecutionRetryMax": 2,
        "RateLimitPerMinute": 0}
EPS = 1e-3


def target_of(receiver: Receiver) -> str:
    """The receiver's host (C{scheme://host:port}): the metrics' C{target} label."""
    return f"http://127.0.0.1:{receiver.port}"


def endpoint_of(receiver: Receiver) -> str:
    """The receiver's callback endpoint: a health API instance."""
    return receiver.url


def key_of(receiver: Receiver) -> str:
    return f"http::{endpoint_of(receiver)}"


def ts(text: str | None) -> float | None:
    return parse_time(text).timestamp() if text else None


@attrs.frozen
class Answer:
    code: int
    headers: Any  # twisted.web.http_headers.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


async def call(http: HTTPClient, url: str, method: str = "GET", body: Any = None,
               headers: dict[str, str] | None = None, timeout: float = 10) -> Answer:
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    d = http.request(method, url, data=data, headers=hdrs)
    d.addTimeout(timeout, reactor)
    response = await d
    content = response.content()
    content.addTimeout(timeout, reactor)
    return Answer(response.code, response.headers, await content)


class OperabilityTestCase(TestCase):
    timeout = 60

    async def start_node(self, **config: Any) -> tuple[Daemon, Any, int]:
        node = Daemon(self, {**FAST, **config})
        await node.start()
        client = node.client(peer=True)
        project = await client.ok("POST", "/projects", {"name": "operability"}, expect=201)
        return node, client, project["id"]

    async def api(self, node: Daemon, method: str, path: str, body: Any = None, *,
                  headers: dict[str, str] | None = None, expect: int | None = 200) -> Any:
        """An envelope answer from a path outside /api/v1 (peer auth unless C{headers});
        its C{data}, after checking the status is C{expect} and the envelope is right."""
        answer = await call(node.http(), node.base_url + path, method, body,
                            node.peer_headers() if headers is None else headers)
        envelope = answer.json()
        self.assertEqual(set(envelope), {"success", "data"}, answer.body[:300])
        self.assertEqual(envelope["success"], answer.code < 400, answer.body[:300])
        if expect is not None:
            self.assertEqual(answer.code, expect, f"{method} {path}: {answer.body[:500]!r}")
        return envelope["data"]

    async def health(self, node: Daemon) -> tuple[bytes, dict[str, Any]]:
        answer = await call(node.http(), node.base_url + HEALTH,
                            headers=node.peer_headers())
        self.assertEqual(answer.code, 200, answer.body[:500])
        self.assertEqual(answer.header("content-type"), "application/json")
        return answer.body, answer.json()

    async def poll_health(self, node: Daemon, predicate: Callable[[dict], bool],
                          timeout: float, what: str, every: float = 0.02) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            _, snapshot = await self.health(node)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                self.fail(f"{what} not seen in the health answer within {timeout} s; last "
                          f"answer:\n{json.dumps(snapshot, indent=1)[:4000]}\nlog tail:\n"
                          f"{node.log_text()[-2000:]}")
            await sleep(every)

    async def execution(self, node: Daemon, eid: str) -> dict[str, Any]:
        return await node.client(peer=True).ok("GET", f"/executions/{eid}")

    async def wait_state(self, node: Daemon, eid: str, state: str,
                         timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = await self.execution(node, eid)
            if record["state"] == state:
                return record
            if time.monotonic() > deadline:
                self.fail(f"execution {eid} not {state} within {timeout} s: {record}")
            await sleep(0.05)

    def metrics_samples(self, text: str) -> dict[tuple[str, frozenset], float]:
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    async def metrics(self, node: Daemon) -> dict[tuple[str, frozenset], float]:
        answer = await call(node.http(), node.base_url + "/metrics")
        self.assertEqual(answer.code, 200, answer.body[:300])
        self.assertTrue(answer.header("content-type").startswith("text/plain"),
                        answer.header("content-type"))
        return self.metrics_samples(answer.body.decode())


def instance(snapshot: dict[str, Any], receiver: Receiver,
             url: str | None = None) -> dict[str, Any] | None:
    for item in snapshot["instances"]:
        if item["instance"] == (url or endpoint_of(receiver)):
            return item
    return None


def breaker_state(snapshot: dict[str, Any], receiver: Receiver) -> str | None:
    item = instance(snapshot, receiver)
    return item["breaker"]["state"] if item else None
