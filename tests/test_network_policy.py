"""
Tests for scheduler0.execution.network_policy: the CIDR rules, the creation-time URL
check, and the delivery-time check against a real listening server.
"""

from __future__ import annotations

from typing import Any

import treq.client
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0.config import ConfigError, load_config
from scheduler0.execution.network_policy import (
    CallbackRefused,
    NetworkPolicy,
    PolicyEndpointFactory,
    host_address,
)


class NetworkPolicyTests(SynchronousTestCase):
    """The operator's lists, on top of the default policy."""

    def test_no_rules_permit_loopback_and_private_networks(self) -> None:
        # the quick start and the seed's client post to localhost: that keeps working
        policy = NetworkPolicy([], [])
        for address in ["10.0.0.1", "127.0.0.1", "::1", "192.168.1.1", "fd00::2",
                        "8.8.8.8"]:
            self.assertTrue(policy.permits(address), address)
        self.assertIsNone(policy.check_url("http://10.0.0.5/cb"))

    def test_deny(self) -> None:
        policy = NetworkPolicy([], ["10.0.0.0/8", "fd00::/8"])
        self.assertFalse(policy.permits("10.1.2.3"))
        self.assertFalse(policy.permits("fd12::1"))
        self.assertTrue(policy.permits("11.0.0.1"))
        self.assertTrue(policy.permits("fc00::1"))

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
        self.assertFalse(NetworkPolicy([], ["fd00::/8"]).permits("fd00::1%eth0"))

    def test_not_an_address_is_refused(self) -> None:
        self.assertFalse(NetworkPolicy([], []).permits("example.com"))
        self.assertFalse(NetworkPolicy([], ["10.0.0.0/8"]).permits("example.com"))

    def test_non_strict_networks(self) -> None:
        policy = NetworkPolicy([], [" 10.1.2.3/8 "])
        self.assertFalse(policy.permits("10.200.0.1"))
        self.assertEqual(policy.refusal("10.200.0.1"),
                         "10.200.0.1 is in CallbackDenyNetworks 10.0.0.0/8")

    def test_unknown_policy(self) -> None:
        with self.assertRaises(ValueError):
            NetworkPolicy([], [], "open")

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

    def test_check_url_alternative_forms_of_a_denied_address(self) -> None:
        # what the resolver reads as 127.0.0.1 is 127.0.0.1 (issue 10 item 1)
        policy = NetworkPolicy([], ["127.0.0.0/8"])
        for host in ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001"]:
            self.assertEqual(policy.check_url(f"http://{host}:9000/cb"),
                             f"callbackUrl: {host} is read as 127.0.0.1, and 127.0.0.1 is "
                             "in CallbackDenyNetworks 127.0.0.0/8", host)

    def test_check_url_hostnames_pass(self) -> None:
        policy = NetworkPolicy(["10.0.0.0/8"], ["127.0.0.0/8"])
        self.assertIsNone(policy.check_url("http://localhost:8080/cb"))
        self.assertIsNone(policy.check_url("http://receiver.example/cb"))
        self.assertIsNone(policy.check_url("http://10.example/cb"))
        self.assertIsNone(policy.check_url("not a url [::"))


#: every form of an address the default policy must refuse (issue 10 item 1), with the
#: address it is (or reaches)
ALWAYS_REFUSED = {
    "0.0.0.0": "0.0.0.0",
    "0.1.2.3": "0.1.2.3",
    "::": "::",
    "::ffff:0.0.0.0": "0.0.0.0",
    "169.254.169.254": "169.254.169.254",
    "169.254.0.1": "169.254.0.1",
    "::ffff:169.254.169.254": "169.254.169.254",
    "::ffff:a9fe:a9fe": "169.254.169.254",
    "64:ff9b::a9fe:a9fe": "169.254.169.254",  # NAT64 of the metadata address
    "fe80::1": "fe80::1",
    "fe80::1%eth0": "fe80::1%eth0",
    "febf:ffff::1": "febf:ffff::1",
    "fd00:ec2::254": "fd00:ec2::254",  # AWS IMDS over IPv6
    "100.100.100.200": "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192": "192.0.0.192",  # Oracle Cloud
    "168.63.129.16": "168.63.129.16",  # Azure WireServer
    "224.0.0.1": "224.0.0.1",
    "255.255.255.255": "255.255.255.255",
    "ff02::1": "ff02::1",
}

