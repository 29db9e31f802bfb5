"""
scheduler0.client through its transport seam: what a script using the client sees for each
answer the node can give (envelope, errors, 429/503 with Retry-After, 413 on a batch), how
any list of jobs is split into requests the node takes, and how pages are walked. No
sockets and no sleeping: a scripted transport answers and a fake sleep records the waits.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.client import (BatchLimits, Client, PeerAuth, RawResponse, RetryPolicy,
                               Scheduler0Error)
from scheduler0.client.retry import parse_retry_after


def envelope(status: int, data: Any, headers: Mapping[str, str] | None = None) -> RawResponse:
    body = json.dumps({"success": status < 400, "data": data}).encode()
    return RawResponse(status, body, dict(headers or {}))


class ScriptedTransport:
    """Answers each request with the next scripted answer (or a function of the request)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def send(self, method: str, url: str, headers: Mapping[str, str],
             body: bytes | None) -> RawResponse:
        request = {"method": method, "url": url, "headers": dict(headers), "body": body}
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(transport: ScriptedTransport, **kwargs: Any) -> tuple[Client, Sleeps]:
    sleeps = Sleeps()
    client = Client("http://node:9091/", api_key="k", api_secret="s", transport=transport,
                    sleep=sleeps, clock=lambda: 1_000_000.0, **kwargs)
    return client, sleeps


def created(request: dict[str, Any], first_id: list[int]) -> RawResponse:
    """The node's 201 for a POST /jobs batch: each job with the next id."""
    jobs = json.loads(request["body"])
    answer = []
    for job in jobs:
        answer.append({**job, "id": first_id[0]})
        first_id[0] += 1
    return envelope(201, answer)


def job(n: int, spec: str = "@every 1m", data: str = "") -> dict[str, Any]:
    return {"projectId": 1, "spec": spec, "callbackUrl": "http://127.0.0.1:3000/cb",
            "data": data or json.dumps({"n": n})}


class RequestTests(SynchronousTestCase):
    def test_api_key_headers_json_body_and_envelope_data(self) -> None:
        transport = ScriptedTransport(envelope(201, {"id": 7, "name": "billing"}))
        client, _ = make(transport)
        project = client.projects.create("billing", "invoices")
        self.assertEqual(project, {"id": 7, "name": "billing"})
        sent = transport.requests[0]
        self.assertEqual((sent["method"], sent["url"]), ("POST", "http://node:9091/api/v1/projects"))
        self.assertEqual((sent["headers"]["x-api-key"], sent["headers"]["x-secret-key"],
                          sent["headers"]["Content-Type"]), ("k", "s", "application/json"))
        self.assertEqual(json.loads(sent["body"]), {"name": "billing", "description": "invoices"})

    def test_peer_basic_auth(self) -> None:
        transport = ScriptedTransport(envelope(201, {"id": 1, "apiKey": "a", "apiSecret": "b"}))
        client = Client("http://node:9091", auth=PeerAuth("admin", "pw"), transport=transport)
        client.credentials.create(scopes=["read"], project_ids=[3])
        headers = transport.requests[0]["headers"]
        self.assertEqual(headers["Authorization"],
                         "Basic " + base64.b64encode(b"admin:pw").decode())
        self.assertEqual(headers["X-Peer"], "cmd")
        self.assertNotIn("x-api-key", headers)
        self.assertEqual(json.loads(transport.requests[0]["body"]),
                         {"scopes": ["read"], "projectIds": [3]})

    def test_from_env_reads_what_create_credential_format_env_sets(self) -> None:
        transport = ScriptedTransport(envelope(200, {}), envelope(200, {}))
        env = {"SCHEDULER0_URL": "http://other:9092", "SCHEDULER0_API_KEY": "ek",
               "SCHEDULER0_API_SECRET": "es"}
        Client.from_env(env, transport=transport).health.check()
        Client.from_env({}, transport=transport).health.check()
        keyed, default = transport.requests
        self.assertEqual((keyed["url"], keyed["headers"]["x-api-key"],
                          keyed["headers"]["x-secret-key"]),
                         ("http://other:9092/api/v1/healthcheck", "ek", "es"))
        self.assertEqual(default["url"], "http://127.0.0.1:9091/api/v1/healthcheck")
        self.assertNotIn("x-api-key", default["headers"])

    def test_credential_update_sends_null_project_ids_only_when_asked(self) -> None:
        transport = ScriptedTransport(envelope(200, {}), envelope(200, {}))
        client, _ = make(transport)
        client.credentials.archive(4)
        client.credentials.update(4, project_ids=None)
        self.assertEqual([json.loads(r["body"]) for r in transport.requests],
                         [{"archived": True}, {"projectIds": None}])

    def test_4xx_raises_one_error_type_with_status_and_the_nodes_message(self) -> None:
        transport = ScriptedTransport(envelope(404, "job 9 does not exist"))
        client, sleeps = make(transport)
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.pause(9)
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (404, "job 9 does not exist"))
        self.assertIn("POST /api/v1/jobs/9/pause: HTTP 404: job 9 does not exist",
                      str(caught.exception))
        self.assertEqual((len(transport.requests), sleeps), (1, []))

    def test_an_answer_that_is_not_the_envelope_keeps_its_text(self) -> None:
        transport = ScriptedTransport(RawResponse(502, b"<html>bad gateway</html>", {},
                                                  "Bad Gateway"))
        client, _ = make(transport, retry=RetryPolicy(attempts=1))
        with self.assertRaises(Scheduler0Error) as caught:
            client.health.check()
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (502, "<html>bad gateway</html>"))

    def test_204_is_none_and_the_scheduler_health_is_not_enveloped(self) -> None:
        snapshot = {"queue": {"depth": 0}, "deadLetters": 0}
        transport = ScriptedTransport(RawResponse(204, b""),
                                      RawResponse(200, json.dumps(snapshot).encode()))
        client, _ = make(transport)
        self.assertIsNone(client.jobs.delete(3))
        self.assertEqual(client.health.scheduler(), snapshot)

    def test_execution_ids_are_quoted_in_paths(self) -> None:
        transport = ScriptedTransport(envelope(200, {"executionId": "7/x y"}))
        client, _ = make(transport)
        client.executions.get("7/x y")
        self.assertEqual(transport.requests[0]["url"],
                         "http://node:9091/api/v1/executions/7%2Fx%20y")


