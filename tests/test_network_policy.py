"""
Tests for scheduler0.execution.network_policy: the CIDR rules, the creation-time URL
check, and the delivery-time check against a real listening server.
"""

from __future__ import annotations

from typing import Any

import treq.client
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0.execution.network_policy import (
    CallbackRefused,
    NetworkPolicy,
    PolicyEndpointFactory,
)


class NetworkPolicyTests(SynchronousTestCase):
    def test_no_rules_permit_everything(self) -> None:
        policy = NetworkPolicy([], [])
        self.assertFalse(policy.active)
        for address in ["10.0.0.1", "127.0.0.1", "::1", "169.254.169.254"]:
            self.assertTrue(policy.permits(address), address)
        self.assertIsNone(policy.check_url("http://10.0.0.5/cb"))

    def test_active(self) -> None:
        self.assertTrue(NetworkPolicy(["10.0.0.0/8"], []).active)
        self.assertTrue(NetworkPolicy([], ["10.0.0.0/8"]).active)

    def test_deny(self) -> None:
        policy = NetworkPolicy([], ["10.0.0.0/8", "fd00::/8"])
        self.assertFalse(policy.permits("10.1.2.3"))
        self.assertFalse(policy.permits("fd12::1"))
        self.assertTrue(policy.permits("11.0.0.1"))
        self.assertTrue(policy.permits("fe80::1"))

    def test_allow(self) -> None:
        policy = NetworkPolicy(["192.168.0.0/16"], [])
        self.assertTrue(policy.permits("192.168.4.4"))
        self.assertFalse(policy.permits("192.169.0.1"))
        self.assertFalse(policy.permits("::1"))

    def test_deny_wins_inside_allow(self) -> None:
        policy = NetworkPolicy(["10.0.0.0/8"], ["10.9.0.0/16"])
        self.assertTrue(policy.permits("10.8.0.1"))
        self.assertFalse(policy.permits("10.9.0.1"))
        self.assertEqual(policy.refusal("10.9.0.1"),
                         "10.9.0.1 is in CallbackDenyNetworks 10.9.0.0/16")

    def test_ipv4_mapped_ipv6_is_ipv4(self) -> None:
        deny = NetworkPolicy([], ["10.0.0.0/8"])
        self.assertFalse(deny.permits("::ffff:10.0.0.5"))
        self.assertTrue(deny.permits("::ffff:11.0.0.5"))
        allow = NetworkPolicy(["10.0.0.0/8"], [])
        self.assertTrue(allow.permits("::ffff:10.0.0.5"))
        self.assertFalse(allow.permits("::ffff:11.0.0.5"))

    def test_scoped_ipv6(self) -> None:
        self.assertFalse(NetworkPolicy([], ["fe80::/10"]).permits("fe80::1%eth0"))

    def test_not_an_address_is_refused_when_active(self) -> None:
        self.assertFalse(NetworkPolicy([], ["10.0.0.0/8"]).permits("example.com"))

    def test_non_strict_networks(self) -> None:
        policy = NetworkPolicy([], [" 10.1.2.3/8 "])
        self.assertFalse(policy.permits("10.200.0.1"))
        self.assertEqual(policy.refusal("10.200.0.1"),
                         "10.200.0.1 is in CallbackDenyNetworks 10.0.0.0/8")

    def test_check_url_deny_message(self) -> None:
        policy = NetworkPolicy([], ["10.0.0.0/8"])
        self.assertEqual(policy.check_url("http://10.0.0.5:8080/cb"),
                         "callbackUrl: 10.0.0.5 is in CallbackDenyNetworks 10.0.0.0/8")

    def test_check_url_allow_message(self) -> None:
        policy = NetworkPolicy(["10.0.0.0/8", "192.168.0.0/16"], [])
        self.assertEqual(policy.check_url("https://8.8.8.8/cb"),
                         "callbackUrl: 8.8.8.8 is not in CallbackAllowNetworks "
                         "(10.0.0.0/8, 192.168.0.0/16)")
        self.assertIsNone(policy.check_url("https://10.2.3.4/cb"))

    def test_check_url_ipv6_literal(self) -> None:
        policy = NetworkPolicy([], ["::1/128", "127.0.0.0/8"])
        self.assertEqual(policy.check_url("http://[::1]:9000/cb"),
                         "callbackUrl: ::1 is in CallbackDenyNetworks ::1/128")
        self.assertIsNotNone(policy.check_url("http://[::ffff:127.0.0.1]/cb"))

    def test_check_url_hostnames_pass(self) -> None:
        policy = NetworkPolicy(["10.0.0.0/8"], ["127.0.0.0/8"])
        self.assertIsNone(policy.check_url("http://localhost:8080/cb"))
        self.assertIsNone(policy.check_url("http://receiver.example/cb"))
        self.assertIsNone(policy.check_url("not a url [::"))


