"""
Hostile input at the API's edge (issue 8): every field has a documented maximum and an
overlong value is a 400 that does not echo it; ids, offsets, limits, grace periods and
dates are range-checked before they reach sqlite or datetime; the seven inputs that used to
end in a 500 (huge integers, overflowing dates, a cron search past year 9999, deep JSON,
non-UTF-8 credential headers, C{//} in a path, full-width digit ids) are 4xx with a
message; and an unauthenticated request never writes a traceback to the log.

In process: real sqlite, the command log applying synchronously (so a value that would fail
in the sqlite writer fails the request), StubTreq over the Klein resource, a Clock.
"""

from __future__ import annotations

import json
from io import BytesIO
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from scheduler0.api.app import Api
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.schedule.spec import (SpecError, first_fire_or_error, load_zone, next_fire,
                                      parse_spec)
from scheduler0.store.service import StoreService

from treq.testing import StubTreq

from .harness import T0, ApiHarness

BIG = 2**63  # one past sqlite's largest INTEGER
URL = "http://127.0.0.1:3000/callback"
UTC = timezone.utc
LAST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # the last a datetime holds


class Failures:
    """Collects every log event that carries a failure (a traceback) while a test runs."""

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self._observe)
        testcase.addCleanup(globalLogPublisher.removeObserver, self._observe)
        self._testcase = testcase

    def _observe(self, event: dict) -> None:
        if event.get("log_failure") is not None:
            self.events.append(event)

    def assert_none(self) -> None:
        # trial would report them as errors too; flushing here names the test that logged
        logged = self._testcase.flushLoggedErrors()
        self._testcase.assertEqual(
            [repr(e["log_failure"].value) for e in self.events] + [repr(f.value) for f in logged],
            [])


class EdgeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.failures = Failures(self)
        self.h = ApiHarness(self)
        self.project = self.h.project()

    def job(self, **fields: Any) -> dict[str, Any]:
        return {"projectId": self.project["id"], "spec": "*/5 * * * *", "callbackUrl": URL,
                **fields}

    def refused(self, method: str, path: str, body: Any = None, *, expect: int = 400,
                raw: bytes | None = None, headers: dict | None = None) -> str:
        """The request's error message, after checking its status and that nothing was
        logged with a traceback."""
        code, envelope = self.h.request(method, path, body, raw=raw, headers=headers)
        self.assertEqual(code, expect, envelope)
        self.assertIs(envelope["success"], False)
        self.failures.assert_none()
        return envelope["data"]

    def jobs_stored(self) -> int:
        return self.h.ok("GET", "/jobs")["total"]


