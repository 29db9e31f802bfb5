"""
End to end (real twistd): what a node leaves on disk and shows without credentials
(issue 10 items 5 and 6).

  - DataDir is 0700 and every file in it 0600 (the database, its -wal and -shm, the lock,
    the node secrets), whatever umask the node was started with;
  - the database holds no signing secret in plaintext, and the node reads them back after a
    restart; given another SecretKey it refuses to start, in one line;
  - an earlier version's database (plaintext secrets, files 0644 in a 0755 directory) is
    sealed and restricted at start;
  - C{MetricsAuth: basic} closes /metrics to anonymous callers.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time

from twisted.trial.unittest import TestCase

from scheduler0.secrets_at_rest import KEY_MISMATCH, SEALED_PREFIX, SEALED_UNBOUND_PREFIX

from .daemon import Daemon, run, twistd_argv
from .test_daemon import assert_clean_stop, job
from ..test_secrets_at_rest import file_bytes, legacy_database, stored_secrets


def modes(data_dir: str) -> dict[str, int]:
    """Every path under DataDir (relative; "." for itself) and its permission bits."""
    found = {".": stat.S_IMODE(os.stat(data_dir).st_mode)}
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, data_dir)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


class DaemonSecurityTests(TestCase):
    def setUp(self) -> None:
        # a usual login umask: what the node creates must not depend on it
        previous = os.umask(0o022)
        self.addCleanup(os.umask, previous)

    def assert_private(self, data_dir: str, *expected: str) -> None:
        found = modes(data_dir)
        for name in expected:
            self.assertIn(name, found)
        wanted = {name: 0o700 if os.path.isdir(os.path.join(data_dir, name)) else 0o600
                  for name in found}
        self.assertEqual({name: oct(mode) for name, mode in found.items()},
                         {name: oct(mode) for name, mode in wanted.items()})

    async def metrics(self, node: Daemon, headers: dict[str, str]) -> tuple[int, bytes]:
        response = await node.http().get(node.base_url + "/metrics", headers=headers)
        return response.code, await response.content()

    async def test_files_private_secrets_sealed_metrics_closed(self) -> None:
        node = Daemon(self, config={"MetricsAuth": "basic"})
        await node.start()
        client = node.client(peer=True)
        project = await client.ok("POST", "/projects", {"name": "billing"}, expect=201)
        path = f"/projects/{project['id']}/signing-secret"
        first = (await client.ok("GET", path))["signingSecret"]
        rotated = await client.ok("POST", path + "/rotate", {"graceSeconds": 3600})
        second = rotated["signingSecret"]
        await client.ok("POST", "/jobs", [job(project["id"], n) for n in range(20)],
                        expect=201)

        # while it runs: the database with its WAL and shared memory, the lock, the secrets
        self.assert_private(node.data_dir, "scheduler0.db", "scheduler0.db-wal",
                            "scheduler0.db-shm", "scheduler0.lock", "node-secrets.json")
        db = os.path.join(node.data_dir, "scheduler0.db")
        for secret in (first, second):
            self.assertNotIn(secret.encode(), file_bytes(db))
        self.assertTrue(all(s.startswith((SEALED_PREFIX, SEALED_UNBOUND_PREFIX))
                            for s in stored_secrets(db)))

        # /metrics: Basic with the node's AuthUsername/AuthPassword, nothing else
        code, body = await self.metrics(node, {})
        self.assertEqual(code, 401, body)
        self.assertNotIn(b"scheduler0_", body)
        values = node.secrets()
        token = base64.b64encode(
            f"{values['AuthUsername']}:{values['AuthPassword']}".encode()).decode()
        code, body = await self.metrics(node, {"Authorization": f"Basic {token}"})
        self.assertEqual(code, 200, body)
        self.assertIn(b"scheduler0_breakers", body)
        assert_clean_stop(self, await node.stop(), node.log_text())

        # a restart reads them back
        await node.start()
        again = await node.client(peer=True).ok("GET", path)
        self.assertEqual((again["signingSecret"], again["previousSigningSecret"]),
                         (second, first))
        assert_clean_stop(self, await node.stop(), node.log_text())
        self.assert_private(node.data_dir, "scheduler0.db", "node-secrets.json")

        # another SecretKey: refused at once, in one line, rather than unsigned callbacks
        values["SecretKey"] = "a SecretKey that sealed nothing here"
        with open(os.path.join(node.data_dir, "node-secrets.json"), "w") as f:
            json.dump(values, f)
        started = time.monotonic()
        status, out, err = await run(self, twistd_argv(node.config_path), cwd=node.workdir,
                                     env=node.env(), timeout=30)
        self.assertLess(time.monotonic() - started, 15, out + err)
        self.assertEqual((status.code, status.signal), (1, None), out + err)
        lines = (out + err).splitlines()
        self.assertEqual(len(lines), 1, out + err)
        self.assertTrue(lines[0].startswith("scheduler0: "), lines[0])
        self.assertIn(KEY_MISMATCH, lines[0])

    async def test_earlier_version_data_dir_sealed_and_restricted(self) -> None:
        node = Daemon(self)
        db = legacy_database(node.data_dir)
        for name in os.listdir(node.data_dir):
            os.chmod(os.path.join(node.data_dir, name), 0o644)
        os.chmod(node.data_dir, 0o755)
        self.assertIn(b"whsec_new1", file_bytes(db))

        await node.start()
        secrets = await node.client(peer=True).ok("GET", "/projects/1/signing-secret")
        self.assertEqual((secrets["signingSecret"], secrets["previousSigningSecret"]),
                         ("whsec_new1", "whsec_old1"))
        self.assert_private(node.data_dir, "scheduler0.db", "node-secrets.json")
        for secret in (b"whsec_new1", b"whsec_old1", b"whsec_two"):
            self.assertNotIn(secret, file_bytes(db))
        self.assertIn("sealed 3 signing secret(s)", node.log_text())
        assert_clean_stop(self, await node.stop(), node.log_text())
