"""
C{scheduler0 credential init}: write the node secrets (SecretKey, AuthUsername,
AuthPassword) to <DataDir>/node-secrets.json, from options, a terminal or generated.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import ConfigError, load_config
from ..node_secrets import NodeSecrets, generate, secrets_path, write_file
from .common import (FORMATTER, PROG, SECRET_KEYS, CliError, Console, Parser,
                     add_config_options, answer_problem, config_hint, load)


def _check_secret(name: str, value: str) -> str | None:
    """The problem with a secret value in words, or None when it is acceptable."""
    try:
        load_config(None, {}, {name: value})
    except ConfigError as e:
        return answer_problem(e)
    return None


def _confirm(console: Console, prompt: str) -> bool:
    answer = console.ask(prompt).strip().lower()
    return answer in ("y", "yes")


def _prompt_secrets(console: Console, username: str | None, password: str | None,
                    secret_key: str | None) -> tuple[str, str, str, list[str]]:
    generated: list[str] = []
    fresh = generate()
    while username is None:
        answer = console.ask(f"AuthUsername [{fresh.auth_username}]: ").strip()
        answer = answer or fresh.auth_username
        problem = _check_secret("AuthUsername", answer)
        if problem:
            console.note(f"  {problem}")
        else:
            username = answer
    while password is None:
        answer = console.ask_hidden("AuthPassword (hidden; Enter = generate a random one): ")
        if not answer:
            password = fresh.auth_password
            generated.append("AuthPassword")
            break
        if console.ask_hidden("AuthPassword again: ") != answer:
            console.note("  the two passwords differ; try again")
            continue
        password = answer
    while secret_key is None:
        answer = console.ask_hidden("SecretKey (hidden; Enter = generate a random one): ")
        if not answer:
            secret_key = fresh.secret_key
            generated.append("SecretKey")
            break
        problem = _check_secret("SecretKey", answer)
        if problem:
            console.note(f"  {problem}")
        else:
            secret_key = answer
    return username, password, secret_key, generated


def cmd_credential_init(args: argparse.Namespace, console: Console) -> int:
    config = load(args, console)
    for name, value in (("AuthUsername", args.username), ("AuthPassword", args.password),
                        ("SecretKey", args.secret_key)):
        if value is not None:
            problem = _check_secret(name, value)
            if problem:
                raise CliError(f"--{_flag(name)}: {problem}", 2)
    path = secrets_path(config.data_dir)
    replacing = os.path.lexists(path)
    if replacing and not args.force:
        if not console.interactive:
            raise CliError(f"node secrets already exist in {path}; pass --force to replace them")
        if not _confirm(console, f"Node secrets already exist in {path}. Replace them? [y/N] "):
            raise CliError(f"left {path} unchanged")
    username, password, secret_key = args.username, args.password, args.secret_key
    generated: list[str] = []
    if args.generate or not console.interactive:
        missing = [name for name, value in (("AuthUsername", username),
                                            ("AuthPassword", password),
                                            ("SecretKey", secret_key)) if value is None]
        if missing and not args.generate:
            flags = ", ".join(f"--{_flag(name)}" for name in missing)
            raise CliError(f"no value for {flags} and stdin is not a terminal to ask; pass "
                           f"{flags} or --generate to create random ones", 2)
        fresh = generate()
        username = username if username is not None else fresh.auth_username
        if password is None:
            password, generated = fresh.auth_password, generated + ["AuthPassword"]
        if secret_key is None:
            secret_key, generated = fresh.secret_key, generated + ["SecretKey"]
    else:
        username, password, secret_key, generated = _prompt_secrets(
            console, username, password, secret_key)
    try:
        written = write_file(config.data_dir, NodeSecrets(
            secret_key=secret_key, auth_username=username, auth_password=password))
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None
    console.out(f"Wrote node secrets to {written} (mode 0600); AuthUsername is {username}")
    if generated:
        console.out(f"Generated {' and '.join(generated)}; they are kept only in that file.")
    for name in SECRET_KEYS:
        source = config.source.get(name, "default")
        if source != "default":
            console.note(f"note: {name} is also set ({_origin(source)}), which takes "
                         f"precedence over the file")
    if replacing:
        console.note(f"A running node keeps its old secrets until it is restarted "
                     f"({PROG} start{config_hint(args)}).")
    return 0


def _flag(name: str) -> str:
    return {"AuthUsername": "username", "AuthPassword": "password",
            "SecretKey": "secret-key"}[name]


def _origin(source: str) -> str:
    if source.startswith("env "):
        return f"environment {source[4:]}"
    return source



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `credential` command group and its `init` action."""
    credential = commands.add_parser(
        "credential", help="set the node secrets (credential init)", formatter_class=FORMATTER,
        description="The node secrets. The only action is `init`.")
    credential_actions = credential.add_subparsers(dest="action", metavar="<action>",
                                                   required=True, parser_class=parser_class)
    cinit = credential_actions.add_parser(
        "init", formatter_class=FORMATTER,
        help="write SecretKey, AuthUsername and AuthPassword to <DataDir>/node-secrets.json",
        description="""\
Set the node secrets: SecretKey, AuthUsername and AuthPassword. They are written to
<DataDir>/node-secrets.json (mode 0600, DataDir from the configuration below), where the node
and the other commands of this tool read them. Nodes and this tool authenticate to each other
with HTTP Basic auth using AuthUsername and AuthPassword.

Values come from the options below; any that are missing are asked for on a terminal (the
password and key without echo; Enter generates a random one) or, with --generate, generated.
Without a terminal and without --generate a missing value is an error. An existing file is
replaced only with --force (on a terminal you are asked instead). The password is never
printed. You only need this to choose the secrets yourself: a node started without them
generates this file on its first start. Values set in the configuration itself (SecretKey,
AuthUsername, AuthPassword in the file, environment or --set) take precedence over this file.""")
    add_config_options(cinit, "YAML configuration file (its DataDir says where the secrets go)")
    cinit.add_argument("--username", metavar="USER", help="the AuthUsername (no ':')")
    cinit.add_argument("--password", metavar="PASSWORD",
                       help="the AuthPassword; visible to other users in the process list, so "
                            "prefer the prompt or --generate")
    cinit.add_argument("--secret-key", metavar="KEY",
                       help="the SecretKey from which signing material is derived")
    cinit.add_argument("--generate", action="store_true",
                       help="generate random values for those not given (username: scheduler0)")
    cinit.add_argument("--force", action="store_true",
                       help="replace an existing node-secrets.json without asking")
    cinit.set_defaults(handler=cmd_credential_init)
