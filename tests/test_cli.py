"""Tests for the scheduler0 command line (scheduler0.cli)."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0 import cli, tap
from scheduler0.cli import common as cli_common
from scheduler0.cli import config_systemd
from scheduler0.cli import start as cli_start
from scheduler0.config import KEYS, Config, load_config
from scheduler0.node import build_node
from scheduler0.node_secrets import NodeSecrets, read_file, secrets_path, write_file

REPO_ROOT = str(Path(cli.__file__).resolve().parents[2])
NODE_USER = "operator"
NODE_PASSWORD = "node-password"


class Tty(io.StringIO):
    """Scripted answers on what looks like a terminal."""

    def isatty(self) -> bool:
        return True


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    def __repr__(self) -> str:
        return f"Result({self.status!r}, out={self.out!r}, err={self.err!r})"


def run(argv: list[str], *, stdin: Any = None, environ: dict[str, str] | None = None,
        hidden: list[str] | None = None) -> Result:
    """main() with captured streams, an explicit environment and scripted hidden answers."""
    out, err = io.StringIO(), io.StringIO()
    answers = list(hidden or [])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        if not answers:
            raise AssertionError(f"unexpected hidden prompt {prompt!r}")
        return answers.pop(0)

    status = cli.main(argv, stdin=io.StringIO("") if stdin is None else stdin, stdout=out,
                      stderr=err, environ={} if environ is None else environ, getpass=getpass)
    result = Result(status, out.getvalue(), err.getvalue())
    result.hidden_prompts = prompts  # type: ignore[attr-defined]
    return result


def leaf_parsers(parser: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command's own argparse parser, by its words (("config", "init"): ...)."""
    import argparse
    found: dict[tuple[str, ...], Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_parsers(sub, (*prefix, name)))
    return found or {prefix: parser}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# --------------------------------------------------------------------------------------------


class ConfigInitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "scheduler0.yml")

    def test_defaults_writes_loadable_file_with_every_key(self) -> None:
        result = run(["config", "init", "--defaults", "--config", self.path])
        self.assertEqual(result.status, 0, result)
        self.assertIn(self.path, result.out)
        self.assertEqual(load_config(self.path, {}), load_config(None, {}))
        text = Path(self.path).read_text()
        for key in KEYS:
            self.assertRegex(text, rf"(?m)^(# )?{key.name}:", key.name)

    def test_default_path_is_current_directory(self) -> None:
        cwd = os.getcwd()
        os.chdir(self.dir)
        self.addCleanup(os.chdir, cwd)
        result = run(["config", "init", "--defaults"])
        self.assertEqual(result.status, 0, result)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "scheduler0.yml")))

    def test_refuses_to_overwrite_without_force(self) -> None:
        Path(self.path).write_text("Port: 9999\n")
        result = run(["config", "init", "--defaults", "--config", self.path])
        self.assertEqual(result.status, 1)
        self.assertEqual(Path(self.path).read_text(), "Port: 9999\n")
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertIn("--force", result.err)
        self.assertEqual(result.out, "")

    def test_refuses_before_asking(self) -> None:
        Path(self.path).write_text("Port: 9999\n")
        result = run(["config", "init", "--config", self.path], stdin=Tty("9100\n" * 6))
        self.assertEqual(result.status, 1)
        self.assertNotIn("[", result.err)

    def test_force_overwrites(self) -> None:
        Path(self.path).write_text("Port: 9999\n")
        result = run(["config", "init", "--defaults", "--force", "--config", self.path])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(load_config(self.path, {}).port, 9091)

    def test_flags_land_in_the_file(self) -> None:
        result = run(["config", "init", "--defaults", "-c", self.path, "--host", "0.0.0.0",
                      "--port", "9200", "--data-dir", "/var/lib/s0", "--log-level", "DEBUG",
                      "--set", "JobExecutionTimeout=12.5", "--set", "NodeId=3"])
        self.assertEqual(result.status, 0, result)
        config = load_config(self.path, {})
        self.assertEqual((config.host, config.port, config.data_dir, config.log_level,
                          config.job_execution_timeout, config.node_id),
                         ("0.0.0.0", 9200, "/var/lib/s0", "debug", 12.5, 3))
        self.assertEqual(config.source["Port"], f"file {self.path}")

    def test_file_with_a_secret_is_private(self) -> None:
        result = run(["config", "init", "--defaults", "-c", self.path,
                      "--set", "AuthPassword=hunter2"])
        self.assertEqual(result.status, 0, result)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(load_config(self.path, {}).auth_password, "hunter2")

    def test_environment_is_not_copied_into_the_file(self) -> None:
        result = run(["config", "init", "--defaults", "-c", self.path],
                     environ={"SCHEDULER0_PORT": "9999"})
        self.assertEqual(result.status, 0, result)
        self.assertEqual(load_config(self.path, {}).port, 9091)

    def test_not_a_terminal_uses_flags_without_reading_stdin(self) -> None:
        stdin = io.StringIO("9999\n")
        result = run(["config", "init", "-c", self.path, "--port", "9300"], stdin=stdin)
        self.assertEqual(result.status, 0, result)
        self.assertEqual(stdin.tell(), 0)
        self.assertEqual(load_config(self.path, {}).port, 9300)
        self.assertNotIn("[", result.err)

    def test_interactive_prompts_with_a_bad_answer_asked_again(self) -> None:
        answers = Tty("\n"             # Host: keep 127.0.0.1
                      "70000\n"        # Port: bad
                      "9300\n"         # Port again
                      "data2\n"        # DataDir
                      "\n"             # NodeId: keep the --set value
                      "127.0.0.1:7100\n"  # RaftAddress
                      "WARN\n")        # LogLevel
        result = run(["config", "init", "-c", self.path, "--set", "NodeId=4"], stdin=answers)
        self.assertEqual(result.status, 0, result)
        config = load_config(self.path, {})
        self.assertEqual((config.host, config.port, config.data_dir, config.node_id,
                          config.raft_address, config.log_level),
                         ("127.0.0.1", 9300, "data2", 4, "127.0.0.1:7100", "warn"))
        self.assertEqual(result.err.count("Port [9091]: "), 2, result.err)
        self.assertIn("Port: 70000 is not allowed; expected an integer from 1 to 65535",
                      result.err)
        for prompt in ("Host [127.0.0.1]: ", "DataDir [./scheduler0-data]: ", "NodeId [4]: ",
                       "RaftAddress [127.0.0.1:7071]: ", "LogLevel [info]: "):
            self.assertIn(prompt, result.err)
        self.assertEqual(answers.read(), "")

    def test_interactive_defaults_in_brackets_come_from_flags(self) -> None:
        result = run(["config", "init", "-c", self.path, "--port", "9500"], stdin=Tty("\n" * 6))
        self.assertEqual(result.status, 0, result)
        self.assertIn("Port [9500]: ", result.err)
        self.assertEqual(load_config(self.path, {}).port, 9500)

    def test_defaults_flag_skips_questions_on_a_terminal(self) -> None:
        answers = Tty("9999\n")
        result = run(["config", "init", "--defaults", "-c", self.path], stdin=answers)
        self.assertEqual(result.status, 0, result)
        self.assertEqual(answers.tell(), 0)
        self.assertEqual(load_config(self.path, {}).port, 9091)

    def test_end_of_input_writes_nothing(self) -> None:
        result = run(["config", "init", "-c", self.path], stdin=Tty("\n"))
        self.assertEqual(result.status, 1)
        self.assertFalse(os.path.exists(self.path))

    def test_configuration_error_exits_2_with_one_line(self) -> None:
        result = run(["config", "init", "--defaults", "-c", self.path, "--port", "0"])
        self.assertEqual(result.status, 2)
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("scheduler0: configuration error: Port: 0 "),
                        result.err)
        self.assertFalse(os.path.exists(self.path))

    def test_unknown_set_key_exits_2(self) -> None:
        result = run(["config", "init", "--defaults", "-c", self.path, "--set", "Prot=1"])
        self.assertEqual(result.status, 2)
        self.assertRegex(result.err, r"^scheduler0: configuration error: Prot: unknown key.*"
                                     r"did you mean Port\?.*\n$")


