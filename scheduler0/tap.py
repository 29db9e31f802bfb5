"""
The twistd plugin's options and C{makeService}: C{twistd -n scheduler0 [--config PATH]}.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from .config import KEYS, Config, ConfigError, load_config
from .logs import DAEMON_OBSERVER, configure
from .consensus.cluster_secret import check_cluster_secrets
from .node import build_node
from .node_secrets import SecretsError, resolve, secrets_path
from .secrets_at_rest import NODE_UMASK, SigningKeyError, restrict_data_dir
from .store.database import DatabaseError
from .store.lock import DataDirError, DataDirLock, DataDirLockService
from .twisted_private import forget_exit_signal

log = Logger()

#: Exit status for a configuration error, the console script's "bad usage or configuration".
CONFIG_ERROR_STATUS = 2


def parse_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise usage.UsageError(f"--set expects KEY=VALUE, got {text!r}")
    return key.strip(), value


class Options(usage.Options):
    synopsis = "[--config PATH] [--host H] [--port N] [--data-dir DIR] [--set Key=Value ...]"
    longdesc = (
        "Run a Scheduler0 node. With no options at all it serves a single node on "
        "127.0.0.1:9091 and keeps its data in ./scheduler0-data/. Settings come from "
        "defaults < the YAML file given with --config < SCHEDULER0_* environment variables "
        "< these options. `scheduler0 config init --defaults` writes a file listing every key."
    )
    optParameters = [
        ["config", "c", None, "YAML configuration file."],
        ["host", None, None, "Interface to serve the API on (Host)."],
        ["port", "p", None, "Port to serve the API on (Port)."],
        ["data-dir", "d", None, "Directory for the database and node secrets (DataDir)."],
        ["log-level", None, None, "debug, info, warn or error (LogLevel)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["set"] = []

    def opt_set(self, assignment: str) -> None:
        """Set any configuration key, e.g. --set JobExecutionTimeout=10 (repeatable)."""
        self["set"].append(parse_assignment(assignment))

    def overrides(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self["set"])
        for option, key in (("host", "Host"), ("port", "Port"), ("data-dir", "DataDir"),
                            ("log-level", "LogLevel")):
            if self[option] is not None:
                values[key] = self[option]
        return values

    def postOptions(self) -> None:
        try:
            self.config: Config = load_config(self["config"], os.environ, self.overrides())
        except ConfigError as e:
            # The same line and exit status as `scheduler0 start` and the other commands
            # (2: bad usage or configuration); SystemExit(message) would exit 1.
            sys.stderr.write(f"scheduler0: configuration error: {e}\n")
            sys.stderr.flush()
            raise SystemExit(CONFIG_ERROR_STATUS) from None
        parent = getattr(self, "parent", None)
        if parent is not None and not parent.get("logger"):
            configure(self.config.log_level, parent.get("logfile"), bool(parent.get("nodaemon")))
            parent["logger"] = DAEMON_OBSERVER


_SECRET_KEYS = frozenset(key.name for key in KEYS if key.secret)


def credential_command(options: Options) -> str:
    """The C{scheduler0 create credential} command line for this node: the options it was
    started with, repeated, so that the command reads the same configuration and reaches
    this node when pasted into a shell. A secret given with --set is not logged: it shows
    as <hidden>, to be replaced by hand."""
    argv = ["scheduler0", "create", "credential"]
    if options["config"]:
        argv += ["--config", options["config"]]
    for option in ("host", "port", "data-dir", "log-level"):
        if options[option] is not None:
            argv += [f"--{option}", str(options[option])]
    for key, value in options["set"]:
        argv += ["--set", f"{key}={'<hidden>' if key in _SECRET_KEYS else value}"]
    return shlex.join(argv)


def makeService(options: Options) -> Any:
    from twisted.internet import reactor

    config = options.config
    # everything the node creates (DataDir, the database and its -wal/-shm, the lock, the
    # node secrets) is readable by its user only, whatever the umask it was started with
    os.umask(NODE_UMASK)
    # before anything touches DataDir: a second node on it would deliver everything twice
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
        check_cluster_secrets(config)  # a cluster's nodes never generate their own
        node_secrets, created = resolve(config, create=True)
    except (DataDirError, SecretsError) as e:
        raise SystemExit(f"scheduler0: {e}")
    if created:
        log.info("generated node secrets in {path} (mode 0600)",
                 path=secrets_path(config.data_dir))
    try:
        node = build_node(config, node_secrets, reactor).service
    except (DatabaseError, SigningKeyError) as e:
        raise SystemExit(f"scheduler0: {e}")
    # files an earlier version created with wider modes
    restrict_data_dir(config.data_dir)
    lock_service = DataDirLockService(lock)
    lock_service.setName("datadir-lock")
    lock_service.setServiceParent(node)
    # twistd re-raises SIGTERM after a clean shutdown, so the process would end "killed by
    # signal 15"; a clean stop must exit 0 (systemd, the issue's contract). Forget the
    # signal once the service tree has stopped.
    reactor.addSystemEventTrigger("after", "shutdown", forget_exit_signal, reactor)
    log.info(
        "Scheduler0 node {node_id} serving {url}/api/v1 with data in {data_dir}. "
        "Create an API credential with: {credential_command}",
        node_id=config.node_id, url=config.http_base_url(), data_dir=config.data_dir,
        credential_command=credential_command(options),
    )
    return node

