"""
From configuration to the Raft log (issue 12 items 8-9): which log a node uses, who its
partners are, how it presents itself, and the refusal of a cluster without shared secrets.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.config import load_config
from scheduler0.consensus.cluster_secret import check_cluster_secrets
from scheduler0.consensus.raft import RaftCommandLog, RaftSettings, raft_command_log
from scheduler0.node_secrets import SecretsError, generate, write_file

REPLICAS = ("[{Address: http://127.0.0.1:9091, RaftAddress: 127.0.0.1:7071, NodeId: 1},"
            " {Address: http://127.0.0.1:9092, RaftAddress: 127.0.0.1:7072, NodeId: 2},"
            " {Address: http://127.0.0.1:9093, RaftAddress: 127.0.0.1:7073, NodeId: 3}]")
SECRETS = {"SecretKey": "k", "AuthUsername": "u", "AuthPassword": "p"}


class ChoiceTests(SynchronousTestCase):
    def config(self, **values: str):  # type: ignore[no-untyped-def]
        return load_config(None, {}, {"DataDir": self.mktemp(), **values})

    def test_a_single_node_keeps_the_local_log(self) -> None:
        self.assertIsNone(raft_command_log(self.config(), "k", "db", Clock()))

    def test_replicas_make_a_raft_log_whose_partners_are_the_other_nodes(self) -> None:
        config = self.config(NodeId="2", RaftAddress="127.0.0.1:7072", Replicas=REPLICAS,
                             RaftApplyTimeout="4", RaftSnapshotThreshold="100")
        log = raft_command_log(config, "k", "db", Clock())
        assert isinstance(log, RaftCommandLog)
        s = log.settings
        self.assertEqual((s.self_address, s.partners, s.bind_address),
                         ("127.0.0.1:7072", ("127.0.0.1:7071", "127.0.0.1:7073"), None))
        self.assertEqual(s.node_ids["127.0.0.1:7073"], "3")
        self.assertEqual((s.apply_timeout, s.snapshot_threshold), (4.0, 100))
        self.assertEqual(s.data_dir, config.data_dir)

    def test_an_advertised_address_is_the_identity_and_raft_address_is_bound(self) -> None:
        config = self.config(NodeId="1", RaftAddress="0.0.0.0:7071",
                             NodeAdvAddress="127.0.0.1:7071", Replicas=REPLICAS)
        s = RaftSettings.from_config(config, "k")
        self.assertEqual((s.self_address, s.bind_address), ("127.0.0.1:7071", "0.0.0.0:7071"))

    def test_the_raft_password_follows_the_secret_key(self) -> None:
        config = self.config(NodeId="1", Replicas=REPLICAS)
        one = RaftSettings.from_config(config, "a").password
        self.assertEqual(one, RaftSettings.from_config(config, "a").password)
        self.assertNotEqual(one, RaftSettings.from_config(config, "b").password)


class PasswordTests(SynchronousTestCase):
    def test_a_raft_log_is_never_built_without_a_password(self) -> None:
        settings = RaftSettings(self_address="127.0.0.1:7071", partners=(), node_ids={},
                                data_dir=".", password="")
        with self.assertRaises(ValueError):
            RaftCommandLog("db", Clock(), settings)


class SecretCheckTests(SynchronousTestCase):
    def test_a_cluster_without_secrets_is_refused_with_how_to_set_them(self) -> None:
        config = load_config(None, {}, {"DataDir": self.mktemp(), "Replicas": REPLICAS,
                                        "AuthUsername": "u"})
        with self.assertRaises(SecretsError) as raised:
            check_cluster_secrets(config)
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        for words in ("SecretKey, AuthPassword are not set", "scheduler0 credential init",
                      "SCHEDULER0_SECRET_KEY"):
            self.assertIn(words, message)

    def test_secrets_in_the_config_or_a_copied_file_are_accepted(self) -> None:
        data_dir = self.mktemp()
        check_cluster_secrets(load_config(None, {}, {"DataDir": data_dir, "Replicas": REPLICAS,
                                                     **SECRETS}))
        write_file(data_dir, generate())
        self.assertTrue(os.path.exists(os.path.join(data_dir, "node-secrets.json")))
        check_cluster_secrets(load_config(None, {}, {"DataDir": data_dir, "Replicas": REPLICAS}))

    def test_a_single_node_still_generates_its_own(self) -> None:
        check_cluster_secrets(load_config(None, {}, {"DataDir": self.mktemp()}))
