"""
End to end operability (issue 4): a real C{twistd scheduler0} node, real callback receivers
(L{tests.integration.receiver}) and the real C{jq} binary.

  - the scheduler health answer (C{GET /api/monitoring/scheduler/health}) run through the
    seed's five "Useful jq Queries" unchanged, and its whole shape checked with C{jq -e},
    with one receiver failing permanently (401), one transiently (503, then recovering) and
    one healthy;
  - the transient endpoint's breaker watched through that endpoint from closed to open to
    half_open to closed, every occurrence held meanwhile delivered afterwards, and another
    endpoint of the same receiver delivered all along (isolation is per endpoint);
  - halt and restart through the supervisor: nothing leaves the node while halted, missed
    occurrences follow each job's misfire policy after the restart;
  - a dead letter replayed by API keeps its executionId and ends succeeded;
  - the per-client rate limit (429, C{Retry-After}, the envelope) and C{/metrics}.

CI must have C{jq} on the PATH (C{.ci/run} installs it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from typing import Any, Callable

import attrs
from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from scheduler0.schedule.occurrence import execution_id
from scheduler0.timestamps import parse_time

from .daemon import Daemon, sleep
from .receiver import HANG, Post, Receiver

reactor: Any = _reactor

JQ = shutil.which("jq") or "/usr/bin/jq"
HEALTH = "/api/monitoring/scheduler/health"
EVERY_SECOND = "* * * * * *"
#: the node settings the brief fixes for these tests
FAST = {"JobExecutionTimeout": 1, "JobExecutionRetryDelay": 0.2, "JobExecutionRetryMax": 2,
        "RateLimitPerMinute": 0}
EPS = 1e-3

# The seed's "Useful jq Queries", verbatim (scheduler-health-api.txt).
Q_RECENT_ERRORS = ('.instances[] | select(.pollStatus.lastError != null) | '
                   '{key, lastError: .pollStatus.lastError}')
Q_DEAD_LETTERS = ('.instances[] | select(.deadLetter.present) | '
                  '{key, reason: .deadLetter.reason, retryCount: .deadLetter.retryCount}')
Q_BREAKERS_NOT_CLOSED = ('.instances[] | select(.breaker.state != "closed") | '
                         '{key, breaker: .breaker}')
Q_STALE = '.staleness[] | select(.score > 0.5)'
Q_FAILURE_STREAK = ('.instances[] | select(.pollStatus.consecutiveFailures > 0) | '
                    '{key, failures: .pollStatus.consecutiveFailures}')

# The shape of the whole answer, one C{jq -e} program per property (so a failure names it).
_TS = ('def ts: . == null or (type == "string" and test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T'
       '[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$")); '
       'def int: type == "number" and floor == . and . >= 0; ')
SHAPE = [
    '.updatedAt | type == "string" and ts',
    '.enabled | type == "boolean"',
    'keys == ["breakers","deadLetter","enabled","instances","queue","skipped","staleness","updatedAt"]',
    '.queue | (.depth | int) and (.retryWaiting | int) and (.dueWithinSeconds | int)'
    ' and (.perType | type == "object"'
    ' and all(.[]; int))',
    '.deadLetter | (.count | int) and (.tasks | type == "array" and length <= 25)'
    ' and .count >= (.tasks | length)',
    '.deadLetter.tasks | all(.[]; (.instance | type == "string") and .type == "http"'
    ' and (.nextRun | ts) and has("lastError") and (.failures | int))',
    '.breakers | type == "array" and all(.[]; (.instance | type == "string")'
    ' and .type == "http" and (.state | IN("closed", "open", "half_open", "unknown"))'
    ' and (.failures | int) and (.retryAt | ts))',
    '.staleness | type == "array" and all(.[]; (.instance | type == "string")'
    ' and .type == "http" and (.score | type == "number" and . >= 0 and . <= 1)'
    ' and (.lastSuccess | ts) and (.lastError | ts))',
    '.instances | type == "array" and length > 0 and all(.[];'
    ' .key == "\\(.type)::\\(.instance)" and .type == "http" and (.connection | type == "string")'
    ' and (.displayName | type == "string" and length > 0))',
    '.instances | all(.[]; .pollStatus | (.lastSuccess | ts) and (.firstFailureAt | ts)'
    ' and (.consecutiveFailures | int) and (.lastError == null or ((.lastError.at | ts)'
    ' and (.lastError.message | type == "string")'
    ' and (.lastError.category | IN("transient", "permanent")))))',
    '.instances | all(.[]; .breaker | (.state | IN("closed", "open", "half_open", "unknown"))'
    ' and (.since | ts) and (.lastTransition | ts) and (.retryAt | ts) and (.failureCount | int))',
    '.instances | all(.[]; .deadLetter | (.present | type == "boolean") and (if .present then'
    ' (.reason | IN("max_retry_attempts", "permanent_failure")) and (.retryCount | int)'
    ' and (.firstAttempt | ts) and (.lastAttempt | ts) and (.nextRetry | ts) else true end))',
    '([.instances[].instance] | sort) == ([.breakers[].instance] | sort)'
    ' and ([.instances[].instance] | sort) == ([.staleness[].instance] | sort)',
]


def job(project_id: int, url: str, spec: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {"projectId": project_id, "spec": spec, "callbackUrl": url,
            "data": json.dumps({"n": n}), **extra}


def at_spec(seconds_from_now: int) -> tuple[str, float]:
    when = math.ceil(time.time()) + seconds_from_now
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return f"@at {text}", float(when)


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


def gather(*coroutines: Any) -> Deferred:
    return gatherResults([ensureDeferred(c) for c in coroutines], consumeErrors=True)


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

    async def jq(self, document: bytes, program: str, *flags: str) -> tuple[int, list[Any]]:
        """Run the real jq on C{document} (as the seed's C{curl ... | jq} does, from a file):
        (exit code, the values it printed)."""
        if not os.access(JQ, os.X_OK):
            self.fail(f"jq is not installed ({JQ}); the operability tests run the health "
                      "API's documented jq queries with the real binary: apt-get install jq")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(document)
        out, err, code = await getProcessOutputAndValue(
            JQ, ["-c", *flags, program, path], env=dict(os.environ), reactor=reactor)
        if code not in (0, 1) or err:
            self.fail(f"jq {program!r} ended with {code}: {err.decode(errors='replace')}")
        return code, [json.loads(line) for line in out.decode().splitlines() if line]

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


def expected_staleness(snapshot: dict[str, Any], item: dict[str, Any],
                       interval: float) -> float:
    """The score the node should report, recomputed from the answer's own timestamps
    (0 until 1.5 intervals without a success, 1 at 5)."""
    reference = ts(item["pollStatus"]["lastSuccess"]) or ts(item["pollStatus"]["firstFailureAt"])
    if reference is None:
        return 0.0
    age = ts(snapshot["updatedAt"]) - reference
    return min(1.0, max(0.0, (age - 1.5 * interval) / (3.5 * interval)))


class HealthTests(OperabilityTestCase):
    async def test_seed_jq_queries_and_a_breaker_cycle_through_the_health_answer(self) -> None:
        node, client, pid = await self.start_node()
        healthy, transient, refusing = Receiver(self), Receiver(self), Receiver(self)
        refusing.answer(401)

        # The transient receiver: 200 at first; 503 for every occurrence scheduled from
        # fail_from on until told to recover; then its first request (the breaker's probe)
        # hangs until released, and everything after it gets 200. Its other endpoint
        # (/callback/other) always answers 200.
        mode = {"phase": "ok", "fail_from": math.inf}
        probes: list[Post] = []
        other_url = transient.url + "/other"

        def transient_policy(post: Post) -> int | None:
            if post.path.endswith("/other"):
                return 200
            if mode["phase"] == "probe":
                mode["phase"] = "recovered"
                probes.append(post)
                return HANG
            if mode["phase"] == "recovered":
                return 200
            if any(h.scheduled >= mode["fail_from"] for h in post.hits):
                return 503
            return 200

        transient.answer(transient_policy)
        # five jobs of five projects on one endpoint: one round is five deliveries (one per
        # project), so the first failing round alone opens the endpoint's breaker
        # (threshold 5) and no occurrence of it uses up its retries before that: all of
        # them are held, none dead-lettered
        projects = [pid] + [(await client.ok("POST", "/projects", {"name": f"transient {n}"},
                                             expect=201))["id"] for n in range(4)]
        created = await client.ok("POST", "/jobs", [
            job(pid, healthy.url, EVERY_SECOND, 0),
            job(pid, refusing.url, EVERY_SECOND, 1),
            *(job(project, transient.url, EVERY_SECOND, n)
              for n, project in enumerate(projects, 2)),
            job(pid, other_url, EVERY_SECOND, 7),
        ], expect=201)
        healthy_job, refusing_job = created[0]["id"], created[1]["id"]
        transient_jobs = [j["id"] for j in created[2:7]]
        other_job = created[7]["id"]

        # closed: the transient target answered its first round
        await transient.wait_jobs(transient_jobs, 1, timeout=5)
        closed = await self.poll_health(
            node, lambda s: (breaker_state(s, transient) == "closed"
                             and instance(s, transient)["pollStatus"]["lastSuccess"]),
            3, "the transient target closed with a success")
        item = instance(closed, transient)
        poll = item["pollStatus"]
        self.assertEqual((poll["lastError"], poll["consecutiveFailures"],
                          item["breaker"]["failureCount"]), (None, 0, 0), item)

        # open: five 503s in one round
        mode["fail_from"] = math.ceil(time.time() + 0.3)
        opened = await self.poll_health(node, lambda s: breaker_state(s, transient) == "open",
                                        mode["fail_from"] - time.time() + 3,
                                        "the transient breaker open")
        open_seen = time.time()
        item = instance(opened, transient)
        breaker = item["breaker"]
        self.assertGreaterEqual(breaker["failureCount"], 5, item)
        self.assertEqual(breaker["since"], breaker["lastTransition"], item)
        # the first opening waits 5 s +-20 % before the probe
        wait = ts(breaker["retryAt"]) - ts(breaker["since"])
        self.assertTrue(4.0 - EPS <= wait <= 6.0 + EPS, item)
        self.assertEqual(item["pollStatus"]["lastError"]["category"], "transient", item)
        self.assertEqual(item["pollStatus"]["lastError"]["message"], "HTTP 503: {}", item)
        self.assertGreaterEqual(item["pollStatus"]["consecutiveFailures"], 5, item)
        self.assertGreaterEqual(ts(item["pollStatus"]["firstFailureAt"]), mode["fail_from"], item)
        self.assertLess(ts(item["pollStatus"]["lastSuccess"]), mode["fail_from"], item)
        samples = await self.metrics(node)
        # /metrics counts hosts by breaker state and names none (the health API does)
        self.assertGreaterEqual(samples[("scheduler0_breakers",
                                         frozenset({("state", "open")}))], 1.0)
        self.assertGreaterEqual(samples[("scheduler0_breakers",
                                         frozenset({("state", "closed")}))], 1.0)
        self.assertEqual([k for k in samples if "target" in dict(k[1])], [])

        # let the 401 target fail for long enough to be stale (score > 0.5 after 3.25
        # intervals of 1 s without a success), still within the breaker's open time
        refused_since = ts(instance(opened, refusing)["pollStatus"]["firstFailureAt"])
        await sleep(max(0.0, refused_since + 3.7 - time.time()))
        refused_before = len(refusing.hits_for(refusing_job))
        document, snapshot = await self.health(node)
        refused_after = len(refusing.hits_for(refusing_job))
        self.assertEqual(breaker_state(snapshot, transient), "open",
                         "the breaker closed again before the jq queries ran")
        await self.check_jq_queries(document, snapshot, healthy, transient, refusing)
        await self.check_shape(document)
        self.assertIs(snapshot["enabled"], True)
        # every 401 answer dead-lettered its occurrence (the last may not be recorded yet)
        self.assertGreaterEqual(snapshot["deadLetter"]["count"], refused_before - 1)
        self.assertLessEqual(snapshot["deadLetter"]["count"], refused_after)
        self.assertEqual({t["instance"] for t in snapshot["deadLetter"]["tasks"]},
                         {endpoint_of(refusing)}, snapshot["deadLetter"])
        # the transient receiver's other endpoint is not held by its open breaker
        other = instance(snapshot, transient, other_url)
        self.assertEqual((other["breaker"]["state"], other["pollStatus"]["lastError"]),
                         ("closed", None), other)

        # half_open: the probe is let through (and hangs); then closed once it succeeds
        mode["phase"] = "probe"
        retry_at = ts(instance(snapshot, transient)["breaker"]["retryAt"])
        half = await self.poll_health(node, lambda s: breaker_state(s, transient) == "half_open",
                                      retry_at - time.time() + 2, "the transient breaker half_open")
        # the probe leaves once half_open is reached (its dispatch is recorded first)
        await transient.wait_until(lambda: probes, 0.5, "the breaker's probe")
        self.assertEqual(len(probes), 1, transient.summary())
        (probe,) = probes
        self.assertGreaterEqual(probe.received, retry_at - 0.05)
        item = instance(half, transient)
        self.assertGreater(ts(item["breaker"]["since"]), ts(snapshot["updatedAt"]) - EPS, item)
        # nothing reached the endpoint while its breaker was open
        during_open = [p.index for p in transient.posts
                       if open_seen < p.received < probe.received
                       and not p.path.endswith("/other")]
        self.assertEqual(during_open, [], transient.summary())
        self.assertEqual(transient.release(200), 1, "the probe was not pending any more")
        recovered_at = time.time()
        closed = await self.poll_health(node, lambda s: breaker_state(s, transient) == "closed",
                                        2, "the transient breaker closed again")
        item = instance(closed, transient)
        poll = item["pollStatus"]
        self.assertEqual((item["breaker"]["failureCount"], poll["consecutiveFailures"],
                          poll["firstFailureAt"], item["breaker"]["retryAt"]),
                         (0, 0, None, None), item)
        self.assertGreaterEqual(ts(item["pollStatus"]["lastSuccess"]), recovered_at - 0.1, item)
        self.assertFalse(item["deadLetter"]["present"], item)

        # no occurrence lost: every second from the first one to the recovery delivered with
        # a 200, exactly once per executionId, and recorded succeeded
        await sleep(1.5)
        for job_id in transient_jobs:
            hits = transient.hits_for(job_id)
            first = min(h.scheduled for h in hits)
            seconds = range(int(first), int(recovered_at) + 1)
            expected = {execution_id(job_id, float(s)) for s in seconds}
            delivered = [h.execution_id for h in hits if h.post.status == 200]
            self.assertEqual(sorted(set(delivered) & expected), sorted(expected),
                             f"job {job_id}: held occurrences not delivered\n{transient.summary()}")
            self.assertEqual(len(delivered), len(set(delivered)),
                             f"job {job_id}: an occurrence delivered twice\n{transient.summary()}")
            held = [s for s in seconds if s >= mode["fail_from"]]
            self.assertGreaterEqual(len(held), 4, "too few occurrences were held to matter")
            listed = await client.ok("GET", f"/executions?jobId={job_id}&limit=10000")
            states = {r["executionId"]: r["state"] for r in listed["executions"]}
            self.assertEqual({e: states.get(e) for e in expected},
                             dict.fromkeys(expected, "succeeded"))
        samples = await self.metrics(node)
        self.assertEqual([k for k in samples if "target" in dict(k[1])], [])
        self.assertGreater(len(healthy.hits_for(healthy_job)), 5)
        # the same receiver's other endpoint got every second, first time, all along
        hits = transient.hits_for(other_job)
        seconds = sorted(h.scheduled for h in hits)
        self.assertEqual(seconds, [seconds[0] + k for k in range(len(seconds))],
                         transient.summary())
        self.assertGreaterEqual(seconds[-1], recovered_at - 1)
        self.assertEqual({h.attempt for h in hits}, {1}, transient.summary())
        self.assertLess(max(h.lateness for h in hits), 1.0, transient.summary())

    async def check_jq_queries(self, document: bytes, snapshot: dict[str, Any],
                               healthy: Receiver, transient: Receiver,
                               refusing: Receiver) -> None:
        by_key = {i["key"]: i for i in snapshot["instances"]}
        self.assertEqual(set(by_key), {key_of(healthy), key_of(transient), key_of(refusing),
                                       f"http::{transient.url}/other"}, snapshot)
        failing = {key_of(transient), key_of(refusing)}
        (_, errors), (_, dead), (_, not_closed), (_, stale), (_, streak) = await gather(
            self.jq(document, Q_RECENT_ERRORS), self.jq(document, Q_DEAD_LETTERS),
            self.jq(document, Q_BREAKERS_NOT_CLOSED), self.jq(document, Q_STALE),
            self.jq(document, Q_FAILURE_STREAK))

        # instances with recent errors: the two failing ones, each with its category
        self.assertEqual(sorted(e["key"] for e in errors), sorted(failing), errors)
        got = {e["key"]: (e["lastError"]["category"], e["lastError"]["message"]) for e in errors}
        self.assertEqual(got, {key_of(transient): ("transient", "HTTP 503: {}"),
                               key_of(refusing): ("permanent", "HTTP 401: {}")})
        for e in errors:
            self.assertLessEqual(ts(e["lastError"]["at"]), ts(snapshot["updatedAt"]) + EPS)

        # current dead-letter queue entries: the 401 target only (the 503 one's occurrences
        # are held by its open breaker, not dead), each occurrence dead after one attempt
        self.assertEqual(dead, [{"key": key_of(refusing), "reason": "permanent_failure",
                                 "retryCount": 1}])

        # breakers not closed: the transient one, open, with its retry time
        listed = {b["key"]: b["breaker"] for b in not_closed}
        self.assertIn(key_of(transient), listed, not_closed)
        self.assertNotIn(key_of(healthy), listed, not_closed)
        self.assertEqual(listed[key_of(transient)]["state"], "open")
        self.assertIsNotNone(listed[key_of(transient)]["retryAt"])
        self.assertEqual(set(listed), {k for k, i in by_key.items()
                                       if i["breaker"]["state"] != "closed"})

        # stale instances: what the timestamps imply (1 s interval); the 401 target has
        # never succeeded and has failed for more than 3.25 intervals
        scores = {s["instance"]: s["score"] for s in snapshot["staleness"]}
        for item in snapshot["instances"]:
            expected = expected_staleness(snapshot, item, 1.0)
            self.assertTrue(abs(scores[item["instance"]] - expected) <= 0.01,
                            (item["instance"], scores, expected))
        stale_targets = {s["instance"] for s in stale}
        self.assertIn(endpoint_of(refusing), stale_targets, stale)
        self.assertNotIn(endpoint_of(healthy), stale_targets, stale)
        self.assertEqual(stale_targets, {t for t, score in scores.items() if score > 0.5})
        self.assertTrue(all(s["score"] > 0.5 and s["type"] == "http" for s in stale), stale)
        self.assertIsNone([s for s in stale if s["instance"] == endpoint_of(refusing)][0][
            "lastSuccess"])

        # instances by failure streak: the two failing ones, with their streaks
        self.assertEqual(sorted(s["key"] for s in streak), sorted(failing), streak)
        for s in streak:
            self.assertEqual(s["failures"], by_key[s["key"]]["pollStatus"]["consecutiveFailures"])
        streaks = {s["key"]: s["failures"] for s in streak}
        self.assertGreaterEqual(streaks[key_of(transient)], 5, streak)
        self.assertGreaterEqual(streaks[key_of(refusing)], 3, streak)

    async def check_shape(self, document: bytes) -> None:
        results = await gather(*(self.jq(document, _TS + check, "-e") for check in SHAPE))
        failed = [(check, code, out) for check, (code, out) in zip(SHAPE, results) if code != 0]
        self.assertEqual(failed, [], document[:3000])
        # and jq -e really fails on a false property
        code, _ = await self.jq(document, ".queue.depth | type == \"string\"", "-e")
        self.assertEqual(code, 1)

    async def test_health_needs_read_scope(self) -> None:
        node, client, _ = await self.start_node()
        answer = await call(node.http(), node.base_url + HEALTH)
        self.assertEqual(answer.code, 401, answer.body)
        self.assertEqual(answer.json()["success"], False)
        reader = await client.ok("POST", "/credentials", {"scopes": ["read"]}, expect=201)
        headers = {"x-api-key": reader["apiKey"], "x-secret-key": reader["apiSecret"]}
        answer = await call(node.http(), node.base_url + HEALTH, headers=headers)
        self.assertEqual(answer.code, 200, answer.body)
        # an empty node: no instances, nothing queued, nothing dead
        self.assertEqual(answer.json()["instances"], [])
        self.assertEqual(answer.json()["deadLetter"], {"count": 0, "tasks": []})
        # repairs and the supervisor need admin
        for method, path in (("POST", "/api/supervisor/halt"),
                             ("POST", "/api/monitoring/dlq/retry"),
                             ("GET", "/api/supervisor/state")):
            await self.api(node, method, path, headers=headers, expect=403)


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


class LimitsAndMetricsTests(OperabilityTestCase):
    async def test_rate_limit_answers_429_with_retry_after(self) -> None:
        node = Daemon(self, {**FAST, "RateLimitPerMinute": 5})
        await node.start()
        # a client address of its own (127.0.0.2 reaches the node on 127.0.0.1), so the
        # fixture's healthcheck polls do not spend its budget
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        other = HTTPClient(Agent(reactor, pool=pool, bindAddress=("127.0.0.2", 0)))
        peer = node.peer_headers()
        # the probes (healthcheck, /metrics) are not counted: five API calls spend the budget
        paths = ["/api/v1/healthcheck", HEALTH, "/api/v1/projects", "/metrics", HEALTH,
                 "/api/v1/healthcheck", "/api/v1/projects", "/metrics", "/api/v1/projects"]
        for n, path in enumerate(paths, 1):
            answer = await call(other, node.base_url + path, headers=peer)
            self.assertEqual(answer.code, 200, f"request {n} ({path}): {answer.body[:200]!r}")
        sixth = await call(other, node.base_url + "/api/v1/projects", headers=peer)
        self.assertEqual(sixth.code, 429, sixth.body)
        retry_after = sixth.header("retry-after")
        self.assertIsNotNone(retry_after, sixth.headers)
        self.assertTrue(retry_after.isdigit() and 1 <= int(retry_after) <= 12, retry_after)
        envelope = sixth.json()
        self.assertEqual(set(envelope), {"success", "data"})
        self.assertIs(envelope["success"], False)
        self.assertIn("RateLimitPerMinute", envelope["data"])
        self.assertEqual(sixth.header("content-type"), "application/json")
        # the budget is per client: 127.0.0.1 still gets through
        answer = await call(node.http(), node.base_url + "/api/v1/projects", headers=peer)
        self.assertEqual(answer.code, 200)
        # and the refusal is counted by route and status
        samples = await call(node.http(), node.base_url + "/metrics")
        self.assertEqual(samples.code, 200)
        counted = self.metrics_samples(samples.body.decode())
        self.assertEqual(counted[("scheduler0_api_requests_total", frozenset({
            ("route", "/api/v1/projects"), ("method", "GET"), ("status", "429")}))], 1.0)

    async def test_metrics_in_prometheus_text(self) -> None:
        node, client, pid = await self.start_node()
        receiver = Receiver(self)
        (created,) = await client.ok("POST", "/jobs", [job(pid, receiver.url, EVERY_SECOND)],
                                     expect=201)
        await receiver.wait_hits(2, job_id=created["id"], timeout=5)
        await sleep(0.2)
        answer = await call(node.http(), node.base_url + "/metrics")
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        text = answer.body.decode()
        for name in ("# TYPE scheduler0_occurrences_total counter",
                     "# TYPE scheduler0_breakers gauge",
                     "# TYPE process_resident_memory_bytes gauge",
                     "# TYPE scheduler0_occurrence_lateness_seconds histogram",
                     "# TYPE scheduler0_callback_duration_seconds histogram"):
            self.assertIn(name, text)
        samples = self.metrics_samples(text)
        delivered = len(receiver.hits)
        self.assertGreaterEqual(samples[("scheduler0_occurrences_total",
                                         frozenset({("outcome", "succeeded")}))], 2)
        self.assertLessEqual(samples[("scheduler0_occurrences_total",
                                      frozenset({("outcome", "succeeded")}))], delivered)
        self.assertEqual(samples[("scheduler0_occurrences_total",
                                  frozenset({("outcome", "dead")}))], 0)
        self.assertEqual(samples[("scheduler0_breakers", frozenset({("state", "closed")}))],
                         1.0)
        self.assertEqual(samples[("scheduler0_breakers", frozenset({("state", "open")}))], 0.0)
        self.assertNotIn(target_of(receiver), text)  # no callback target, anywhere
        self.assertGreater(samples[("process_resident_memory_bytes", frozenset())], 10 * 2**20)
        self.assertGreaterEqual(samples[("scheduler0_occurrence_lateness_seconds_count",
                                         frozenset())], 2)
        self.assertGreaterEqual(samples[("scheduler0_callback_duration_seconds_count",
                                         frozenset())], 2)
        self.assertEqual(samples[("scheduler0_scheduler_halted", frozenset())], 0.0)
        self.assertEqual(samples[("scheduler0_api_requests_total", frozenset({
            ("route", "/api/v1/jobs"), ("method", "POST"), ("status", "201")}))], 1.0)
