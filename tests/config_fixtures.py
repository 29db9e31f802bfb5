"""
Shared by the tests of scheduler0.config (test_config_*): the example file's path, the key
table by name, a three-node C{Replicas} value, and L{_Helpers} (a file to load, and the
assertion that loading fails with one line naming the key).
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scheduler0 import config as config_module
from scheduler0.config import KEYS, ConfigError, Replica, load_config


EXAMPLE = Path(config_module.__file__).resolve().parents[2] / "etc" / "scheduler0.yml"


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
