"""
The C{scheduler0} command line: set a node up, start it and get API credentials from it.

Every command reads its settings exactly as the daemon (C{twistd scheduler0}) does: the same
C{--config}, C{--host}, C{--port}, C{--data-dir}, C{--log-level} and C{--set Key=Value}
options fed to L{scheduler0.config.load_config} with the process environment, so the
precedence is defaults < file < C{SCHEDULER0_*} environment < command line, and a bad value
stops the command with the same one-line message the daemon would print (exit status 2).

Exit statuses: 0 success; 1 the command failed (a file would be overwritten, the node refused
or could not be reached, ...); 2 bad usage or configuration; 130 interrupted.

All output goes through L{Console} so tests (and embedding callers) can supply their own
streams, environment and password prompt.

This module holds the entry point (C{scheduler0.cli:main}, the console script) and the
top-level parser; each command group lives in its own module (L{config_init},
L{config_systemd}, L{credential_init}, L{create_credential}, L{start}, L{version},
L{backup}, L{cluster}) with what it shares in L{common}.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from . import (backup, cluster, config_init, create_credential, credential_init, start,
               version)
from .common import FORMATTER, PROG, CliError, Console, Parser, package_version

__all__ = ["CliError", "Console", "build_parser", "main"]

_TOP_DESCRIPTION = """\
Scheduler0: a distributed cron-job server that calls HTTP callbacks on schedule.

Getting started on one machine:
  scheduler0 config init              write ./scheduler0.yml (asks questions on a terminal)
  scheduler0 start -c scheduler0.yml  run the node in the foreground (Ctrl-C stops it)
  scheduler0 create credential -c scheduler0.yml
                                      print a new API key and secret from the running node
  scheduler0 config systemd-unit      print a systemd unit that runs the node
  scheduler0 backup --to FILE         copy the running node's database to FILE
  scheduler0 restore --from FILE      seed a new node's DataDir from a backup
  scheduler0 cluster status           a cluster's nodes, leader and lag (also add, remove,
                                      promote, demote, transfer)

Files:
  ./scheduler0.yml                    the config file `config init` writes (--config PATH)
  <DataDir>/node-secrets.json         SecretKey, AuthUsername, AuthPassword (mode 0600), written
                                      by `credential init` or generated on the node's first start
  <DataDir>/                          the sqlite database; DataDir defaults to ./scheduler0-data

Settings: defaults < --config file < SCHEDULER0_<KEY> environment variables < command line
(--host, --port, --data-dir, --log-level, --set Key=Value). No file is read unless --config
is given. `scheduler0 config init --defaults` writes a file listing every key with what it
does, its default and its variable.

As a service: `scheduler0 config systemd-unit` prints a systemd unit that runs the node.

Every command takes --config, --host, --port, --data-dir, --log-level and --set and checks
the configuration they resolve to as the daemon does."""

_TOP_EPILOG = f"Run '{PROG} <command> --help' for a command's options."


def build_parser(console: Console | None = None) -> argparse.ArgumentParser:
    """The whole command line; help and usage errors are written to C{console}."""
    parser_class = type("Parser", (Parser,), {"console": console})
    parser = parser_class(prog=PROG, description=_TOP_DESCRIPTION, epilog=_TOP_EPILOG,
                          formatter_class=FORMATTER)
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True,
                                     parser_class=parser_class)

    for command_group in (config_init, credential_init, create_credential, start, version,
                          backup, cluster):
        command_group.add_parser(commands, parser_class)
    return parser


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None,
         environ: Mapping[str, str] | None = None,
         getpass: Callable[[str], str] | None = None) -> int:
    """Run one command and return its exit status (the console script exits with it).

    @param argv: the arguments after the program name; None = C{sys.argv[1:]}.
    @param environ: where C{SCHEDULER0_*} variables are read; None = C{os.environ}.
    @param getpass: reads an answer without echo; None = L{getpass.getpass}.
    """
    console = Console(stdin, stdout, stderr, environ, getpass)
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(console)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return int(args.handler(args, console))
    except CliError as e:
        console.error(e.message)
        return e.status
    except EOFError:
        console.note("")
        console.error("no answer (end of input); nothing was written")
        return 1
    except KeyboardInterrupt:
        console.note("")
        console.error("interrupted")
        return 130
