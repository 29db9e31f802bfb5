"""
Every route of the API, fuzzed with hostile values (issue 8): whatever the path segments,
query values, bodies and headers, the answer is below 500, an error answer is the JSON
envelope with a message, and nothing is logged with a traceback.

Routes come from the Klein URL map itself, so a route added later is fuzzed too. The node is
wired like a real one (L{tests.ops.Ops}: real sqlite, the command log applying
synchronously, the operability endpoints) and driven in process through StubTreq. Hypothesis
is bounded (C{max_examples}) so the whole module runs in seconds; a failing example is
printed, and the same seed reproduces it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.app import Api

from .harness import peer_headers
from .ops import GOOD, NODE, Ops

FUZZ = settings(max_examples=300, deadline=None, database=None, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

#: every (method, rule) of the API, from Klein's URL map
ROUTES = sorted((method, rule.rule) for rule in Api.app.url_map.iter_rules()
                for method in (rule.methods or ()) if method not in ("HEAD", "OPTIONS"))
_PLACEHOLDER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")

BIG = 2**63

# -- hostile values ------------------------------------------------------------------------

SEGMENTS = st.one_of(
    st.sampled_from([
        "1", "2", "0", "-1", "01", "00000000000000000000001", str(BIG - 1), str(BIG), "9" * 30,
        "9" * 5000, "\uff11", "\u0663", "1.5", "1e3", "NaN", "%ff", "%c3%28", "%00", "..", ".",
        "%2F", "%2F%2F", "a%2Fb", "", "e" * 300, "1-20261126T160500Z", GOOD, quote(GOOD, safe=""),
        "good.test:8001", "http::" + GOOD, "%ED%A0%80",
    ]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=40).map(lambda t: quote(t, safe="")),
)

NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([BIG, BIG - 1, -BIG - 1, 10**30, 10**300, -1, 0, 1, 2]),
    st.floats(allow_nan=True, allow_infinity=True),
)

DATES = st.one_of(
    st.sampled_from([
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z", "0001-01-01T00:59:59+01:00", "9999-12-31T00:00:00-23:59",
        "9999-03-01T00:00:00Z", "9996-03-01T00:00:00+14:00", "2027-01-01T09:00:00Z",
        "2027-01-01T09:00:00", "2027-02-30T00:00:00Z", "2027-01-01", "20270101T090000Z",
        "2027-01-01T09:00:00.123456789+02:00",
    ]),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)

SPECS = st.one_of(
    st.sampled_from([
        "0 0 29 2 *", "0 0 30 2 *", "*/5 * * * *", "* * * * * *", "59 23 31 12 *",
        "0 0 1 1 *", "@hourly", "@yearly", "@every 1s", "@every 36500d", "@every 36501d",
        "@every 99999999999999999999d", "@at 9999-12-31T23:59:59Z",
        "@at 0001-01-01T00:00:00+01:00", "@at 2027-01-01T09:00:00Z",
        "*/99999999999999999999 * * * *", "0-59/99999 * * * *", "L * * * *", "H * * * *",
    ]),
    st.text(alphabet="0123456789*/-,@ LW#?abcdefghijklmnopqrstuvwxyz", max_size=40),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "0," * (n // 2) + "0 * * * *"),
)

ZONES = st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Etc/GMT-14",
                         "America/New_York", "Europe/London", "localtime", "posixrules",
                         "../../etc/passwd", "utc", "Z" * 5000])

URLS = st.sampled_from(["http://good.test:8001/cb", "http://[::1]:99999/", "http://",
                        "ftp://a.test/", "http://a b/", "http://" + "a" * 3000 + ".test/",
                        "http://\u00e9.test/", "http://127.0.0.1:0/", "https://[::1]/"])

TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from([
        "", " ", "\uff11", "\ud800", "x\udfffy", "\U0001F600", "\x00", "0", "1", str(BIG),
        "complete", "rerun", "skip", "fire_all", "fire_once", "http", "admin", "read,write",
    ]),
    DATES, SPECS, ZONES, URLS,
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),
)

SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)

#: per field, values aimed at what that field's checks do (and anything at all)
FIELD_VALUES = {
    "projectId": st.one_of(NUMBERS, st.sampled_from(["1", "\uff11", str(BIG), "9" * 5000])),
    "spec": SPECS,
    "callbackUrl": URLS,
    "data": TEXTS,
    "executionType": TEXTS,
    "timezone": ZONES,
    "startDate": DATES,
    "endDate": DATES,
    "paused": SCALARS,
    "misfirePolicy": TEXTS,
    "misfireGraceSeconds": NUMBERS,
    "name": TEXTS,
    "description": TEXTS,
    "scopes": st.one_of(st.lists(TEXTS, max_size=3), TEXTS),
    "archived": SCALARS,
    "projectIds": st.one_of(st.lists(NUMBERS, max_size=3), NUMBERS, TEXTS),
    "graceSeconds": NUMBERS,
    "action": TEXTS,
}
FIELDS = sorted(FIELD_VALUES) + ["project_id", "callback_url", "start_date", "id",
                                 "dateCreated", "nextRunAt", "unknownField"]
JOB_FIELDS = ["projectId", "spec", "callbackUrl", "data", "executionType", "timezone",
              "startDate", "endDate", "paused", "misfirePolicy", "misfireGraceSeconds"]


def _hostile(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of C{fields}, each with a value aimed at it or any value at all."""
    return st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({
            name: st.one_of(FIELD_VALUES.get(name, SCALARS), VALUES) for name in names}))


