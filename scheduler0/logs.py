"""
Log observers for the daemon: Twisted's text format, filtered at the configured LogLevel.

twistd builds its log observer only after the plugin's options are parsed, from the dotted
name in its C{logger} option, which must name a zero-argument factory. The plugin records
the level and destination here (L{configure}) and points twistd at L{daemon_observer}, so
C{LogLevel} is honoured while C{--logfile} and C{--nodaemon} keep their meaning.
"""

from __future__ import annotations

import sys
from typing import IO

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, textFileLogObserver)
from twisted.python.logfile import LogFile

LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
          "error": LogLevel.error}
DAEMON_OBSERVER = "scheduler0.logs.daemon_observer"

_settings = {"level": "info", "logfile": None, "nodaemon": True}


def filtered(observer: ILogObserver, level: str) -> ILogObserver:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    return FilteringLogObserver(observer, [predicate])


def configure(level: str, logfile: str | None, nodaemon: bool) -> None:
    _settings.update(level=level, logfile=logfile, nodaemon=nodaemon)


def daemon_observer() -> ILogObserver:
    """twistd's C{--logger} factory: stdout under C{--nodaemon} (or C{--logfile -}), else the
    log file (default C{twistd.log}), filtered at the configured level."""
    logfile = _settings["logfile"]
    stream: IO[str]
    if logfile == "-" or (not logfile and _settings["nodaemon"]):
        stream = sys.stdout
    else:
        stream = LogFile.fromFullPath(logfile or "twistd.log")  # type: ignore[assignment]
    return filtered(textFileLogObserver(stream), str(_settings["level"]))
