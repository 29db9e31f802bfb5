"""Value checks.  Each knows how to describe what it allows, so every error says the same thing
the example config file says.

A check receives a value already of the key's type (see ``parsing``) and returns it normalised
or raises ``Invalid``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from .errors import Invalid, show
from .replica import Replica


@attrs.frozen
class Check:
    """A validator: ``allowed`` is the text after 'expected'; ``fn`` normalises or raises."""

    allowed: str
    fn: Callable[[Any], Any] = lambda value: value

    def __call__(self, value: Any) -> Any:
        return self.fn(value)


def int_check(low: int, high: int | None = None, note: str = "") -> Check:
    """An integer within bounds; ``note`` names the unit in the message."""
    def fn(value: int) -> int:
        if value < low or (high is not None and value > high):
            raise Invalid()
        return value

    if high is None:
        allowed = f"an integer >= {low}"
    else:
        allowed = f"an integer from {low} to {high}"
    return Check(allowed + (f" ({note})" if note else ""), fn)


def number_check(*, gt: float | None = None, ge: float | None = None, note: str = "") -> Check:
    """A number above ``gt`` or at least ``ge``; ``note`` names the unit in the message."""
    def fn(value: float) -> float:
        if gt is not None and not value > gt:
            raise Invalid()
        if ge is not None and not value >= ge:
            raise Invalid()
        return value

    bound = f"> {gt:g}" if gt is not None else f">= {ge:g}"
    return Check(f"a number {bound}" + (f" ({note})" if note else ""), fn)


def choice_check(options: tuple[str, ...], aliases: Mapping[str, str] | None = None) -> Check:
    """One of ``options``, case-insensitive; ``aliases`` map old spellings."""
    aliases = dict(aliases or {})

    def fn(value: str) -> str:
        lowered = value.strip().lower()
        lowered = aliases.get(lowered, lowered)
        if lowered not in options:
            raise Invalid()
        return lowered

    if len(options) == 2:
        allowed = f"{options[0]} or {options[1]}"
    else:
        allowed = "one of " + ", ".join(options)
    return Check(allowed + " (case-insensitive)", fn)


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def _valid_host(host: str) -> bool:
    """A DNS name, an IPv4 address or an IPv6 address (brackets optional)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME.match(host))


def host_fn(value: str) -> str:
    """A bare host; brackets around an IPv6 address are dropped."""
    if not _valid_host(value):
        raise Invalid()
    if value.startswith("["):
        value = value[1:-1]
    return value


def split_host_port(value: str) -> tuple[str, int] | None:
    """Parse "host:port" / "[v6]:port"; None when it is not that shape."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not re.fullmatch(r"\d{1,5}", port):
        return None
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return None  # a bare IPv6 address is ambiguous without brackets
    if not _valid_host(host):
        return None
    number = int(port)
    if not 1 <= number <= 65535:
        return None
    return host, number


def host_port_fn(value: str) -> str:
    """``host:port`` (``[v6]:port``), as Raft addresses are written."""
    if split_host_port(value) is None:
        raise Invalid()
    return value


def adv_address_fn(value: str) -> str:
    """Empty (use RaftAddress) or ``host:port``."""
    return value if value == "" else host_port_fn(value)


def non_empty_fn(value: str) -> str:
    """A string with something other than spaces."""
    if not value.strip():
        raise Invalid()
    return value


def secret_fn(value: str | None) -> str | None:
    """Unset (generated on first start) or non-empty: an empty secret is a mistake."""
    if value is not None and value == "":
        raise Invalid()
    return value


def username_fn(value: str | None) -> str | None:
    """Unset or non-empty without ':', which would split the Basic-auth pair."""
    if value is not None and (value == "" or ":" in value):
        raise Invalid()
    return value


def cidrs_fn(value: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry a network; host bits are dropped (10.1.2.3/8 -> 10.0.0.0/8)."""
    normalised = []
    for entry in value:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise Invalid(shown=f"entry {show(entry)}") from None
        normalised.append(str(network))
    return tuple(normalised)


def _http_url_ok(address: str) -> str | None:
    """Normalised HTTP base URL (no trailing slash) or None when it is not one."""
    try:
        parts = urlsplit(address)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.query or parts.fragment:
        return None
    if parts.path not in ("", "/"):
        return None
    if port is not None and port == 0:
        return None
    return address.rstrip("/")


def replicas_fn(value: tuple[Replica, ...]) -> tuple[Replica, ...]:
    """Each entry well-formed and no NodeId, RaftAddress or Address used twice."""
    seen_ids: dict[int, int] = {}
    seen_raft: dict[str, int] = {}
    seen_http: dict[str, int] = {}
    result = []
    for index, replica in enumerate(value, start=1):
        where = f"entry {index} {show(replica)}"
        address = _http_url_ok(replica.address)
        if address is None:
            raise Invalid(
                "Address must be an http(s) base URL such as http://127.0.0.1:9091", shown=where
            )
        if split_host_port(replica.raft_address) is None:
            raise Invalid("RaftAddress must be host:port with a port from 1 to 65535", shown=where)
        if replica.node_id < 1:
            raise Invalid("NodeId must be an integer >= 1", shown=where)
        for seen, field, label in (
            (seen_ids, replica.node_id, "NodeId"),
            (seen_raft, replica.raft_address, "RaftAddress"),
            (seen_http, address, "Address"),
        ):
            if field in seen:
                raise Invalid(
                    f"{label} {field} is already used by entry {seen[field]}; each node needs its own",
                    shown=where,
                )
            seen[field] = index
        result.append(Replica(address=address, raft_address=replica.raft_address,
                              node_id=replica.node_id))
    return tuple(result)


ANY_STR = Check("a string")
BOOL = Check("true or false")
