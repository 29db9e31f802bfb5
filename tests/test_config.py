"""Tests for scheduler0.config: defaults, precedence, coercion, errors, example file, dump_yaml."""

from __future__ import annotations

import builtins
import operator
import os
import re
from pathlib import Path

import attrs
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from scheduler0 import config as config_module
from scheduler0.config import (
    KEYS,
    Config,
    ConfigError,
    Replica,
    dump_yaml,
    env_var,
    load_config,
)

EXAMPLE = Path(config_module.__file__).resolve().parents[2] / "etc" / "scheduler0.yml"

SEED_KEYS = (
    "LogLevel", "Protocol", "Host", "Port", "SecretKey", "AuthUsername", "AuthPassword",
    "MaxMemory", "MaxCPU", "Bootstrap", "NodeId", "NodeAdvAddress", "RaftAddress",
    "RaftTransportMaxPool", "RaftTransportTimeout", "RaftApplyTimeout", "RaftSnapshotInterval",
    "RaftSnapshotThreshold", "PeerConnectRetryMax", "PeerConnectRetryDelay",
    "PeerAuthRequestTimeoutMs", "JobExecutionTimeout", "JobExecutionRetryDelay",
    "JobExecutionRetryMax", "MaxWorkers", "MaxQueue", "ExecutionLogFetchFanIn",
    "ExecutionLogFetchIntervalSeconds", "HTTPExecutorPayloadMaxSizeMb", "Replicas",
)
PROJECT_KEYS = (
    "DataDir", "TLSCertFile", "TLSKeyFile", "MaxRequestBodyMb", "RateLimitPerMinute",
    "CallbackAllowNetworks", "CallbackDenyNetworks", "CallbackNetworkPolicy",
    "ExecutionRetentionDays",
    "ExecutionRetentionPerJob", "MisfireGraceSeconds", "CallbackConcurrencyPerTarget",
    "RequestReadTimeout", "RequestBodyMinBytesPerSecond", "IdleConnectionTimeout",
    "MaxConnections", "MaxConnectionsPerClient", "MetricsAuth",
)
KEY_BY_NAME = {key.name: key for key in KEYS}

THREE_NODES_JSON = (
    '[{"address": "http://127.0.0.1:9091", "raft_address": "127.0.0.1:7071", "nodeId": 1},'
    ' {"Address": "http://127.0.0.1:9092", "RaftAddress": "127.0.0.1:7072", "NodeId": 2},'
    ' {"address": "http://127.0.0.1:9093", "raftAddress": "127.0.0.1:7073", "node_id": 3}]'
)
THREE_NODES = (
    Replica("http://127.0.0.1:9091", "127.0.0.1:7071", 1),
    Replica("http://127.0.0.1:9092", "127.0.0.1:7072", 2),
    Replica("http://127.0.0.1:9093", "127.0.0.1:7073", 3),
)


class _Helpers(SynchronousTestCase):
    def write(self, text: str | bytes) -> str:
        path = self.mktemp()
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(path, mode) as handle:
            handle.write(text)
        return path

    def config_error(self, *fragments: str, key: str | None = None, **kwargs: object) -> str:
        """Call load_config(**kwargs); assert a one-line ConfigError containing fragments."""
        kwargs.setdefault("environ", {})
        error = self.assertRaises(ConfigError, load_config, **kwargs)
        message = str(error)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        if key is not None:
            self.assertEqual(error.key, key)
        return message


class KeyDefinitionTests(_Helpers):
    def test_seed_and_project_keys_defined(self) -> None:
        names = [key.name for key in KEYS]
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(set(names), set(SEED_KEYS) | set(PROJECT_KEYS))

    def test_config_attributes_follow_keys(self) -> None:
        fields = [f.name for f in attrs.fields(Config) if f.name != "source"]
        self.assertEqual(fields, [key.attr for key in KEYS])

    def test_config_fields_take_default_and_type_from_the_key_table(self) -> None:
        fields = attrs.fields_dict(Config)
        for key in KEYS:
            field = fields[key.attr]
            self.assertEqual(field.default, key.default, key.name)
            self.assertEqual(field.type, key.type | None if key.optional else key.type, key.name)

    def test_attribute_names(self) -> None:
        expected = {
            "LogLevel": "log_level",
            "HTTPExecutorPayloadMaxSizeMb": "http_executor_payload_max_size_mb",
            "TLSCertFile": "tls_cert_file",
            "NodeId": "node_id",
            "MaxRequestBodyMb": "max_request_body_mb",
            "MaxCPU": "max_cpu",
            "PeerAuthRequestTimeoutMs": "peer_auth_request_timeout_ms",
            "ExecutionLogFetchFanIn": "execution_log_fetch_fan_in",
        }
        self.assertEqual({name: KEY_BY_NAME[name].attr for name in expected}, expected)

    def test_env_var(self) -> None:
        self.assertEqual(env_var("HTTPExecutorPayloadMaxSizeMb"),
                         "SCHEDULER0_HTTP_EXECUTOR_PAYLOAD_MAX_SIZE_MB")
        self.assertEqual(env_var("TLSCertFile"), "SCHEDULER0_TLS_CERT_FILE")
        self.assertEqual(env_var("MaxCPU"), "SCHEDULER0_MAX_CPU")
        self.assertEqual(env_var("NodeId"), "SCHEDULER0_NODE_ID")
        self.assertEqual(env_var("Port"), "SCHEDULER0_PORT")
        self.assertEqual(KEY_BY_NAME["RaftAddress"].env, "SCHEDULER0_RAFT_ADDRESS")

    def test_every_key_documented(self) -> None:
        for key in KEYS:
            self.assertTrue(key.doc.strip(), key.name)
            self.assertNotIn("\n", key.doc)
            self.assertTrue(key.allowed.strip(), key.name)

    def test_compatibility_only_keys_say_so(self) -> None:
        for name in ("RaftTransportMaxPool", "ExecutionLogFetchFanIn",
                     "ExecutionLogFetchIntervalSeconds"):
            self.assertIn("no effect", KEY_BY_NAME[name].doc)