#: refused by public-only only
PRIVATE = ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "10.0.0.1",
           "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254",
           "fc00::1", "fd00::2", "fd12:3456::1", "fec0::1", "192.0.2.1", "198.18.0.1",
           "240.0.0.1", "2001:db8::1", "64:ff9b::7f00:1"]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1",
          "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]


class BuiltInDenyTests(SynchronousTestCase):
    """Issue 10 item 1: what the default policy refuses, whatever the operator lists."""

    def test_default_refuses_unspecified_link_local_and_metadata_addresses(self) -> None:
        policy = NetworkPolicy([], [])
        for address, reached in ALWAYS_REFUSED.items():
            reason = policy.refusal(address)
            self.assertIsNotNone(reason, address)
            assert reason is not None
            self.assertTrue(reason.startswith(f"{reached} is "), reason)
            self.assertTrue(reason.endswith("; callbacks never go there"), reason)

    def test_the_messages_say_what_the_address_is(self) -> None:
        policy = NetworkPolicy([], [])
        self.assertEqual(policy.refusal("0.0.0.0"),
                         "0.0.0.0 is an unspecified address (Linux connects it to the local "
                         "host); callbacks never go there")
        self.assertEqual(policy.refusal("169.254.169.254"),
                         "169.254.169.254 is a link-local address (cloud metadata services "
                         "live there); callbacks never go there")
        self.assertEqual(policy.refusal("fd00:ec2::254"),
                         "fd00:ec2::254 is the AWS metadata service; callbacks never go there")

    def test_public_only_refuses_them_too(self) -> None:
        policy = NetworkPolicy([], [], "public-only")
        for address in ALWAYS_REFUSED:
            self.assertFalse(policy.permits(address), address)

    def test_an_allow_list_does_not_reopen_them(self) -> None:
        policy = NetworkPolicy(["0.0.0.0/0", "::/0"], [])
        for address in ALWAYS_REFUSED:
            self.assertFalse(policy.permits(address), address)
        self.assertTrue(policy.permits("127.0.0.1"))

    def test_default_permits_private_and_public(self) -> None:
        policy = NetworkPolicy([], [])
        for address in PRIVATE + PUBLIC:
            self.assertTrue(policy.permits(address), address)

    def test_public_only_refuses_loopback_private_cgnat_and_ula(self) -> None:
        policy = NetworkPolicy([], [], "public-only")
        for address in PRIVATE:
            reason = policy.refusal(address)
            self.assertIsNotNone(reason, address)
            assert reason is not None
            self.assertTrue(reason.endswith("refused by CallbackNetworkPolicy public-only"),
                            reason)
        self.assertEqual(policy.refusal("10.1.2.3"),
                         "10.1.2.3 is a private address (10.0.0.0/8), refused by "
                         "CallbackNetworkPolicy public-only")
        self.assertEqual(policy.refusal("100.64.0.1"),
                         "100.64.0.1 is a shared (carrier-grade NAT) address (100.64.0.0/10), "
                         "refused by CallbackNetworkPolicy public-only")

    def test_public_only_permits_public_addresses(self) -> None:
        policy = NetworkPolicy([], [], "public-only")
        for address in PUBLIC:
            self.assertTrue(policy.permits(address), address)

    def test_public_only_with_the_operator_lists(self) -> None:
        # the allow list narrows, it never reopens a private range
        policy = NetworkPolicy(["10.0.0.0/8", "8.8.8.0/24"], ["8.8.8.4/32"], "public-only")
        self.assertFalse(policy.permits("10.0.0.1"))
        self.assertTrue(policy.permits("8.8.8.8"))
        self.assertFalse(policy.permits("8.8.8.4"))
        self.assertFalse(policy.permits("1.1.1.1"))