OBJECTS = _hostile(FIELDS)


def _valid_job() -> dict[str, Any]:
    return {"projectId": 1, "spec": "*/5 * * * *", "callbackUrl": GOOD + "/cb", "data": "x"}


# jobs that are valid but for one to three hostile fields: they reach the deep checks
# (first fire, dates near the year limits, time zones, sqlite)
ALMOST_VALID_JOBS = _hostile(JOB_FIELDS).map(lambda hostile: {**_valid_job(), **hostile})

JSON_BODIES = st.one_of(VALUES, OBJECTS, ALMOST_VALID_JOBS,
                        st.lists(ALMOST_VALID_JOBS, min_size=1, max_size=5))


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"{", b"NaN", b"-Infinity", b'{"name": "\xed\xa0\x80"}',
                     b"\xef\xbb\xbf{}", b'{"projectId": ' + b"9" * 5000 + b"}",
                     b'"\\ud800"', b"\xff\xfe{\x00}\x00"]),
)

BODIES = st.one_of(st.none(), JSON_BODIES.map(_encode), RAW_BODIES)

QUERY_NAMES = ["limit", "offset", "projectId", "project_id", "jobId", "state", "from", "to",
               "x"]
# (a request line over 16 KB is refused by Twisted's HTTP parser before the API sees it)
QUERY_VALUES = st.one_of(SEGMENTS, TEXTS.filter(lambda t: len(t) < 2000).map(
    lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")))
QUERIES = st.dictionaries(st.sampled_from(QUERY_NAMES), QUERY_VALUES, max_size=3)

# header values the HTTP client can send (no CR, LF or NUL), non-UTF-8 included, and all of
# them together under the 16 KB that Twisted's HTTP parser takes before it refuses a request
HEADER_BYTES = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
                               .replace(b"\x00", b"")),
    st.sampled_from([b"\xff", b"\xc3\x28", b"cm\xe9d", b"Basic \xff\xff", b"Bearer \xff:\xfe",
                     b"Bearer a:b", b"Basic !!!", b"Basic " + b"QQ==" * 1000, b"cmd", b"peer",
                     b"k" * 3000]),
)
HOSTILE_HEADERS = st.dictionaries(
    st.sampled_from([b"x-api-key", b"x-secret-key", b"Authorization", b"X-Peer", b"Host"]),
    HEADER_BYTES, min_size=1, max_size=4)


class FuzzTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.ops = Ops(self)
        project = self.ops.project()
        self.ops.job(project, GOOD + "/cb")
        self.failures: list[Any] = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event: dict) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(event)

    def send(self, method: str, path: str, query: dict[str, str] | None = None,
             body: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
        """Send one request; assert it was answered below 500, with the JSON envelope if it
        is an error, and that nothing was logged with a traceback."""
        url = NODE + path
        if query:
            url += "?" + "&".join(f"{name}={value}" for name, value in query.items())
        hdrs = dict(peer_headers() if headers is None else headers)
        hdrs.setdefault(b"Content-Type", b"application/json")
        d = self.ops.stub.request(method, url, data=body, headers=hdrs)
        self.ops.stub.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        # collected (and cleared) before asserting: a failing example must not leave its
        # tracebacks to fail the next one
        tracebacks = ([repr(e["log_failure"].value) for e in self.failures]
                      + [repr(f.value) for f in self.flushLoggedErrors()])
        self.failures.clear()
        where = repr((method, url, body, headers))[:600]
        # 503 is "not ready, retry" (e.g. the supervisor's state with no job configured)
        self.assertTrue(response.code < 500 or response.code == 503, (where, content[:500]))
        self.assertEqual(tracebacks, [], where)
        if response.code >= 400:
            try:
                envelope = json.loads(content)
            except ValueError:
                self.fail(f"not the JSON envelope: {content[:300]!r} for {where}")
            self.assertIs(envelope["success"], False, where)
            self.assertIsInstance(envelope["data"], str, where)
            self.assertTrue(envelope["data"], where)
        return response.code, content


def _fill(rule: str, segments: list[str]) -> str:
    """The rule with each placeholder replaced by the next hostile segment."""
    values = iter(segments)
    return _PLACEHOLDER.sub(lambda match: next(values, "1"), rule)


class EveryRouteTests(FuzzTestCase):
    def test_routes_cover_the_api(self) -> None:
        # a sanity check that the fuzzing below really walks every route
        self.assertGreaterEqual(len(ROUTES), 35)
        self.assertIn(("POST", "/api/v1/jobs"), ROUTES)
        self.assertIn(("DELETE", "/api/monitoring/dlq/<path:target>"), ROUTES)

    @FUZZ
    @given(route=st.sampled_from(ROUTES), segments=st.lists(SEGMENTS, min_size=2, max_size=2),
           query=QUERIES, body=BODIES)
    def test_hostile_paths_queries_and_bodies(self, route: tuple[str, str],
                                              segments: list[str], query: dict[str, str],
                                              body: bytes | None) -> None:
        method, rule = route
        self.send(method, _fill(rule, segments), query, body)

    @FUZZ
    @given(route=st.sampled_from(ROUTES), body=JSON_BODIES.map(_encode))
    def test_hostile_json_bodies_on_existing_resources(self, route: tuple[str, str],
                                                       body: bytes) -> None:
        method, rule = route
        self.send(method, _fill(rule, ["1", GOOD]), None, body)

    @FUZZ
    @given(job=st.one_of(ALMOST_VALID_JOBS, st.lists(ALMOST_VALID_JOBS, min_size=1,
                                                     max_size=4)),
           update=st.booleans())
    def test_almost_valid_jobs(self, job: Any, update: bool) -> None:
        code, content = self.send("PUT" if update else "POST",
                                  "/api/v1/jobs/1" if update else "/api/v1/jobs", None,
                                  _encode(job))
        if code < 300 and not update:
            # what was stored reads back, and lists, without a server error
            created = json.loads(content)["data"]
            first = created[0] if isinstance(created, list) else created
            self.send("GET", f"/api/v1/jobs/{first['id']}")
            self.send("GET", "/api/v1/jobs", {"limit": "10000"})

    @FUZZ
    @given(route=st.sampled_from(ROUTES), headers=HOSTILE_HEADERS)
    def test_hostile_credential_headers(self, route: tuple[str, str],
                                        headers: dict[bytes, bytes]) -> None:
        method, rule = route
        code, _ = self.send(method, _fill(rule, ["1", GOOD]), None, None, headers)
        open_routes = {"/api/v1/healthcheck", "/api/v1/openapi.json", "/metrics"}
        open_routes |= {"/ui", "/ui/", "/ui/<path:name>"}  # the dashboard's public files
        if rule not in open_routes and b"Host" not in headers:
            # no valid credential can be made of these: refused, whatever the bytes
            self.assertIn(code, (400, 401, 404), (method, rule, headers))