class DefaultsTests(_Helpers):
    def test_defaults(self) -> None:
        config = load_config(environ={})
        for key in KEYS:
            self.assertEqual(getattr(config, key.attr), key.default, key.name)
        self.assertEqual(dict(config.source), {key.name: "default" for key in KEYS})

    def test_default_values(self) -> None:
        config = load_config(environ={})
        self.assertEqual(
            (config.log_level, config.protocol, config.host, config.port, config.data_dir),
            ("info", "http", "127.0.0.1", 9091, "./scheduler0-data"))
        self.assertEqual((config.secret_key, config.auth_username, config.auth_password),
                         (None, None, None))
        self.assertEqual((config.max_memory, config.max_cpu, config.bootstrap, config.node_id),
                         (0, 0, True, 1))
        self.assertEqual((config.raft_address, config.node_adv_address, config.replicas),
                         ("127.0.0.1:7071", "", ()))
        self.assertEqual((config.raft_transport_timeout, config.raft_apply_timeout,
                          config.raft_snapshot_interval, config.raft_snapshot_threshold),
                         (3.5, 10.0, 300, 5000))
        self.assertEqual((config.peer_connect_retry_max, config.peer_connect_retry_delay,
                          config.peer_auth_request_timeout_ms), (3, 1.0, 2000))
        self.assertEqual((config.job_execution_timeout, config.job_execution_retry_delay,
                          config.job_execution_retry_max), (30.0, 1.0, 3))
        self.assertEqual((config.max_workers, config.max_queue,
                          config.http_executor_payload_max_size_mb), (100, 1000000, 2.0))
        self.assertEqual((config.tls_cert_file, config.tls_key_file, config.max_request_body_mb,
                          config.rate_limit_per_minute), ("", "", 16.0, 500))
        self.assertEqual((config.callback_allow_networks, config.callback_deny_networks), ((), ()))
        self.assertEqual((config.execution_retention_days, config.execution_retention_per_job,
                          config.misfire_grace_seconds), (7, 100, 60))

    def test_direct_construction_uses_defaults(self) -> None:
        self.assertEqual(Config(), load_config(environ={}))

    def test_http_base_url(self) -> None:
        self.assertEqual(load_config(environ={}).http_base_url(), "http://127.0.0.1:9091")
        config = load_config(environ={}, overrides={"Host": "node-2.internal", "Port": 8443})
        self.assertEqual(config.http_base_url(), "http://node-2.internal:8443")
        self.assertEqual(load_config(environ={}, overrides={"Host": "::1"}).http_base_url(),
                         "http://[::1]:9091")

    def test_advertised_raft_address(self) -> None:
        self.assertEqual(load_config(environ={}).advertised_raft_address(), "127.0.0.1:7071")
        config = load_config(environ={"SCHEDULER0_NODE_ADV_ADDRESS": "10.0.0.5:7071"})
        self.assertEqual(config.advertised_raft_address(), "10.0.0.5:7071")

    def test_environ_none_reads_os_environ(self) -> None:
        self.patch(os, "environ", {"SCHEDULER0_PORT": "9444"})
        config = load_config()
        self.assertEqual(config.port, 9444)
        self.assertEqual(config.source["Port"], "env SCHEDULER0_PORT")

    def test_frozen_and_source_read_only(self) -> None:
        config = load_config(environ={})
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, config, "port", 1)
        self.assertRaises(TypeError, operator.setitem, config.source, "Port", "x")
        hash(config)  # usable as a dict key / in sets

    def test_repr_hides_secrets(self) -> None:
        config = load_config(environ={"SCHEDULER0_AUTH_PASSWORD": "hunter2-pw",
                                      "SCHEDULER0_SECRET_KEY": "s3cr3t-key-value"})
        self.assertEqual(config.auth_password, "hunter2-pw")
        self.assertNotIn("hunter2-pw", repr(config))
        self.assertNotIn("s3cr3t-key-value", repr(config))
        self.assertIn("auth_password=", repr(config))


