"""
Tests for scheduler0.execution.network_policy: the operator's CIDR rules (allow, deny, deny
wins inside allow, IPv4-mapped and scoped IPv6) and the creation-time URL check's messages.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.network_policy import NetworkPolicy


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
