"""
Slow and greedy clients (issue 8 item 4): a request must arrive within its read deadline,
idle connections are closed, and connections past the caps are answered at once and closed.

The site runs on a L{Clock} over L{StringTransport}s: what is asserted is what a client
would read on its socket and whether the node closed it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from scheduler0.api.site import ABORT_AFTER, ConnectionGuard, SiteLimits, make_site
from scheduler0.config import load_config
from tests.raw_http import RawResponse, parse_response

HEAD = b"GET /api/v1/healthcheck HTTP/1.1\r\nHost: node\r\n\r\n"


class Answer(Resource):
    """Answers 200 with the size of the body it read; with C{hold}, keeps requests open."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.pending: list[Any] = []

    def render(self, request: Any) -> Any:
        size = len(request.content.read())
        request.setHeader("content-type", "application/json")
        if self.hold:
            self.pending.append(request)
            return NOT_DONE_YET
        return json.dumps({"success": True, "data": size}).encode()


class Client:
    """One connection to the site, as its client sees it."""

    def __init__(self, factory: ConnectionGuard, host: str = "127.0.0.1",
                 port: int = 40000) -> None:
        kind = IPv6Address if ":" in host else IPv4Address
        address = kind("TCP", host, port)
        self.protocol = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    @property
    def closed_by_node(self) -> bool:
        return bool(self.transport.disconnecting)

    def response(self) -> RawResponse:
        return parse_response(self.transport.value())

    def responses(self) -> list[bytes]:
        return [b"HTTP/1.1" + part for part in self.transport.value().split(b"HTTP/1.1")[1:]]

    def close(self) -> None:
        """The client goes away (or the node's close completes)."""
        self.protocol.connectionLost(Failure(ConnectionDone()))


class SiteLimitsCase(SynchronousTestCase):
    limits = SiteLimits(read_timeout=10, body_min_rate=1000, idle_timeout=60,
                        max_connections=1024, max_per_client=256)

    def setUp(self) -> None:
        self.clock = Clock()
        self.resource = Answer()
        self.factory = make_site(self.resource, 1 << 20, limits=self.limits, clock=self.clock)

    def connect(self, host: str = "127.0.0.1", port: int = 40000) -> Client:
        return Client(self.factory, host, port)

    def assert_answered(self, client: Client, status: int, *phrases: str) -> dict[str, Any]:
        response = client.response()
        self.assertEqual(response.code, status, client.transport.value())
        envelope = response.json()
        self.assertEqual(envelope["success"], status < 400)
        for phrase in phrases:
            self.assertIn(phrase, envelope["data"])
        return envelope


