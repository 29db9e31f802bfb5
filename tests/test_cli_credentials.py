"""
Tests for the scheduler0 command line (scheduler0.cli): `scheduler0 credential init` (the
node's secrets file) and `scheduler0 create credential` against a running node.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0.config import load_config
from scheduler0.node_secrets import NodeSecrets, read_file, secrets_path, write_file

from .cli_fixtures import (
    NODE_PASSWORD,
    NODE_USER,
    RunningNode,
    Tty,
    closed_port,
    http_get,
    run,
)


class CredentialInitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.data_dir = self.mktemp()

    def test_writes_given_values_with_mode_0600(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir, "--username", "ops",
                      "--password", "s3cret-pw", "--secret-key", "k" * 40])
        self.assertEqual(result.status, 0, result)
        path = secrets_path(self.data_dir)
        self.assertEqual(read_file(self.data_dir), NodeSecrets("k" * 40, "ops", "s3cret-pw"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertIn(path, result.out)
        self.assertNotIn("s3cret-pw", result.out + result.err)

    def test_refuses_to_overwrite_without_force(self) -> None:
        write_file(self.data_dir, NodeSecrets("old-key", "old", "old-pw"))
        argv = ["credential", "init", "-d", self.data_dir, "--generate"]
        result = run(argv)
        self.assertEqual(result.status, 1)
        self.assertIn("--force", result.err)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertEqual(read_file(self.data_dir), NodeSecrets("old-key", "old", "old-pw"))
        result = run(argv + ["--force", "--username", "new"])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(read_file(self.data_dir).auth_username, "new")
        self.assertNotEqual(read_file(self.data_dir).auth_password, "old-pw")

    def test_interactive_asks_before_replacing(self) -> None:
        write_file(self.data_dir, NodeSecrets("old-key", "old", "old-pw"))
        argv = ["credential", "init", "-d", self.data_dir, "--username", "u",
                "--password", "p", "--secret-key", "k"]
        result = run(argv, stdin=Tty("n\n"))
        self.assertEqual(result.status, 1)
        self.assertIn("Replace them? [y/N]", result.err)
        self.assertEqual(read_file(self.data_dir).auth_username, "old")
        result = run(argv, stdin=Tty("\n"))
        self.assertEqual(result.status, 1)
        self.assertEqual(read_file(self.data_dir).auth_username, "old")
        result = run(argv, stdin=Tty("y\n"))
        self.assertEqual(result.status, 0, result)
        self.assertEqual(read_file(self.data_dir), NodeSecrets("k", "u", "p"))

    def test_missing_values_without_terminal_or_generate_is_an_error(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir, "--username", "ops"])
        self.assertEqual(result.status, 2)
        self.assertIn("--password", result.err)
        self.assertIn("--secret-key", result.err)
        self.assertIn("--generate", result.err)
        self.assertNotIn("--username", result.err)
        self.assertFalse(os.path.exists(secrets_path(self.data_dir)))

    def test_generate_fills_the_missing_values(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir, "--username", "ops",
                      "--generate"])
        self.assertEqual(result.status, 0, result)
        stored = read_file(self.data_dir)
        self.assertEqual(stored.auth_username, "ops")
        self.assertGreaterEqual(len(stored.auth_password), 16)
        self.assertGreaterEqual(len(stored.secret_key), 32)
        self.assertNotIn(stored.auth_password, result.out + result.err)
        self.assertNotIn(stored.secret_key, result.out + result.err)

    def test_interactive_prompts_with_hidden_answers(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir],
                     stdin=Tty("bad:name\n\n"),
                     hidden=["pw-1", "pw-2",   # confirmation differs: asked again
                             "pw-3", "pw-3",
                             ""])              # SecretKey: generated
        self.assertEqual(result.status, 0, result)
        stored = read_file(self.data_dir)
        self.assertEqual((stored.auth_username, stored.auth_password),
                         ("scheduler0", "pw-3"))
        self.assertGreaterEqual(len(stored.secret_key), 32)
        self.assertEqual(result.err.count("AuthUsername [scheduler0]: "), 2, result.err)
        self.assertIn("AuthUsername: <hidden string> is not allowed", result.err)
        self.assertIn("differ", result.err)
        self.assertEqual(len(result.hidden_prompts), 5)  # type: ignore[attr-defined]
        self.assertNotIn("pw-3", result.out + result.err)

    def test_bad_flag_value_exits_2(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir, "--username", "a:b",
                      "--generate"])
        self.assertEqual(result.status, 2)
        self.assertTrue(result.err.startswith("scheduler0: --username: "), result.err)
        self.assertFalse(os.path.exists(secrets_path(self.data_dir)))

    def test_data_dir_resolved_like_the_daemon(self) -> None:
        config_path = self.mktemp()
        from_file, from_env = self.mktemp(), self.mktemp()
        Path(config_path).write_text(f"DataDir: {from_file}\n")
        argv = ["credential", "init", "-c", config_path, "--generate"]
        self.assertEqual(run(argv).status, 0)
        self.assertTrue(os.path.exists(secrets_path(from_file)))
        result = run(argv, environ={"SCHEDULER0_DATA_DIR": from_env})
        self.assertEqual(result.status, 0, result)
        self.assertTrue(os.path.exists(secrets_path(from_env)))

    def test_configuration_error_exits_2_with_one_line(self) -> None:
        result = run(["credential", "init", "-d", self.data_dir, "--generate"],
                     environ={"SCHEDULER0_LOG_LEVEL": "loud"})
        self.assertEqual(result.status, 2)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertRegex(result.err, r"^scheduler0: configuration error: LogLevel: loud .*"
                                     r"SCHEDULER0_LOG_LEVEL")


class CreateCredentialTests(TestCase):
    def setUp(self) -> None:
        self.node = RunningNode(self)
        self.data_dir = self.mktemp()
        write_file(self.data_dir, NodeSecrets("secret-key", NODE_USER, NODE_PASSWORD))

    def cli(self, *extra: str, port: int | None = None, **kwargs: Any) -> Any:
        argv = ["create", "credential", "--host", "127.0.0.1",
                "--port", str(self.node.number if port is None else port),
                "--data-dir", self.data_dir, *extra]
        return deferToThread(run, argv, **kwargs)

    async def test_prints_one_json_object_that_authenticates(self) -> None:
        result = await self.cli("--scopes", "read,write")
        self.assertEqual(result.status, 0, result)
        self.assertEqual(result.err, "")
        self.assertTrue(result.out.endswith("\n"))
        self.assertEqual(result.out.count("\n"), 1, result.out)
        credential = json.loads(result.out)
        self.assertIsInstance(credential, dict)
        self.assertEqual(credential["scopes"], ["read", "write"])
        self.assertEqual(set(credential) >= {"id", "apiKey", "apiSecret"}, True)

        url = self.node.base + "/api/v1/projects"
        good = {"x-api-key": credential["apiKey"], "x-secret-key": credential["apiSecret"]}
        status, envelope = await deferToThread(http_get, url, good)
        self.assertEqual(status, 200, envelope)
        self.assertTrue(envelope["success"])
        bad = {"x-api-key": credential["apiKey"], "x-secret-key": "not-the-secret"}
        status, _ = await deferToThread(http_get, url, bad)
        self.assertEqual(status, 401)

    async def test_format_env_prints_export_lines_a_shell_can_eval(self) -> None:
        """Issue 9 item 8: a script gets the key and secret without parsing JSON."""
        result = await self.cli("--format", "env", "--scopes", "read")
        self.assertEqual(result.status, 0, result)
        self.assertEqual(result.err, "")
        self.assertRegex(result.out, r"^export SCHEDULER0_API_KEY=\S+\n"
                                     r"export SCHEDULER0_API_SECRET=\S+\n$")
        shell = subprocess.run(
            ["sh", "-c", 'eval "$1"; printf "%s\\n%s\\n" "$SCHEDULER0_API_KEY" '
                         '"$SCHEDULER0_API_SECRET"', "sh", result.out],
            capture_output=True, text=True, timeout=30, check=True)
        key, secret = shell.stdout.splitlines()
        url = self.node.base + "/api/v1/projects"
        status, envelope = await deferToThread(
            http_get, url, {"x-api-key": key, "x-secret-key": secret})
        self.assertEqual(status, 200, envelope)
        # a node started from the same shell accepts the two variables
        environ = {"SCHEDULER0_API_KEY": key, "SCHEDULER0_API_SECRET": secret}
        self.assertEqual(load_config(None, environ), load_config(None, {}))

    async def test_field_prints_bare_values_one_line_each(self) -> None:
        result = await self.cli("--field", "apiKey", "--field", "apiSecret", "--field", "scopes",
                                "--field", "id", "--scopes", "read,write")
        self.assertEqual(result.status, 0, result)
        key, secret, scopes, number = result.out.splitlines()
        self.assertEqual((json.loads(scopes), int(number) > 0), (["read", "write"], True))
        status, _ = await deferToThread(http_get, self.node.base + "/api/v1/projects",
                                        {"x-api-key": key, "x-secret-key": secret})
        self.assertEqual(status, 200)

    async def test_unknown_field_is_refused_before_a_credential_is_made(self) -> None:
        result = await self.cli("--field", "apikey")
        self.assertEqual(result.status, 2)
        self.assertEqual(result.out, "")
        self.assertEqual(result.err, "scheduler0: --field: 'apikey' is not a field of a "
                                     "credential; did you mean apiKey? expected one of id, "
                                     "apiKey, apiSecret, scopes, archived, dateCreated, "
                                     "dateModified, projectIds\n")
        result = await self.cli("--field", "apiKey", "--format", "env")
        self.assertEqual(result.status, 2)
        self.assertIn("--field and --format env cannot be combined", result.err)
        listed = await self.cli("--url", self.node.base, "--field", "id")
        self.assertEqual(listed.out, "1\n")  # the refused calls created nothing

    async def test_default_scopes_are_the_nodes(self) -> None:
        result = await self.cli()
        self.assertEqual(result.status, 0, result)
        self.assertEqual(json.loads(result.out)["scopes"], ["read", "write", "execute"])

    async def test_url_option_overrides_the_configuration(self) -> None:
        result = await self.cli("--url", self.node.base + "/", port=closed_port())
        self.assertEqual(result.status, 0, result)
        self.assertIn("apiKey", json.loads(result.out))

    async def test_wrong_secrets_exit_1_with_the_401_message(self) -> None:
        write_file(self.data_dir, NodeSecrets("secret-key", NODE_USER, "wrong-password"))
        result = await self.cli()
        self.assertEqual(result.status, 1)
        self.assertEqual(result.out, "")
        self.assertEqual(result.err, "scheduler0: 401 invalid peer credentials\n")

    async def test_secrets_from_the_environment_win_over_the_file(self) -> None:
        write_file(self.data_dir, NodeSecrets("secret-key", NODE_USER, "wrong-password"))
        result = await self.cli(environ={"SCHEDULER0_AUTH_PASSWORD": NODE_PASSWORD})
        self.assertEqual(result.status, 0, result)

    async def test_node_not_running(self) -> None:
        port = closed_port()
        result = await self.cli(port=port)
        self.assertEqual(result.status, 1)
        self.assertEqual(result.out, "")
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertIn(f"http://127.0.0.1:{port}/api/v1/credentials", result.err)
        self.assertIn("does not seem to be running", result.err)

    def test_missing_secrets(self) -> None:
        empty = self.mktemp()
        result = run(["create", "credential", "--port", str(self.node.number), "-d", empty])
        self.assertEqual(result.status, 1)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("scheduler0: node secrets are not set"),
                        result.err)
        self.assertIn("credential init", result.err)

    def test_configuration_error_exits_2_with_one_line(self) -> None:
        result = run(["create", "credential", "--set", "Port=http"])
        self.assertEqual(result.status, 2)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("scheduler0: configuration error: Port: http "),
                        result.err)

    def test_bad_scopes_and_url_exit_2(self) -> None:
        result = run(["create", "credential", "-d", self.data_dir, "--scopes", "read,root"])
        self.assertEqual(result.status, 2)
        self.assertIn("--scopes: root is not allowed", result.err)
        result = run(["create", "credential", "-d", self.data_dir, "--url", "ftp://x"])
        self.assertEqual(result.status, 2)
        self.assertIn("--url", result.err)

    async def test_redirects_are_not_followed(self) -> None:
        hits: list[bytes] = []

        class Redirect(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                hits.append(request.uri)
                request.setResponseCode(301)
                request.setHeader("location", "http://127.0.0.1:1/elsewhere")
                return b""

        port = reactor.listenTCP(0, Site(Redirect()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        result = await self.cli(port=port.getHost().port)
        self.assertEqual(result.status, 1)
        self.assertEqual(hits, [b"/api/v1/credentials"])
        self.assertIn("scheduler0: 301 the node redirected to http://127.0.0.1:1/elsewhere",
                      result.err)
