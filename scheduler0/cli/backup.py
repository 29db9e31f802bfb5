"""
C{scheduler0 backup --to FILE} and C{scheduler0 restore --from FILE}: an online backup of a
node's database, and a new node (or the nodes of a new cluster) seeded from one. The work
is in L{scheduler0.store.backup}; this module resolves DataDir (and SecretKey) like the
daemon and says what was done in one line.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..node_secrets import SecretsError, read_file
from ..secrets_at_rest import SigningSecretBox
from ..store.backup import BackupError, restore_backup, take_backup
from ..store.database import database_path
from ..store.lock import DataDirError
from .common import FORMATTER, PROG, CliError, Console, Parser, add_config_options, load


def cmd_backup(args: argparse.Namespace, console: Console) -> int:
    config = load(args, console)
    source = database_path(config.data_dir)
    try:
        saved = take_backup(source, args.to, force=args.force)
    except BackupError as e:
        raise CliError(str(e)) from None
    console.out(f"backed up {source} to {args.to} (mode 0600): {saved.describe()}")
    return 0


def cmd_restore(args: argparse.Namespace, console: Console) -> int:
    config = load(args, console)
    try:
        stored = read_file(config.data_dir)
    except SecretsError as e:
        raise CliError(str(e)) from None
    secret_key = config.secret_key or (stored.secret_key if stored else None)
    box = SigningSecretBox(secret_key) if secret_key else None
    try:
        restored = restore_backup(args.source, config.data_dir, box)
    except (BackupError, DataDirError) as e:
        raise CliError(str(e)) from None
    done = [f"restored {args.source} into {restored.path}: {restored.contents.describe()}"]
    if restored.migrated:
        done.append(restored.migrated)
    if restored.source_raft_index is not None:
        done.append(f"the backup's Raft index {restored.source_raft_index} was cleared, so "
                    "a new cluster's log starts at 1")
    console.out("; ".join(done))
    if box is None and restored.contents.projects:
        console.note(
            f"note: this DataDir has no SecretKey yet; before starting the node, copy the "
            f"source node's node-secrets.json into {config.data_dir} (or set SecretKey, "
            "AuthUsername and AuthPassword): a node with another SecretKey cannot open the "
            "backup's signing secrets and refuses to start")
    return 0


_BACKUP_DESCRIPTION = f"""\
Write a consistent copy of the node's database (<DataDir>/scheduler0.db, DataDir resolved
from the configuration below as the node does) to FILE, while the node runs: sqlite's
online backup API reads one snapshot from its own connection and the node keeps writing
beside it. A stopped node is backed up the same way. Run it as the node's user, on the
node's machine.

The copy is one standalone sqlite file, written to FILE.tmp, checked (quick_check) and
renamed to FILE, mode 0600: it holds the sealed signing secrets and the credential hashes
(keep node-secrets.json, which opens them, apart from it). An existing FILE is replaced
only with --force. It prints one line: what it saved (projects, jobs, executions, the
schema version, the last applied Raft index on a cluster node).

Restore it with '{PROG} restore --from FILE' (README, "Backup and restore")."""

_RESTORE_DESCRIPTION = f"""\
Seed a new node's DataDir (resolved from the configuration below, as the node does) with a
backup made by '{PROG} backup': the file is checked (quick_check, schema; an older schema
is migrated as start-up would), copied to <DataDir>/scheduler0.db (mode 0600), and the
source's Raft position is cleared so that a new cluster's log starts at 1. Then start the
node.

It refuses a DataDir that already has state (a database, a Raft journal or snapshot): move
that directory away first. It refuses while a node runs on the DataDir (its lock). When
this DataDir's SecretKey is known (node-secrets.json or the configuration), it refuses a
backup whose signing secrets that key cannot open; without one, copy the source node's
node-secrets.json into DataDir before starting the node.

A new cluster: restore the same backup on every node of it, then start them all
(README, "Backup and restore")."""


def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `backup` and `restore` commands."""
    backup = commands.add_parser(
        "backup", formatter_class=FORMATTER, description=_BACKUP_DESCRIPTION,
        help="copy a running node's database to a file (online, consistent)")
    add_config_options(backup, "YAML configuration file (its DataDir says which database)")
    backup.add_argument("--to", required=True, metavar="FILE",
                        help="the backup file to write (mode 0600)")
    backup.add_argument("--force", action="store_true", help="replace an existing FILE")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser(
        "restore", formatter_class=FORMATTER, description=_RESTORE_DESCRIPTION,
        help="seed a new node's DataDir from a backup")
    add_config_options(restore, "YAML configuration file (its DataDir says where to restore)")
    restore.add_argument("--from", dest="source", required=True, metavar="FILE",
                         help="a file written by `backup`")
    restore.set_defaults(handler=cmd_restore)