class PrecedenceTests(_Helpers):
    def test_file_env_overrides(self) -> None:
        path = self.write("Port: 9001\nHost: 10.1.1.1\nMaxWorkers: 7\nLogLevel: debug\n")
        environ = {"SCHEDULER0_PORT": "9002", "SCHEDULER0_HOST": "10.2.2.2"}
        config = load_config(path, environ=environ, overrides={"Port": "9003"})
        self.assertEqual((config.port, config.host, config.max_workers, config.log_level),
                         (9003, "10.2.2.2", 7, "debug"))
        self.assertEqual(config.source["Port"], "command line")
        self.assertEqual(config.source["Host"], "env SCHEDULER0_HOST")
        self.assertEqual(config.source["MaxWorkers"], f"file {path}")
        self.assertEqual(config.source["MaxQueue"], "default")

    def test_file_beats_default_env_beats_file(self) -> None:
        path = self.write("Port: 9001\n")
        self.assertEqual(load_config(path, environ={}).port, 9001)
        self.assertEqual(load_config(path, environ={"SCHEDULER0_PORT": "9002"}).port, 9002)

    def test_file_does_not_disable_env(self) -> None:
        # The Go original ignored the environment whenever a file existed.
        path = self.write("Port: 9001\n")
        config = load_config(path, environ={"SCHEDULER0_MAX_WORKERS": "9"})
        self.assertEqual((config.port, config.max_workers), (9001, 9))

    def test_none_override_means_not_given(self) -> None:
        config = load_config(environ={"SCHEDULER0_PORT": "9002"},
                             overrides={"Port": None, "Host": None})
        self.assertEqual((config.port, config.host), (9002, "127.0.0.1"))
        self.assertEqual(config.source["Port"], "env SCHEDULER0_PORT")

    def test_go_env_aliases(self) -> None:
        config = load_config(environ={"SCHEDULER0_LOGLEVEL": "ERROR",
                                      "SCHEDULER0_PEER_CONNECT_RETRY_DELAY_SECONDS": "4"})
        self.assertEqual((config.log_level, config.peer_connect_retry_delay), ("error", 4.0))
        self.assertEqual(config.source["LogLevel"], "env SCHEDULER0_LOGLEVEL")
        both = load_config(environ={"SCHEDULER0_LOGLEVEL": "error",
                                    "SCHEDULER0_LOG_LEVEL": "warn"})
        self.assertEqual(both.log_level, "warn")
        self.assertEqual(both.source["LogLevel"], "env SCHEDULER0_LOG_LEVEL")

    def test_misspelt_variable_stops_start_up_naming_it(self) -> None:
        """Issue 9 item 6: a misspelt SCHEDULER0_* variable used to be ignored, so the node
        ran with the default the operator meant to change."""
        message = self.config_error(environ={"SCHEDULER0_JOB_EXECUTON_TIMEOUT": "10"},
                                    key="SCHEDULER0_JOB_EXECUTON_TIMEOUT")
        self.assertEqual(message, "SCHEDULER0_JOB_EXECUTON_TIMEOUT: unknown variable (value 10) "
                                  "is not allowed; did you mean "
                                  "SCHEDULER0_JOB_EXECUTION_TIMEOUT? (from the environment)")
        cases = {
            "SCHEDULER0_PROTOCL": "did you mean SCHEDULER0_PROTOCOL?",
            "SCHEDULER0_PORTT": "did you mean SCHEDULER0_PORT?",
            "SCHEDULER0_LOGLEVL": "did you mean SCHEDULER0_LOG_LEVEL?",
            "SCHEDULER0_MAXWORKERS": "did you mean SCHEDULER0_MAX_WORKERS?",
            "SCHEDULER0_API_SECRT": "did you mean SCHEDULER0_API_SECRET?",
            "SCHEDULER0_CONFIG": "run `scheduler0 config init --defaults` for a file naming "
                                 "each key's variable",
            "SCHEDULER0_RAFT_HEARTBEAT_TIMEOUT": "a setting of the Go original",
        }
        for name, advice in cases.items():
            self.config_error(f"{name}: unknown variable", advice, "(from the environment)",
                              environ={name: "1", "SCHEDULER0_PORT": "9002"}, key=name)

    def test_misspelt_variable_never_echoes_a_secret(self) -> None:
        for name in ("SCHEDULER0_AUTH_PASWORD", "SCHEDULER0_SECRETKEY", "SCHEDULER0_API_SECRT"):
            message = self.config_error(f"{name}: unknown variable (value <hidden string>)",
                                        environ={name: "hunter2"})
            self.assertNotIn("hunter2", message)

    def test_variables_that_are_not_scheduler0_keys(self) -> None:
        """Other prefixes are not ours; the client variables that `create credential --format
        env` prints may sit in the shell that starts a node."""
        config = load_config(environ={"PORT": "1", "scheduler0_port": "x", "SCHEDULER0PORT": "x",
                                      "SCHEDULER0_API_KEY": "k", "SCHEDULER0_API_SECRET": "s"})
        self.assertEqual(config, load_config(environ={}))
        self.assertEqual(set(config_module.CLIENT_ENV_VARS),
                         {"SCHEDULER0_API_KEY", "SCHEDULER0_API_SECRET"})

    def test_empty_and_comment_only_file_gives_defaults(self) -> None:
        for text in ("", "# nothing set\n"):
            config = load_config(self.write(text), environ={})
            self.assertEqual(config, Config())
            self.assertEqual(config.source["Port"], "default")

    def test_bad_file_value_reported_even_if_env_replaces_it(self) -> None:
        path = self.write("Port: 0\n")
        self.config_error("Port: 0 is not allowed", f"(from file {path})", key="Port",
                          path=path, environ={"SCHEDULER0_PORT": "9002"})

    def test_go_style_cluster_file_loads(self) -> None:
        path = self.write(
            "LogLevel: DEBUG\nProtocol: http\nHost: 127.0.0.1\nPort: 9092\nMaxMemory: 4000\n"
            "MaxCPU: 50\nBootstrap: false\nNodeId: 2\nRaftAddress: 127.0.0.1:7072\n"
            "RaftTransportMaxPool: 10\nRaftTransportTimeout: 1\nRaftApplyTimeout: 2\n"
            "RaftSnapshotInterval: 30\nRaftSnapshotThreshold: 50\nPeerConnectRetryMax: 2\n"
            "PeerConnectRetryDelay: 1\nPeerAuthRequestTimeoutMs: 2\nJobExecutionTimeout: 20\n"
            "JobExecutionRetryDelay: 1\nJobExecutionRetryMax: 5\nMaxWorkers: 4\nMaxQueue: 8\n"
            "ExecutionLogFetchFanIn: 2\nExecutionLogFetchIntervalSeconds: 2\n"
            "HTTPExecutorPayloadMaxSizeMb: 2\n"
            "Replicas:\n"
            "  - Address: http://127.0.0.1:9091\n    RaftAddress: 127.0.0.1:7071\n    NodeId: 1\n"
            "  - Address: http://127.0.0.1:9092\n    RaftAddress: 127.0.0.1:7072\n    NodeId: 2\n"
            "  - Address: http://127.0.0.1:9093\n    RaftAddress: 127.0.0.1:7073\n    NodeId: 3\n")
        config = load_config(path, environ={})
        self.assertEqual(config.log_level, "debug")
        self.assertEqual(config.replicas, THREE_NODES)
        self.assertEqual((config.node_id, config.bootstrap, config.raft_transport_timeout),
                         (2, False, 1.0))
        self.assertIsInstance(config.raft_transport_timeout, float)
        self.assertEqual(config.http_base_url(), THREE_NODES[1].address)


