"""The key table: the one place each configuration key is declared.

Everything else is derived from it: the ``Config`` attributes (``model``), the environment
variables (``env_var``), the parsing and checks applied to each value (``sources``) and the
example file (``yaml_write``).  Adding a key means adding one ``Key(...)`` entry here.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .checks import (
    ANY_STR,
    BOOL,
    Check,
    adv_address_fn,
    choice_check,
    cidrs_fn,
    host_fn,
    host_port_fn,
    int_check,
    non_empty_fn,
    number_check,
    replicas_fn,
    secret_fn,
    username_fn,
)
from .replica import Replica

ENV_PREFIX = "SCHEDULER0_"

_CAMEL_SPLIT = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """'HTTPExecutorPayloadMaxSizeMb' -> 'http_executor_payload_max_size_mb'."""
    return _CAMEL_SPLIT.sub("_", name).lower()


def env_var(key_name: str) -> str:
    """The environment variable for a key:
    'HTTPExecutorPayloadMaxSizeMb' -> 'SCHEDULER0_HTTP_EXECUTOR_PAYLOAD_MAX_SIZE_MB'."""
    return ENV_PREFIX + snake(key_name).upper()


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
    validator: Check
    group: str
    optional: bool = False
    secret: bool = False
    env_aliases: tuple[str, ...] = ()
    example: tuple[str, ...] = ()  # lines of a commented example after "e.g. <Name>:"

    @property
    def attr(self) -> str:
        """The ``Config`` attribute holding this key."""
        return snake(self.name)

    @property
    def env(self) -> str:
        """The environment variable that sets this key."""
        return env_var(self.name)

    @property
    def allowed(self) -> str:
        """What the validator accepts, in words (used after 'expected')."""
        return self.validator.allowed


KEYS: tuple[Key, ...] = (
    # ---- node
    Key("LogLevel", str, "info", "Log verbosity: debug, info, warn or error.",
        choice_check(("debug", "info", "warn", "error"), {"warning": "warn"}), "node",
        env_aliases=("SCHEDULER0_LOGLEVEL",)),
    Key("DataDir", str, "./scheduler0-data",
        "Directory for the sqlite database, the Raft journal and node secrets (relative to the "
        "working directory).",
        Check("a non-empty directory path", non_empty_fn), "node"),
    Key("NodeId", int, 1, "This node's id in the cluster; unique per node and listed in Replicas.",
        int_check(1), "node"),
    Key("Bootstrap", bool, True,
        "Kept for the seed's configs; no effect: with PySyncObj every node in Replicas starts the "
        "cluster together (a seed config with Bootstrap: false on all but one node still works).",
        BOOL, "node"),
    Key("JoinCluster", bool, False,
        "true: this node joins a running cluster (add a node): it starts as a learner that "
        "replicates without voting until add-node, once it caught up, makes it a voter. Leave "
        "false on the nodes that start a new cluster together.",
        BOOL, "node"),
    # ---- HTTP API
    Key("Protocol", str, "http",
        "Scheme of the HTTP API; https needs TLSCertFile and TLSKeyFile.",
        choice_check(("http", "https")), "http"),
    Key("Host", str, "127.0.0.1",
        "Interface the HTTP API binds and the host other nodes use to reach it.",
        Check("a host name or IP address without scheme or port", host_fn), "http"),
    Key("Port", int, 9091, "TCP port of the HTTP API.", int_check(1, 65535), "http"),
    Key("MaxRequestBodyMb", float, 16.0,
        "Largest request body accepted, in MB; larger bodies are answered 413.",
        number_check(gt=0, note="megabytes"), "http"),
    Key("RateLimitPerMinute", int, 500,
        "Requests per minute allowed per client IP (IPv6: per /64) before 429; 0 turns the "
        "limit off. The client is the TCP peer (X-Forwarded-For is not trusted), so behind a "
        "proxy all its clients share one budget. The probes /api/v1/healthcheck and "
        "/metrics are not counted.",
        int_check(0, note="0 = off"), "http"),
    Key("RequestReadTimeout", float, 20.0,
        "Seconds a client has to send a request's line and headers (from its first byte), and "
        "then its body (plus RequestBodyMinBytesPerSecond's allowance); a slower request is "
        "answered 408 and its connection closed.",
        number_check(gt=0, note="seconds"), "http"),
    Key("RequestBodyMinBytesPerSecond", int, 1000,
        "Slowest request body accepted: every this many bytes received give the body one more "
        "second beyond RequestReadTimeout, so a large body on a slow but steady link arrives "
        "and a trickle does not.",
        int_check(1, note="bytes per second"), "http"),
    Key("IdleConnectionTimeout", float, 60.0,
        "Seconds a connection may stay open between requests before the node closes it.",
        number_check(gt=0, note="seconds"), "http"),
    Key("MaxConnections", int, 1024,
        "Most client connections open at once; past it a new connection is answered 503 and "
        "closed. Lowered at start to half the process's open-file limit if that is smaller.",
        int_check(1), "http"),
    Key("MaxConnectionsPerClient", int, 256,
        "Most connections open at once from one client IP (IPv6: per /64); past it a new one is "
        "answered 429 and closed; 0 = no per-client cap.",
        int_check(0, note="0 = off"), "http"),
    # ---- security
    Key("SecretKey", str, None,
        "Node secret from which signing material is derived; unset = generated into DataDir on "
        "first start.",
        Check("a non-empty string, or unset to generate one", secret_fn), "security",
        optional=True, secret=True),
    Key("AuthUsername", str, None,
        "Basic-auth user for peers and the CLI; unset = generated into DataDir on first start.",
        Check("a non-empty string without ':', or unset to generate one", username_fn),
        "security", optional=True, secret=True),
    Key("AuthPassword", str, None,
        "Basic-auth password for peers and the CLI; unset = generated into DataDir on first start.",
        Check("a non-empty string, or unset to generate one", secret_fn), "security",
        optional=True, secret=True),
    Key("TLSCertFile", str, "", "PEM certificate for Protocol https; must exist when https is used.",
        ANY_STR, "security"),
    Key("TLSKeyFile", str, "", "PEM private key for Protocol https; must exist when https is used.",
        ANY_STR, "security"),
    Key("CallbackAllowNetworks", StrList, (),
        "If non-empty, callbacks may only go to addresses inside these CIDRs.",
        Check("a list of networks in CIDR form such as 10.0.0.0/8 or fd00::/8", cidrs_fn),
        "security", example=(" [10.0.0.0/8, 192.168.0.0/16]",)),
    Key("CallbackDenyNetworks", StrList, (),
        "Callbacks to addresses inside these CIDRs are refused (checked after the allow list).",
        Check("a list of networks in CIDR form such as 169.254.0.0/16 or fd00::/8", cidrs_fn),
        "security", example=(" [169.254.0.0/16]",)),
    Key("CallbackNetworkPolicy", str, "default",
        "What callbacks never reach, whatever the two lists above say: default = the "
        "unspecified, link-local, multicast and cloud-metadata addresses (README, Security); "
        "public-only = those and loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), "
        "CGNAT (100.64/10) and the other non-public ranges, for a server whose API users "
        "are not its operators.",
        choice_check(("default", "public-only")), "security"),
    Key("MetricsAuth", str, "none",
        "Who may read /metrics: none = anyone who reaches the API (it shows no callback "
        "target, job or project name), basic = only HTTP Basic with AuthUsername and "
        "AuthPassword.",
        choice_check(("none", "basic")), "security"),
    # ---- raft / cluster
    Key("RaftAddress", str, "127.0.0.1:7071",
        "host:port this node's Raft (PySyncObj) listens on; a single node (empty Replicas) "
        "listens on none.",
        Check("host:port with a port from 1 to 65535", host_port_fn), "cluster"),
    Key("NodeAdvAddress", str, "",
        "Raft address other nodes use to reach this node; empty = RaftAddress.",
        Check("empty or host:port with a port from 1 to 65535", adv_address_fn), "cluster"),
    Key("Replicas", ReplicaList, (),
        "Every node of the cluster (this one included) as Address, RaftAddress, NodeId; empty = "
        "single node.",
        Check("a list of {Address: http(s) URL, RaftAddress: host:port, NodeId: integer >= 1}",
               replicas_fn),
        "cluster",
        example=("",
                 "  - {Address: http://127.0.0.1:9091, RaftAddress: 127.0.0.1:7071, NodeId: 1}",
                 "  - {Address: http://127.0.0.1:9092, RaftAddress: 127.0.0.1:7072, NodeId: 2}",
                 "  - {Address: http://127.0.0.1:9093, RaftAddress: 127.0.0.1:7073, NodeId: 3}")),
    Key("RaftTransportMaxPool", int, 100,
        "Accepted for compatibility with the Go original; no effect with PySyncObj.",
        int_check(0), "cluster"),
    Key("RaftTransportTimeout", float, 3.5,
        "Seconds without contact before a Raft peer is considered disconnected.",
        number_check(gt=0, note="seconds"), "cluster"),
    Key("RaftApplyTimeout", float, 10.0,
        "Seconds a write waits to be committed through Raft before it fails (503).",
        number_check(gt=0, note="seconds"), "cluster"),
    Key("RaftSnapshotInterval", int, 300,
        "Seconds after which a Raft snapshot is taken even below RaftSnapshotThreshold.",
        int_check(1, note="seconds"), "cluster"),
    Key("RaftSnapshotThreshold", int, 5000,
        "Journal entries since the last snapshot that trigger a new one.",
        int_check(1, note="entries"), "cluster"),
    Key("PeerConnectRetryMax", int, 3, "Retries when contacting another node fails.",
        int_check(0), "cluster"),
    Key("PeerConnectRetryDelay", float, 1.0, "Seconds between retries to contact another node.",
        number_check(ge=0, note="seconds"), "cluster",
        env_aliases=("SCHEDULER0_PEER_CONNECT_RETRY_DELAY_SECONDS",)),
    Key("PeerAuthRequestTimeoutMs", int, 2000,
        "Milliseconds to wait for another node to answer an authenticated request.",
        int_check(1, note="milliseconds"), "cluster"),
    Key("ExecutionLogFetchFanIn", int, 2,
        "Accepted for compatibility; no effect (executions replicate through Raft).",
        int_check(0), "cluster"),
    Key("ExecutionLogFetchIntervalSeconds", int, 2,
        "Accepted for compatibility; no effect (executions replicate through Raft).",
        int_check(1, note="seconds"), "cluster"),
    # ---- execution
    Key("JobExecutionTimeout", float, 30.0,
        "Seconds a callback POST may take before it counts as failed.",
        number_check(gt=0, note="seconds"), "execution"),
    Key("JobExecutionRetryDelay", float, 1.0,
        "Base delay in seconds before retrying a failed callback (exponential backoff with jitter).",
        number_check(ge=0, note="seconds"), "execution"),
    Key("JobExecutionRetryMax", int, 3,
        "Retries after the first failed attempt before the occurrence goes to the dead-letter queue.",
        int_check(0), "execution"),
    Key("MisfireGraceSeconds", int, 60,
        "Default grace for a late occurrence of a job that sets no misfireGraceSeconds "
        "(at most a century, 3153600000).",
        int_check(0, 36500 * 86400, note="seconds, at most a century"), "execution"),
    # ---- limits
    Key("MaxWorkers", int, 100, "Maximum callback requests in flight on this node.",
        int_check(1), "limits"),
    Key("MaxQueue", int, 1000000, "Maximum occurrences waiting for dispatch on this node.",
        int_check(1), "limits"),
    Key("CallbackConcurrencyPerTarget", int, 8,
        "Most callback requests in flight to one target (scheme://host:port), so a slow "
        "receiver holds only its own share of MaxWorkers.",
        int_check(1), "limits"),
    Key("MaxMemory", int, 0,
        "Memory budget in MB; at 70 % the node stops taking new occurrences; 0 = no limit.",
        int_check(0, note="megabytes, 0 = no limit"), "limits"),
    Key("MaxCPU", int, 0,
        "Advisory CPU budget in percent of one core: accepted and documented, not enforced.",
        int_check(0, note="percent, 0 = no limit"), "limits"),
    Key("HTTPExecutorPayloadMaxSizeMb", float, 2.0,
        "Largest callback body in MB; bigger batches are split into chunks (x-payload-chunk-id).",
        number_check(gt=0, note="megabytes"), "limits"),
    Key("ExecutionRetentionDays", int, 7, "Days finished execution records are kept.",
        int_check(1, note="days"), "limits"),
    Key("ExecutionRetentionPerJob", int, 100, "Most recent execution records kept per job.",
        int_check(1), "limits"),
)

BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}

GROUP_TITLES = {
    "node": "Node",
    "http": "HTTP API",
    "security": "Security",
    "cluster": "Raft / cluster",
    "execution": "Execution",
    "limits": "Limits",
}
