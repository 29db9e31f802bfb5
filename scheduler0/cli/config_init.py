"""
C{scheduler0 config init}: write a YAML configuration file holding every key, asking for
the main ones on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from ..config import Config, ConfigError, dump_yaml, load_config
from . import config_systemd
from .common import (DEFAULT_CONFIG_FILE, FORMATTER, KEY_BY_NAME, PROG, SECRET_KEYS, CliError,
                     Console, Parser, add_config_options, answer_problem, overrides)

# The keys `config init` asks for, in this order.
PROMPTED_KEYS = ("Host", "Port", "DataDir", "NodeId", "RaftAddress", "LogLevel")


def _prompt_config(console: Console, values: dict[str, Any], config: Config) -> dict[str, Any]:
    console.note("Answer each question or press Enter to keep the value in brackets.")
    for name in PROMPTED_KEYS:
        key = KEY_BY_NAME[name]
        console.note(f"{name}: {key.doc}")
        while True:
            current = getattr(config, key.attr)
            answer = console.ask(f"{name} [{current}]: ").strip()
            if not answer:
                break
            candidate = {**values, name: answer}
            try:
                config = load_config(None, {}, candidate)
            except ConfigError as e:
                console.note(f"  {answer_problem(e)}")
                continue
            values = candidate
            break
    return values


def _write_text(path: str, text: str, mode: int) -> None:
    """Write next to the target and rename, so a failed write leaves the old file intact."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            load_config(tmp, {}, None)
        except ConfigError as e:  # dump_yaml and load_config disagree: a bug, keep the old file
            raise CliError(f"internal error: the generated configuration does not load back: {e}")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def cmd_config_init(args: argparse.Namespace, console: Console) -> int:
    path = args.config or DEFAULT_CONFIG_FILE
    values = overrides(args)
    try:
        # The environment is deliberately left out: the file records what was chosen here,
        # and SCHEDULER0_* variables still apply on top of it when the node starts.
        config = load_config(None, {}, values)
    except ConfigError as e:
        raise CliError(f"configuration error: {e}", 2) from None
    if os.path.isdir(path):
        raise CliError(f"{path} is a directory; give the file to write with --config PATH")
    if os.path.lexists(path) and not args.force:
        raise CliError(f"{path} already exists; pass --force to overwrite it")
    if console.interactive and not args.defaults:
        values = _prompt_config(console, values, config)
        config = load_config(None, {}, values)
    text = dump_yaml(config.to_mapping())
    # A file holding a secret is readable by its owner only.
    has_secret = any(getattr(config, KEY_BY_NAME[name].attr) is not None
                     for name in SECRET_KEYS)
    try:
        _write_text(path, text, 0o600 if has_secret else 0o644)
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    console.out(f"Wrote {path}")
    console.out(f"Next: {PROG} credential init --config {path}   (node secrets, optional)")
    console.out(f"      {PROG} start --config {path}")
    return 0



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `config` command group and its `init` action."""
    config = commands.add_parser(
        "config", help="write a config file, print a systemd unit", formatter_class=FORMATTER,
        description="Configuration files: `init` writes the YAML file of the node, "
                    "`systemd-unit` prints a systemd unit that runs it.")
    config_actions = config.add_subparsers(dest="action", metavar="<action>", required=True,
                                           parser_class=parser_class)
    init = config_actions.add_parser(
        "init", formatter_class=FORMATTER, help="write a YAML file holding every key",
        description=f"""\
Write a YAML configuration file holding every key with a comment saying what it does,
its default and its environment variable: with --defaults and no other option, the
reference of every setting at its default. The node reads it when started with --config PATH.

The file goes to --config PATH, by default ./{DEFAULT_CONFIG_FILE} in the current directory;
an existing file is only replaced with --force. On a terminal (and without --defaults) it
asks for Host, Port, DataDir, NodeId, RaftAddress and LogLevel, showing the current value in
brackets: press Enter to keep it; an invalid answer is explained and asked again. Without a
terminal it writes the values given by the options below and the defaults, without asking.

SCHEDULER0_* environment variables are not copied into the file; they still apply on top of
it when the node starts. Secrets (SecretKey, AuthUsername, AuthPassword) are left unset in
the file unless given with --set; a file holding one is created with mode 0600.""",
        epilog=f"Example: {PROG} config init --defaults --port 9092 --data-dir /var/lib/scheduler0")
    add_config_options(init, f"the file to write (default ./{DEFAULT_CONFIG_FILE})")
    init.add_argument("--defaults", action="store_true",
                      help="do not ask questions; write the defaults and the values given by "
                           "options")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=cmd_config_init)
    config_systemd.add_action(config_actions, parser_class)
