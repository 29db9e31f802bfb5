"""
C{scheduler0 version}: print the installed version.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import PROG, Console, Parser, package_version


def cmd_version(args: argparse.Namespace, console: Console) -> int:
    console.out(f"{PROG} {package_version()}")
    return 0



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `version` command."""
    version = commands.add_parser("version", help="print the version",
                                  description="Print the version of scheduler0.")
    version.set_defaults(handler=cmd_version)