class ConfigSystemdUnitTests(SynchronousTestCase):
    """`scheduler0 config systemd-unit` (issue 16 item 2: the unit used to exist only in the
    source tree's etc/, which pip does not install)."""

    def unit_lines(self, result: Result) -> tuple[list[str], str]:
        """The printed unit's lines without ExecStart, and ExecStart's value."""
        self.assertEqual((result.status, result.err), (0, ""), result)
        lines = result.out.splitlines()
        exec_start = [line for line in lines if line.startswith("ExecStart=")]
        self.assertEqual(len(exec_start), 1, result.out)
        return ([line for line in lines if not line.startswith("ExecStart=")],
                exec_start[0].removeprefix("ExecStart="))

    def test_prints_the_packaged_unit_for_this_installation(self) -> None:
        template = config_systemd.unit_template()
        lines, exec_start = self.unit_lines(run(["config", "systemd-unit"]))
        self.assertEqual(lines, [line for line in template.splitlines()
                                 if not line.startswith("ExecStart=")])
        for needle in ("[Service]", "User=scheduler0", "KillSignal=SIGTERM",
                       "LimitNOFILE=65536", "UMask=0077", "WantedBy=multi-user.target"):
            self.assertIn(needle, lines)
        twistd, *rest = shlex.split(exec_start)
        self.assertEqual(rest, ["--nodaemon", "--pidfile=", "scheduler0",
                                "--config", "/etc/scheduler0/scheduler0.yml"])
        self.assertTrue(os.path.isabs(twistd), twistd)
        self.assertEqual(os.path.basename(twistd), "twistd")

    def test_uses_the_twistd_beside_the_interpreter(self) -> None:
        bin_dir = os.path.abspath(self.mktemp())
        os.makedirs(bin_dir)
        twistd = os.path.join(bin_dir, "twistd")
        Path(twistd).write_text("#!/bin/sh\n")
        os.chmod(twistd, 0o755)
        self.patch(sys, "executable", os.path.join(bin_dir, "python"))
        _, exec_start = self.unit_lines(run(["config", "systemd-unit"]))
        self.assertEqual(shlex.split(exec_start)[0], twistd)

    def test_options_go_into_exec_start_with_absolute_paths(self) -> None:
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        Path(workdir, "node.yml").write_text("Port: 9100\n")
        cwd = os.getcwd()
        os.chdir(workdir)
        self.addCleanup(os.chdir, cwd)
        result = run(["config", "systemd-unit", "-c", "node.yml", "--port", "9200",
                      "-d", "my 100% $data", "--set", "CallbackAllowNetworks=[10.0.0.0/8]"])
        _, exec_start = self.unit_lines(result)
        # systemd's own escapes: %% is a percent sign and $$ a dollar sign
        self.assertIn('"' + os.path.join(workdir, "my 100%% $$data") + '"', exec_start)
        words = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
        self.assertEqual(words[1:], [
            "--nodaemon", "--pidfile=", "scheduler0", "--config",
            os.path.join(workdir, "node.yml"), "--port", "9200",
            "--data-dir", os.path.join(workdir, "my 100% $data"),
            "--set", "CallbackAllowNetworks=[10.0.0.0/8]"])

    def test_configuration_error_exits_2_with_one_line(self) -> None:
        result = run(["config", "systemd-unit", "--set", "Prot=9091"])
        self.assertEqual(result.status, 2, result)
        self.assertEqual(result.out, "")
        self.assertEqual(result.err, "scheduler0: configuration error: Prot: unknown key (value "
                                     "9091) is not allowed; did you mean Port? (from command "
                                     "line)\n")

    def test_refuses_a_secret_in_the_unit(self) -> None:
        result = run(["config", "systemd-unit", "--set", "AuthPassword=hunter2-pw"])
        self.assertEqual(result.status, 2, result)
        self.assertEqual(result.out, "")
        self.assertNotIn("hunter2", result.err)
        self.assertIn("readable by every user", result.err)


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


