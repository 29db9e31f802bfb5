"""
C{scheduler0 start}: run a node in the foreground, i.e. C{twistd --nodaemon --pidfile=
scheduler0} in this process with the daemon options given to the command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import FORMATTER, Console, Parser, add_config_options, attribute, load


def daemon_argv(args: argparse.Namespace) -> list[str]:
    """The command's configuration options spelled for the twistd plugin, by the names
    L{scheduler0.tap.Options} declares (in its order), then each --set.

    L{scheduler0.tap} is imported here, not at the top: it loads the node and installs the
    reactor, which twistd is about to do anyway but the other commands should not pay for."""
    from .. import tap

    argv: list[str] = []
    for option, *_ in tap.Options.optParameters:
        value = getattr(args, attribute(option))
        if value is not None:
            argv += [f"--{option}", value]
    for key, value in args.assignments:  # tap.Options.opt_set
        argv += ["--set", f"{key}={value}"]
    return argv


def twistd_options_class() -> type:
    """twistd's C{ServerOptions} with the scheduler0 plugin always among its sub-commands, so
    the node starts even where Twisted's plugin discovery misses
    C{twisted/plugins/scheduler0_plugin.py} (an unusual install, an unwritable plugin cache)."""
    from twisted.application.service import ServiceMaker
    from twisted.scripts import twistd

    class ServerOptions(twistd.ServerOptions):  # type: ignore[misc, valid-type, name-defined]
        @property
        def subCommands(self):  # type: ignore[no-untyped-def]
            commands = list(super().subCommands)
            if "scheduler0" not in self.loadedPlugins:
                maker = ServiceMaker("Scheduler0", "scheduler0.tap",
                                     "A distributed cron-job server.", "scheduler0")
                self.loadedPlugins["scheduler0"] = maker
                commands.append(("scheduler0", None, maker.options, maker.description))
            return iter(commands)

    return ServerOptions


def _run_twistd(argv: list[str]) -> int:
    """Run C{twistd} in this process with C{argv} (C{argv[0]} is the program name); returns
    its exit status."""
    from twisted.application import app
    from twisted.scripts import twistd

    saved = sys.argv
    sys.argv = argv
    try:
        app.run(twistd.runApp, twistd_options_class())
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        sys.stderr.write(f"{e.code}\n")
        return 1
    finally:
        sys.argv = saved
    return 0


def cmd_start(args: argparse.Namespace, console: Console) -> int:
    load(args, console)  # fail here, with status 2, before twistd starts
    return _run_twistd(["twistd", "--nodaemon", "--pidfile=", "scheduler0",
                        *daemon_argv(args)])



def add_parser(commands: Any, parser_class: type[Parser]) -> None:
    """The `start` command."""
    start = commands.add_parser(
        "start", formatter_class=FORMATTER, help="run a node in the foreground",
        description="""\
Run a Scheduler0 node in the foreground (twistd --nodaemon --pidfile= scheduler0 with the
options below); Ctrl-C or SIGTERM stops it cleanly. Logs go to stderr.

With no options it serves a single node on 127.0.0.1:9091 and keeps its database and
node-secrets.json (generated on first start, mode 0600) in ./scheduler0-data/. The
configuration is checked first: a bad value stops it with one line and exit status 2.
To run it as a service, `scheduler0 config systemd-unit` prints a systemd unit that runs it
(or run twistd directly).""")
    add_config_options(start, "YAML configuration file")
    start.set_defaults(handler=cmd_start)
