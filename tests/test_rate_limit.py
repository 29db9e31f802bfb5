"""Tests for scheduler0.api.rate_limit: per-client token buckets on a fake clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from scheduler0.api.rate_limit import RateLimiter, client_key, retry_after
from scheduler0.api.site import make_site
from tests.raw_http import RawResponse, parse_response

A, B = "192.0.2.1", "192.0.2.2"


class RateLimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000.37)  # an awkward epoch: float noise must not matter

    def exhaust(self, limiter: RateLimiter, client: str, count: int) -> None:
        for i in range(count):
            self.assertIsNone(limiter.check(client), f"request {i + 1} refused")

    def test_burst_then_refused(self) -> None:
        limiter = RateLimiter(500, self.clock)
        self.exhaust(limiter, A, 500)
        delay = limiter.check(A)
        self.assertIsNotNone(delay)
        self.assertAlmostEqual(delay, 0.12, places=6)
        self.assertEqual(retry_after(delay), 1)
        # a refusal takes no token: the delay does not grow
        self.assertAlmostEqual(limiter.check(A), 0.12, places=6)

    def test_refill(self) -> None:
        limiter = RateLimiter(500, self.clock)
        self.exhaust(limiter, A, 500)
        self.clock.advance(0.06)
        self.assertAlmostEqual(limiter.check(A), 0.06, places=6)
        self.clock.advance(0.06)
        self.assertIsNone(limiter.check(A))  # 0.12 s at 500/min: exactly one token
        self.assertIsNotNone(limiter.check(A))
        self.clock.advance(1.2)
        self.exhaust(limiter, A, 10)
        self.assertIsNotNone(limiter.check(A))

    def test_exact_burst_despite_float_noise(self) -> None:
        """Exactly per_minute at once, and one more after 60/per_minute seconds, whatever
        the rate and the clock's epoch (sums of 0.12 s are not exact in binary)."""
        for per_minute in (7, 13, 90, 333, 500, 600, 1000):
            for epoch in (0.0, 0.1, 12345.678, 1_000_000.37, 1.7e9 + 0.3):
                clock = Clock()
                clock.advance(epoch)
                limiter = RateLimiter(per_minute, clock)
                allowed = sum(limiter.check(A) is None for _ in range(per_minute + 5))
                self.assertEqual(allowed, per_minute, (per_minute, epoch))
                clock.advance(60 / per_minute)
                self.assertIsNone(limiter.check(A), (per_minute, epoch))
                self.assertIsNotNone(limiter.check(A), (per_minute, epoch))

    def test_refill_caps_at_per_minute(self) -> None:
        """Idle time does not bank more than a full bucket, within a minute (before any
        sweep could forget the client) or after a long one."""
        limiter = RateLimiter(500, self.clock)
        self.exhaust(limiter, A, 1)
        self.clock.advance(30)
        self.exhaust(limiter, A, 500)
        self.assertIsNotNone(limiter.check(A))
        self.clock.advance(3600)
        self.exhaust(limiter, A, 500)
        self.assertAlmostEqual(limiter.check(A), 0.12, places=6)

    def test_separate_clients(self) -> None:
        limiter = RateLimiter(3, self.clock)
        self.exhaust(limiter, A, 3)
        self.assertIsNotNone(limiter.check(A))
        self.exhaust(limiter, B, 3)
        self.assertIsNotNone(limiter.check(B))

    def test_disabled(self) -> None:
        limiter = RateLimiter(0, self.clock)
        self.assertFalse(limiter.enabled)
        self.exhaust(limiter, A, 10_000)
        self.assertEqual(len(limiter), 0)

    def test_negative_refused(self) -> None:
        self.assertRaises(ValueError, RateLimiter, -1, self.clock)

    def test_retry_after_rounds_up(self) -> None:
        self.assertEqual(retry_after(0.0001), 1)
        self.assertEqual(retry_after(1.0), 1)
        self.assertEqual(retry_after(1.01), 2)
        self.assertEqual(retry_after(59.5), 60)
        limiter = RateLimiter(1, self.clock)
        self.exhaust(limiter, A, 1)
        self.clock.advance(20.5)
        self.assertEqual(retry_after(limiter.check(A)), 40)

    def distinct_clients(self, limiter: RateLimiter, count: int, step: float) -> int:
        """One request from each of C{count} new clients, C{step} seconds apart: the
        largest the table got."""
        peak = 0
        for n in range(count):
            self.assertIsNone(limiter.check(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"))
            self.clock.advance(step)
            peak = max(peak, len(limiter))
        return peak

    def test_idle_buckets_pruned(self) -> None:
        """100k distinct clients over ~17 minutes: the table never holds much more than
        the clients of the last minute (6,000 here); an idle minute empties it."""
        limiter = RateLimiter(1, self.clock)  # one request fills the bucket for 60 s
        peak = self.distinct_clients(limiter, 100_000, 0.01)
        self.assertLessEqual(peak, 2 * 6_000 + RateLimiter.MIN_SWEEP)
        self.clock.advance(61)
        limiter.check(A)
        self.assertEqual(len(limiter), 1)

    def test_idle_buckets_pruned_in_a_rush(self) -> None:
        """100k distinct clients in 10 s at 500/min: a bucket is full again 0.12 s after a
        single request, so at most ~1,200 are live at once and the table stays small
        though no minute has passed."""
        limiter = RateLimiter(500, self.clock)
        peak = self.distinct_clients(limiter, 100_000, 0.0001)
        self.assertLessEqual(peak, 2 * 1_200 + RateLimiter.MIN_SWEEP)

    def test_pruning_forgets_only_full_buckets(self) -> None:
        """A client still in debt keeps its bucket through a sweep."""
        limiter = RateLimiter(60, self.clock)
        self.exhaust(limiter, A, 60)
        self.clock.advance(30)
        for n in range(RateLimiter.MIN_SWEEP + 1):  # forces a sweep
            limiter.check(f"10.0.{n >> 8}.{n & 255}")
        self.exhaust(limiter, A, 30)
        self.assertIsNotNone(limiter.check(A))


class ClientKeyTests(SynchronousTestCase):
    def test_keys(self) -> None:
        self.assertEqual(client_key("192.0.2.1"), "192.0.2.1")
        self.assertEqual(client_key("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64")
        self.assertEqual(client_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64")
        self.assertEqual(client_key("fe80::1%eth0"), "fe80::/64")
        self.assertEqual(client_key("unix"), "unix")


class Ok(Resource):
    """Answers every request 200, standing in for the API."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        return b"{}"


class ProbeTests(SynchronousTestCase):
    """The probes a load balancer or Prometheus polls are never refused for the rate limit
    (issue 9 item 5): only the API calls of the same address spend its budget."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.site = make_site(Ok(), 1 << 20, RateLimiter(3, self.clock), clock=self.clock)
        self.port = 40000

    def call(self, method: str, path: str, host: str = A) -> RawResponse:
        """One request on a new connection from C{host}; what the client reads."""
        self.port += 1
        address = IPv4Address("TCP", host, self.port)
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        protocol.dataReceived(f"{method} {path} HTTP/1.1\r\nHost: node\r\n\r\n".encode())
        response = parse_response(transport.value())
        protocol.connectionLost(Failure(ConnectionDone()))
        return response

    def test_probes_are_not_counted_and_never_refused(self) -> None:
        for _ in range(50):
            for method, path in (("GET", "/api/v1/healthcheck"), ("GET", "/metrics"),
                                 ("HEAD", "/metrics"), ("GET", "/api/v1/healthcheck?x=1")):
                self.assertEqual(self.call(method, path).code, 200, (method, path))
        # the address's whole budget is still there for the API
        for n in range(3):
            self.assertEqual(self.call("GET", "/api/v1/projects").code, 200, n)
        refused = self.call("GET", "/api/v1/jobs")
        self.assertEqual(refused.code, 429)
        self.assertIn("RateLimitPerMinute", refused.json()["data"])
        # and an address that has spent its budget is still seen as up
        self.assertEqual(self.call("GET", "/api/v1/healthcheck").code, 200)
        self.assertEqual(self.call("GET", "/metrics").code, 200)

    def test_only_the_probe_paths_are_exempt(self) -> None:
        for path in ("/api/v1/healthcheck/x", "/api/v1/health", "/metrics/x", "/api/v1/metrics"):
            self.call("GET", path)
        self.assertEqual(self.call("GET", "/api/v1/jobs").code, 429)
        self.assertEqual(self.call("GET", "/api/v1/healthcheck", host=B).code, 200)
