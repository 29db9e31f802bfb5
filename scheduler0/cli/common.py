"""
What every C{scheduler0} command shares: the L{Console} it talks through, the L{CliError}
that stops it, the argparse parser class and the configuration options.

The configuration options are the daemon's (L{scheduler0.tap.Options}): the same names,
read by L{scheduler0.config.load_config} the same way, so a command and the node it talks
to agree on the configuration. They are declared here for argparse rather than read from
C{tap.Options} because importing L{scheduler0.tap} loads the whole node and installs the
reactor (about a second), which C{version} or C{config init} should not pay;
C{tests.test_cli_start} checks that the two declarations name the same options, and C{start}
spells its twistd command line from C{tap.Options} itself.
"""

from __future__ import annotations

import argparse
import getpass as getpass_module
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TextIO

from ..config import KEYS, Config, ConfigError, load_config

PROG = "scheduler0"
VERSION_FALLBACK = "0.1.0"
DEFAULT_CONFIG_FILE = "scheduler0.yml"
# The configuration keys that are secrets: `config init` and `credential init` treat them apart.
SECRET_KEYS = ("SecretKey", "AuthUsername", "AuthPassword")
KEY_BY_NAME = {key.name: key for key in KEYS}
FORMATTER = argparse.RawDescriptionHelpFormatter

#: The daemon's options with a value, as (long name, short flag, metavar, key, help): the
#: long names and short flags are those of L{scheduler0.tap.Options.optParameters}.
CONFIG_OPTIONS: tuple[tuple[str, str | None, str, str, str], ...] = (
    ("host", None, "HOST", "Host", "interface the HTTP API binds / is reached on (Host)"),
    ("port", "p", "N", "Port", "TCP port of the HTTP API (Port)"),
    ("data-dir", "d", "DIR", "DataDir",
     "directory for the database and node-secrets.json (DataDir)"),
    ("log-level", None, "LEVEL", "LogLevel", "debug, info, warn or error (LogLevel)"),
)


class CliError(Exception):
    """Stops a command: C{message} goes to stderr as C{scheduler0: <message>}."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Console:
    """The command's surroundings: streams, environment and how to read a hidden answer."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, environ: Mapping[str, str] | None = None,
                 getpass: Callable[[str], str] | None = None) -> None:
        self.stdin = sys.stdin if stdin is None else stdin
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.environ = os.environ if environ is None else environ
        self._getpass = getpass

    @property
    def interactive(self) -> bool:
        """True when a person can answer questions: stdin is a terminal."""
        try:
            return bool(self.stdin.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self.note(f"{PROG}: {message}")

    def ask(self, prompt: str) -> str:
        """One line from stdin (prompt on stderr, so stdout stays clean); EOFError at end."""
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def ask_hidden(self, prompt: str) -> str:
        """A line typed without echo (passwords and keys)."""
        if self._getpass is not None:
            return self._getpass(prompt)
        return getpass_module.getpass(prompt, stream=self.stderr)


class Parser(argparse.ArgumentParser):
    """argparse writing to the command's L{Console} instead of the process's streams."""

    console: Console | None = None

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        if self.console is None:
            super()._print_message(message, file)
            return
        stream = self.console.stderr if file is sys.stderr else self.console.stdout
        stream.write(message)
        stream.flush()

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n"
                     f"Run '{self.prog} --help' for the options.\n")


def package_version() -> str:
    """The installed distribution's version (a source checkout without metadata: fallback)."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("scheduler0")
    except (ImportError, PackageNotFoundError):
        return VERSION_FALLBACK


# --------------------------------------------------------------------------------------------
# Options shared with the daemon


def attribute(option: str) -> str:
    """The argparse attribute holding a daemon option (C{data-dir} -> C{data_dir})."""
    return option.replace("-", "_")


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {text!r}")
    return key.strip(), value


def add_config_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    """The daemon's options (--config, L{CONFIG_OPTIONS}, --set), added to a command."""
    group = parser.add_argument_group(
        "configuration (as for the daemon: defaults < --config file < SCHEDULER0_* "
        "environment < these options)")
    group.add_argument("-c", "--config", metavar="PATH", help=config_help)
    for option, short, metavar, _key, help_text in CONFIG_OPTIONS:
        flags = ([f"-{short}"] if short else []) + [f"--{option}"]
        group.add_argument(*flags, metavar=metavar, help=help_text)
    group.add_argument("--set", dest="assignments", metavar="Key=Value", action="append",
                       type=_assignment, default=[],
                       help="set any configuration key, e.g. --set JobExecutionTimeout=10 "
                            "(repeatable)")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command line as load_config overrides, like L{scheduler0.tap.Options.overrides}."""
    values: dict[str, Any] = dict(args.assignments)
    for option, _short, _metavar, key, _help in CONFIG_OPTIONS:
        if getattr(args, attribute(option)) is not None:
            values[key] = getattr(args, attribute(option))
    return values


def load(args: argparse.Namespace, console: Console) -> Config:
    """The configuration exactly as the daemon would read it; a bad value exits 2."""
    try:
        return load_config(args.config, console.environ, overrides(args))
    except ConfigError as e:
        raise CliError(f"configuration error: {e}", 2) from None


def config_hint(args: argparse.Namespace) -> str:
    """The --config part of a command suggested to the user (empty without --config)."""
    return f" --config {args.config}" if args.config else ""


def answer_problem(error: ConfigError) -> str:
    """A ConfigError about a typed answer, without the "(from command line)" it does not
    come from."""
    return str(error).removesuffix(" (from command line)")
