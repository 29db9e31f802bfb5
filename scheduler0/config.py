"""Configuration: the one place every key is defined, loaded and validated.

Why this module is strict: the Go original silently ignored misspelt keys, ignored the
environment whenever a file existed and crashed later on zero values.  Here every key has a
default, a one-line doc and a validator; anything wrong stops start-up with a single line that
names the key, the offending value, what is allowed and where the value came from.

Precedence (lowest first): defaults < YAML file < environment (``SCHEDULER0_<UPPER_SNAKE>``)
< overrides (the command line).  Every value given at any layer must be valid, even one that a
higher layer replaces: a broken file is reported, not papered over.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import types
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import yaml

__all__ = [
    "Config",
    "ConfigError",
    "KEYS",
    "Key",
    "Replica",
    "dump_yaml",
    "env_var",
    "load_config",
]

ENV_PREFIX = "SCHEDULER0_"


class ConfigError(Exception):
    """One line naming the key, the offending value and what is allowed, e.g.
    'Port: 70000 is not allowed; expected an integer from 1 to 65535 (from SCHEDULER0_PORT)'.

    ``key`` is the key name when the problem belongs to one key (None for file-level problems),
    so callers can point at it without parsing the message.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@attrs.frozen
class Replica:
    """One cluster member as listed in ``Replicas``."""

    address: str  # HTTP base URL of the node, e.g. "http://127.0.0.1:9091"  (YAML key Address)
    raft_address: str  # "host:port"  (YAML key RaftAddress)
    node_id: int  # >= 1  (YAML key NodeId)

    def to_mapping(self) -> dict[str, object]:
        """The YAML/JSON shape, so a Replica can be written back into a config file."""
        return {"Address": self.address, "RaftAddress": self.raft_address, "NodeId": self.node_id}


# --------------------------------------------------------------------------------------------
# Small helpers for messages


class _Invalid(Exception):
    """Raised by parsers and checks; turned into a ConfigError once the origin is known.

    ``reason`` replaces the generic "expected <allowed>" text; ``shown`` replaces the rendering
    of the whole value (used to point at one entry of a list).
    """

    def __init__(self, reason: str | None = None, shown: str | None = None) -> None:
        super().__init__(reason or "")
        self.reason = reason
        self.shown = shown


_PLAIN = re.compile(r"[^\s'\"\\]+")


def _show(value: object, limit: int = 120) -> str:
    """Render a value for a one-line message: simple strings plain (Port: 70000), anything else
    as repr, which quotes empty or odd strings and escapes newlines."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and len(value) <= limit:
        return value
    if isinstance(value, Replica):
        value = value.to_mapping()
    if isinstance(value, tuple):
        value = list(value)
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _type_name(value: object) -> str:
    """A human name for the YAML/Python type of a value, used in wrong-type messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _origin_plain(source: str) -> str:
    """Turn a ``Config.source`` entry into words: 'default', 'from SCHEDULER0_PORT', ..."""
    if source == "default":
        return "default"
    if source.startswith("env "):
        return f"from {source[4:]}"
    return f"from {source}"


def _origin_text(source: str) -> str:
    """The trailing parenthesis of an error message."""
    return f"({_origin_plain(source)})"


def _suggest(name: str, candidates: list[str]) -> str | None:
    """Closest known name for a misspelling: case/underscore-insensitive first, then difflib."""
    squashed = {c.replace("_", "").lower(): c for c in candidates}
    wanted = name.replace("_", "").replace("-", "").lower()
    if wanted in squashed:
        return squashed[wanted]
    close = difflib.get_close_matches(wanted, list(squashed), n=1, cutoff=0.6)
    return squashed[close[0]] if close else None


# --------------------------------------------------------------------------------------------
# Value checks.  Each knows how to describe what it allows, so every error says the same thing
# the example config file says.


@attrs.frozen
class _Check:
    """A validator: ``allowed`` is the text after 'expected'; ``fn`` normalises or raises."""

    allowed: str
    fn: Callable[[Any], Any] = lambda value: value

    def __call__(self, value: Any) -> Any:
        return self.fn(value)


def _int_check(low: int, high: int | None = None, note: str = "") -> _Check:
    def fn(value: int) -> int:
        if value < low or (high is not None and value > high):
            raise _Invalid()
        return value

    if high is None:
        allowed = f"an integer >= {low}"
    else:
        allowed = f"an integer from {low} to {high}"
    return _Check(allowed + (f" ({note})" if note else ""), fn)


def _number_check(*, gt: float | None = None, ge: float | None = None, note: str = "") -> _Check:
    def fn(value: float) -> float:
        if gt is not None and not value > gt:
            raise _Invalid()
        if ge is not None and not value >= ge:
            raise _Invalid()
        return value

    bound = f"> {gt:g}" if gt is not None else f">= {ge:g}"
    return _Check(f"a number {bound}" + (f" ({note})" if note else ""), fn)


def _choice_check(options: tuple[str, ...], aliases: Mapping[str, str] | None = None) -> _Check:
    aliases = dict(aliases or {})

    def fn(value: str) -> str:
        lowered = value.strip().lower()
        lowered = aliases.get(lowered, lowered)
        if lowered not in options:
            raise _Invalid()
        return lowered

    if len(options) == 2:
        allowed = f"{options[0]} or {options[1]}"
    else:
        allowed = "one of " + ", ".join(options)
    return _Check(allowed + " (case-insensitive)", fn)


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


