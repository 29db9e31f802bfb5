"""
`scheduler0 config systemd-unit --template` (issue 14 item 5): the template unit
scheduler0@.service for cluster nodes, shipped in the package (and copied in etc/cluster/),
printed with this installation's twistd, and accepted by systemd itself when
`systemd-analyze` is on the machine.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.cli import config_systemd

from .cli_fixtures import REPO_ROOT, run


def _sections(text: str) -> configparser.RawConfigParser:
    """The unit as sections of keys (systemd's syntax is close enough to INI for this)."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                          comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


class TemplateUnitTests(SynchronousTestCase):
    def printed(self, *extra: str) -> str:
        result = run(["config", "systemd-unit", "--template", *extra])
        self.assertEqual((result.status, result.err), (0, ""), result)
        return result.out

    def test_one_instance_per_node_with_this_installations_twistd(self) -> None:
        unit = _sections(self.printed())
        self.assertEqual(unit.sections(), ["Unit", "Service", "Install"])
        service = unit["Service"]
        twistd, *rest = shlex.split(service["ExecStart"])
        self.assertEqual(twistd, os.path.join(os.path.dirname(sys.executable), "twistd"))
        self.assertTrue(os.access(twistd, os.X_OK), twistd)
        self.assertEqual(rest, ["--nodaemon", "--pidfile=", "scheduler0",
                                "--config", "/etc/scheduler0/%i.yml",
                                "--data-dir", "/var/lib/scheduler0/%i"])
        # reset-raft exits non-zero and the node must come back: restarted on failure
        self.assertEqual(service["Restart"], "on-failure")
        self.assertEqual((service["User"], service["StateDirectory"], service["UMask"]),
                         ("scheduler0", "scheduler0/%i", "0077"))
        self.assertEqual(service["KillSignal"], "SIGTERM")
        self.assertEqual(unit["Install"]["WantedBy"], "multi-user.target")

    def test_the_rest_is_the_packaged_template_and_etc_has_a_copy(self) -> None:
        packaged = config_systemd.unit_template(config_systemd.TEMPLATE_RESOURCE)
        other = [line for line in packaged.splitlines() if not line.startswith("ExecStart=")]
        self.assertEqual([line for line in self.printed().splitlines()
                          if not line.startswith("ExecStart=")], other)
        self.assertEqual(Path(REPO_ROOT, "etc", "cluster", "scheduler0@.service").read_text(),
                         packaged)

    def test_other_options_follow_the_instances_config(self) -> None:
        exec_start = _sections(self.printed("--set", "LogLevel=debug"))["Service"]["ExecStart"]
        self.assertTrue(exec_start.endswith(
            " --config /etc/scheduler0/%i.yml --data-dir /var/lib/scheduler0/%i "
            "--set LogLevel=debug"), exec_start)

    def test_config_and_data_dir_are_the_instances(self) -> None:
        for option in (["--config", "node1.yml"], ["--data-dir", "/srv/s0"]):
            result = run(["config", "systemd-unit", "--template", *option])
            self.assertEqual((result.status, result.out), (2, ""), result)
            self.assertEqual(result.err.count("\n"), 1, result.err)
            self.assertIn("the instance name picks the config file (/etc/scheduler0/%i.yml)",
                          result.err)

    def test_systemd_accepts_it(self) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise self.skipTest("systemd-analyze is not installed (the parse test above "
                                "checks the sections and keys)")
        directory = Path(self.mktemp())
        directory.mkdir()
        for name in ("scheduler0@.service", "scheduler0@node1.service"):
            (directory / name).write_text(self.printed())
            verified = subprocess.run([analyze, "verify", str(directory / name)],
                                      capture_output=True, text=True, timeout=60)
            self.assertEqual((verified.returncode, verified.stdout, verified.stderr),
                             (0, "", ""), name)


class ClusterConfigsTests(SynchronousTestCase):
    def test_the_three_configs_load_and_list_the_same_cluster(self) -> None:
        """etc/cluster/node1-3.yml (README "Running a cluster") start as they are, with the
        shared secrets from the environment, each listing the same three nodes."""
        from scheduler0.config import load_config
        environ = {"SCHEDULER0_SECRET_KEY": "k" * 32, "SCHEDULER0_AUTH_USERNAME": "scheduler0",
                   "SCHEDULER0_AUTH_PASSWORD": "p" * 24}
        configs = [load_config(str(Path(REPO_ROOT, "etc", "cluster", f"node{n}.yml")), environ)
                   for n in (1, 2, 3)]
        self.assertEqual([c.node_id for c in configs], [1, 2, 3])
        self.assertEqual(len({c.replicas for c in configs}), 1)
        for config in configs:
            own = [r for r in config.replicas if r.node_id == config.node_id]
            self.assertEqual([(r.address, r.raft_address) for r in own],
                             [(config.http_base_url(), config.raft_address)])
