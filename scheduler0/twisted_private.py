"""
The private Twisted APIs the node cannot do without, and only here.

Twisted may change a private name in any release without a deprecation period. Each use
below says why no public API does the job, and tests/test_twisted_private.py fails loudly
(naming the Twisted code to re-read) when the installed Twisted no longer behaves as
assumed, rather than the node silently misbehaving.
"""

from __future__ import annotations

import os
from typing import Any, Callable


def forget_exit_signal(reactor: Any) -> None:
    """
    Make a clean stop after SIGTERM (or SIGINT) exit with status 0.

    The reactor's signal handler records the signal in C{reactor._exitSignal}; once the
    reactor has stopped, twistd's runner copies it (C{ApplicationRunner.startReactor}) and
    C{twistd.runApp} sends the signal to the process again with the default handler, so a
    node that drained and stopped cleanly would end "killed by signal 15". systemd and the
    issue's contract want exit status 0. Twisted offers no public way to keep the handler
    and not re-raise: called from an "after shutdown" trigger, this forgets the signal.
    """
    if getattr(reactor, "_exitSignal", None) is not None:
        reactor._exitSignal = None


def exit_after_shutdown(reactor: Any, status: int, before: Callable[[], None]) -> None:
    """
    Stop the reactor (the service tree drains as on SIGTERM), call C{before()}, then end
    the process with exit status C{status} (reset-raft: not 0, so systemd's
    Restart=on-failure starts the node again).

    twistd offers no public way to choose its exit status: once the reactor has stopped,
    C{runApp} returns and the process exits 0 (or re-raises the signal that stopped it).
    So the process ends from an "after shutdown" trigger, when every service has stopped,
    with C{os._exit}: nothing is left to clean up there.
    """
    def end() -> None:
        try:
            before()
        finally:
            os._exit(status)

    reactor.addSystemEventTrigger("after", "shutdown", end)
    reactor.stop()