def _host_fn(value: str) -> str:
    if not _valid_host(value):
        raise _Invalid()
    if value.startswith("["):
        value = value[1:-1]
    return value


def _split_host_port(value: str) -> tuple[str, int] | None:
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


def _host_port_fn(value: str) -> str:
    if _split_host_port(value) is None:
        raise _Invalid()
    return value


def _adv_address_fn(value: str) -> str:
    return value if value == "" else _host_port_fn(value)


def _non_empty_fn(value: str) -> str:
    if not value.strip():
        raise _Invalid()
    return value


def _secret_fn(value: str | None) -> str | None:
    if value is not None and value == "":
        raise _Invalid()
    return value


def _username_fn(value: str | None) -> str | None:
    if value is not None and (value == "" or ":" in value):
        raise _Invalid()
    return value


def _cidrs_fn(value: tuple[str, ...]) -> tuple[str, ...]:
    normalised = []
    for entry in value:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise _Invalid(shown=f"entry {_show(entry)}") from None
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


def _replicas_fn(value: tuple[Replica, ...]) -> tuple[Replica, ...]:
    seen_ids: dict[int, int] = {}
    seen_raft: dict[str, int] = {}
    seen_http: dict[str, int] = {}
    result = []
    for index, replica in enumerate(value, start=1):
        where = f"entry {index} {_show(replica)}"
        address = _http_url_ok(replica.address)
        if address is None:
            raise _Invalid(
                "Address must be an http(s) base URL such as http://127.0.0.1:9091", shown=where
            )
        if _split_host_port(replica.raft_address) is None:
            raise _Invalid("RaftAddress must be host:port with a port from 1 to 65535", shown=where)
        if replica.node_id < 1:
            raise _Invalid("NodeId must be an integer >= 1", shown=where)
        for seen, field, label in (
            (seen_ids, replica.node_id, "NodeId"),
            (seen_raft, replica.raft_address, "RaftAddress"),
            (seen_http, address, "Address"),
        ):
            if field in seen:
                raise _Invalid(
                    f"{label} {field} is already used by entry {seen[field]}; each node needs its own",
                    shown=where,
                )
            seen[field] = index
        result.append(Replica(address=address, raft_address=replica.raft_address,
                              node_id=replica.node_id))
    return tuple(result)


# --------------------------------------------------------------------------------------------
# Key definitions

_CAMEL_SPLIT = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _snake(name: str) -> str:
    """'HTTPExecutorPayloadMaxSizeMb' -> 'http_executor_payload_max_size_mb'."""
    return _CAMEL_SPLIT.sub("_", name).lower()


def env_var(key_name: str) -> str:
    """The environment variable for a key:
    'HTTPExecutorPayloadMaxSizeMb' -> 'SCHEDULER0_HTTP_EXECUTOR_PAYLOAD_MAX_SIZE_MB'."""
    return ENV_PREFIX + _snake(key_name).upper()


StrList = tuple[str, ...]
ReplicaList = tuple[Replica, ...]


@attrs.frozen
class Key:
    """One configuration key: its name, Python type, default, doc and validator.

    ``optional`` keys may be None (unset); ``secret`` keys are never echoed in errors or reprs;
    ``env_aliases`` are the Go original's variable names, read when the canonical one is unset.
    """

    name: str
    type: Any
    default: Any
    doc: str
    validator: _Check
    group: str
    optional: bool = False
    secret: bool = False
    env_aliases: tuple[str, ...] = ()
    example: tuple[str, ...] = ()  # lines of a commented example after "e.g. <Name>:"

    @property
    def attr(self) -> str:
        """The ``Config`` attribute holding this key."""
        return _snake(self.name)

    @property
    def env(self) -> str:
        """The environment variable that sets this key."""
        return env_var(self.name)

    @property
    def allowed(self) -> str:
        """What the validator accepts, in words (used after 'expected')."""
        return self.validator.allowed


_ANY_STR = _Check("a string")
_BOOL = _Check("true or false")