# --------------------------------------------------------------------------------------------


class RunningNode:
    """A node built as the daemon builds it (its reactor, writer thread and callback
    client), its API site on a real socket on a free loopback port."""

    def __init__(self, case: TestCase) -> None:
        self.node = build_node(Config(data_dir=case.mktemp()),
                               NodeSecrets("secret-key", NODE_USER, NODE_PASSWORD), reactor,
                               listen=False)
        self.node.service.startService()
        case.addCleanup(self.node.service.stopService)
        self.port = reactor.listenTCP(0, self.node.site, interface="127.0.0.1")
        case.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port
        self.base = f"http://127.0.0.1:{self.number}"


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


# --------------------------------------------------------------------------------------------


class StartTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.calls: list[list[str]] = []

        def fake(argv: list[str]) -> int:
            self.calls.append(argv)
            return 7

        self.patch(cli_start, "_run_twistd", fake)

    def test_runs_twistd_in_the_foreground_with_the_same_options(self) -> None:
        config_path = self.mktemp()
        Path(config_path).write_text("Port: 9100\n")
        result = run(["start", "-c", config_path, "--host", "0.0.0.0", "-p", "9200",
                      "-d", "data", "--log-level", "debug", "--set", "NodeId=2",
                      "--set", "JobExecutionTimeout=5"])
        self.assertEqual(result.status, 7)
        self.assertEqual(self.calls, [[
            "twistd", "--nodaemon", "--pidfile=", "scheduler0", "--config", config_path,
            "--host", "0.0.0.0", "--port", "9200", "--data-dir", "data",
            "--log-level", "debug", "--set", "NodeId=2", "--set", "JobExecutionTimeout=5"]])

    def test_no_options(self) -> None:
        self.assertEqual(run(["start"]).status, 7)
        self.assertEqual(self.calls, [["twistd", "--nodaemon", "--pidfile=", "scheduler0"]])

    def test_misspelt_variable_exits_2_before_twistd(self) -> None:
        result = run(["start"], environ={"SCHEDULER0_JOB_EXECUTON_TIMEOUT": "10"})
        self.assertEqual(result.status, 2)
        self.assertEqual(self.calls, [])
        self.assertEqual(result.err, "scheduler0: configuration error: "
                                     "SCHEDULER0_JOB_EXECUTON_TIMEOUT: unknown variable (value "
                                     "10) is not allowed; did you mean "
                                     "SCHEDULER0_JOB_EXECUTION_TIMEOUT? (from the environment)\n")

    def test_configuration_error_exits_2_before_twistd(self) -> None:
        result = run(["start", "--port", "99999"])
        self.assertEqual(result.status, 2)
        self.assertEqual(self.calls, [])
        self.assertEqual(result.err.count("\n"), 1, result.err)
        self.assertTrue(result.err.startswith("scheduler0: configuration error: Port: 99999"),
                        result.err)

    def test_takes_exactly_the_daemons_options(self) -> None:
        """Every option of the twistd plugin (tap.Options) is one of the command's, with the
        same short flag, and none else: an option added to the daemon reaches `start` and the
        other commands, instead of being refused or silently dropped."""
        daemon = {(long_name, short) for long_name, short, *_ in tap.Options.optParameters}
        command = {("config", "c")} | {(long_name, short)
                                       for long_name, short, *_ in cli_common.CONFIG_OPTIONS}
        self.assertEqual(command, daemon)
        self.assertTrue(callable(getattr(tap.Options, "opt_set", None)))

    def test_plugin_is_available_without_discovery(self) -> None:
        options = cli_start.twistd_options_class()()
        options._getPlugins = lambda interface: iter(())
        names = [command[0] for command in options.subCommands]
        self.assertEqual(names, ["scheduler0"])
        self.assertEqual(options.loadedPlugins["scheduler0"].tapname, "scheduler0")
        plugin_options = options.loadedPlugins["scheduler0"].options()
        plugin_options.parseOptions(["--port", "9300", "--data-dir", self.mktemp()])
        self.assertEqual(plugin_options.config.port, 9300)