class CoercionTests(_Helpers):
    def env(self, name: str, value: str) -> Config:
        config = load_config(environ={env_var(name): value})
        self.assertEqual(config.source[name], f"env {env_var(name)}")
        return config

    def test_int(self) -> None:
        self.assertEqual(self.env("Port", "9092").port, 9092)
        self.assertEqual(self.env("MaxQueue", " 42 ").max_queue, 42)
        self.assertEqual(self.env("MaxMemory", "0").max_memory, 0)

    def test_float(self) -> None:
        config = self.env("RaftApplyTimeout", "1.5")
        self.assertEqual(config.raft_apply_timeout, 1.5)
        config = self.env("JobExecutionTimeout", "45")
        self.assertEqual(config.job_execution_timeout, 45.0)
        self.assertIsInstance(config.job_execution_timeout, float)

    def test_bool(self) -> None:
        for text in ("true", "TRUE", "yes", "Yes", "1", "on", "ON"):
            self.assertIs(self.env("Bootstrap", text).bootstrap, True, text)
        for text in ("false", "False", "no", "NO", "0", "off", "Off"):
            self.assertIs(self.env("Bootstrap", text).bootstrap, False, text)

    def test_str(self) -> None:
        self.assertEqual(self.env("Host", "10.0.0.9").host, "10.0.0.9")
        self.assertEqual(self.env("DataDir", "/var/lib/s0").data_dir, "/var/lib/s0")
        self.assertEqual(self.env("NodeAdvAddress", "").node_adv_address, "")

    def test_optional_str(self) -> None:
        config = self.env("AuthUsername", "operator")
        self.assertEqual(config.auth_username, "operator")
        self.assertEqual(self.env("SecretKey", "abc123").secret_key, "abc123")

    def test_choice_case_insensitive(self) -> None:
        self.assertEqual(self.env("LogLevel", "DEBUG").log_level, "debug")
        self.assertEqual(self.env("LogLevel", "Warning").log_level, "warn")
        self.assertEqual(self.env("Protocol", "HTTP").protocol, "http")

    def test_list_comma_separated(self) -> None:
        config = self.env("CallbackAllowNetworks", "10.0.0.0/8, 192.168.0.0/16,")
        self.assertEqual(config.callback_allow_networks, ("10.0.0.0/8", "192.168.0.0/16"))
        self.assertEqual(self.env("CallbackDenyNetworks", "").callback_deny_networks, ())

    def test_list_json(self) -> None:
        config = self.env("CallbackDenyNetworks", '["169.254.0.0/16", "fd00::/8"]')
        self.assertEqual(config.callback_deny_networks, ("169.254.0.0/16", "fd00::/8"))

    def test_list_in_yaml_flow_syntax(self) -> None:
        """Issue 9 item 6: `--set Key=[a, b]`, as etc/scheduler0.yml writes lists, used to be
        refused as invalid JSON."""
        config = load_config(environ={}, overrides={
            "CallbackAllowNetworks": "[10.0.0.0/8, 192.168.0.0/16]",
            "CallbackDenyNetworks": "['fd00::/8', '169.254.0.0/16']",
            "Replicas": "[{Address: http://127.0.0.1:9091, RaftAddress: 127.0.0.1:7071, "
                        "NodeId: 1}, {Address: http://127.0.0.1:9092, RaftAddress: "
                        "127.0.0.1:7072, NodeId: 2}, {address: http://127.0.0.1:9093, "
                        "raft_address: 127.0.0.1:7073, nodeId: 3}]"})
        self.assertEqual(config.callback_allow_networks, ("10.0.0.0/8", "192.168.0.0/16"))
        self.assertEqual(config.callback_deny_networks, ("fd00::/8", "169.254.0.0/16"))
        self.assertEqual(config.replicas, THREE_NODES)
        self.assertEqual(self.env("CallbackDenyNetworks", "[ ]").callback_deny_networks, ())
        self.assertEqual(self.env("CallbackDenyNetworks", "[169.254.0.0/16]")
                         .callback_deny_networks, ("169.254.0.0/16",))

    def test_example_file_list_lines_work_on_the_command_line(self) -> None:
        """The commented examples of etc/scheduler0.yml, pasted after --set Key=."""
        text = EXAMPLE.read_text()
        for name in ("CallbackAllowNetworks", "CallbackDenyNetworks", "Replicas"):
            block = re.search(rf"^# e\.g\. {name}:(.*)\n((?:#   - .*\n)*)", text, re.MULTILINE)
            self.assertIsNotNone(block, name)
            if block.group(2):  # block style: one "- {...}" per line, as a flow list
                items = [line[len("#   - "):] for line in block.group(2).splitlines()]
                value = "[" + ", ".join(items) + "]"
            else:
                value = block.group(1).strip()
            from_file = load_config(self.write(f"{name}: {value}\n"), environ={})
            from_cli = load_config(environ={}, overrides={name: value})
            self.assertEqual(getattr(from_cli, KEY_BY_NAME[name].attr),
                             getattr(from_file, KEY_BY_NAME[name].attr), name)
            self.assertTrue(getattr(from_cli, KEY_BY_NAME[name].attr), name)

    def test_cidr_normalised(self) -> None:
        config = self.env("CallbackDenyNetworks", "10.1.2.3/8,192.168.1.1")
        self.assertEqual(config.callback_deny_networks, ("10.0.0.0/8", "192.168.1.1/32"))

    def test_replicas_json_all_spellings(self) -> None:
        config = self.env("Replicas", THREE_NODES_JSON)
        self.assertEqual(config.replicas, THREE_NODES)
        self.assertIsInstance(config.replicas, tuple)

    def test_replicas_json_node_id_string(self) -> None:
        config = self.env(
            "Replicas", '[{"address": "http://h:9091/", "raft_address": "h:7071", "nodeId": "1"}]')
        self.assertEqual(config.replicas, (Replica("http://h:9091", "h:7071", 1),))

    def test_overrides_strings_coerced(self) -> None:
        config = load_config(environ={}, overrides={
            "Port": "9100", "Bootstrap": "no", "RaftApplyTimeout": "2.5",
            "CallbackAllowNetworks": "10.0.0.0/8", "Replicas": THREE_NODES_JSON})
        self.assertEqual((config.port, config.bootstrap, config.raft_apply_timeout),
                         (9100, False, 2.5))
        self.assertEqual(config.callback_allow_networks, ("10.0.0.0/8",))
        self.assertEqual(config.replicas, THREE_NODES)

    def test_overrides_typed_values(self) -> None:
        config = load_config(environ={}, overrides={
            "Port": 9100, "Bootstrap": False, "RaftApplyTimeout": 3,
            "CallbackAllowNetworks": ["10.0.0.0/8"], "Replicas": list(THREE_NODES),
            "AuthPassword": "pw"})
        self.assertEqual((config.port, config.bootstrap, config.raft_apply_timeout),
                         (9100, False, 3.0))
        self.assertEqual(config.callback_allow_networks, ("10.0.0.0/8",))
        self.assertEqual(config.replicas, THREE_NODES)
        self.assertEqual(config.auth_password, "pw")
        dicts = [r.to_mapping() for r in THREE_NODES]
        self.assertEqual(load_config(environ={}, overrides={"Replicas": dicts}).replicas,
                         THREE_NODES)

    def test_yaml_types(self) -> None:
        path = self.write(
            "RaftApplyTimeout: 3\nPeerConnectRetryDelay: 0.25\nBootstrap: no\n"
            "CallbackAllowNetworks:\nSecretKey: null\nAuthPassword: '123456'\n"
            "CallbackDenyNetworks: [10.0.0.0/8]\n")
        config = load_config(path, environ={})
        self.assertEqual(config.raft_apply_timeout, 3.0)
        self.assertIsInstance(config.raft_apply_timeout, float)
        self.assertEqual(config.peer_connect_retry_delay, 0.25)
        self.assertIs(config.bootstrap, False)
        self.assertEqual(config.callback_allow_networks, ())
        self.assertIsNone(config.secret_key)
        self.assertEqual(config.auth_password, "123456")
        self.assertEqual(config.callback_deny_networks, ("10.0.0.0/8",))

    def test_replica_address_trailing_slash_dropped(self) -> None:
        path = self.write("Replicas:\n  - {Address: 'http://127.0.0.1:9091/', "
                          "RaftAddress: '127.0.0.1:7071', NodeId: 1}\n")
        self.assertEqual(load_config(path, environ={}).replicas[0].address,
                         "http://127.0.0.1:9091")

    def test_ipv6_addresses(self) -> None:
        config = load_config(environ={}, overrides={"Host": "[::1]", "RaftAddress": "[::1]:7071"})
        self.assertEqual((config.host, config.raft_address), ("::1", "[::1]:7071"))