class FieldLimitTests(EdgeTestCase):
    """Item 2: a documented maximum per field, and a 400 that does not echo the value."""

    def assert_short(self, message: str, value_length: int) -> None:
        self.assertLess(len(message), 300, "the message must not echo the value back")
        self.assertIn(f"(got {value_length})", message)

    def test_megabyte_cron_spec_is_refused_before_parsing(self) -> None:
        # a valid spec: parsing 4 MB of it took 8 s on the reactor, and again at every restart
        spec = ",".join(["0"] * 500_000) + " * * * *"
        message = self.refused("POST", "/jobs", self.job(spec=spec))
        self.assertTrue(message.startswith("spec: at most 1024 characters"), message)
        self.assert_short(message, len(spec))
        self.assertEqual(self.jobs_stored(), 0)

    def test_spec_of_1024_characters_is_accepted(self) -> None:
        spec = "0," * 507 + "10" + " * * * *"
        self.assertEqual(len(spec), 1024)
        self.h.ok("POST", "/jobs", self.job(spec=spec), expect=201)

    def test_every_text_field_has_a_maximum(self) -> None:
        cases = [
            ("/jobs", "spec", 1024, lambda n: self.job(spec="0" + " " * (n - 10) + "* * * *")),
            ("/jobs", "callbackUrl", 2048,
             lambda n: self.job(callbackUrl="http://a.test/" + "x" * (n - 14))),
            ("/jobs", "timezone", 64, lambda n: self.job(timezone="Z" * n)),
            ("/jobs", "startDate", 64, lambda n: self.job(startDate="2" * n)),
            ("/jobs", "endDate", 64, lambda n: self.job(endDate="2" * n)),
            ("/projects", "name", 200, lambda n: {"name": "n" * n}),
            ("/projects", "description", 4096, lambda n: {"name": "other", "description": "d" * n}),
        ]
        for path, field, limit, body in cases:
            length = max(limit + 1, 10_000)
            message = self.refused("POST", path, body(length))
            self.assertTrue(message.startswith(f"{field}: at most {limit} characters"),
                            (field, message))
            self.assertLess(len(message), 300, (field, "echoed the value"))

    def test_data_may_be_64_kib_of_utf8(self) -> None:
        self.h.ok("POST", "/jobs", self.job(data="x" * 65536), expect=201)
        # 32,769 characters, but 65,538 bytes in UTF-8
        message = self.refused("POST", "/jobs", self.job(data="é" * 32769))
        self.assertEqual(message, "data: at most 65536 bytes in UTF-8 (got 65538)")
        self.assertEqual(self.jobs_stored(), 1)

    def test_field_limits_name_the_batch_element(self) -> None:
        batch = [self.job(), self.job(callbackUrl="http://a.test/" + "x" * 100_000)]
        message = self.refused("POST", "/jobs", batch)
        self.assertTrue(message.startswith("jobs[1].callbackUrl: at most 2048 characters"),
                        message)

    def test_unknown_field_with_a_huge_name_is_not_echoed(self) -> None:
        message = self.refused("POST", "/projects", {"name": "p2", "k" * 100_000: 1})
        self.assertIn("100000-character name: unknown field", message)
        self.assertLess(len(message), 300)

    def test_odd_values_are_described_not_echoed(self) -> None:
        message = self.refused("POST", "/jobs", self.job(misfirePolicy="p" * 100_000))
        self.assertEqual(message, "misfirePolicy: a 100000-character string is not one of "
                                  "skip, fire_once, fire_all")
        message = self.refused("POST", "/jobs", self.job(executionType={"a": ["b" * 100_000]}))
        self.assertTrue(message.startswith("executionType: a JSON object is not supported"))
        message = self.refused("GET", "/executions?state=" + "s" * 10_000)
        self.assertLess(len(message), 300)

    def test_distinct_cron_specs_of_one_batch_are_bounded_in_total(self) -> None:
        # each spec is legal, but 300 distinct 1,000-character specs would take seconds to
        # parse on the reactor: refused before any parsing
        batch = [self.job(spec=long_spec(i)) for i in range(300)]
        message = self.refused("POST", "/jobs", batch)
        self.assertIn("the distinct cron specs of this batch total", message)
        self.assertIn("the limit per request is 262144, split the batch", message)
        self.assertEqual(self.jobs_stored(), 0)
        # the same spec many times counts once, and @every/@at cost nothing
        same = [self.job(spec=batch[0]["spec"]) for _ in range(300)]
        self.assertEqual(len(self.h.ok("POST", "/jobs", same, expect=201)), 300)