class StartUpHintTests(SynchronousTestCase):
    """The command the node logs at start for getting a credential (issue 9 item 8)."""

    def options(self, *argv: str) -> Any:
        from scheduler0 import tap
        self.patch(os, "environ", {})
        options = tap.Options()
        options.parseOptions(list(argv))
        return tap.credential_command(options)

    def test_repeats_the_options_the_node_was_started_with(self) -> None:
        config_path = self.mktemp()
        Path(config_path).write_text("Port: 9100\n")
        command = self.options("--config", config_path, "--host", "0.0.0.0", "-p", "9200",
                               "-d", "my data", "--set", "NodeId=1",
                               "--set", "CallbackAllowNetworks=[10.0.0.0/8, 192.168.0.0/16]")
        self.assertEqual(shlex.split(command), [
            "scheduler0", "create", "credential", "--config", config_path, "--host", "0.0.0.0",
            "--port", "9200", "--data-dir", "my data", "--set", "NodeId=1",
            "--set", "CallbackAllowNetworks=[10.0.0.0/8, 192.168.0.0/16]"])
        self.assertEqual(self.options(), "scheduler0 create credential")

    def test_never_logs_a_secret(self) -> None:
        command = self.options("--set", "AuthPassword=hunter2-pw", "--set", "SecretKey=k3y-k3y")
        self.assertNotIn("hunter2", command)
        self.assertNotIn("k3y", command)
        self.assertEqual(shlex.split(command)[3:], ["--set", "AuthPassword=<hidden>",
                                                    "--set", "SecretKey=<hidden>"])


class StartEndToEndTests(TestCase):
    """`scheduler0 start` in a real process, then `create credential` against it, exactly as
    the node's start-up line says (issue 9 item 8: the line used to drop the options the node
    was started with, so it asked another port and data directory)."""

    timeout = 60

    def test_start_then_create_credential(self) -> Any:
        data_dir = os.path.abspath(self.mktemp())
        port = closed_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER0_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
        log_path = os.path.abspath(self.mktemp())

        def scenario() -> tuple[Result, int, str]:
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "scheduler0.cli", "start", "--host", "127.0.0.1",
                     "--port", str(port), "--data-dir", data_dir,
                     "--set", "CallbackDenyNetworks=[169.254.0.0/16, fd00::/8]",
                     "--set", "JobExecutionTimeout=10"],
                    env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        http_get(f"http://127.0.0.1:{port}/api/v1/healthcheck", {})
                        break
                    except (OSError, ValueError):
                        if process.poll() is not None or time.monotonic() > deadline:
                            raise AssertionError(Path(log_path).read_text()) from None
                        time.sleep(0.1)  # polling a real process in a thread, not timing it
                # the command the node's log says to run, pasted as it is
                hint = re.search(r"Create an API credential with: (.*)$",
                                 Path(log_path).read_text(), re.MULTILINE)
                if hint is None:
                    raise AssertionError(Path(log_path).read_text())
                argv = shlex.split(hint.group(1))
                if argv[:3] != ["scheduler0", "create", "credential"]:
                    raise AssertionError(hint.group(0))
                result = run(argv[1:])
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    code = process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    code = process.wait()
            return result, code, Path(log_path).read_text()

        def check(outcome: tuple[Result, int, str]) -> None:
            result, code, log = outcome
            self.assertEqual(result.status, 0, (result, log))
            self.assertIn("apiSecret", json.loads(result.out))
            self.assertEqual(stat.S_IMODE(os.stat(secrets_path(data_dir)).st_mode), 0o600)
            self.assertIn(f"serving http://127.0.0.1:{port}/api/v1", log)
            self.assertIn("--set 'CallbackDenyNetworks=[169.254.0.0/16, fd00::/8]'", log)
            self.assertIn(code, (0, -signal.SIGTERM), log)

        return deferToThread(scenario).addCallback(check)