class RetryTests(SynchronousTestCase):
    def test_429_waits_what_retry_after_says_then_succeeds(self) -> None:
        transport = ScriptedTransport(
            envelope(429, "too many requests from this address; retry in 3 s",
                     {"retry-after": "3"}),
            envelope(503, "the cluster has no Raft leader right now", {"retry-after": "1"}),
            envelope(201, {"id": 1}))
        client, sleeps = make(transport)
        self.assertEqual(client.projects.create("p"), {"id": 1})
        self.assertEqual(sleeps, [3.0, 1.0])
        self.assertEqual(len(transport.requests), 3)

    def test_retry_after_as_an_http_date(self) -> None:
        # clock is 1,000,000: 12 s later
        self.assertEqual(parse_retry_after("Mon, 12 Jan 1970 13:46:52 GMT", 1_000_000.0), 12.0)
        self.assertIsNone(parse_retry_after("soon", 0.0))
        transport = ScriptedTransport(
            envelope(503, "busy", {"retry-after": "Mon, 12 Jan 1970 13:46:52 GMT"}),
            envelope(200, {"projects": [], "total": 0, "offset": 0, "limit": 50}))
        client, sleeps = make(transport)
        client.projects.list()
        self.assertEqual(sleeps, [12.0])

    def test_without_retry_after_the_waits_grow(self) -> None:
        transport = ScriptedTransport(*[envelope(503, "busy")] * 3, envelope(200, {}))
        client, sleeps = make(transport, retry=RetryPolicy(attempts=4, base_delay=0.5))
        client.health.check()
        self.assertEqual(sleeps, [0.5, 1.0, 2.0])

    def test_bounded_the_last_answer_is_raised(self) -> None:
        transport = ScriptedTransport(*[envelope(429, "slow down", {"retry-after": "1"})] * 3)
        client, sleeps = make(transport, retry=RetryPolicy(attempts=3))
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.get(1)
        self.assertEqual((caught.exception.status, caught.exception.message), (429, "slow down"))
        self.assertEqual((sleeps, len(transport.requests)), ([1.0, 1.0], 3))

    def test_a_retry_after_longer_than_max_delay_is_not_waited_out(self) -> None:
        transport = ScriptedTransport(envelope(429, "slow down", {"retry-after": "3600"}))
        client, sleeps = make(transport, retry=RetryPolicy(max_delay=30))
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.get(1)
        self.assertEqual((caught.exception.status, sleeps), (429, []))

    def test_a_write_that_may_still_be_applied_is_not_sent_again(self) -> None:
        message = ("the write was not applied within 2 s; it may still be applied, check "
                   "before retrying")
        transport = ScriptedTransport(envelope(503, message, {"retry-after": "1"}),
                                      envelope(503, message, {"retry-after": "1"}),
                                      envelope(200, {"id": 1, "paused": True}))
        client, sleeps = make(transport)
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.create_many([job(1)])
        self.assertEqual((caught.exception.status, caught.exception.message), (503, message))
        self.assertEqual(len(transport.requests), 1)
        # pausing is idempotent: sent again
        self.assertEqual(client.jobs.pause(1)["paused"], True)
        self.assertEqual(sleeps, [1.0])

    def test_other_errors_are_not_retried(self) -> None:
        for status in (400, 401, 403, 409, 413, 500, 507):
            transport = ScriptedTransport(envelope(status, "no"))
            client, sleeps = make(transport)
            with self.assertRaises(Scheduler0Error):
                client.jobs.get(1)
            self.assertEqual((len(transport.requests), sleeps), (1, []), status)