def long_spec(i: int) -> str:
    """A valid cron spec of about 1,000 characters; distinct for each C{i} in 0..599."""
    minutes = ""
    for k in range(400):
        item = str((i + k) % 60)
        if len(minutes) + len(item) + 1 > 990:
            break
        minutes += ("," if minutes else "") + item
    return minutes + " * * * *" + " " * (i // 60)


class RangeTests(EdgeTestCase):
    """Item 3 at the edge: ids, offsets, limits, grace and dates are range-checked."""

    def test_path_ids_past_sqlite_integer_are_404(self) -> None:
        self.h.ok("POST", "/jobs", self.job(), expect=201)
        for path in (f"/projects/{BIG}", f"/jobs/{BIG}", f"/credentials/{BIG}",
                     f"/jobs/{BIG}/executions", f"/projects/{'9' * 5000}"):
            message = self.refused("GET", path, expect=404)
            self.assertEqual(message, "no such resource: ids are whole numbers from 1 to "
                                      "9223372036854775807")
        self.refused("POST", f"/jobs/{BIG}/pause", expect=404)
        self.refused("PUT", f"/projects/{BIG}", {"name": "x"}, expect=404)
        self.refused("DELETE", f"/credentials/{BIG}", expect=404)
        # leading zeros are still the same id
        self.assertEqual(self.h.ok("GET", "/projects/" + "0" * 30 + "1")["id"], 1)
        # the largest id is a plain "does not exist"
        self.assertEqual(self.refused("GET", f"/projects/{BIG - 1}", expect=404),
                         f"project {BIG - 1} does not exist")

    def test_full_width_digits_are_not_ids(self) -> None:
        # project 1 exists; werkzeug's \d read "１" (U+FF11) as 1
        self.assertEqual(self.project["id"], 1)
        message = self.refused("GET", "/projects/\uff11", expect=404)
        self.assertTrue(message.startswith("no such endpoint"), message)
        self.refused("GET", "/jobs?projectId=\uff11")
        self.refused("GET", "/projects?limit=\uff15")
        message = self.refused("POST", "/jobs", self.job(projectId="\uff11"))
        self.assertTrue(message.startswith("projectId: required"), message)
        self.assertEqual(self.jobs_stored(), 0)

    def test_query_integers_past_sqlite_integer_are_400(self) -> None:
        for query, name in ((f"/projects?offset={BIG}", "offset"),
                            (f"/jobs?limit=10&offset={BIG}", "offset"),
                            (f"/jobs?projectId={BIG}", "projectId"),
                            (f"/executions?jobId={BIG}", "jobId"),
                            (f"/executions?projectId={BIG}", "projectId"),
                            (f"/credentials?offset={'9' * 5000}", "offset")):
            message = self.refused("GET", query)
            self.assertTrue(message.startswith(f"{name}: "), message)
            self.assertLess(len(message), 300)
        self.assertEqual(self.h.ok("GET", f"/projects?offset={BIG - 1}")["projects"], [])

    def test_body_integers_past_sqlite_integer_are_400(self) -> None:
        # misfireGraceSeconds of 2^63 used to fail in the sqlite writer (OverflowError),
        # taking other clients' writes of the same batch with it
        message = self.refused("POST", "/jobs", self.job(misfireGraceSeconds=BIG))
        self.assertEqual(message, "misfireGraceSeconds: must be a whole number of seconds "
                                  "from 0 to 3153600000")
        message = self.refused("POST", "/jobs", [self.job(), self.job(projectId=BIG)])
        self.assertTrue(message.startswith("jobs[1].projectId: required"), message)
        job = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.refused("PUT", f"/jobs/{job['id']}", {"misfireGraceSeconds": -BIG})
        self.refused("PUT", f"/jobs/{job['id']}", {"projectId": str(BIG)})
        self.refused("POST", f"/projects/{self.project['id']}/signing-secret/rotate",
                     {"graceSeconds": BIG})
        self.assertEqual(self.h.ok("GET", f"/jobs/{job['id']}")["misfireGraceSeconds"], 60)

    def test_dates_must_fall_within_years_1_to_9999_in_utc(self) -> None:
        message = self.refused("POST", "/jobs", self.job(startDate="0001-01-01T00:00:00+01:00"))
        self.assertEqual(message, "startDate: '0001-01-01T00:00:00+01:00' is outside years "
                                  "1-9999 once converted to UTC")
        message = self.refused("POST", "/jobs", self.job(endDate="9999-12-31T23:59:59-01:00"))
        self.assertTrue(message.startswith("endDate: "), message)
        message = self.refused("GET", "/executions?from=0001-01-01T00:00:00%2B01:00")
        self.assertTrue(message.startswith("from: "), message)
        message = self.refused("GET", "/executions?to=9999-12-31T23:59:59-12:00")
        self.assertTrue(message.startswith("to: "), message)
        # the very edges themselves are fine
        self.h.ok("POST", "/jobs", self.job(startDate="0001-01-01T00:00:00Z",
                                            endDate="9999-12-31T23:59:59Z"), expect=201)

    def test_cron_search_past_year_9999_is_can_never_fire(self) -> None:
        cases = [
            self.job(spec="0 0 29 2 *", startDate="9999-03-01T00:00:00Z"),
            self.job(spec="0 0 29 2 *", startDate="9996-03-01T00:00:00Z"),
            self.job(spec="* * * * *", startDate="9999-12-31T23:59:30Z"),
            self.job(spec="0 0 * * *", timezone="Pacific/Kiritimati",
                     startDate="9999-12-31T12:00:00Z"),
            self.job(spec="@every 36500d", startDate="9990-01-01T00:00:00Z"),
        ]
        for body in cases:
            message = self.refused("POST", "/jobs", body)
            self.assertIn("can never fire", message)
        self.assertIn("end of year 9999", self.refused("POST", "/jobs", cases[0]))
        self.assertEqual(self.jobs_stored(), 0)
        # a last fire in year 9999 is fine, and then there is no next run
        job = self.h.ok("POST", "/jobs", self.job(spec="59 23 31 12 *",
                                                  startDate="9999-12-31T00:00:00Z"),
                        expect=201)
        self.assertEqual(job["nextRunAt"], "9999-12-31T23:59:00.000Z")


class NextFireNearYear9999Tests(SynchronousTestCase):
    """The scheduler's next-fire search ends at year 9999 with "none", never an exception."""

    def test_searches_that_would_pass_year_9999_find_nothing(self) -> None:
        anchor = datetime(2026, 1, 1, tzinfo=UTC)
        near_end = LAST_INSTANT - timedelta(hours=1)
        for spec in ("0 0 29 2 *", "0 0 1 1 *", "* * * * *", "30 * * * * *", "@hourly",
                     "0 0 * * mon", "@every 2h", "@every 36500d"):
            for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"):
                schedule, tz = parse_spec(spec), load_zone(zone)
                fire = next_fire(schedule, tz, near_end, anchor)
                self.assertTrue(fire is None or fire <= LAST_INSTANT, (spec, zone, fire))
                self.assertIsNone(next_fire(schedule, tz, LAST_INSTANT, anchor), (spec, zone))

    def test_first_fire_names_year_9999(self) -> None:
        now = datetime(2026, 11, 26, 16, tzinfo=UTC)
        start = datetime(9999, 3, 1, tzinfo=UTC)
        with self.assertRaises(SpecError) as raised:
            first_fire_or_error(parse_spec("0 0 29 2 *"), load_zone("UTC"), now, now, start)
        self.assertIn("end of year 9999", str(raised.exception))

    def test_start_at_the_first_instant(self) -> None:
        now = datetime(2026, 11, 26, 16, tzinfo=UTC)
        first = datetime(1, 1, 1, tzinfo=UTC)
        fire = next_fire(parse_spec("0 0 * * *"), load_zone("UTC"), now, now, first)
        self.assertEqual(fire, datetime(2026, 11, 27, tzinfo=UTC))


class NoServerErrorTests(EdgeTestCase):
    """Item 9: inputs that used to be 500s are 4xx with a message."""

    def test_deeply_nested_json_is_400(self) -> None:
        for depth in (1000, 100_000):
            message = self.refused("POST", "/jobs", raw=b"[" * depth + b"]" * depth)
            self.assertEqual(message, "the request body nests arrays and objects more than 64 "
                                      "levels deep")
        message = self.refused("POST", "/projects",
                               raw=b'{"name": ' + b"[" * 65 + b"]" * 65 + b"}")
        self.assertIn("more than 64 levels deep", message)
        # 64 levels is within the limit (and then not a valid project)
        message = self.refused("POST", "/projects", raw=b"[" * 64 + b"]" * 64)
        self.assertEqual(message, "must be a JSON object")

    def test_strings_that_sqlite_cannot_store_are_400(self) -> None:
        for raw in (b'{"name": "\\ud800"}', b'{"name": "ok", "description": "a\\udfffb"}',
                    b'{"name": "ok", "\\udc00": 1}'):
            message = self.refused("POST", "/projects", raw=raw)
            self.assertIn("not part of a surrogate pair", message)
        body = json.dumps(self.job(data="x\ud83dy")).encode()
        self.assertIn("surrogate", self.refused("POST", "/jobs", raw=body))
        # a real pair (an emoji) is fine
        self.h.ok("POST", "/jobs", self.job(data="\U0001F600"), expect=201)
        self.assertIn("not valid UTF-8", self.refused(
            "POST", "/projects", raw=b'{"name": "\xed\xa0\x80"}'))

    def test_nan_infinity_and_huge_numbers_are_400(self) -> None:
        for raw in (b'{"name": NaN}', b'{"name": "p", "description": Infinity}'):
            self.assertIn("is not a JSON value", self.refused("POST", "/projects", raw=raw))
        message = self.refused("POST", "/jobs", raw=b'{"projectId": ' + b"9" * 5000 + b"}")
        self.assertEqual(message, "the request body has a number with more than 4300 digits")

    def test_non_utf8_credential_headers_are_401(self) -> None:
        for headers in ({b"x-api-key": b"\xff\xfe", b"x-secret-key": b"secret"},
                        {b"x-api-key": b"key", b"x-secret-key": b"\xc3\x28"},
                        {b"Authorization": b"Bearer \xffkey:secret"},
                        {b"X-Peer": b"cm\xe9d"},
                        {b"X-Peer": b"cmd", b"Authorization": b"Basic \xff\xff"}):
            message = self.refused("GET", "/projects", expect=401, headers=headers)
            self.assertIn("is not valid UTF-8", message)

    def test_double_slash_is_404_not_a_redirect(self) -> None:
        for path in ("//projects", "/projects//1", "/jobs//", "//"):
            message = self.refused("GET", path, expect=404)
            self.assertTrue(message.startswith("no such endpoint: /api/v1/"), message)

    def test_non_utf8_path_is_400_json(self) -> None:
        for path in ("/projects/%ff", "/executions/%c3%28", "/nothing/%ff%fe"):
            message = self.refused("GET", path)
            self.assertEqual(message, "the request path is not valid UTF-8 once "
                                      "percent-decoded")

    def test_bad_host_header_is_400_json(self) -> None:
        # werkzeug refuses these host names while Klein binds its URL map, outside Klein's
        # error handling: a 500 with a traceback, for anyone, unauthenticated
        for host in (b"\xff", b"a..b", b"x" * 64 + b".test", b"\xc3\xa9.."):
            message = self.refused("GET", "/projects", headers={b"Host": host})
            self.assertEqual(message, "the Host header is not a valid host name")

    def test_method_that_is_not_ascii_is_400_json(self) -> None:
        # the HTTP client will not send one; a raw request through the resource does
        request = Request(DummyChannel(), False)
        request.method, request.path = b"G\xffT", b"/api/v1/projects"
        request.uri, request.prepath, request.postpath = request.path, [], [
            b"api", b"v1", b"projects"]
        request.content = BytesIO()
        body = self.h.api.resource().render(request)
        self.assertEqual(request.code, 400)
        self.assertEqual(json.loads(body), {
            "success": False, "data": "the request method is not an ASCII HTTP method"})
        self.failures.assert_none()

    def test_overlong_execution_id_is_404(self) -> None:
        message = self.refused("GET", "/executions/" + "e" * 10_000, expect=404)
        self.assertEqual(message, "no such resource: a path segment is longer than 128 "
                                  "characters")
        self.assertLess(len(self.refused("GET", "/nothing/" + "x" * 10_000, expect=404)), 300)


class BrokenAuthenticator:
    """An authenticator with a bug: it raises something that is not an API error."""

    def authenticate(self, request: Any) -> Any:
        raise RuntimeError("a bug in authentication")


class UnauthenticatedLoggingTests(SynchronousTestCase):
    """An unauthenticated request never writes a traceback (log flooding)."""

    def test_unexpected_error_before_authentication_logs_one_line(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        store = StoreService(self.mktemp())
        store.startService()
        self.addCleanup(store.stopService)
        clock = Clock()
        clock.advance(T0)
        commands = LocalCommandLog(store.path, clock, threaded=False)
        self.successResultOf(commands.startService())
        self.addCleanup(lambda: self.successResultOf(commands.stopService()))
        api = Api(reader=lambda: store.reader, commands=commands, clock=clock,
                  authenticator=BrokenAuthenticator())  # type: ignore[arg-type]
        stub = StubTreq(api.resource())
        d = stub.get("http://node.test/api/v1/projects")
        stub.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 500)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual([e for e in events if e.get("log_failure") is not None], [])
        lines = [e for e in events if "unauthenticated" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["error"], "RuntimeError")