class ErrorTests(_Helpers):
    def test_exact_message_from_env(self) -> None:
        message = self.config_error(environ={"SCHEDULER0_PORT": "70000"}, key="Port")
        self.assertEqual(message, "Port: 70000 is not allowed; expected an integer from 1 to "
                                  "65535 (from SCHEDULER0_PORT)")

    def test_unknown_key_in_file_suggests(self) -> None:
        path = self.write("Protcol: https\n")
        message = self.config_error(path=path, key="Protcol")
        self.assertEqual(message, f"Protcol: unknown key (value https) is not allowed; did you "
                                  f"mean Protocol? (from file {path})")

    def test_unknown_key_variants(self) -> None:
        cases = {
            "port: 1\n": "did you mean Port?",
            "log_level: info\n": "did you mean LogLevel?",
            "ExecutionLogFetchInterval: 2\n": "did you mean ExecutionLogFetchIntervalSeconds?",
            "PeerConnectRetryDelaySeconds: 1\n": "did you mean PeerConnectRetryDelay?",
            "Zebra: 1\n": "run `scheduler0 config init --defaults` for a file listing the "
                           "known keys",
        }
        for text, advice in cases.items():
            name = text.split(":")[0]
            self.config_error(f"{name}: unknown key", advice, path=self.write(text), key=name)

    def test_unknown_key_never_echoes_secret(self) -> None:
        message = self.config_error("AuthPasword: unknown key", "did you mean AuthPassword?",
                                    path=self.write("AuthPasword: hunter2\n"))
        self.assertNotIn("hunter2", message)

    def test_unknown_override_key(self) -> None:
        self.config_error("MaxWorker: unknown key", "did you mean MaxWorkers?",
                          "(from command line)", overrides={"MaxWorker": 3}, key="MaxWorker")

    def test_wrong_type_in_file(self) -> None:
        cases = [
            ("Port: '9091'\n", "Port: '9091' (a string) is not allowed; expected an integer"),
            ("Port: true\n", "Port: True (a boolean) is not allowed"),
            ("MaxWorkers: 2.5\n", "MaxWorkers: 2.5 (a number) is not allowed"),
            ("RaftApplyTimeout: yes\n", "RaftApplyTimeout: True (a boolean) is not allowed"),
            ("Bootstrap: 'true'\n", "Bootstrap: 'true' (a string) is not allowed; expected true"),
            ("Host: 12\n", "Host: 12 (an integer) is not allowed"),
            ("Host:\n", "Host: None (null) is not allowed"),
            ("CallbackAllowNetworks: 10.0.0.0/8\n",
             "CallbackAllowNetworks: '10.0.0.0/8' (a string) is not allowed"),
            ("CallbackAllowNetworks: [8]\n", "CallbackAllowNetworks: entry 8 (an integer)"),
            ("Replicas: {NodeId: 1}\n", "Replicas: {'NodeId': 1} (a mapping) is not allowed"),
        ]
        for text, fragment in cases:
            path = self.write(text)
            key = text.split(":")[0]
            self.config_error(fragment, f"(from file {path})", path=path, key=key)

    def test_wrong_type_override(self) -> None:
        self.config_error("Port: True (a boolean) is not allowed", overrides={"Port": True})
        self.config_error("Bootstrap: 1 (an integer) is not allowed",
                          overrides={"Bootstrap": 1})

    def test_impossible_values_from_env(self) -> None:
        cases = [
            ("Port", "0"), ("Port", "65536"), ("Port", "abc"), ("Port", "9091.5"),
            ("NodeId", "0"), ("MaxWorkers", "0"), ("MaxQueue", "0"), ("MaxMemory", "-1"),
            ("MaxCPU", "-5"), ("HTTPExecutorPayloadMaxSizeMb", "0"),
            ("ExecutionLogFetchIntervalSeconds", "0"), ("RaftApplyTimeout", "0"),
            ("RaftTransportTimeout", "-1"), ("JobExecutionTimeout", "inf"),
            ("JobExecutionRetryDelay", "nan"), ("RaftSnapshotInterval", "0"),
            ("PeerAuthRequestTimeoutMs", "0"), ("RateLimitPerMinute", "-1"),
            ("MaxRequestBodyMb", "0"), ("ExecutionRetentionDays", "0"),
            ("MisfireGraceSeconds", "-1"), ("MisfireGraceSeconds", "3153600001"),
            ("MisfireGraceSeconds", str(2**63)), ("LogLevel", "verbose"), ("LogLevel", "trace"),
            ("Protocol", "ftp"), ("Host", "http://example.com"), ("Host", "a b"),
            ("RaftAddress", "localhost"), ("RaftAddress", "localhost:0"),
            ("RaftAddress", "localhost:99999"), ("NodeAdvAddress", "10.0.0.1"),
            ("DataDir", "  "), ("Bootstrap", "maybe"),
        ]
        for name, value in cases:
            variable = env_var(name)
            message = self.config_error(environ={variable: value}, key=name)
            shown = value if re.fullmatch(r"\S+", value) else repr(value)
            self.assertTrue(message.startswith(f"{name}: {shown} is not allowed; expected "),
                            message)
            self.assertTrue(message.endswith(f"(from {variable})"), message)

    def test_allowed_text_names_the_range(self) -> None:
        self.config_error("expected one of debug, info, warn, error",
                          environ={"SCHEDULER0_LOG_LEVEL": "loud"})
        self.config_error("expected a number > 0 (seconds)",
                          environ={"SCHEDULER0_RAFT_APPLY_TIMEOUT": "0"})
        self.config_error("expected an integer >= 1",
                          environ={"SCHEDULER0_MAX_WORKERS": "0"})

    def test_empty_secret_rejected(self) -> None:
        self.config_error("AuthPassword: '' is not allowed; expected a non-empty string",
                          environ={"SCHEDULER0_AUTH_PASSWORD": ""}, key="AuthPassword")

    def test_secret_values_never_echoed(self) -> None:
        message = self.config_error("AuthPassword: <hidden integer> is not allowed",
                                    path=self.write("AuthPassword: 918273\n"))
        self.assertNotIn("918273", message)
        message = self.config_error("AuthUsername: <hidden string> is not allowed",
                                    "without ':'",
                                    environ={"SCHEDULER0_AUTH_USERNAME": "adm:in"})
        self.assertNotIn("adm:in", message)

    def test_bad_yaml(self) -> None:
        path = self.write("Port: [9091\nHost: x\n")
        self.config_error(f"config file {path}: not valid YAML", "line ", path=path)

    def test_duplicate_yaml_key(self) -> None:
        path = self.write("Port: 9001\nHost: h\nPort: 9002\n")
        self.config_error(f"config file {path}", "'Port' appears twice (lines 1 and 3)",
                          path=path)

    def test_yaml_merge_keys_allowed(self) -> None:
        path = self.write("<<: {Port: 9001, Host: h}\nPort: 9002\n")
        config = load_config(path, environ={})
        self.assertEqual((config.port, config.host), (9002, "h"))

    def test_missing_file(self) -> None:
        path = self.mktemp()
        self.config_error(f"config file {path}: cannot be read", "No such file", path=path)

    def test_directory_as_file(self) -> None:
        path = self.mktemp()
        os.mkdir(path)
        self.config_error(f"config file {path}: cannot be read", path=path)

    def test_unreadable_file(self) -> None:
        path = self.write("Port: 1\n")
        real_open = builtins.open

        def refusing_open(name, *args, **kwargs):  # root ignores chmod, so refuse here
            if name == path:
                raise PermissionError(13, "Permission denied", name)
            return real_open(name, *args, **kwargs)

        self.patch(builtins, "open", refusing_open)
        self.config_error(f"config file {path}: cannot be read", "Permission denied", path=path)

    def test_not_utf8(self) -> None:
        path = self.write(b"Host: \xff\xfe\n")
        self.config_error(f"config file {path}: is not UTF-8", path=path)

    def test_top_level_not_mapping(self) -> None:
        for text, kind in (("- Port\n- 9091\n", "a list"), ("just words\n", "a string")):
            path = self.write(text)
            self.config_error(f"config file {path}: the top level is {kind}; expected a mapping",
                              path=path)

    def test_https_needs_cert_and_key(self) -> None:
        self.config_error("TLSCertFile: '' is not allowed; Protocol https needs TLSCertFile and "
                          "TLSKeyFile", "(Protocol from SCHEDULER0_PROTOCOL)",
                          environ={"SCHEDULER0_PROTOCOL": "https"}, key="TLSCertFile")
        cert = self.write("cert")
        self.config_error("TLSKeyFile: '' is not allowed", key="TLSKeyFile",
                          overrides={"Protocol": "https", "TLSCertFile": cert})

    def test_https_cert_must_exist(self) -> None:
        missing = self.mktemp()
        key = self.write("key")
        self.config_error(f"TLSCertFile: {missing} is not allowed; expected an existing readable "
                          f"PEM file because Protocol is https (from command line)",
                          key="TLSCertFile",
                          overrides={"Protocol": "https", "TLSCertFile": missing,
                                     "TLSKeyFile": key})

    def test_https_with_files_loads(self) -> None:
        cert, key = self.write("cert"), self.write("key")
        config = load_config(environ={}, overrides={"Protocol": "https", "TLSCertFile": cert,
                                                    "TLSKeyFile": key})
        self.assertEqual(config.http_base_url(), "https://127.0.0.1:9091")
        self.assertEqual((config.tls_cert_file, config.tls_key_file), (cert, key))

    def test_tls_files_not_checked_for_http(self) -> None:
        config = load_config(environ={}, overrides={"TLSCertFile": self.mktemp()})
        self.assertEqual(config.protocol, "http")

    def test_bad_cidr(self) -> None:
        self.config_error("CallbackAllowNetworks: entry 10.0.0.0/33 is not allowed; expected "
                          "a list of networks in CIDR form",
                          "(from SCHEDULER0_CALLBACK_ALLOW_NETWORKS)",
                          environ={"SCHEDULER0_CALLBACK_ALLOW_NETWORKS": "10.0.0.0/8,10.0.0.0/33"},
                          key="CallbackAllowNetworks")
        path = self.write("CallbackDenyNetworks: [169.254.0.0/16, not-a-net]\n")
        self.config_error("CallbackDenyNetworks: entry not-a-net is not allowed", path=path,
                          key="CallbackDenyNetworks")
        self.config_error("CallbackDenyNetworks: '[\"10.0.0.0/8\"' is not allowed; not a valid "
                          "list (", "write it as [a, b] in YAML flow syntax",
                          environ={"SCHEDULER0_CALLBACK_DENY_NETWORKS": '["10.0.0.0/8"'})
        self.config_error("CallbackDenyNetworks: '[fd00::/8, ::1/128]' is not allowed; not a "
                          "valid list", "quoting an item that starts with ':'",
                          overrides={"CallbackDenyNetworks": "[fd00::/8, ::1/128]"})

    def test_bad_replicas(self) -> None:
        good = {"Address": "http://127.0.0.1:9091", "RaftAddress": "127.0.0.1:7071", "NodeId": 1}
        cases = [
            ([good, dict(good, Address="http://127.0.0.1:9092", RaftAddress="127.0.0.1:7072")],
             "entry 2", "NodeId 1 is already used by entry 1"),
            ([good, dict(good, NodeId=2)], "entry 2", "RaftAddress 127.0.0.1:7071 is already used"),
            ([{"Address": "http://h:1", "NodeId": 1}], "entry 1", "field RaftAddress is missing"),
            ([dict(good, Adress="x")], "field 'Adress' is unknown; did you mean Address?"),
            ([dict(good, Address="127.0.0.1:9091")], "Address must be an http(s) base URL"),
            ([dict(good, Address="ftp://h:1")], "Address must be an http(s) base URL"),
            ([dict(good, Address="http://h:1/api")], "Address must be an http(s) base URL"),
            ([dict(good, RaftAddress="127.0.0.1")], "RaftAddress must be host:port"),
            ([dict(good, NodeId=0)], "NodeId must be an integer >= 1"),
            ([dict(good, NodeId="1")], "NodeId must be an integer, got a string"),
            ([dict(good, NodeId=True)], "NodeId must be an integer, got a boolean"),
            (["http://h:1"], "each entry must be a mapping"),
        ]
        for replicas, *fragments in cases:
            path = self.write(yaml.safe_dump({"Replicas": replicas}))
            self.config_error("Replicas: ", *fragments, f"(from file {path})", path=path,
                              key="Replicas")

    def test_bad_replicas_env(self) -> None:
        self.config_error("Replicas: [{ is not allowed; not a valid list",
                          "(from SCHEDULER0_REPLICAS)",
                          environ={"SCHEDULER0_REPLICAS": "[{"}, key="Replicas")
        self.config_error('Replicas: \'{"nodeId": 1}\' (a mapping, not a list) is not allowed',
                          environ={"SCHEDULER0_REPLICAS": '{"nodeId": 1}'}, key="Replicas")

    def test_node_id_must_be_in_replicas(self) -> None:
        self.config_error("NodeId: 4 is not allowed; expected one of the NodeIds listed in "
                          "Replicas (1, 2, 3) (NodeId from SCHEDULER0_NODE_ID; Replicas from "
                          "command line)", key="NodeId",
                          environ={"SCHEDULER0_NODE_ID": "4"},
                          overrides={"Replicas": THREE_NODES_JSON})
        config = load_config(environ={"SCHEDULER0_NODE_ID": "3"},
                             overrides={"Replicas": THREE_NODES_JSON})
        self.assertEqual(config.node_id, 3)


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
        "Bootstrap": False, "NodeId": 2, "NodeAdvAddress": "10.0.0.2:7072",
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