class CreateManyTests(SynchronousTestCase):
    def test_splits_at_10000_jobs_and_returns_ids_in_order(self) -> None:
        next_id = [100]
        transport = ScriptedTransport(*[lambda r: created(r, next_id)] * 3)
        client, _ = make(transport)
        ids = client.jobs.create_many([job(n) for n in range(25_000)])
        self.assertEqual(ids, list(range(100, 25_100)))
        self.assertEqual([len(json.loads(r["body"])) for r in transport.requests],
                         [10_000, 10_000, 5_000])
        self.assertEqual(json.loads(transport.requests[1]["body"])[0]["data"],
                         json.dumps({"n": 10_000}))

    def test_splits_by_body_size(self) -> None:
        next_id = [1]
        transport = ScriptedTransport(*[lambda r: created(r, next_id)] * 10)
        limit = 100_000
        client, _ = make(transport, batch_limits=BatchLimits(max_body_bytes=limit))
        jobs = [job(n, data="x" * 30_000) for n in range(10)]
        self.assertEqual(client.jobs.create_many(jobs), list(range(1, 11)))
        sizes = [len(r["body"]) for r in transport.requests]
        self.assertTrue(all(size <= limit for size in sizes), sizes)
        self.assertEqual([len(json.loads(r["body"])) for r in transport.requests], [3, 3, 3, 1])

    def test_splits_by_the_distinct_cron_spec_budget(self) -> None:
        # 300 distinct specs of 1,000 characters: 300,000 > 262,144; @every specs and
        # repeats of a spec already in the batch do not count
        specs = [f"{n:04d} " + "x" * 995 for n in range(300)]
        jobs = [job(n, spec=s) for n, s in enumerate(specs)]
        jobs += [job(1000 + n, spec=specs[0]) for n in range(5)] + [job(2000)]
        next_id = [1]
        transport = ScriptedTransport(*[lambda r: created(r, next_id)] * 5)
        client, _ = make(transport)
        self.assertEqual(len(client.jobs.create_many(jobs)), 306)
        counts = [len(json.loads(r["body"])) for r in transport.requests]
        self.assertEqual(counts, [262, 44])

    def test_a_413_makes_the_batches_fit_the_limit_the_node_names(self) -> None:
        next_id = [1]
        too_large = envelope(413, "the request body is larger than 50000 bytes "
                                  "(MaxRequestBodyMb); split it into smaller requests")
        transport = ScriptedTransport(too_large, *[lambda r: created(r, next_id)] * 5)
        client, sleeps = make(transport)
        jobs = [job(n, data="y" * 10_000) for n in range(12)]
        self.assertEqual(client.jobs.create_many(jobs), list(range(1, 13)))
        sizes = [len(r["body"]) for r in transport.requests]
        self.assertGreater(sizes[0], 50_000)
        self.assertTrue(all(size <= 50_000 for size in sizes[1:]), sizes)
        self.assertEqual(sum(len(json.loads(r["body"])) for r in transport.requests[1:]), 12)
        self.assertEqual(sleeps, [])

    def test_a_refused_batch_names_the_element_in_the_callers_list(self) -> None:
        next_id = [1]
        transport = ScriptedTransport(
            lambda r: created(r, next_id),
            envelope(400, "jobs[3].spec: '61 * * * *' is not a valid cron spec"))
        client, _ = make(transport)
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.create_many([job(n) for n in range(10_010)])
        error = caught.exception
        self.assertEqual(error.status, 400)
        self.assertEqual(error.message, "jobs[10003].spec: '61 * * * *' is not a valid cron spec")
        self.assertEqual(error.created_ids, list(range(1, 10_001)))

    def test_one_job_too_large_on_its_own_is_the_nodes_413(self) -> None:
        transport = ScriptedTransport(envelope(413, "the request body is larger than 10 bytes"))
        client, _ = make(transport)
        with self.assertRaises(Scheduler0Error) as caught:
            client.jobs.create_many([job(1)])
        self.assertEqual(caught.exception.status, 413)