class Recorder(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def render(self, request: Any) -> bytes:
        self.requests.append(request.content.read())
        return b"ok"


class TrackingSite(Site):
    """Records the bytes each connection receives and lets the test wait for it to close."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.closed: list[Deferred] = []
        self.received: list[bytes] = []

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        done: Deferred = Deferred()
        self.closed.append(done)
        lost, received = channel.connectionLost, channel.dataReceived

        def connectionLost(reason: Any) -> None:
            lost(reason)
            done.callback(None)

        def dataReceived(data: bytes) -> None:
            self.received.append(data)
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

    def client(self, allow: list[str], deny: list[str]) -> treq.client.HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=True)
        factory = PolicyEndpointFactory(reactor, NetworkPolicy(allow, deny), connect_timeout=5)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        self.addCleanup(self.wait_closed)
        self.addCleanup(pool.closeCachedConnections)
        return treq.client.HTTPClient(agent)

    @inlineCallbacks
    def wait_closed(self) -> Any:
        """Server-side connections close after the client's; trial wants none left."""
        for done in self.site.closed:
            yield done

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
        yield self.assert_no_request()
        # refused after connecting, on the address actually reached
        self.assertEqual(len(self.site.closed), 1)

    @inlineCallbacks
    def test_denied_before_tls(self) -> Any:
        http = self.client([], ["127.0.0.0/8"])
        yield self.assertFailure(http.post(self.url().replace("http:", "https:"), data=b"[1]"),
                                 CallbackRefused)
        yield self.assert_no_request()
        self.assertEqual(len(self.site.closed), 1)

    @inlineCallbacks
    def test_denied_via_hostname(self) -> Any:
        http = self.client([], ["127.0.0.0/8", "::1/128"])
        error = yield self.assertFailure(http.post(self.url("localhost"), data=b"[1]"),
                                         CallbackRefused)
        self.assertIn("refused to deliver to localhost: ", str(error))
        self.assertIn("is in CallbackDenyNetworks", str(error))
        yield self.assert_no_request()

    @inlineCallbacks
    def test_outside_allow_list(self) -> Any:
        http = self.client(["10.0.0.0/8"], [])
        error = yield self.assertFailure(http.post(self.url("localhost"), data=b"[1]"),
                                         CallbackRefused)
        self.assertIn("127.0.0.1 is not in CallbackAllowNetworks (10.0.0.0/8)", str(error))
        yield self.assert_no_request()

    @inlineCallbacks
    def test_unsupported_scheme(self) -> Any:
        http = self.client([], [])
        yield self.assertFailure(http.post(f"ftp://127.0.0.1:{self.port_number}/", data=b""),
                                 SchemeNotSupported)

    @inlineCallbacks
    def assert_no_request(self) -> Any:
        # Give a request, had one been written, time to arrive before looking.
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.resource.requests, [])
        self.assertEqual(self.site.received, [])  # not a byte, not even a TLS ClientHello
