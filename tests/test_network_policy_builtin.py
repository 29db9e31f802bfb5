"""
Tests for scheduler0.execution.network_policy: the built-in policies (issue 10 item 1):
what C{default} and C{public-only} refuse whatever the operator lists, every form of an
address that reaches them, and the C{CallbackNetworkPolicy} key that picks one.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.config import ConfigError, load_config
from scheduler0.execution.network_policy import NetworkPolicy, host_address


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
