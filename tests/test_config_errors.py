"""
Tests for scheduler0.config: every configuration error is one line that names the key and
says what to fix (unknown keys, wrong types, impossible values, bad YAML or files, TLS,
replicas), and never echoes a secret.
"""

from __future__ import annotations

import builtins
import os
import re

import yaml

from scheduler0.config import env_var, load_config

from .config_fixtures import THREE_NODES_JSON, _Helpers


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
