"""
C{scheduler0 version}: print the installed version.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import FORMATTER, PROG, Console, Parser, add_config_options, load, package_version


def cmd_version(args: argparse.Namespace, console: Console) -> int:
    load(args, console)  # like every command: a bad configuration exits 2
    console.out(f"{PROG} {package_version()}")
    return 0



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `version` command."""
    version = commands.add_parser(
        "version", help="print the version", formatter_class=FORMATTER,
        description=f"""\
Print the version of scheduler0.

Like every command it takes the configuration options and checks the configuration they
resolve to (a bad value stops it with one line and exit status 2), so a script can pass the
same options to each command. '{PROG} --version' prints the version without reading any
configuration.""")
    add_config_options(version, "YAML configuration file (checked, not otherwise used)")
    version.set_defaults(handler=cmd_version)
