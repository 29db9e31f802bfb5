"""
Where callbacks may go: the operator options C{CallbackAllowNetworks} and
C{CallbackDenyNetworks} (CIDR lists, validated by config).

Two checks, because a URL says little about where it leads: at job creation an IP-literal
host is refused early with a clear 400; at delivery the address actually connected to is
checked, which is what stops a hostname that resolves (or is re-pointed) into a denied
network.
"""

from __future__ import annotations

import ipaddress
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


class CallbackRefused(Exception):
    """A callback connected to an address the network policy refuses; nothing was sent."""


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkPolicy:
    """An allow list (empty = anywhere) and a deny list checked after it."""

    def __init__(self, allow: Sequence[str], deny: Sequence[str]) -> None:
        self.allow: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in allow)
        self.deny: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n.strip(), strict=False) for n in deny)

    @property
    def active(self) -> bool:
        """Whether any rule is configured (if not, nothing is checked)."""
        return bool(self.allow or self.deny)

    def refusal(self, address: str) -> str | None:
        """None if C{address} (an IP literal) is permitted, else why not."""
        if not self.active:
            return None
        try:
            ip = _address(address)
        except ValueError:
            return f"{address} is not an IP address"
        if self.allow and not any(ip in network for network in self.allow):
            listed = ", ".join(str(n) for n in self.allow)
            return f"{ip} is not in CallbackAllowNetworks ({listed})"
        for network in self.deny:
            if ip in network:
                return f"{ip} is in CallbackDenyNetworks {network}"
        return None

    def permits(self, address: str) -> bool:
        """Inside the allow list (if any) and outside the deny list; IPv4-mapped IPv6 as IPv4."""
        return self.refusal(address) is None

    def check_url(self, url: str) -> str | None:
        """
        At job creation: a message if the URL's host is an IP literal the policy refuses,
        else None. Hostnames pass here; they are checked at delivery, after resolution.
        """
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None  # not a URL: the URL validation reports that
        if not host:
            return None
        try:
            _address(host)
        except ValueError:
            return None
        reason = self.refusal(host)
        return None if reason is None else f"callbackUrl: {reason}"


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
        if self._policy.active:
            # Inside the TLS wrapper: the check runs on the TCP connection, before TLS.
            endpoint = _PolicyEndpoint(endpoint, self._policy, host)
        if uri.scheme == b"https":
            creator = self._context_factory.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint
