"""
Tests for the scheduler0 command line (scheduler0.cli): `scheduler0 start` (twistd in the
foreground with the daemon's own options), its start-up line, and the same refusal as
`twistd scheduler0` for the same bad configuration.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0 import tap
from scheduler0.cli import common as cli_common
from scheduler0.cli import start as cli_start
from scheduler0.node_secrets import secrets_path

from .cli_fixtures import REPO_ROOT, Result, closed_port, http_get, run


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