KEYS: tuple[Key, ...] = (
    # ---- node
    Key("LogLevel", str, "info", "Log verbosity: debug, info, warn or error.",
        _choice_check(("debug", "info", "warn", "error"), {"warning": "warn"}), "node",
        env_aliases=("SCHEDULER0_LOGLEVEL",)),
    Key("DataDir", str, "./scheduler0-data",
        "Directory for the sqlite database, the Raft journal and node secrets (relative to the "
        "working directory).",
        _Check("a non-empty directory path", _non_empty_fn), "node"),
    Key("NodeId", int, 1, "This node's id in the cluster; unique per node and listed in Replicas.",
        _int_check(1), "node"),
    Key("Bootstrap", bool, True,
        "This node starts the cluster from Replicas; set true on exactly one node of a new cluster.",
        _BOOL, "node"),
    # ---- HTTP API
    Key("Protocol", str, "http",
        "Scheme of the HTTP API; https needs TLSCertFile and TLSKeyFile.",
        _choice_check(("http", "https")), "http"),
    Key("Host", str, "127.0.0.1",
        "Interface the HTTP API binds and the host other nodes use to reach it.",
        _Check("a host name or IP address without scheme or port", _host_fn), "http"),
    Key("Port", int, 9091, "TCP port of the HTTP API.", _int_check(1, 65535), "http"),
    Key("MaxRequestBodyMb", float, 16.0,
        "Largest request body accepted, in MB; larger bodies are answered 413.",
        _number_check(gt=0, note="megabytes"), "http"),
    Key("RateLimitPerMinute", int, 500,
        "Requests per minute allowed per client IP (IPv6: per /64) before 429; 0 turns the "
        "limit off. The client is the TCP peer (X-Forwarded-For is not trusted), so behind a "
        "proxy all its clients share one budget. The probes /api/v1/healthcheck and "
        "/metrics are not counted.",
        _int_check(0, note="0 = off"), "http"),
    Key("RequestReadTimeout", float, 20.0,
        "Seconds a client has to send a request's line and headers (from its first byte), and "
        "then its body (plus RequestBodyMinBytesPerSecond's allowance); a slower request is "
        "answered 408 and its connection closed.",
        _number_check(gt=0, note="seconds"), "http"),
    Key("RequestBodyMinBytesPerSecond", int, 1000,
        "Slowest request body accepted: every this many bytes received give the body one more "
        "second beyond RequestReadTimeout, so a large body on a slow but steady link arrives "
        "and a trickle does not.",
        _int_check(1, note="bytes per second"), "http"),
    Key("IdleConnectionTimeout", float, 60.0,
        "Seconds a connection may stay open between requests before the node closes it.",
        _number_check(gt=0, note="seconds"), "http"),
    Key("MaxConnections", int, 1024,
        "Most client connections open at once; past it a new connection is answered 503 and "
        "closed. Lowered at start to half the process's open-file limit if that is smaller.",
        _int_check(1), "http"),
    Key("MaxConnectionsPerClient", int, 256,
        "Most connections open at once from one client IP (IPv6: per /64); past it a new one is "
        "answered 429 and closed; 0 = no per-client cap.",
        _int_check(0, note="0 = off"), "http"),
    # ---- security
    Key("SecretKey", str, None,
        "Node secret from which signing material is derived; unset = generated into DataDir on "
        "first start.",
        _Check("a non-empty string, or unset to generate one", _secret_fn), "security",
        optional=True, secret=True),
    Key("AuthUsername", str, None,
        "Basic-auth user for peers and the CLI; unset = generated into DataDir on first start.",
        _Check("a non-empty string without ':', or unset to generate one", _username_fn),
        "security", optional=True, secret=True),
    Key("AuthPassword", str, None,
        "Basic-auth password for peers and the CLI; unset = generated into DataDir on first start.",
        _Check("a non-empty string, or unset to generate one", _secret_fn), "security",
        optional=True, secret=True),
    Key("TLSCertFile", str, "", "PEM certificate for Protocol https; must exist when https is used.",
        _ANY_STR, "security"),
    Key("TLSKeyFile", str, "", "PEM private key for Protocol https; must exist when https is used.",
        _ANY_STR, "security"),
    Key("CallbackAllowNetworks", StrList, (),
        "If non-empty, callbacks may only go to addresses inside these CIDRs.",
        _Check("a list of networks in CIDR form such as 10.0.0.0/8 or fd00::/8", _cidrs_fn),
        "security", example=(" [10.0.0.0/8, 192.168.0.0/16]",)),
    Key("CallbackDenyNetworks", StrList, (),
        "Callbacks to addresses inside these CIDRs are refused (checked after the allow list).",
        _Check("a list of networks in CIDR form such as 169.254.0.0/16 or fd00::/8", _cidrs_fn),
        "security", example=(" [169.254.0.0/16]",)),
    Key("CallbackNetworkPolicy", str, "default",
        "What callbacks never reach, whatever the two lists above say: default = the "
        "unspecified, link-local, multicast and cloud-metadata addresses (README, Security); "
        "public-only = those and loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), "
        "CGNAT (100.64/10) and the other non-public ranges, for a server whose API users "
        "are not its operators.",
        _choice_check(("default", "public-only")), "security"),
    Key("MetricsAuth", str, "none",
        "Who may read /metrics: none = anyone who reaches the API (it shows no callback "
        "target, job or project name), basic = only HTTP Basic with AuthUsername and "
        "AuthPassword.",
        _choice_check(("none", "basic")), "security"),
    # ---- raft / cluster
    Key("RaftAddress", str, "127.0.0.1:7071", "host:port this node's Raft (PySyncObj) listens on.",
        _Check("host:port with a port from 1 to 65535", _host_port_fn), "cluster"),
    Key("NodeAdvAddress", str, "",
        "Raft address other nodes use to reach this node; empty = RaftAddress.",
        _Check("empty or host:port with a port from 1 to 65535", _adv_address_fn), "cluster"),
    Key("Replicas", ReplicaList, (),
        "Every node of the cluster (this one included) as Address, RaftAddress, NodeId; empty = "
        "single node.",
        _Check("a list of {Address: http(s) URL, RaftAddress: host:port, NodeId: integer >= 1}",
               _replicas_fn),
        "cluster",
        example=("",
                 "  - {Address: http://127.0.0.1:9091, RaftAddress: 127.0.0.1:7071, NodeId: 1}",
                 "  - {Address: http://127.0.0.1:9092, RaftAddress: 127.0.0.1:7072, NodeId: 2}",
                 "  - {Address: http://127.0.0.1:9093, RaftAddress: 127.0.0.1:7073, NodeId: 3}")),
    Key("RaftTransportMaxPool", int, 100,
        "Accepted for compatibility with the Go original; no effect with PySyncObj.",
        _int_check(0), "cluster"),
    Key("RaftTransportTimeout", float, 3.5,
        "Seconds without contact before a Raft peer is considered disconnected.",
        _number_check(gt=0, note="seconds"), "cluster"),
    Key("RaftApplyTimeout", float, 10.0,
        "Seconds a write waits to be committed through Raft before it fails (503).",
        _number_check(gt=0, note="seconds"), "cluster"),
    Key("RaftSnapshotInterval", int, 300, "Minimum seconds between two Raft snapshots.",
        _int_check(1, note="seconds"), "cluster"),
    Key("RaftSnapshotThreshold", int, 5000,
        "Journal entries since the last snapshot that trigger a new one.",
        _int_check(1, note="entries"), "cluster"),
    Key("PeerConnectRetryMax", int, 3, "Retries when contacting another node fails.",
        _int_check(0), "cluster"),
    Key("PeerConnectRetryDelay", float, 1.0, "Seconds between retries to contact another node.",
        _number_check(ge=0, note="seconds"), "cluster",
        env_aliases=("SCHEDULER0_PEER_CONNECT_RETRY_DELAY_SECONDS",)),
    Key("PeerAuthRequestTimeoutMs", int, 2000,
        "Milliseconds to wait for another node to answer an authenticated request.",
        _int_check(1, note="milliseconds"), "cluster"),
    Key("ExecutionLogFetchFanIn", int, 2,
        "Accepted for compatibility; no effect (executions replicate through Raft).",
        _int_check(0), "cluster"),
    Key("ExecutionLogFetchIntervalSeconds", int, 2,
        "Accepted for compatibility; no effect (executions replicate through Raft).",
        _int_check(1, note="seconds"), "cluster"),
    # ---- execution
    Key("JobExecutionTimeout", float, 30.0,
        "Seconds a callback POST may take before it counts as failed.",
        _number_check(gt=0, note="seconds"), "execution"),
    Key("JobExecutionRetryDelay", float, 1.0,
        "Base delay in seconds before retrying a failed callback (exponential backoff with jitter).",
        _number_check(ge=0, note="seconds"), "execution"),
    Key("JobExecutionRetryMax", int, 3,
        "Retries after the first failed attempt before the occurrence goes to the dead-letter queue.",
        _int_check(0), "execution"),
    Key("MisfireGraceSeconds", int, 60,
        "Default grace for a late occurrence of a job that sets no misfireGraceSeconds "
        "(at most a century, 3153600000).",
        _int_check(0, 36500 * 86400, note="seconds, at most a century"), "execution"),
    # ---- limits
    Key("MaxWorkers", int, 100, "Maximum callback requests in flight on this node.",
        _int_check(1), "limits"),
    Key("MaxQueue", int, 1000000, "Maximum occurrences waiting for dispatch on this node.",
        _int_check(1), "limits"),
    Key("CallbackConcurrencyPerTarget", int, 8,
        "Most callback requests in flight to one target (scheme://host:port), so a slow "
        "receiver holds only its own share of MaxWorkers.",
        _int_check(1), "limits"),
    Key("MaxMemory", int, 0,
        "Memory budget in MB; at 70 % the node stops taking new occurrences; 0 = no limit.",
        _int_check(0, note="megabytes, 0 = no limit"), "limits"),
    Key("MaxCPU", int, 0,
        "Advisory CPU budget in percent of one core: accepted and documented, not enforced.",
        _int_check(0, note="percent, 0 = no limit"), "limits"),
    Key("HTTPExecutorPayloadMaxSizeMb", float, 2.0,
        "Largest callback body in MB; bigger batches are split into chunks (x-payload-chunk-id).",
        _number_check(gt=0, note="megabytes"), "limits"),
    Key("ExecutionRetentionDays", int, 7, "Days finished execution records are kept.",
        _int_check(1, note="days"), "limits"),
    Key("ExecutionRetentionPerJob", int, 100, "Most recent execution records kept per job.",
        _int_check(1), "limits"),
)

