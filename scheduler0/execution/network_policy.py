"""
Where callbacks may go.

A scheduler that POSTs to URLs its users choose must not become a way into the node's own
network. Three layers, checked in this order:

  - the built-in deny list (L{ALWAYS_DENIED}), which nothing overrides: the unspecified
    addresses (C{0.0.0.0/8}, C{::}: Linux delivers a connection to them to the local
    host), link-local networks and the cloud metadata services' addresses;
  - C{CallbackNetworkPolicy}: C{default} adds nothing (loopback and private networks stay
    reachable, so a receiver on the same host or LAN works out of the box); C{public-only}
    also refuses loopback, private, CGNAT, unique-local and the other non-public ranges
    (L{PUBLIC_ONLY_DENIED}), for a server whose users are not its operators;
  - the operator's C{CallbackAllowNetworks} (if non-empty, only there) and
    C{CallbackDenyNetworks} (never there). An allow entry never re-opens what the layers
    above refuse.

Two checks, because a URL says little about where it leads: at job creation a host that is
an address (in any form the resolver would read as one: C{0}, C{2130706433}, C{0177.0.0.1},
C{[::ffff:169.254.169.254]}) is refused early with a clear 400; at delivery the address
actually connected to is checked, which is what stops a hostname that resolves (or is
re-pointed) into a denied network.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any, Sequence
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

log = Logger()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the values of C{CallbackNetworkPolicy}
DEFAULT = "default"
PUBLIC_ONLY = "public-only"
POLICIES = (DEFAULT, PUBLIC_ONLY)


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), what) for cidr, what in rows)


#: Refused whatever the configuration says: addresses that reach the node itself or the
#: cloud platform under it. IPv4-mapped (C{::ffff:a.b.c.d}) and NAT64 (C{64:ff9b::a.b.c.d})
#: addresses are checked as the IPv4 address they carry.
ALWAYS_DENIED = _table(
    ("0.0.0.0/8", "an unspecified address (Linux connects it to the local host)"),
    ("::/128", "the unspecified address (Linux connects it to the local host)"),
    ("169.254.0.0/16", "a link-local address (cloud metadata services live there)"),
    ("fe80::/10", "a link-local address"),
    ("fd00:ec2::254/128", "the AWS metadata service"),
    ("100.100.100.200/32", "the Alibaba Cloud metadata service"),
    ("192.0.0.192/32", "the Oracle Cloud metadata service"),
    ("168.63.129.16/32", "the Azure platform's host address (WireServer)"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
)

#: Also refused with C{CallbackNetworkPolicy: public-only}: everything that is not the
#: public internet.
PUBLIC_ONLY_DENIED = _table(
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "the loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("fc00::/7", "a unique local (private) address"),
    ("fec0::/10", "a site-local (private) address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("2001:db8::/32", "a documentation address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("240.0.0.0/4", "a reserved address"),
    ("100::/64", "a discard-only address"),
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class CallbackRefused(Exception):
    """A callback connected to an address the network policy refuses; nothing was sent."""


def _address(text: str) -> Address:
    """An IP literal as the address it reaches: IPv4-mapped and NAT64 IPv6 as IPv4."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is None and address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def host_address(host: str) -> Address | None:
    """
    The address a URL's host names without asking DNS, or None for a host name: an IP
    literal, or an IPv4 address in a form the resolver reads as one (C{0},
    C{2130706433}, C{0177.0.0.1}, C{0x7f.1}, C{127.1}).
    """
    try:
        return _address(host)
    except ValueError:
        pass
    if not host or not host.isascii() or any(c.isspace() for c in host) or "\0" in host:
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _parse(networks: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks)