def page(key: str, items: list[Any], total: int, offset: int, limit: int,
         capped: bool = False) -> RawResponse:
    data: dict[str, Any] = {"total": total, "offset": offset, "limit": limit, key: items}
    if capped:
        data["totalCapped"] = True
    return envelope(200, data)


class PagingTests(SynchronousTestCase):
    def test_execution_pages_until_a_short_page(self) -> None:
        rows = [{"executionId": f"1-{n}"} for n in range(5)]
        transport = ScriptedTransport(page("executions", rows[0:2], 5, 0, 2),
                                      page("executions", rows[2:4], 5, 2, 2),
                                      page("executions", rows[4:], 5, 4, 2))
        client, _ = make(transport)
        pages = list(client.executions.pages(job_id=1, state="succeeded", page_size=2))
        self.assertEqual([p.items for p in pages], [rows[0:2], rows[2:4], rows[4:]])
        self.assertEqual([r["url"] for r in transport.requests], [
            f"http://node:9091/api/v1/jobs/1/executions?state=succeeded&limit=2&offset={o}"
            for o in (0, 2, 4)])

    def test_a_full_last_page_needs_no_extra_request_unless_the_total_is_capped(self) -> None:
        rows = [{"executionId": f"1-{n}"} for n in range(4)]
        transport = ScriptedTransport(page("executions", rows[:2], 4, 0, 2),
                                      page("executions", rows[2:], 4, 2, 2))
        client, _ = make(transport)
        self.assertEqual(len(list(client.executions.pages(page_size=2))), 2)
        transport = ScriptedTransport(page("executions", rows[:2], 2, 0, 2, capped=True),
                                      page("executions", rows[2:], 2, 2, 2, capped=True),
                                      page("executions", [], 2, 4, 2, capped=True))
        client, _ = make(transport)
        self.assertEqual([len(p) for p in client.executions.pages(page_size=2)], [2, 2, 0])

    def test_iterate_yields_each_record_once_when_new_ones_push_the_pages(self) -> None:
        # a new record arrived between the two requests: "1-2" shows on both pages
        transport = ScriptedTransport(
            page("executions", [{"executionId": "1-3"}, {"executionId": "1-2"}], 3, 0, 2),
            page("executions", [{"executionId": "1-2"}, {"executionId": "1-1"}], 4, 2, 2),
            page("executions", [], 4, 4, 2))
        client, _ = make(transport)
        self.assertEqual([e["executionId"] for e in client.executions.iterate(page_size=2)],
                         ["1-3", "1-2", "1-1"])

    def test_jobs_pages_filter_by_project(self) -> None:
        transport = ScriptedTransport(page("jobs", [{"id": 1}], 1, 0, 1000))
        client, _ = make(transport)
        self.assertEqual([p.items for p in client.jobs.pages(project_id=4)], [[{"id": 1}]])
        self.assertIn("projectId=4", transport.requests[0]["url"])