_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}

_GROUP_TITLES = {
    "node": "Node",
    "http": "HTTP API",
    "security": "Security",
    "cluster": "Raft / cluster",
    "execution": "Execution",
    "limits": "Limits",
}


def _hidden_repr(value: object) -> str:
    return "None" if value is None else "'<hidden>'"


def _default_sources() -> Mapping[str, str]:
    return types.MappingProxyType({key.name: "default" for key in KEYS})


def _to_tuple(value: Any) -> tuple:
    return tuple(value)


def _field(name: str, **kwargs: Any) -> Any:
    key = _BY_NAME[name]
    if key.secret:
        kwargs.setdefault("repr", _hidden_repr)
    if key.type in (StrList, ReplicaList):
        kwargs.setdefault("converter", _to_tuple)
    return attrs.field(default=key.default, **kwargs)


@attrs.frozen
class Config:
    """Validated settings of one node.  Build it with ``load_config``; constructing it directly
    (or with ``attrs.evolve``) skips validation and is meant for tests.

    List-valued keys are tuples so the object stays immutable and hashable.
    """

    # node
    log_level: str = _field("LogLevel")
    data_dir: str = _field("DataDir")
    node_id: int = _field("NodeId")
    bootstrap: bool = _field("Bootstrap")
    # HTTP API
    protocol: str = _field("Protocol")
    host: str = _field("Host")
    port: int = _field("Port")
    max_request_body_mb: float = _field("MaxRequestBodyMb")
    rate_limit_per_minute: int = _field("RateLimitPerMinute")
    request_read_timeout: float = _field("RequestReadTimeout")
    request_body_min_bytes_per_second: int = _field("RequestBodyMinBytesPerSecond")
    idle_connection_timeout: float = _field("IdleConnectionTimeout")
    max_connections: int = _field("MaxConnections")
    max_connections_per_client: int = _field("MaxConnectionsPerClient")
    # security
    secret_key: str | None = _field("SecretKey")
    auth_username: str | None = _field("AuthUsername")
    auth_password: str | None = _field("AuthPassword")
    tls_cert_file: str = _field("TLSCertFile")
    tls_key_file: str = _field("TLSKeyFile")
    callback_allow_networks: tuple[str, ...] = _field("CallbackAllowNetworks")
    callback_deny_networks: tuple[str, ...] = _field("CallbackDenyNetworks")
    callback_network_policy: str = _field("CallbackNetworkPolicy")
    metrics_auth: str = _field("MetricsAuth")
    # raft / cluster
    raft_address: str = _field("RaftAddress")
    node_adv_address: str = _field("NodeAdvAddress")
    replicas: tuple[Replica, ...] = _field("Replicas")
    raft_transport_max_pool: int = _field("RaftTransportMaxPool")
    raft_transport_timeout: float = _field("RaftTransportTimeout")
    raft_apply_timeout: float = _field("RaftApplyTimeout")
    raft_snapshot_interval: int = _field("RaftSnapshotInterval")
    raft_snapshot_threshold: int = _field("RaftSnapshotThreshold")
    peer_connect_retry_max: int = _field("PeerConnectRetryMax")
    peer_connect_retry_delay: float = _field("PeerConnectRetryDelay")
    peer_auth_request_timeout_ms: int = _field("PeerAuthRequestTimeoutMs")
    execution_log_fetch_fan_in: int = _field("ExecutionLogFetchFanIn")
    execution_log_fetch_interval_seconds: int = _field("ExecutionLogFetchIntervalSeconds")
    # execution
    job_execution_timeout: float = _field("JobExecutionTimeout")
    job_execution_retry_delay: float = _field("JobExecutionRetryDelay")
    job_execution_retry_max: int = _field("JobExecutionRetryMax")
    misfire_grace_seconds: int = _field("MisfireGraceSeconds")
    # limits
    max_workers: int = _field("MaxWorkers")
    max_queue: int = _field("MaxQueue")
    callback_concurrency_per_target: int = _field("CallbackConcurrencyPerTarget")
    max_memory: int = _field("MaxMemory")
    max_cpu: int = _field("MaxCPU")
    http_executor_payload_max_size_mb: float = _field("HTTPExecutorPayloadMaxSizeMb")
    execution_retention_days: int = _field("ExecutionRetentionDays")
    execution_retention_per_job: int = _field("ExecutionRetentionPerJob")

    # key name -> "default", "file <path>", "env SCHEDULER0_X" or "command line"
    source: Mapping[str, str] = attrs.field(
        factory=_default_sources, eq=False, repr=False,
        converter=lambda m: types.MappingProxyType(dict(m)),
    )

    def http_base_url(self) -> str:
        """This node's own HTTP address, as other nodes list it in Replicas."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"

    def advertised_raft_address(self) -> str:
        """The Raft address peers should dial: NodeAdvAddress, or RaftAddress when unset."""
        return self.node_adv_address or self.raft_address

    def to_mapping(self) -> dict[str, object]:
        """Key name -> plain YAML-able value; ``dump_yaml(config.to_mapping())`` writes it back."""
        result: dict[str, object] = {}
        for key in KEYS:
            value = getattr(self, key.attr)
            if key.type == ReplicaList:
                value = [replica.to_mapping() for replica in value]
            elif key.type == StrList:
                value = list(value)
            result[key.name] = value
        return result


# --------------------------------------------------------------------------------------------
# Parsing: strict for YAML / typed values, coercing for strings from env and the command line

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_REPLICA_FIELDS = {
    "address": "address",
    "Address": "address",
    "RaftAddress": "raft_address",
    "raft_address": "raft_address",
    "raftAddress": "raft_address",
    "NodeId": "node_id",
    "nodeId": "node_id",
    "node_id": "node_id",
}


def _wrong_type(value: object) -> _Invalid:
    shown = repr(value) if isinstance(value, str) else _show(value)
    return _Invalid(shown=f"{shown} ({_type_name(value)})")


def _parse_int(value: object, text: bool) -> int:
    if text and isinstance(value, str):
        stripped = value.strip()
        if not re.fullmatch(r"[+-]?\d+", stripped):
            raise _Invalid()
        return int(stripped)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _wrong_type(value)


def _parse_float(value: object, text: bool) -> float:
    if text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid() from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _wrong_type(value)
    if not math.isfinite(number):
        raise _Invalid()
    return number


def _parse_bool(value: object, text: bool) -> bool:
    if text and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _Invalid("expected true or false (also yes/no, on/off, 1/0)")
    if isinstance(value, bool):
        return value
    raise _wrong_type(value)


def _parse_text_list(value: str) -> list:
    """A list written on one line, as the example file writes lists: YAML flow syntax
    ``[10.0.0.0/8, 192.168.0.0/16]`` or ``[{Address: ..., NodeId: 1}]``, or a JSON array
    (which is tried first, so JSON keeps its exact meaning)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            parsed = yaml.load(value, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            where = f" at character {mark.index}" if mark else ""
            raise _Invalid(f"not a valid list ({problem}{where}); write it as [a, b] in YAML "
                           f"flow syntax, quoting an item that starts with ':', or as a JSON "
                           f"array") from None
    if not isinstance(parsed, list):
        raise _Invalid(shown=f"{_show(value)} ({_type_name(parsed)}, not a list)")
    return parsed


def _parse_str_list(value: object, text: bool) -> tuple[str, ...]:
    if text and isinstance(value, str):
        if value.strip().startswith("["):
            items = _parse_text_list(value)
        else:
            items = [part.strip() for part in value.split(",") if part.strip()]
    elif value is None:
        items = []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _wrong_type(value)
    for item in items:
        if not isinstance(item, str):
            raise _Invalid(shown=f"entry {_show(item)} ({_type_name(item)})")
    return tuple(items)


def _parse_replica(index: int, entry: object, text: bool) -> Replica:
    where = f"entry {index} {_show(entry)}"
    if isinstance(entry, Replica):
        entry = entry.to_mapping()
    if not isinstance(entry, Mapping):
        raise _Invalid(f"each entry must be a mapping, got {_type_name(entry)}", shown=where)
    fields: dict[str, object] = {}
    for name, field_value in entry.items():
        target = _REPLICA_FIELDS.get(name) if isinstance(name, str) else None
        if target is None:
            hint = _suggest(str(name), ["Address", "RaftAddress", "NodeId"])
            extra = f"; did you mean {hint}?" if hint else ""
            raise _Invalid(f"field {name!r} is unknown{extra} (fields: Address, RaftAddress, "
                           f"NodeId)", shown=where)
        if target in fields:
            raise _Invalid(f"field {name!r} is given twice", shown=where)
        fields[target] = field_value
    for target, label in (("address", "Address"), ("raft_address", "RaftAddress"),
                          ("node_id", "NodeId")):
        if target not in fields:
            raise _Invalid(f"field {label} is missing (fields: Address, RaftAddress, NodeId)",
                           shown=where)
    for target, label in (("address", "Address"), ("raft_address", "RaftAddress")):
        if not isinstance(fields[target], str):
            raise _Invalid(f"{label} must be a string, got {_type_name(fields[target])}",
                           shown=where)
    node_id = fields["node_id"]
    if text and isinstance(node_id, str) and re.fullmatch(r"\s*\d+\s*", node_id):
        node_id = int(node_id)
    if not isinstance(node_id, int) or isinstance(node_id, bool):
        raise _Invalid(f"NodeId must be an integer, got {_type_name(node_id)}", shown=where)
    return Replica(address=fields["address"], raft_address=fields["raft_address"],
                   node_id=node_id)


def _parse_replicas(value: object, text: bool) -> tuple[Replica, ...]:
    if text and isinstance(value, str):
        items = [] if not value.strip() else _parse_text_list(value)
    elif value is None:
        items = []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _wrong_type(value)
    return tuple(_parse_replica(i, entry, text) for i, entry in enumerate(items, start=1))


def _parse(key: Key, value: object, text: bool) -> Any:
    """Turn a raw value into the key's type.  ``text`` allows coercing strings (env, CLI)."""
    if key.type is str:
        if value is None and key.optional:
            return None
        if isinstance(value, str):
            return value
        raise _wrong_type(value)
    if key.type is bool:
        return _parse_bool(value, text)
    if key.type is int:
        return _parse_int(value, text)
    if key.type is float:
        return _parse_float(value, text)
    if key.type == StrList:
        return _parse_str_list(value, text)
    if key.type == ReplicaList:
        return _parse_replicas(value, text)
    raise AssertionError(f"unhandled type for {key.name}: {key.type!r}")


def _fail(key: Key, raw: object, problem: _Invalid, source: str) -> ConfigError:
    """Build the one-line error for a key from a parse/check failure."""
    if key.secret:
        # never echo a secret; an empty string or a wrong type gives nothing away
        kind = _type_name(raw).split(" ", 1)[-1]
        shown = "''" if raw == "" else f"<hidden {kind}>"
    else:
        shown = problem.shown if problem.shown is not None else _show(raw)
    reason = problem.reason or f"expected {key.allowed}"
    return ConfigError(f"{key.name}: {shown} is not allowed; {reason} {_origin_text(source)}",
                       key=key.name)


def _accept(key: Key, raw: object, text: bool, source: str) -> Any:
    """Parse and validate one value from one layer, or raise ConfigError."""
    try:
        return key.validator(_parse(key, raw, text))
    except _Invalid as problem:
        raise _fail(key, raw, problem, source) from None


def _looks_secret(name: str, hint_is_secret: bool) -> bool:
    return hint_is_secret or any(word in name.lower() for word in ("pass", "secret", "token"))


def _hidden(value: object) -> str:
    return f"<hidden {_type_name(value).split(' ', 1)[-1]}>"


def _unknown_key(name: object, value: object, source: str) -> ConfigError:
    hint = _suggest(str(name), [key.name for key in KEYS])
    advice = f"did you mean {hint}?" if hint else "see etc/scheduler0.yml for the known keys"
    secret = _looks_secret(str(name), hint is not None and _BY_NAME[hint].secret)
    shown = _hidden(value) if secret else _show(value, 60)
    return ConfigError(f"{name}: unknown key (value {shown}) is not allowed; "
                       f"{advice} {_origin_text(source)}", key=str(name))


# Variables with the prefix that are not keys and are still allowed: the ones
# ``scheduler0 create credential --format env`` prints for a user's scripts.  The node never
# reads them; they are listed so that a shell holding them can still start a node.
CLIENT_ENV_VARS = ("SCHEDULER0_API_KEY", "SCHEDULER0_API_SECRET")


def _known_variables() -> dict[str, Key | None]:
    """Every SCHEDULER0_* name the loader accepts: key -> its Key, client variable -> None."""
    known: dict[str, Key | None] = {name: None for name in CLIENT_ENV_VARS}
    for key in KEYS:
        for variable in (key.env, *key.env_aliases):
            known[variable] = key
    return known


# The Go original's variables that have no counterpart here (PySyncObj has no such knobs):
# a closest-spelling suggestion would point at an unrelated key.
_GO_ONLY_ENV_VARS = frozenset({
    "SCHEDULER0_RAFT_HEARTBEAT_TIMEOUT", "SCHEDULER0_RAFT_ELECTION_TIMEOUT",
    "SCHEDULER0_RAFT_COMMIT_TIMEOUT", "SCHEDULER0_RAFT_MAX_APPEND_ENTRIES",
})


def _unknown_variable(name: str, value: str) -> ConfigError:
    if name in _GO_ONLY_ENV_VARS:
        return ConfigError(f"{name}: unknown variable (value {_show(value, 60)}) is not allowed; "
                           f"it is a setting of the Go original that this node does not have, "
                           f"unset it (from the environment)", key=name)
    known = _known_variables()
    # compare what follows the prefix, which every candidate shares
    canonical = [key.env for key in KEYS] + list(CLIENT_ENV_VARS)
    tail = _suggest(name[len(ENV_PREFIX):], [c[len(ENV_PREFIX):] for c in canonical])
    hint = ENV_PREFIX + tail if tail else None
    hinted = known.get(hint) if hint else None
    advice = (f"did you mean {hint}?" if hint else
              "see etc/scheduler0.yml for the variable of each key")
    secret = _looks_secret(name, hint in CLIENT_ENV_VARS or (hinted is not None
                                                             and hinted.secret))
    shown = _hidden(value) if secret else _show(value, 60)
    return ConfigError(f"{name}: unknown variable (value {shown}) is not allowed; {advice} "
                       f"(from the environment)", key=name)


def _check_environment(environ: Mapping[str, str]) -> None:
    """A misspelt variable stops start-up like a misspelt key, instead of being ignored."""
    known = _known_variables()
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            raise _unknown_variable(name, environ[name])


# --------------------------------------------------------------------------------------------
# YAML file


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which PyYAML would silently resolve to the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # "<<" merges may legitimately repeat keys they bring in
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # let the default constructor report unhashable keys
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (lines {seen[key]} and {line})",
                key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_file(path: str) -> Mapping[object, object]:
    """Read the YAML file; every failure names the file in one line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: is not UTF-8 text ({e.reason} at byte "
                          f"{e.start})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {path}: not valid YAML: {problem}{where}") from None
    if data is None:
        return {}  # an empty or all-comments file means "all defaults"
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: the top level is {_type_name(data)}; expected a "
                          f"mapping of Key: value lines")
    return data


# --------------------------------------------------------------------------------------------
# Loading


def _cross_check(values: dict[str, Any], sources: dict[str, str]) -> None:
    """Checks that involve more than one key."""
    if values["Protocol"] == "https":
        for name in ("TLSCertFile", "TLSKeyFile"):
            path = values[name]
            if not path:
                raise ConfigError(
                    f"{name}: '' is not allowed; Protocol https needs TLSCertFile and TLSKeyFile "
                    f"set to PEM files (Protocol {_origin_plain(sources['Protocol'])})", key=name)
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise ConfigError(
                    f"{name}: {_show(path)} is not allowed; expected an existing readable PEM "
                    f"file because Protocol is https {_origin_text(sources[name])}", key=name)
    replicas: tuple[Replica, ...] = values["Replicas"]
    if replicas:
        ids = [replica.node_id for replica in replicas]
        if values["NodeId"] not in ids:
            listed = ", ".join(str(i) for i in ids)
            raise ConfigError(
                f"NodeId: {values['NodeId']} is not allowed; expected one of the NodeIds listed "
                f"in Replicas ({listed}) (NodeId {_origin_plain(sources['NodeId'])}; Replicas "
                f"{_origin_plain(sources['Replicas'])})", key="NodeId")


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, object] | None = None) -> Config:
    """Build a validated Config from defaults < file < environment < overrides.

    - ``path``: YAML file of ``Key: value`` lines; None = no file.  Values there must already
      have the key's type (an int for an int key; an int is fine for a float key; booleans are
      never numbers); ``null`` means "unset" for SecretKey/AuthUsername/AuthPassword and an
      empty list for list keys.  Unknown keys are errors with a suggestion.
    - ``environ``: ``None`` = ``os.environ``.  ``SCHEDULER0_<UPPER_SNAKE>`` names of known keys
      (and the Go original's SCHEDULER0_LOGLEVEL / SCHEDULER0_PEER_CONNECT_RETRY_DELAY_SECONDS)
      are read.  Any other SCHEDULER0_* variable is an error naming it (a misspelling would
      otherwise be silently ignored), except the client variables in ``CLIENT_ENV_VARS``,
      which the node does not read.  Strings are coerced: ints, floats, booleans
      (true/false/yes/no/1/0/on/off), lists (a YAML flow list ``[a, b]``, a JSON array or
      comma-separated), Replicas (a YAML flow or JSON list of mappings with
      Address/RaftAddress/NodeId or address/raft_address/nodeId/node_id).
    - ``overrides``: the command line, keyed by key name (``"Port"``).  Strings are coerced like
      the environment, other values must already have the right type; a None value means "not
      given" (the usual argparse default) and is skipped.  Unknown names are errors.

    Raises ConfigError with a one-line message on the first problem found.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {key.name: key.default for key in KEYS}
    sources: dict[str, str] = {key.name: "default" for key in KEYS}

    if path is not None:
        path_text = os.fspath(path)
        origin = f"file {path_text}"
        for name, raw in _read_file(path_text).items():
            key = _BY_NAME.get(name) if isinstance(name, str) else None
            if key is None:
                raise _unknown_key(name, raw, origin)
            values[name] = _accept(key, raw, False, origin)
            sources[name] = origin

    _check_environment(environ)
    for key in KEYS:
        for variable in (key.env, *key.env_aliases):
            if variable in environ:
                origin = f"env {variable}"
                values[key.name] = _accept(key, environ[variable], True, origin)
                sources[key.name] = origin
                break

    for name, raw in (overrides or {}).items():
        key = _BY_NAME.get(name)
        if key is None:
            raise _unknown_key(name, raw, "command line")
        if raw is None:
            continue
        values[name] = _accept(key, raw, isinstance(raw, str), "command line")
        sources[name] = "command line"

    _cross_check(values, sources)
    return Config(**{key.attr: values[key.name] for key in KEYS}, source=sources)


# --------------------------------------------------------------------------------------------
# Writing


def _yaml_value(key: Key, value: Any) -> str:
    """The YAML text of one ``Key: value`` entry, quoted where YAML would misread it."""
    if key.type == ReplicaList:
        plain: Any = [replica.to_mapping() for replica in value]
    elif key.type == StrList:
        plain = list(value)
    else:
        plain = value
    if isinstance(plain, list) and not plain:
        return f"{key.name}: []\n"
    for allow_unicode in (True, False):
        text = yaml.safe_dump({key.name: plain}, sort_keys=False, default_flow_style=False,
                              allow_unicode=allow_unicode, width=1000)
        # Some characters (U+0085, U+2028, ...) are written raw but read back as line breaks;
        # escaping everything non-ASCII is uglier but always reads back exactly.
        if yaml.safe_load(text) == {key.name: plain}:
            break
    return text


def _describe_default(key: Key) -> str:
    if key.default is None:
        return "unset"
    if key.type in (StrList, ReplicaList):
        return "[]"
    if key.type is bool:
        return "true" if key.default else "false"
    if key.type is str:
        return repr(key.default) if key.default == "" else key.default
    if key.type is float:
        return f"{key.default:g}"
    return str(key.default)


def dump_yaml(values: Mapping[str, object]) -> str:
    """Render a complete config file: every key, grouped, each with a comment line saying what
    it does, its default and its environment variable.

    ``values`` maps key names to values (strings are coerced as on the command line; missing
    keys get their defaults).  Each value is validated so the file written is one that
    ``load_config`` accepts; unknown names raise ConfigError.  Keys whose value is None
    (unset secrets) are written commented out.
    """
    resolved: dict[str, Any] = {}
    for name, raw in values.items():
        key = _BY_NAME.get(name)
        if key is None:
            raise _unknown_key(name, raw, "dump_yaml")
        resolved[name] = _accept(key, raw, isinstance(raw, str) and key.type is not str,
                                 "dump_yaml")
    lines = [
        "# Scheduler0 configuration.",
        "# Precedence: built-in defaults < this file < SCHEDULER0_<UPPER_SNAKE> environment "
        "variables < command line.",
        "# Unknown keys (and SCHEDULER0_* variables that name no key), wrong types and "
        "impossible values stop start-up with a one-line error.",
        "# A list is written [a, b] (YAML flow syntax) here, in its variable and in "
        "--set 'Key=[a, b]'.",
    ]
    group = None
    for key in KEYS:
        if key.group != group:
            group = key.group
            lines += ["", f"# ---- {_GROUP_TITLES[group]} " + "-" * (60 - len(_GROUP_TITLES[group]))]
        value = resolved.get(key.name, key.default)
        lines.append(f"# {key.doc} Default: {_describe_default(key)}. Env: {key.env}.")
        if key.example:
            lines.append(f"# e.g. {key.name}:{key.example[0]}")
            lines.extend(f"# {line}" for line in key.example[1:])
        if value is None:
            lines.append(f"# {key.name}:")
        else:
            lines.extend(_yaml_value(key, value).rstrip("\n").split("\n"))
    return "\n".join(lines) + "\n"