class NetworkPolicy:
    """
    The built-in deny list, then the C{public-only} ranges (if that is the policy), then
    the operator's allow list (empty = anywhere) and deny list.
    """

    def __init__(self, allow: Sequence[str], deny: Sequence[str],
                 policy: str = DEFAULT) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown callback network policy {policy!r}; "
                             f"expected one of {', '.join(POLICIES)}")
        self.policy = policy
        self.allow: tuple[Network, ...] = _parse(allow)
        self.deny: tuple[Network, ...] = _parse(deny)
        # job creation checks every URL: its hosts repeat
        self._host_refusal = lru_cache(maxsize=4096)(self._refuse_host)

    def refusal(self, address: str) -> str | None:
        """None if C{address} (an IP literal) is permitted, else why not."""
        try:
            ip = _address(address)
        except ValueError:
            return f"{address} is not an IP address"
        for network, what in ALWAYS_DENIED:
            if ip in network:
                return f"{ip} is {what}; callbacks never go there"
        if self.policy == PUBLIC_ONLY:
            for network, what in PUBLIC_ONLY_DENIED:
                if ip in network:
                    return (f"{ip} is {what} ({network}), refused by "
                            "CallbackNetworkPolicy public-only")
        if self.allow and not any(ip in network for network in self.allow):
            listed = ", ".join(str(n) for n in self.allow)
            return f"{ip} is not in CallbackAllowNetworks ({listed})"
        for network in self.deny:
            if ip in network:
                return f"{ip} is in CallbackDenyNetworks {network}"
        return None

    def permits(self, address: str) -> bool:
        """Whether a connection to C{address} (an IP literal) may carry a callback."""
        return self.refusal(address) is None

    def check_url(self, url: str) -> str | None:
        """
        At job creation: a message if the URL's host is an address the policy refuses,
        else None. Host names pass here; they are checked at delivery, after resolution.
        """
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None  # not a URL: the URL validation reports that
        return self._host_refusal(host) if host else None

    def _refuse_host(self, host: str) -> str | None:
        address = host_address(host)
        if address is None:
            return None
        reason = self.refusal(str(address))
        if reason is None:
            return None
        if str(address) not in host:
            reason = f"{host} is read as {address}, and {reason}"
        return f"callbackUrl: {reason}"


@implementer(IProtocolFactory)
class _CheckingFactory:
    """
    Wraps the connection's protocol factory and refuses to build a protocol for a peer the
    policy refuses. A TCP client transport calls C{buildProtocol(self.getPeer())} once
    connected, before any protocol is attached, so no byte (not even a TLS ClientHello)
    reaches a refused address; Twisted then closes the transport and the endpoint's
    connection attempt fails with the exception raised here.
    """

    def __init__(self, wrapped: IProtocolFactory, policy: NetworkPolicy, host: str) -> None:
        self._wrapped = wrapped
        self._policy = policy
        self._host = host
        self.refusals: list[CallbackRefused] = []

    def buildProtocol(self, addr: Any) -> IProtocol | None:
        peer = getattr(addr, "host", None)
        reason = (self._policy.refusal(peer) if isinstance(peer, str)
                  else f"the peer address {addr!r} is not an IP address")
        if reason is not None:
            refused = CallbackRefused(f"refused to deliver to {self._host}: {reason}")
            self.refusals.append(refused)
            log.warn("{refused}", refused=str(refused))
            raise refused
        return self._wrapped.buildProtocol(addr)

    def doStart(self) -> None:
        self._wrapped.doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()


@implementer(IStreamClientEndpoint)
class _PolicyEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint, policy: NetworkPolicy,
                 host: str) -> None:
        self._endpoint = endpoint
        self._policy = policy
        self._host = host

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        checking = _CheckingFactory(protocolFactory, self._policy, self._host)

        def failed(reason: Failure) -> Failure:
            # A hostname may resolve to several addresses: HostnameEndpoint then reports
            # whichever attempt failed last, but a refusal is the failure that matters.
            if checking.refusals and not reason.check(CallbackRefused):
                return Failure(checking.refusals[0])
            return reason

        return self._endpoint.connect(checking).addErrback(failed)


@implementer(IAgentEndpointFactory)
class PolicyEndpointFactory:
    """
    An C{IAgentEndpointFactory} for C{Agent.usingEndpointFactory}: connects like the default
    (C{HostnameEndpoint}, TLS on top for https) and checks the address actually connected
    to against the policy; a refused address closes the connection before anything is sent
    and fails the request with L{CallbackRefused} naming the address and the rule.
    """

    def __init__(self, reactor: Any, policy: NetworkPolicy,
                 connect_timeout: float | None = None, context_factory: Any = None) -> None:
        self._reactor = reactor
        self._policy = policy
        self._connect_timeout = connect_timeout
        self._context_factory = context_factory or BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"Unsupported scheme: {uri.scheme!r}")
        try:
            host = uri.host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"the host of the URI ({uri.host!r}) is not ASCII")
        kwargs: dict[str, Any] = {}
        if self._connect_timeout is not None:
            kwargs["timeout"] = self._connect_timeout
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self._reactor, host, uri.port,
                                                           **kwargs)
        # Inside the TLS wrapper: the check runs on the TCP connection, before TLS.
        endpoint = _PolicyEndpoint(endpoint, self._policy, host)
        if uri.scheme == b"https":
            creator = self._context_factory.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint
