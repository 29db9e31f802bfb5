"""
Stopping the API (issue 11 item 4 kept it working on public Twisted APIs only): requests in
flight are answered and flushed before their connections close, idle connections are closed
after a grace, and a port that is taken stops start-up with one line.

The drain runs on a L{Clock} over L{StringTransport}s: what is asserted is what a client would
read on its socket and whether the node closed it. The listener tests listen on real ports;
a real twistd on a taken port is in L{tests.integration.test_daemon_taken_port}.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.api.site import DrainingHTTPService, SiteLimits, make_site
from tests.integration.daemon import free_port
from tests.test_site_limits import HEAD, Answer, Client

TIMEOUT = 15.0


class DrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.resource = Answer()
        self.factory = make_site(self.resource, 1 << 20, limits=SiteLimits(), clock=self.clock)
        self.drained: list[object] = []

    def connect(self, port: int = 40000) -> Client:
        return Client(self.factory, "127.0.0.1", port)

    def drain(self) -> None:
        self.factory.drain(self.clock, TIMEOUT).addCallback(self.drained.append)

    def test_with_no_connection_open_the_drain_is_over_at_once(self) -> None:
        self.drain()
        self.assertEqual(self.drained, [None])

    def test_an_idle_connection_is_closed_after_the_grace_and_then_the_drain_is_over(
            self) -> None:
        client = self.connect()
        client.send(HEAD)  # answered; the connection is kept alive, idle
        self.assertFalse(client.closed_by_node)
        self.drain()
        self.clock.advance(0.9)
        self.assertFalse(client.closed_by_node)
        self.clock.advance(0.2)
        self.assertTrue(client.closed_by_node)
        self.assertEqual(self.drained, [])  # until the close completes
        client.close()
        self.assertEqual(self.drained, [None])

    def test_a_request_in_flight_is_answered_with_connection_close_then_closed(self) -> None:
        self.resource.hold = True
        busy, idle = self.connect(port=1), self.connect(port=2)
        busy.send(HEAD)
        self.drain()
        self.clock.advance(5)
        self.assertTrue(idle.closed_by_node)
        idle.close()
        self.assertFalse(busy.closed_by_node)  # still being answered
        self.assertEqual(self.drained, [])

        [request] = self.resource.pending
        request.write(b'{"success": true, "data": "late"}')
        request.finish()
        response = busy.response()
        self.assertEqual((response.code, response.json()["data"]), (200, "late"))
        self.assertEqual(response.headers["connection"], "close")
        self.assertEqual(self.drained, [])
        busy.close()  # the client closes, as told
        self.assertEqual(self.drained, [None])

    def test_a_request_whose_head_is_arriving_is_served_not_cut(self) -> None:
        client = self.connect()
        client.send(HEAD[:40])  # the request line, part of the headers
        self.drain()
        self.clock.advance(2)
        self.assertFalse(client.closed_by_node)
        client.send(HEAD[40:])
        response = client.response()
        self.assertEqual((response.code, response.headers["connection"]), (200, "close"))
        self.assertEqual(self.drained, [])
        client.close()
        self.assertEqual(self.drained, [None])

    def test_a_request_sent_during_the_grace_is_served_with_connection_close(self) -> None:
        client = self.connect()
        self.drain()
        self.clock.advance(0.5)
        client.send(HEAD)
        response = client.response()
        self.assertEqual((response.code, response.headers["connection"]), (200, "close"))
        client.close()
        self.assertEqual(self.drained, [None])

    def test_a_request_never_answered_ends_the_drain_at_the_timeout_with_a_warning(
            self) -> None:
        self.resource.hold = True
        client = self.connect()
        client.send(HEAD)
        with capturedLogs() as events:
            self.drain()
            self.clock.advance(TIMEOUT - 0.1)
            self.assertEqual(self.drained, [])
            self.clock.advance(0.2)
        self.assertEqual(self.drained, [None])
        self.assertFalse(client.closed_by_node)  # the reactor's shutdown closes it
        self.assertEqual(
            [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn],
            [f"1 HTTP connections still open after {TIMEOUT} s; closing them"])

    def test_a_refused_connection_does_not_hold_the_drain(self) -> None:
        self.factory = make_site(self.resource, 1 << 20, clock=self.clock,
                                 limits=SiteLimits(max_connections=1))
        first = self.connect(port=1)
        self.connect(port=2)  # refused: answered within a second, then closed
        self.drain()
        self.clock.advance(1.1)
        self.assertTrue(first.closed_by_node)
        first.close()
        self.assertEqual(self.drained, [None])


class ListenerTests(TestCase):
    """The API's listener, on real ports of 127.0.0.1."""

    def service(self, port: int) -> DrainingHTTPService:
        site = make_site(Answer(), 1 << 20, clock=reactor)
        return DrainingHTTPService(TCP4ServerEndpoint(reactor, port, interface="127.0.0.1"),
                                   site, reactor, timeout=1)

    def test_a_taken_port_stops_start_up_with_one_line(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = self.service(port)
            with self.assertRaises(SystemExit) as raised:
                service.privilegedStartService()
        message = str(raised.exception.code)
        self.assertTrue(message.startswith(
            f"scheduler0: cannot serve the API: Couldn't listen on 127.0.0.1:{port}"), message)
        self.assertIn("Address already in use", message)
        self.assertNotIn("\n", message)

    async def test_the_port_is_bound_before_start_and_released_on_stop(self) -> None:
        port = free_port()
        service = self.service(port)
        service.privilegedStartService()  # while still privileged: before startService
        self.assertTrue(_taken(port))
        service.startService()
        await service.stopService()
        self.assertFalse(_taken(port))

    async def test_a_stop_before_start_is_harmless(self) -> None:
        await self.service(free_port()).stopService()


def _taken(port: int) -> bool:
    """Whether C{port} of 127.0.0.1 is bound (by the service under test)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False
