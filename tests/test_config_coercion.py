"""
Tests for scheduler0.config: how text from the file, the environment and the command line
becomes each key's type (numbers, booleans, choices, lists, networks, replicas).
"""

from __future__ import annotations

import re

from scheduler0.config import Config, Replica, env_var, load_config

from .config_fixtures import EXAMPLE, KEY_BY_NAME, THREE_NODES, THREE_NODES_JSON, _Helpers


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
