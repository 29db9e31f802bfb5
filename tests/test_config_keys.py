"""
Tests for scheduler0.config: the key table (every seed and project key, documented, its
attribute and variable names, the C{Config} class derived from it) and the defaults.
"""

from __future__ import annotations

import operator
import os

import attrs

from scheduler0.config import KEYS, Config, env_var, load_config

from .config_fixtures import KEY_BY_NAME, _Helpers


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
    "MaxConnections", "MaxConnectionsPerClient", "MetricsAuth", "JoinCluster",
)


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