class HostAddressTests(SynchronousTestCase):
    def test_literals(self) -> None:
        self.assertEqual(str(host_address("10.0.0.1")), "10.0.0.1")
        self.assertEqual(str(host_address("::1")), "::1")
        self.assertEqual(str(host_address("::ffff:127.0.0.1")), "127.0.0.1")

    def test_forms_the_resolver_reads_as_an_address(self) -> None:
        for host, address in [("0", "0.0.0.0"), ("1", "0.0.0.1"),
                              ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
                              ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
                              ("2852039166", "169.254.169.254"),
                              ("0251.0376.0251.0376", "169.254.169.254"),
                              ("0xa9fea9fe", "169.254.169.254"),
                              ("0xA9.254.43518", "169.254.169.254")]:
            self.assertEqual(str(host_address(host)), address, host)

    def test_host_names(self) -> None:
        for host in ["localhost", "receiver.example", "0x7g.1", "08", "4294967296",
                     "1.2.3.4.5", "127.0.0.1.", "", "b\u00fccher.example"]:
            self.assertIsNone(host_address(host), host)


class CheckUrlDefaultTests(SynchronousTestCase):
    """At job creation, with the default policy and no lists (issue 10 item 1)."""

    def test_refused(self) -> None:
        policy = NetworkPolicy([], [])
        for url in ["http://0.0.0.0:3000/", "http://0:3000/", "http://[::]:3000/",
                    "http://[::ffff:0.0.0.0]:3000/", "http://169.254.169.254/latest/meta-data/",
                    "http://[::ffff:169.254.169.254]/", "http://[::ffff:a9fe:a9fe]/",
                    "http://2852039166/", "http://0251.0376.0251.0376/", "http://0xa9fea9fe/",
                    "http://169.254.43518/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
                    "http://[fd00:ec2::254]/", "http://100.100.100.200/",
                    "http://192.0.0.192/", "https://168.63.129.16/"]:
            message = policy.check_url(url)
            self.assertIsNotNone(message, url)
            assert message is not None
            self.assertTrue(message.startswith("callbackUrl: "), message)
            self.assertTrue(message.endswith("; callbacks never go there"), message)
        self.assertEqual(policy.check_url("http://0:3000/"),
                         "callbackUrl: 0 is read as 0.0.0.0, and 0.0.0.0 is an unspecified "
                         "address (Linux connects it to the local host); callbacks never go "
                         "there")

    def test_permitted(self) -> None:
        policy = NetworkPolicy([], [])
        for url in ["http://127.0.0.1:3000/callback", "http://localhost:3000/",
                    "http://[::1]:3001/", "http://2130706433:3000/", "http://10.1.2.3/",
                    "https://example.com/hook", "http://[2606:4700::1111]/"]:
            self.assertIsNone(policy.check_url(url), url)

    def test_public_only(self) -> None:
        policy = NetworkPolicy([], [], "public-only")
        for url in ["http://127.0.0.1:3000/", "http://[::1]:3001/", "http://2130706433/",
                    "http://0x7f.1/", "http://10.0.0.1/", "http://[fd00::1]/",
                    "http://100.64.1.1/", "http://[::ffff:192.168.0.1]/"]:
            message = policy.check_url(url)
            self.assertIsNotNone(message, url)
            assert message is not None
            self.assertIn("refused by CallbackNetworkPolicy public-only", message)
        self.assertIsNone(policy.check_url("https://8.8.8.8/"))
        # a host name is decided at connect time, on the address it resolves to
        self.assertIsNone(policy.check_url("http://localhost:3000/"))


class ConfigTests(SynchronousTestCase):
    """C{CallbackNetworkPolicy}: default or public-only, nothing else (no "open")."""

    def test_default(self) -> None:
        self.assertEqual(load_config(environ={}).callback_network_policy, "default")

    def test_public_only(self) -> None:
        config = load_config(environ={"SCHEDULER0_CALLBACK_NETWORK_POLICY": "Public-Only"})
        self.assertEqual(config.callback_network_policy, "public-only")
        config = load_config(environ={}, overrides={"CallbackNetworkPolicy": "public-only"})
        self.assertEqual(config.callback_network_policy, "public-only")

    def test_anything_else_stops_start_up(self) -> None:
        error = self.assertRaises(ConfigError, load_config, environ={},
                                  overrides={"CallbackNetworkPolicy": "open"})
        self.assertEqual(error.key, "CallbackNetworkPolicy")
        self.assertIn("CallbackNetworkPolicy: open is not allowed; expected default or "
                      "public-only", str(error))

    def test_every_value_makes_a_policy(self) -> None:
        for value in ("default", "public-only"):
            config = load_config(environ={}, overrides={"CallbackNetworkPolicy": value})
            NetworkPolicy(config.callback_allow_networks, config.callback_deny_networks,
                          config.callback_network_policy)


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