class DaemonParityTests(SynchronousTestCase):
    """Issue 16 item 3: `twistd scheduler0` and `scheduler0 start` given the same bad
    configuration exit with the same status (2, the commands' "bad usage or configuration";
    twistd used to exit 1) and print the same one line. Real processes, each in an empty
    working directory, so nothing else can make them differ."""

    def refused(self, argv: list[str], environ: dict[str, str], workdir: str) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER0_")}
        env.update(environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT,
                                                                     env.get("PYTHONPATH")])))
        completed = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                                   timeout=60)
        self.assertFalse(os.path.exists(os.path.join(workdir, "scheduler0-data")), argv)
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def assert_same_refusal(self, options: list[str], environ: dict[str, str] | None = None,
                            config: str | None = None) -> str:
        results = []
        for program in ([os.path.join(os.path.dirname(sys.executable), "twistd"),
                         "--nodaemon", "--pidfile=", "scheduler0"],
                        [sys.executable, "-m", "scheduler0.cli", "start"]):
            workdir = os.path.abspath(self.mktemp())
            os.makedirs(workdir)
            if config is not None:
                Path(workdir, "scheduler0.yml").write_text(config)
            results.append(self.refused([*program, *options], environ or {}, workdir))
        twistd, start = results
        self.assertEqual((twistd.status, twistd.out, twistd.err),
                         (start.status, start.out, start.err), results)
        self.assertEqual(twistd.status, 2, twistd)
        self.assertEqual(twistd.out, "")
        self.assertRegex(twistd.err, r"^scheduler0: configuration error: [^\n]+\n$")
        return twistd.err

    def test_unknown_key_in_the_file(self) -> None:
        line = self.assert_same_refusal(["--config", "scheduler0.yml"], config="Prot: 9091\n")
        self.assertIn("Prot: unknown key (value 9091) is not allowed; did you mean Port?", line)

    def test_bad_port_on_the_command_line(self) -> None:
        line = self.assert_same_refusal(["--port", "99999"])
        self.assertIn("Port: 99999 ", line)

    def test_misspelt_variable(self) -> None:
        line = self.assert_same_refusal([], {"SCHEDULER0_JOB_EXECUTON_TIMEOUT": "10"})
        self.assertIn("did you mean SCHEDULER0_JOB_EXECUTION_TIMEOUT?", line)


# --------------------------------------------------------------------------------------------


