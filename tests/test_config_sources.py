"""
Tests for scheduler0.config: where a value comes from (defaults, the file, the environment,
overrides, in that order), Go-style variable aliases, and misspelt variables that stop
start-up.
"""

from __future__ import annotations

from scheduler0 import config as config_module
from scheduler0.config import Config, load_config

from .config_fixtures import THREE_NODES, _Helpers


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
