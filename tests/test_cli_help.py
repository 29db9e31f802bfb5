"""
Tests for the scheduler0 command line (scheduler0.cli): help of every command, `version`,
the common options every command takes, and names that point to a command that works.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0 import cli, tap

from .cli_fixtures import REPO_ROOT, run


def leaf_parsers(parser: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command's own argparse parser, by its words (("config", "init"): ...)."""
    import argparse
    found: dict[tuple[str, ...], Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_parsers(sub, (*prefix, name)))
    return found or {prefix: parser}


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
            ("create", "credential"), ("start",), ("version",), ("backup",), ("restore",),
            ("cluster", "status"), ("cluster", "add"), ("cluster", "remove"),
            ("cluster", "promote"), ("cluster", "demote"), ("cluster", "transfer")})
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
