"""
Tests for scheduler0.execution.network_policy: the delivery-time check
(L{PolicyEndpointFactory}) against a real listening server on 127.0.0.1: the address
actually reached is checked, whether the URL gives a literal or a host name, and nothing
is sent to a refused one.
"""

from __future__ import annotations

from typing import Any

import treq.client
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0.execution.network_policy import (
    CallbackRefused,
    NetworkPolicy,
    PolicyEndpointFactory,
)


class Recorder(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def render(self, request: Any) -> bytes:
        self.requests.append(request.content.read())
        return b"ok"


class Accepted:
    """One connection the listener accepted: every byte it received, and its end."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()


class TrackingSite(Site):
    """Records each connection in the order the listener accepts them (L{Accepted})."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.connections: list[Accepted] = []

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        accepted = Accepted()
        self.connections.append(accepted)
        lost, received = channel.connectionLost, channel.dataReceived

        def connectionLost(reason: Any) -> None:
            lost(reason)
            accepted.closed.callback(None)

        def dataReceived(data: bytes) -> None:
            accepted.received += data
            received(data)

        channel.connectionLost = connectionLost
        channel.dataReceived = dataReceived
        return channel


class PolicyEndpointFactoryTests(TestCase):
    def setUp(self) -> None:
        self.resource = Recorder()
        self.site = TrackingSite(self.resource)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.port_number = self.port.getHost().port

    def client(self, allow: list[str], deny: list[str],
               policy: str = "default") -> treq.client.HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=True)
        factory = PolicyEndpointFactory(reactor, NetworkPolicy(allow, deny, policy),
                                        connect_timeout=5)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        self.addCleanup(self.wait_closed)
        self.addCleanup(pool.closeCachedConnections)
        return treq.client.HTTPClient(agent)

    @inlineCallbacks
    def wait_closed(self) -> Any:
        """Server-side connections close after the client's; trial wants none left."""
        for accepted in self.site.connections:
            yield accepted.closed

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port_number}/cb"

    @inlineCallbacks
    def test_allowed(self) -> Any:
        http = self.client(["127.0.0.0/8"], ["10.0.0.0/8"])
        response = yield http.post(self.url(), data=b"[1]")
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.content()), b"ok")
        self.assertEqual(self.resource.requests, [b"[1]"])

    @inlineCallbacks
    def test_allowed_by_hostname(self) -> Any:
        http = self.client(["127.0.0.0/8"], [])
        response = yield http.post(self.url("localhost"), data=b"[2]")
        yield response.content()
        self.assertEqual(self.resource.requests, [b"[2]"])

    @inlineCallbacks
    def test_denied(self) -> Any:
        http = self.client([], ["127.0.0.0/8"])
        error = yield self.assertFailure(http.post(self.url(), data=b"[1]"), CallbackRefused)
        self.assertEqual(str(error), "refused to deliver to 127.0.0.1: "
                                     "127.0.0.1 is in CallbackDenyNetworks 127.0.0.0/8")
        # refused after connecting, on the address actually reached
        self.assertEqual((yield self.assert_nothing_sent()), 1)

    @inlineCallbacks
    def test_denied_before_tls(self) -> Any:
        http = self.client([], ["127.0.0.0/8"])
        yield self.assertFailure(http.post(self.url().replace("http:", "https:"), data=b"[1]"),
                                 CallbackRefused)
        self.assertEqual((yield self.assert_nothing_sent()), 1)

    @inlineCallbacks
    def test_denied_via_hostname(self) -> Any:
        http = self.client([], ["127.0.0.0/8", "::1/128"])
        error = yield self.assertFailure(http.post(self.url("localhost"), data=b"[1]"),
                                         CallbackRefused)
        self.assertIn("refused to deliver to localhost: ", str(error))
        self.assertIn("is in CallbackDenyNetworks", str(error))
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_outside_allow_list(self) -> Any:
        http = self.client(["10.0.0.0/8"], [])
        error = yield self.assertFailure(http.post(self.url("localhost"), data=b"[1]"),
                                         CallbackRefused)
        self.assertIn("127.0.0.1 is not in CallbackAllowNetworks (10.0.0.0/8)", str(error))
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_the_unspecified_address_is_refused_by_default(self) -> Any:
        # Linux delivers a connection to 0.0.0.0 to the local host: the listener on
        # 127.0.0.1 stands in for an internal service (issue 10 item 1)
        http = self.client([], [])
        error = yield self.assertFailure(http.post(self.url("0.0.0.0"), data=b"[1]"),
                                         CallbackRefused)
        self.assertEqual(str(error), "refused to deliver to 0.0.0.0: 0.0.0.0 is an unspecified "
                                     "address (Linux connects it to the local host); "
                                     "callbacks never go there")
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_an_explicit_loopback_deny_also_stops_the_unspecified_address(self) -> Any:
        http = self.client([], ["127.0.0.0/8", "::1/128"])
        yield self.assertFailure(http.post(self.url("0.0.0.0"), data=b"[1]"),
                                 CallbackRefused)
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_public_only_refuses_what_a_host_name_resolves_to(self) -> Any:
        http = self.client([], [], "public-only")
        error = yield self.assertFailure(http.post(self.url("localhost"), data=b"[1]"),
                                         CallbackRefused)
        self.assertIn("refused to deliver to localhost: ", str(error))
        self.assertIn("refused by CallbackNetworkPolicy public-only", str(error))
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_public_only_refuses_a_loopback_literal(self) -> Any:
        http = self.client([], [], "public-only")
        error = yield self.assertFailure(http.post(self.url(), data=b"[1]"), CallbackRefused)
        self.assertEqual(str(error), "refused to deliver to 127.0.0.1: 127.0.0.1 is a loopback "
                                     "address (127.0.0.0/8), refused by CallbackNetworkPolicy "
                                     "public-only")
        yield self.assert_nothing_sent()

    @inlineCallbacks
    def test_default_delivers_to_loopback(self) -> Any:
        http = self.client([], [])
        response = yield http.post(self.url("localhost"), data=b"[3]")
        yield response.content()
        self.assertEqual(self.resource.requests, [b"[3]"])

    @inlineCallbacks
    def test_unsupported_scheme(self) -> Any:
        http = self.client([], [])
        yield self.assertFailure(http.post(f"ftp://127.0.0.1:{self.port_number}/", data=b""),
                                 SchemeNotSupported)

    @inlineCallbacks
    def assert_nothing_sent(self) -> Any:
        """
        Not a byte of the refused request (not even a TLS ClientHello) reached the
        listener: proven by events, not by waiting a while. A later request, sent after
        the refusal on a connection of its own, is answered; the kernel hands connections
        to accept() in the order they were made, so every connection the refused attempt
        made had been accepted by then. Each of those has closed once its end arrives, and
        TCP delivers every byte sent on a connection before its end. Returns how many
        connections the refused attempt made.
        """
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        response = yield treq.client.HTTPClient(Agent(reactor, pool=pool)).post(
            self.url(), data=b"later")
        self.assertEqual((yield response.content()), b"ok")
        *earlier, later = self.site.connections
        self.assertTrue(later.received.endswith(b"later"), later.received)
        for accepted in earlier:
            yield accepted.closed
        self.assertEqual([accepted.received for accepted in earlier], [b""] * len(earlier))
        self.assertEqual(self.resource.requests, [b"later"])
        return len(earlier)
