"""
End to end, the scheduler health answer (C{GET /api/monitoring/scheduler/health}, issue 4) of
a real C{twistd scheduler0} node with real callback receivers (L{tests.integration.receiver}):
one failing permanently (401), one transiently (503, then recovering) and one healthy.

  - the answer run through the seed's five "Useful jq Queries" unchanged, and its whole
    shape checked one C{jq -e} program per property, with libjq (the C{jq} package, see
    L{tests.health_queries}): no system binary needed;
  - the transient endpoint's breaker watched through that endpoint from closed to open to
    half_open to closed, every occurrence held meanwhile delivered afterwards, and another
    endpoint of the same receiver delivered all along (isolation is per endpoint);
  - who may read it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from scheduler0.schedule.occurrence import execution_id

from ..health_queries import (
    BREAKERS_NOT_CLOSED,
    DEAD_LETTERS,
    FAILURE_STREAK,
    RECENT_ERRORS,
    STALE,
    jq_exit_status,
    run_jq,
)
from .daemon import sleep
from .operability import (
    EPS,
    EVERY_SECOND,
    HEALTH,
    OperabilityTestCase,
    breaker_state,
    call,
    endpoint_of,
    instance,
    job,
    key_of,
    ts,
)
from .receiver import HANG, Post, Receiver


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
        self.check_jq_queries(document, snapshot, healthy, transient, refusing)
        self.check_shape(document)
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

    def check_jq_queries(self, document: bytes, snapshot: dict[str, Any],
                               healthy: Receiver, transient: Receiver,
                               refusing: Receiver) -> None:
        by_key = {i["key"]: i for i in snapshot["instances"]}
        self.assertEqual(set(by_key), {key_of(healthy), key_of(transient), key_of(refusing),
                                       f"http::{transient.url}/other"}, snapshot)
        failing = {key_of(transient), key_of(refusing)}
        # the answer's bytes, as C{curl ... | jq} reads them
        errors, dead, not_closed, stale, streak = (
            run_jq(query, document) for query in (RECENT_ERRORS, DEAD_LETTERS,
                                                  BREAKERS_NOT_CLOSED, STALE, FAILURE_STREAK))

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

    def check_shape(self, document: bytes) -> None:
        failed = [(check, run_jq(_TS + check, document)) for check in SHAPE
                  if jq_exit_status(_TS + check, document) != 0]
        self.assertEqual(failed, [], document[:3000])
        # and jq -e really fails on a false property
        self.assertEqual(jq_exit_status(".queue.depth | type == \"string\"", document), 1)

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
