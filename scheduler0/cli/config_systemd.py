"""
C{scheduler0 config systemd-unit}: print the systemd unit that runs this installation's node.

The unit ships inside the package (C{scheduler0/data/scheduler0.service}), so a node
installed with pip has it without the source tree; this command prints it with C{ExecStart}
naming this installation's C{twistd} and the node options given to the command.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from importlib import resources
from typing import Any

from .common import (CONFIG_OPTIONS, FORMATTER, KEY_BY_NAME, PROG, CliError, Console, Parser,
                     add_config_options, attribute, load)

UNIT_RESOURCE = "data/scheduler0.service"
#: The template unit for cluster nodes (`--template`): one instance per node.
TEMPLATE_RESOURCE = "data/scheduler0@.service"
#: The template's node options, systemd specifiers kept: the instance name picks both.
TEMPLATE_OPTIONS = ("--config", "/etc/scheduler0/%i.yml", "--data-dir", "/var/lib/scheduler0/%i")
#: The config file the unit starts the node with when the command is given no --config.
UNIT_CONFIG = "/etc/scheduler0/scheduler0.yml"
# The options whose paths are made absolute: the unit runs in its own WorkingDirectory.
_PATH_OPTIONS = ("data-dir",)
_PLAIN_WORD = re.compile(r"[\w@%+=:,./$-]+")


def unit_template(resource: str = UNIT_RESOURCE) -> str:
    """The unit (or, with L{TEMPLATE_RESOURCE}, the template unit) as shipped in the
    package."""
    return resources.files("scheduler0").joinpath(resource).read_text(encoding="utf-8")


def twistd_program() -> str:
    """This installation's C{twistd}: the one beside the running interpreter (a virtualenv's
    bin/), else the one on PATH, else the unit's own default."""
    beside = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("twistd")
    if found:
        return os.path.abspath(found)
    return _exec_start(unit_template()).split()[0]


def _exec_start(unit: str) -> str:
    match = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    if match is None:
        raise CliError(f"internal error: the packaged {UNIT_RESOURCE} has no ExecStart line")
    return match.group(1)


def systemd_word(word: str) -> str:
    """One ExecStart argument as systemd reads it: C{%} and C{$} doubled (no specifier or
    variable expansion), and quoted with C escapes when it is not a plain word."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if _PLAIN_WORD.fullmatch(word):
        return escaped
    escaped = (escaped.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\t", "\\t"))
    return f'"{escaped}"'


def node_argv(args: argparse.Namespace) -> list[str]:
    """The node's options for the unit: --config (absolute; UNIT_CONFIG by default), the other
    options given, then each --set. A secret given with --set is refused: unit files are
    readable by every user."""
    argv = ["--config", os.path.abspath(args.config) if args.config else UNIT_CONFIG]
    for option, *_ in CONFIG_OPTIONS:
        value = getattr(args, attribute(option))
        if value is not None:
            argv += [f"--{option}", os.path.abspath(value) if option in _PATH_OPTIONS else value]
    for key, value in args.assignments:
        if getattr(KEY_BY_NAME.get(key), "secret", False):
            raise CliError(f"--set {key}: a unit file is readable by every user; keep secrets "
                           f"in <DataDir>/node-secrets.json ({PROG} credential init) or in "
                           f"the config file (mode 0600)", 2)
        argv += ["--set", f"{key}={value}"]
    return argv


def render_unit(args: argparse.Namespace) -> str:
    """The packaged unit with its ExecStart line for this installation and these options
    (the template unit's C{%i} options kept as they are, for systemd to expand)."""
    template = unit_template(TEMPLATE_RESOURCE if args.template else UNIT_RESOURCE)
    argv = [twistd_program(), "--nodaemon", "--pidfile=", "scheduler0"]
    options = node_argv(args)
    words = [systemd_word(word) for word in argv]
    if args.template:
        words += TEMPLATE_OPTIONS
        options = options[2:]  # the instance's config file instead of --config
    line = "ExecStart=" + " ".join(words + [systemd_word(word) for word in options])
    return template.replace(f"ExecStart={_exec_start(template)}", line, 1)


def cmd_config_systemd_unit(args: argparse.Namespace, console: Console) -> int:
    if args.template and (args.config is not None or args.data_dir is not None):
        raise CliError(f"--template: the instance name picks the config file "
                       f"({TEMPLATE_OPTIONS[1]}) and DataDir ({TEMPLATE_OPTIONS[3]}); leave "
                       f"out --config and --data-dir (or edit the printed unit)", 2)
    load(args, console)  # the options are checked as for every command (exit 2)
    console.stdout.write(render_unit(args))
    console.stdout.flush()
    return 0


def add_action(actions: Any, parser_class: type[Parser]) -> None:
    """The `config systemd-unit` action."""
    unit = actions.add_parser(
        "systemd-unit", formatter_class=FORMATTER,
        help="print a systemd unit that runs the node",
        description=f"""\
Print a systemd unit (the one shipped in the package) that runs this installation's node:
twistd --nodaemon --pidfile= scheduler0 as user scheduler0 in /var/lib/scheduler0, restarted
on failure, stopped with SIGTERM, with LimitNOFILE=65536 and UMask=0077.

ExecStart starts the node with --config {UNIT_CONFIG},
or with the file given with --config (made absolute), followed by the other options given.
They are checked first as the daemon checks them (a --config file given is read): a bad
value stops the command with one line and exit status 2. A secret given with --set is
refused: a unit file is readable by every user.

With --template it prints the template unit for cluster nodes, scheduler0@.service: the
instance name picks the config file ({TEMPLATE_OPTIONS[1]}) and DataDir
({TEMPLATE_OPTIONS[3]}), so `systemctl start scheduler0@node1` runs the node of
/etc/scheduler0/node1.yml; --config and --data-dir are refused with it.""",
        epilog=f"Example: {PROG} config systemd-unit > /etc/systemd/system/scheduler0.service\n"
               f"         {PROG} config systemd-unit --template > "
               f"/etc/systemd/system/scheduler0@.service")
    unit.add_argument("--template", action="store_true",
                      help="print the template unit scheduler0@.service (one instance per "
                           "cluster node)")
    add_config_options(unit, f"the config file the node starts with (default {UNIT_CONFIG})")
    unit.set_defaults(handler=cmd_config_systemd_unit)
