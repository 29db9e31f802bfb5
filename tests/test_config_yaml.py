"""
Tests for scheduler0.config: YAML I/O, the example file etc/scheduler0.yml (loads to the
defaults, lists every key, up to date) and C{dump_yaml} (round trips, secrets commented
out).
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler0.config import KEYS, Config, ConfigError, dump_yaml, load_config

from .config_fixtures import EXAMPLE, THREE_NODES, _Helpers


class ExampleFileTests(_Helpers):
    def test_example_loads_to_defaults(self) -> None:
        config = load_config(str(EXAMPLE), environ={})
        self.assertEqual(config, Config())
        self.assertEqual(config.source["Port"], f"file {EXAMPLE}")

    def test_example_lists_every_key(self) -> None:
        text = EXAMPLE.read_text()
        for key in KEYS:
            lines = re.findall(rf"^(?:# )?{key.name}:", text, flags=re.MULTILINE)
            self.assertEqual(len(lines), 1, key.name)
            self.assertIn(key.doc, text)
            self.assertIn(key.env, text)

    def test_example_is_up_to_date(self) -> None:
        self.assertEqual(
            EXAMPLE.read_text(), dump_yaml({}),
            "regenerate with: python -c \"import sys; from scheduler0.config import dump_yaml; "
            "sys.stdout.write(dump_yaml({}))\" > etc/scheduler0.yml")

    def test_example_groups(self) -> None:
        text = EXAMPLE.read_text()
        for title in ("Node", "HTTP API", "Security", "Raft / cluster", "Execution", "Limits"):
            self.assertIn(f"# ---- {title} ", text)


class DumpYamlTests(_Helpers):
    VALUES: dict[str, object] = {
        "LogLevel": "warn", "Protocol": "http", "Host": "10.0.0.2", "Port": 9192,
        "DataDir": "/var/lib/scheduler0", "SecretKey": "yes", "AuthUsername": "null",
        "AuthPassword": "123: #not a comment", "MaxMemory": 512, "MaxCPU": 150,
        "Bootstrap": False, "JoinCluster": True, "NodeId": 2, "NodeAdvAddress": "10.0.0.2:7072",
        "RaftAddress": "0.0.0.0:7072", "RaftTransportMaxPool": 0, "RaftTransportTimeout": 1.25,
        "RaftApplyTimeout": 4, "RaftSnapshotInterval": 60, "RaftSnapshotThreshold": 10,
        "PeerConnectRetryMax": 0, "PeerConnectRetryDelay": 0.5, "PeerAuthRequestTimeoutMs": 750,
        "JobExecutionTimeout": 12.5, "JobExecutionRetryDelay": 0, "JobExecutionRetryMax": 9,
        "MaxWorkers": 3, "MaxQueue": 77, "ExecutionLogFetchFanIn": 5,
        "ExecutionLogFetchIntervalSeconds": 9, "HTTPExecutorPayloadMaxSizeMb": 0.5,
        "Replicas": [r.to_mapping() for r in THREE_NODES], "TLSCertFile": "/etc/c.pem",
        "TLSKeyFile": "/etc/k.pem", "MaxRequestBodyMb": 1.5, "RateLimitPerMinute": 0,
        "CallbackAllowNetworks": ["10.0.0.0/8", "fd00::/8"],
        "CallbackDenyNetworks": ["169.254.0.0/16"], "CallbackNetworkPolicy": "public-only",
        "ExecutionRetentionDays": 7,
        "ExecutionRetentionPerJob": 5, "MisfireGraceSeconds": 0,
        "CallbackConcurrencyPerTarget": 2, "RequestReadTimeout": 7.5,
        "RequestBodyMinBytesPerSecond": 4096, "IdleConnectionTimeout": 15.0,
        "MaxConnections": 300, "MaxConnectionsPerClient": 0, "MetricsAuth": "basic",
    }

    def test_values_cover_every_key(self) -> None:
        self.assertEqual(set(self.VALUES), {key.name for key in KEYS})

    def test_round_trip(self) -> None:
        path = self.write(dump_yaml(self.VALUES))
        config = load_config(path, environ={})
        expected = dict(self.VALUES, RaftApplyTimeout=4.0, JobExecutionRetryDelay=0.0)
        self.assertEqual(config.to_mapping(), expected)
        self.assertEqual(set(config.source.values()), {f"file {path}"})
        self.assertEqual(config, load_config(environ={}, overrides=self.VALUES))

    def test_config_round_trip(self) -> None:
        config = load_config(environ={}, overrides=self.VALUES)
        self.assertEqual(load_config(self.write(dump_yaml(config.to_mapping())), environ={}),
                         config)

    def test_strings_coerced_and_missing_keys_defaulted(self) -> None:
        text = dump_yaml({"Port": "9300", "Bootstrap": "off", "Host": "h1"})
        config = load_config(self.write(text), environ={})
        self.assertEqual((config.port, config.bootstrap, config.host), (9300, False, "h1"))
        self.assertEqual(config.max_workers, 100)
        self.assertIn("\nPort: 9300\n", text)

    def test_unset_secrets_commented_out(self) -> None:
        text = dump_yaml({})
        for name in ("SecretKey", "AuthUsername", "AuthPassword"):
            self.assertIn(f"\n# {name}:\n", text)
            self.assertNotRegex(text, rf"(?m)^{name}:")

    def test_comment_line_per_key(self) -> None:
        lines = dump_yaml(self.VALUES).splitlines()
        for key in KEYS:
            index = next(i for i, line in enumerate(lines)
                         if re.match(rf"(# )?{key.name}:", line))
            comment = next(line for line in reversed(lines[:index])
                           if not line.startswith("#   ") and not line.startswith("# e.g. "))
            self.assertTrue(comment.startswith(f"# {key.doc}"), (key.name, comment))
            self.assertIn(f"Env: {key.env}.", comment)

    def test_rejects_unknown_and_invalid(self) -> None:
        error = self.assertRaises(ConfigError, dump_yaml, {"Prot": 1})
        self.assertIn("did you mean Port?", str(error))
        error = self.assertRaises(ConfigError, dump_yaml, {"Port": 0})
        self.assertTrue(str(error).startswith("Port: 0 is not allowed"), str(error))

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1))
    def test_any_password_round_trips(self, password: str) -> None:
        path = self.write(dump_yaml({"AuthPassword": password}).encode("utf-8"))
        self.assertEqual(load_config(path, environ={}).auth_password, password)