class HelpAndVersionTests(SynchronousTestCase):
    CASES = {
        (): ["config init", "credential init", "create credential", "start", "version",
             "node-secrets.json", "scheduler0.yml", "SCHEDULER0_"],
        ("config", "init"): ["--config", "--defaults", "--force", "--set", "--host", "--port",
                             "--data-dir", "./scheduler0.yml", "terminal"],
        ("credential", "init"): ["--config", "--force", "--username", "--password",
                                 "--secret-key", "--generate", "<DataDir>/node-secrets.json",
                                 "0600"],
        ("create", "credential"): ["--config", "--scopes", "--url", "--cafile", "--timeout",
                                   "apiKey", "x-api-key", "--format", "--field",
                                   "export SCHEDULER0_API_KEY=", "read,write,execute,admin"],
        ("start",): ["--config", "--host", "--port", "--data-dir", "--set", "--log-level",
                     "twistd --nodaemon", "./scheduler0-data"],
        ("version",): ["version", "--config", "--host", "--port", "--data-dir", "--set",
                       "--log-level", "scheduler0 --version"],
        ("config", "systemd-unit"): ["--config", "--host", "--port", "--data-dir", "--set",
                                     "--log-level", "/etc/scheduler0/scheduler0.yml",
                                     "/etc/systemd/system/scheduler0.service"],
    }

    def test_help_of_every_command(self) -> None:
        for command, needles in self.CASES.items():
            result = run([*command, "--help"])
            self.assertEqual(result.status, 0, (command, result))
            self.assertEqual(result.err, "")
            self.assertTrue(result.out.startswith("usage: scheduler0"), result.out)
            for needle in needles:
                self.assertIn(needle, result.out, (command, needle))

    def test_missing_command_is_a_usage_error(self) -> None:
        for argv in ([], ["config"], ["create"], ["credential", "show"]):
            result = run(argv)
            self.assertEqual(result.status, 2, (argv, result))
            self.assertIn("usage: scheduler0", result.err)
            self.assertEqual(result.out, "")

    def test_version(self) -> None:
        result = run(["version"])
        self.assertEqual(result.status, 0)
        self.assertRegex(result.out, r"^scheduler0 \d+\.\d+\.\d+\S*\n$")
        self.assertEqual(run(["--version"]).out, result.out)

    def test_version_takes_the_common_options(self) -> None:
        """Issue 16 item 3: the README says every command takes --config, --host, --port,
        --data-dir and --set; `version --port 1` used to be refused as a usage error."""
        config_path = self.mktemp()
        Path(config_path).write_text("Port: 9100\n")
        result = run(["version", "--config", config_path, "--host", "0.0.0.0", "--port", "1",
                      "--data-dir", "d", "--log-level", "debug", "--set", "NodeId=2"])
        self.assertEqual((result.status, result.err), (0, ""), result)
        self.assertEqual(result.out, run(["--version"]).out)

    def test_version_checks_the_configuration_like_every_command(self) -> None:
        result = run(["version", "--port", "0"])
        self.assertEqual(result.status, 2, result)
        self.assertEqual(result.out, "")
        self.assertRegex(result.err, r"^scheduler0: configuration error: Port: 0 [^\n]*\n$")

    def test_every_command_takes_the_common_options(self) -> None:
        """Each command's parser has the options the README lists for every command, so a
        script can pass the same ones to any of them (a new command without them fails)."""
        common = {"--config", "-c", "--host", "--port", "-p", "--data-dir", "-d", "--log-level",
                  "--set"}
        commands = leaf_parsers(cli.build_parser())
        self.assertEqual(set(commands), {
            ("config", "init"), ("config", "systemd-unit"), ("credential", "init"),
            ("create", "credential"), ("start",), ("version",)})
        for command, parser in commands.items():
            options = {flag for action in parser._actions for flag in action.option_strings}
            self.assertEqual(common - options, set(), command)

    def test_help_names_only_what_a_pip_install_has(self) -> None:
        """Issue 16 item 2: pip installs no etc/ directory, so no help text may send a user
        there (they named etc/scheduler0.yml and "the systemd unit in etc/")."""
        texts = {(): run(["--help"]).out, ("twistd", "scheduler0"): str(tap.Options())}
        for command in leaf_parsers(cli.build_parser()):
            texts[command] = run([*command, "--help"]).out
        for command, text in texts.items():
            self.assertIsNone(re.search(r"(?<![/\w])etc/", text), (command, text))

    def test_unknown_names_point_to_a_command_that_works(self) -> None:
        """A key or variable with no close spelling used to be answered "see
        etc/scheduler0.yml", a file pip does not install; the command named instead writes
        the file of every key."""
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        cwd = os.getcwd()
        os.chdir(workdir)
        self.addCleanup(os.chdir, cwd)
        for argv, environ in ((["version", "--set", "Zebra=1"], {}),
                              (["version"], {"SCHEDULER0_CONFIG": "x.yml"})):
            result = run(argv, environ=environ)
            self.assertEqual(result.status, 2, result)
            self.assertNotIn("etc/", result.err)
            command = re.search(r"run `([^`]+)`", result.err)
            self.assertIsNotNone(command, result.err)
            self.assertEqual(run(shlex.split(command.group(1))[1:] + ["--force"]).status, 0)
            text = Path(workdir, "scheduler0.yml").read_text()
            self.assertIn("Port: 9091", text)
            self.assertIn("SCHEDULER0_JOB_EXECUTION_TIMEOUT", text)

    def test_module_runs_as_a_script(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER0_")}
        env["PYTHONPATH"] = REPO_ROOT
        completed = subprocess.run([sys.executable, "-m", "scheduler0.cli", "start", "-p", "0"],
                                   env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(completed.returncode, 2, completed)
        self.assertEqual(completed.stdout, "")
        self.assertRegex(completed.stderr, r"^scheduler0: configuration error: Port: 0 [^\n]*\n$")
