"""
Tests for the scheduler0 command line (scheduler0.cli): `scheduler0 config init` (the
configuration file, from flags or questions on a terminal) and `scheduler0 config
systemd-unit`.
"""

from __future__ import annotations

import io
import os
import shlex
import stat
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.cli import config_systemd
from scheduler0.config import KEYS, load_config

from .cli_fixtures import Result, Tty, run


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
