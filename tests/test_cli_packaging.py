"""
What a user who installed with pip, without the source tree, has (issue 16 items 2 and 3).

The package is built into a wheel with pip from a copy of the source tree, the wheel is
installed with pip into a fresh virtualenv (its dependencies come from the test's own
environment, added after the install), and the commands run there from an empty directory:
nothing of the clone can be read, so every file they need must be inside the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import scheduler0

REPO_ROOT = Path(scheduler0.__file__).resolve().parents[1]
SOURCES = ("setup.py", "README.md", "MANIFEST.in", "pyproject.toml", "setup.cfg",
           "scheduler0", "twisted")
UNIT = "scheduler0/data/scheduler0.service"


def clean_env() -> dict[str, str]:
    """This environment without what would make a child Python see the clone or this
    virtualenv's packages (trial's workers run with PYTHONPATH set: pip would then find the
    package "already installed" and install nothing)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SCHEDULER0_") and k not in ("PYTHONPATH", "PYTHONHOME")}


def build_wheel(workdir: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the source tree (building in the clone itself would
    leave build/ and *.egg-info there)."""
    source = workdir / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, source / name)
    out = workdir / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(source), "-w", str(out)],
                   check=True, capture_output=True, timeout=300, env=clean_env())
    (wheel,) = out.glob("scheduler0-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    """pip-install C{wheel} alone into a new virtualenv, then make this environment's
    packages (the dependencies) importable there after its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=120, env=clean_env())
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, timeout=300, env=clean_env())
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True, env=clean_env()).stdout.strip()
    Path(site, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


class Installation:
    """The wheel and the virtualenv it is installed in, made once per test run under trial's
    working directory (which trial clears at the next run)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True)
        try:
            self.wheel = build_wheel(workdir)
            self.venv = workdir / "venv"
            install(self.wheel, self.venv)
        except subprocess.CalledProcessError as e:
            raise AssertionError(f"{e.cmd} failed:\n{e.stdout}\n{e.stderr}") from None

    _made: "Installation | AssertionError | None" = None

    @classmethod
    def get(cls) -> "Installation":
        """The one installation of this run (a failed build fails every test, built once)."""
        if cls._made is None:
            try:
                cls._made = cls(Path(f"pip-install-{os.getpid()}").absolute())
            except AssertionError as e:
                cls._made = e
        if isinstance(cls._made, AssertionError):
            raise cls._made
        return cls._made


class PipInstallTests(SynchronousTestCase):
    def setUp(self) -> None:
        installation = Installation.get()
        self.wheel, self.venv = installation.wheel, installation.venv

    def run_installed(self, *argv: str) -> tuple[int, str, str, Path]:
        """Run C{argv} (a program of the virtualenv's bin/ and its arguments) in a new empty
        directory with no SCHEDULER0_* or PYTHONPATH from the test's environment."""
        cwd = Path(os.path.abspath(self.mktemp()))
        cwd.mkdir()
        env = clean_env()
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", os.defpath)])
        program = str(self.venv / "bin" / argv[0])
        completed = subprocess.run([program, *argv[1:]], cwd=cwd, env=env, capture_output=True,
                                   text=True, timeout=120)
        return completed.returncode, completed.stdout, completed.stderr, cwd

    def test_runs_from_the_installed_wheel(self) -> None:
        """The commands below import the installed package, never the clone."""
        status, out, err, _ = self.run_installed(
            "python", "-c", "import scheduler0, scheduler0.cli; print(scheduler0.__file__)")
        self.assertEqual(status, 0, err)
        self.assertTrue(out.strip().startswith(str(self.venv)), out)

    def test_wheel_holds_the_unit_and_the_plugin(self) -> None:
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
            self.assertIn("twisted/plugins/scheduler0_plugin.py", names)
            self.assertIn(UNIT, names)
            self.assertEqual(wheel.read(UNIT), (REPO_ROOT / UNIT).read_bytes())

    def test_config_init_defaults_writes_the_annotated_file(self) -> None:
        """`config init --defaults` writes, byte for byte, the annotated file the README links
        to (etc/scheduler0.yml in the source tree, generated from the same key table)."""
        status, out, err, cwd = self.run_installed("scheduler0", "config", "init", "--defaults")
        self.assertEqual(status, 0, err)
        self.assertEqual((cwd / "scheduler0.yml").read_text(),
                         (REPO_ROOT / "etc" / "scheduler0.yml").read_text())

    def test_systemd_unit_is_printable(self) -> None:
        status, out, err, _ = self.run_installed("scheduler0", "config", "systemd-unit")
        self.assertEqual((status, err), (0, ""))
        with zipfile.ZipFile(self.wheel) as wheel:
            shipped = wheel.read(UNIT).decode("utf-8")

        def without_exec_start(text: str) -> list[str]:
            return [line for line in text.splitlines() if not line.startswith("ExecStart=")]

        self.assertEqual(without_exec_start(out), without_exec_start(shipped))
        self.assertRegex(out, r"(?m)^ExecStart=/\S*twistd --nodaemon --pidfile= scheduler0 "
                              r"--config /etc/scheduler0/scheduler0.yml$")

    def test_help_names_nothing_outside_the_install(self) -> None:
        for command in ([], ["config", "init"], ["config", "systemd-unit"], ["start"],
                        ["credential", "init"], ["create", "credential"], ["version"]):
            status, out, err, _ = self.run_installed("scheduler0", *command, "--help")
            self.assertEqual(status, 0, (command, err))
            self.assertNotRegex(out, r"(?<![/\w])etc/", command)

    def test_version_takes_the_common_options(self) -> None:
        status, out, err, _ = self.run_installed("scheduler0", "version", "--port", "1",
                                                 "--data-dir", "d", "--set", "NodeId=2")
        self.assertEqual((status, err), (0, ""))
        self.assertRegex(out, r"^scheduler0 \d+\.\d+\.\d+\S*\n$")

    def test_twistd_and_start_refuse_a_bad_port_alike(self) -> None:
        """The installed plugin is found by twistd, and twistd exits as `scheduler0 start`
        does on a configuration error: status 2 and the same one line."""
        twistd = self.run_installed(
            "python", "-c", "import sys; sys.argv[0] = 'twistd'; "
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "scheduler0", "--port", "99999")
        start = self.run_installed("scheduler0", "start", "--port", "99999")
        self.assertEqual(twistd[:3], start[:3])
        status, out, err, _ = start
        self.assertEqual((status, out), (2, ""))
        self.assertRegex(err, r"^scheduler0: configuration error: Port: 99999 [^\n]*\n$")