class ReadDeadlineTests(SiteLimitsCase):
    def test_half_sent_request_is_answered_408_and_closed_at_the_deadline(self) -> None:
        client = self.connect()
        client.send(b"POST /api/v1/jobs HTTP/1.1\r\nHost: node\r\nContent-Le")
        self.clock.advance(9.9)
        self.assertFalse(client.closed_by_node)
        self.assertEqual(client.transport.value(), b"")
        self.clock.advance(0.2)
        self.assertTrue(client.closed_by_node)
        envelope = self.assert_answered(client, 408, "within 10 s (RequestReadTimeout)")
        self.assertEqual(envelope, {"success": False, "data": "the request line and headers did "
                                    "not arrive within 10 s (RequestReadTimeout)"})
        self.assertEqual(client.response().headers["connection"], "close")

    def test_a_timed_out_connection_that_does_not_close_is_aborted(self) -> None:
        # a client that reads nothing (or a TLS handshake that never ends) cannot keep it
        lingering, leaving = self.connect(port=1), self.connect(port=2)
        for client in (lingering, leaving):
            client.send(b"GET /api/v1/healthcheck HTTP/1.1\r\n")
        self.clock.advance(10.1)
        self.assertTrue(lingering.closed_by_node and leaving.closed_by_node)
        leaving.close()  # its close completed
        self.clock.advance(ABORT_AFTER)
        self.assertTrue(lingering.transport.disconnected)  # aborted
        self.assertFalse(leaving.transport.disconnected)

    def test_a_request_trickled_a_byte_a_second_is_cut_at_the_deadline(self) -> None:
        client = self.connect()
        request = b"GET /api/v1/healthcheck HTTP/1.1\r\nHost: node\r\nX-Pad: " + b"a" * 100
        for second, byte in enumerate(request[:30]):
            if client.closed_by_node:
                break
            client.send(bytes([byte]))  # each byte restarts Twisted's idle timeout
            self.clock.advance(1)
        self.assertTrue(client.closed_by_node)
        self.assertEqual(second, 10)
        self.assert_answered(client, 408, "RequestReadTimeout")

    def test_idle_connection_is_closed_after_the_idle_timeout(self) -> None:
        self.factory = make_site(self.resource, 1 << 20, clock=self.clock,
                                 limits=attrs.evolve(self.limits, idle_timeout=15))
        client = self.connect()
        self.clock.advance(14)
        self.assertFalse(client.closed_by_node)
        self.clock.advance(2)
        self.assertTrue(client.closed_by_node)
        self.assertEqual(client.transport.value(), b"")  # nothing was asked, nothing answered

    def test_large_body_on_a_slow_steady_link_is_accepted(self) -> None:
        # 100 kB at 2 kB/s takes 50 s, five times RequestReadTimeout, at twice the minimum rate
        client = self.connect()
        body = b"x" * 100_000
        client.send(b"POST /api/v1/jobs HTTP/1.1\r\nHost: node\r\nContent-Type: "
                    b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        for offset in range(0, len(body), 2000):
            self.assertFalse(client.closed_by_node, f"cut after {offset} bytes")
            self.clock.advance(1)
            client.send(body[offset:offset + 2000])
        self.assertFalse(client.closed_by_node)
        self.assertEqual(self.assert_answered(client, 200)["data"], len(body))

    def test_body_slower_than_the_minimum_rate_is_cut(self) -> None:
        # at 500 B/s the allowance (10 s + 1 s per 1000 bytes) runs out at about 20 s
        client = self.connect()
        client.send(b"POST /api/v1/jobs HTTP/1.1\r\nHost: node\r\nContent-Length: 100000"
                    b"\r\n\r\n")
        for _ in range(19):
            client.send(b"x" * 500)
            self.clock.advance(1)
        self.assertFalse(client.closed_by_node)  # 19 s: 9,500 bytes earned 19.5 s
        self.clock.advance(1)
        self.assertTrue(client.closed_by_node)
        self.assert_answered(client, 408, "slower than 1000 bytes/s",
                             "RequestBodyMinBytesPerSecond")

    def test_request_being_answered_is_not_cut_and_the_next_one_gets_a_new_deadline(
            self) -> None:
        self.resource.hold = True
        client = self.connect()
        client.send(HEAD)
        self.clock.advance(100)  # the node takes its time: not the client's fault
        self.assertFalse(client.closed_by_node)
        [request] = self.resource.pending
        request.write(b'{"success": true, "data": "late"}')
        request.finish()
        self.assertEqual(self.assert_answered(client, 200)["data"], "late")
        self.assertFalse(client.closed_by_node)  # kept alive

        self.clock.advance(30)  # idle, within IdleConnectionTimeout
        client.send(b"GET /api/v1/healthcheck HTTP/1.1\r\n")
        self.clock.advance(10.1)
        self.assertTrue(client.closed_by_node)
        self.assertIn(b"HTTP/1.1 408 Request Timeout", client.responses()[-1])

    def test_keep_alive_requests_are_each_answered(self) -> None:
        client = self.connect()
        for _ in range(3):
            client.send(HEAD)
            self.clock.advance(8)
        self.assertFalse(client.closed_by_node)
        self.assertEqual(len(client.responses()), 3)
        self.assertTrue(all(r.startswith(b"HTTP/1.1 200") for r in client.responses()))


    def test_a_flood_of_slow_clients_is_logged_as_one_line_and_a_count(self) -> None:
        with capturedLogs() as events:
            clients = [self.connect(port=port) for port in range(50)]
            for client in clients:
                client.send(b"GET /api/v1/healthcheck HTTP/1.1\r\n")
            self.clock.advance(10.1)
            self.assertTrue(all(client.closed_by_node for client in clients))
            self.clock.advance(60)
        lines = [formatEvent(event) for event in events if event["log_level"] == LogLevel.warn]
        self.assertEqual(lines, [
            "closed an HTTP connection from 127.0.0.1: the request line and headers did not "
            "arrive within 10 s (RequestReadTimeout)",
            "closed 49 more HTTP connections in 60 s whose request was too slow; the last from "
            "127.0.0.1: the request line and headers did not arrive within 10 s "
            "(RequestReadTimeout)"])


class ConnectionCapTests(SiteLimitsCase):
    limits = SiteLimits(read_timeout=10, body_min_rate=1000, idle_timeout=60,
                        max_connections=2, max_per_client=0)

    def test_past_the_cap_a_connection_gets_503_and_is_closed_then_accepted_after_one_closes(
            self) -> None:
        first, second = self.connect(port=1), self.connect(port=2)
        third = self.connect(port=3)
        third.send(HEAD)
        self.assertTrue(third.closed_by_node)
        self.assertEqual(third.response().json(), {
            "success": False,
            "data": "too many open connections (MaxConnections=2); retry shortly"})
        self.assertEqual(third.response().code, 503)
        self.assertEqual(third.response().headers["connection"], "close")
        self.assertEqual(third.response().headers["retry-after"], "1")
        third.close()

        # the two held connections are served meanwhile
        second.send(HEAD)
        self.assert_answered(second, 200)

        first.close()
        fourth = self.connect(port=4)
        fourth.send(HEAD)
        self.assert_answered(fourth, 200)
        self.assertFalse(fourth.closed_by_node)

    def test_a_refused_client_that_sends_nothing_is_answered_within_a_second(self) -> None:
        self.connect(port=1), self.connect(port=2)
        third = self.connect(port=3)
        self.assertEqual(third.transport.value(), b"")
        self.clock.advance(ConnectionGuard.REFUSAL_GRACE)
        self.assertTrue(third.closed_by_node)
        self.assertEqual(third.response().code, 503)

    def test_a_refused_connection_that_does_not_close_is_aborted(self) -> None:
        self.connect(port=1), self.connect(port=2)
        third = self.connect(port=3)
        third.send(HEAD)
        self.assertTrue(third.closed_by_node)
        self.assertFalse(third.transport.disconnected)
        self.clock.advance(ABORT_AFTER)
        self.assertTrue(third.transport.disconnected)
        third.close()
        self.assertEqual(self.factory.refusing, 0)

    def test_a_refused_client_gets_no_answer_before_its_request_head_is_complete(
            self) -> None:
        self.connect(port=1), self.connect(port=2)
        third = self.connect(port=3)
        third.send(HEAD[:20])
        self.assertEqual(third.transport.value(), b"")  # reading it first avoids a reset
        third.send(HEAD[20:])
        self.assertEqual(third.response().code, 503)

    def test_past_many_waiting_refusals_a_refusal_is_answered_and_closed_at_once(
            self) -> None:
        self.connect(port=1), self.connect(port=2)
        waiting = [self.connect(port=10 + i) for i in range(ConnectionGuard.MAX_REFUSING)]
        self.assertFalse(any(client.closed_by_node for client in waiting))
        hurried = self.connect(port=9)
        self.assertTrue(hurried.closed_by_node)  # holds no descriptor while others wait
        self.assertEqual(hurried.response().code, 503)
        hurried.close()
        self.clock.advance(ConnectionGuard.REFUSAL_GRACE)
        self.assertEqual({client.response().code for client in waiting}, {503})
        for client in waiting:
            client.close()
        late = self.connect(port=99)
        self.assertFalse(late.closed_by_node)  # waits for its request head again
        self.clock.advance(ConnectionGuard.REFUSAL_GRACE)
        self.assertEqual(late.response().code, 503)


class PerClientCapTests(SiteLimitsCase):
    limits = SiteLimits(read_timeout=10, body_min_rate=1000, idle_timeout=60,
                        max_connections=100, max_per_client=2)

    def test_one_address_cannot_take_more_than_its_share(self) -> None:
        held = [self.connect("10.0.0.1", port) for port in (1, 2)]
        greedy = self.connect("10.0.0.1", 3)
        greedy.send(HEAD)
        self.assertTrue(greedy.closed_by_node)
        self.assertEqual(greedy.response().code, 429)
        self.assertEqual(greedy.response().json()["data"],
                         "too many open connections from this address "
                         "(MaxConnectionsPerClient=2); close some or retry shortly")

        other = self.connect("10.0.0.2", 1)
        other.send(HEAD)
        self.assert_answered(other, 200)

        held[0].close()
        again = self.connect("10.0.0.1", 4)
        again.send(HEAD)
        self.assert_answered(again, 200)

    def test_ipv6_addresses_of_one_slash_64_count_together(self) -> None:
        self.connect("2001:db8::1"), self.connect("2001:db8::2")
        greedy = self.connect("2001:db8::3")
        greedy.send(HEAD)
        self.assertEqual(greedy.response().code, 429)
        other = self.connect("2001:db8:0:1::1")
        other.send(HEAD)
        self.assert_answered(other, 200)


class LimitsSettingTests(SynchronousTestCase):
    def test_max_connections_takes_at_most_half_the_open_file_limit(self) -> None:
        limits = SiteLimits(max_connections=1024)
        with capturedLogs() as events:
            self.assertEqual(limits.fitted(1024).max_connections, 512)
        [event] = events
        self.assertIn("LimitNOFILE", formatEvent(event))
        self.assertIn("using 512", formatEvent(event))
        with capturedLogs() as events:
            self.assertEqual(limits.fitted(65536).max_connections, 1024)
            self.assertEqual(limits.fitted(None).max_connections, 1024)
        self.assertEqual(events, [])

    def test_limits_come_from_their_config_keys(self) -> None:
        config = load_config(environ={}, overrides={
            "RequestReadTimeout": "7.5", "RequestBodyMinBytesPerSecond": "2048",
            "IdleConnectionTimeout": "15", "MaxConnections": "300",
            "MaxConnectionsPerClient": "0"})
        self.assertEqual(SiteLimits.from_config(config), SiteLimits(
            read_timeout=7.5, body_min_rate=2048, idle_timeout=15.0, max_connections=300,
            max_per_client=0))

    def test_defaults_match_the_config_defaults(self) -> None:
        self.assertEqual(SiteLimits.from_config(load_config(environ={})), SiteLimits())
