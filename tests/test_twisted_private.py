"""
Private Twisted APIs (issue 11 item 4): the node reaches none outside
L{scheduler0.twisted_private}, and what that module relies on still holds in the installed
Twisted. A failure here means Twisted changed: re-read the Twisted code the message names and
adapt scheduler0/twisted_private.py, rather than letting the node misbehave at run time.
"""

from __future__ import annotations

import ast
import os
import signal
from typing import Any, Iterator

from twisted.application import app
from twisted.internet import reactor
from twisted.scripts import twistd
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

import scheduler0
from scheduler0.twisted_private import forget_exit_signal

PACKAGE = os.path.dirname(os.path.abspath(scheduler0.__file__))
ISOLATED = os.path.join(PACKAGE, "twisted_private.py")

# private names still reached elsewhere, each to be replaced by a public API: an entry goes
# when its use does, and none may be added
PENDING: dict[str, set[str]] = {}

CHANGED = ("Twisted changed how twistd re-raises the signal that stopped the reactor: re-read "
           "twisted/scripts/twistd.py (runApp), twisted/application/app.py "
           "(ApplicationRunner.startReactor) and twisted/internet/base.py (sigTerm), then "
           "update scheduler0/twisted_private.py (forget_exit_signal). ")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own(node: ast.expr) -> bool:
    """C{self}, C{cls} or C{super()}: an object reaching its own private names."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


def private_uses(source: str) -> Iterator[tuple[int, str]]:
    """
    (line, name) for every private name a module reaches on an object not its own:
    C{x._name}, C{getattr(x, "_name")} (and setattr, hasattr, delattr), and
    C{from package import _name} or C{import package._module}.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value):
            yield node.lineno, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)
              and not _own(node.args[0])):
            yield node.lineno, node.args[1].value
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for part in node.module.split("."):
                if _private(part):
                    yield node.lineno, node.module
            for alias in node.names:
                if _private(alias.name):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(part) for part in alias.name.split(".")):
                    yield node.lineno, alias.name


class IsolationTests(SynchronousTestCase):
    def test_no_module_but_twisted_private_reaches_a_private_name_of_another_object(
            self) -> None:
        found = []
        for directory, _dirs, files in os.walk(PACKAGE):
            for name in sorted(files):
                path = os.path.join(directory, name)
                if not name.endswith(".py") or path == ISOLATED:
                    continue
                relative = os.path.relpath(path, PACKAGE)
                with open(path, encoding="utf-8") as f:
                    source = f.read()
                allowed = PENDING.get(relative, set())
                found += [f"scheduler0/{relative}:{line}: {used}"
                          for line, used in private_uses(source) if used not in allowed]
        self.assertEqual(found, [], "use a public API, or move the use to "
                                    "scheduler0/twisted_private.py with a test here")

    def test_the_scan_sees_each_way_of_reaching_a_private_name(self) -> None:
        source = (
            "from twisted.web.client import Agent, _HTTP11ClientFactory\n"
            "import twisted.internet._sslverify\n"
            "from twisted.internet._sslverify import x\n"
            "listener._raiseSynchronously = True\n"
            "channel = getattr(protocol, '_channel', protocol)\n"
            "reactor._exitSignal = None\n"
            "class A:\n"
            "    def f(self, other):\n"
            "        self._mine, cls._ours = super()._theirs, other._not_mine\n"
            "        return self.__class__, getattr(self, '_mine')\n")
        self.assertEqual(list(private_uses(source)), [
            (1, "_HTTP11ClientFactory"), (2, "twisted.internet._sslverify"),
            (3, "twisted.internet._sslverify"), (4, "_raiseSynchronously"), (5, "_channel"),
            (6, "_exitSignal"), (9, "_not_mine")])


class _StoppingReactor:
    """Stands in for the reactor in its signal handler: records what it is asked to do."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def callFromThread(self, f: Any, *args: Any) -> None:
        self.calls.append(f)

    def stop(self) -> None:
        pass


class ExitSignalTests(SynchronousTestCase):
    """What L{forget_exit_signal} relies on, in the installed Twisted."""

    def test_the_reactor_records_sigterm_where_forget_exit_signal_clears_it(self) -> None:
        reactor_class = type(reactor)  # the one twistd installs by default on this platform
        self.assertTrue(hasattr(reactor_class, "_exitSignal"), CHANGED + "(no _exitSignal)")
        stub = _StoppingReactor()
        reactor_class.sigTerm(stub, signal.SIGTERM)  # type: ignore[arg-type]
        self.assertEqual(getattr(stub, "_exitSignal", "missing"), signal.SIGTERM,
                         CHANGED + "(sigTerm does not record the signal)")
        self.assertEqual(stub.calls, [stub.stop])
        forget_exit_signal(stub)
        self.assertIsNone(stub._exitSignal)  # type: ignore[attr-defined]

    def _runner_after(self, forget: bool) -> Any:
        """twistd's runner after a reactor run that SIGTERM ended (then, with C{forget},
        the node's "after shutdown" trigger ran)."""
        from twisted.internet.interfaces import _ISupportsExitSignalCapturing

        @implementer(_ISupportsExitSignalCapturing)
        class SignalledReactor:
            _exitSignal = None

            def run(self) -> None:
                self._exitSignal = signal.SIGTERM
                if forget:
                    forget_exit_signal(self)

        class Runner:
            config = {"profile": False, "debug": False, "nodaemon": True}
            profiler = None

        runner = Runner()
        app.ApplicationRunner.startReactor(runner, SignalledReactor(), None, None)
        return runner

    def test_twistd_reads_the_signal_from_the_reactor_and_forgotten_it_reads_none(
            self) -> None:
        self.assertEqual(getattr(self._runner_after(forget=False), "_exitSignal", "missing"),
                         signal.SIGTERM, CHANGED + "(the runner no longer copies it)")
        self.assertIsNone(getattr(self._runner_after(forget=True), "_exitSignal", "missing"),
                          CHANGED)

    def test_twistd_re_raises_the_signal_its_runner_read_and_nothing_when_none(self) -> None:
        self.assertTrue(hasattr(twistd, "_SomeApplicationRunner"), CHANGED)
        self.assertTrue(hasattr(app, "_exitWithSignal"), CHANGED)
        raised: list[int] = []
        self.patch(app, "_exitWithSignal", raised.append)
        for recorded in (signal.SIGTERM, None):

            class Runner:
                def __init__(self, config: Any) -> None:
                    pass

                def run(self) -> None:
                    self._exitSignal = recorded

            self.patch(twistd, "_SomeApplicationRunner", Runner)
            twistd.runApp({})
        self.assertEqual(raised, [signal.SIGTERM], CHANGED + "(runApp)")


class ExitStatusTests(SynchronousTestCase):
    """L{exit_after_shutdown}: the process stops its reactor, runs what comes before, and
    ends with the status asked (reset-raft's 3), which twistd alone cannot do."""

    def test_a_process_ends_with_the_status_chosen_after_its_shutdown(self) -> None:
        import subprocess
        import sys
        script = (
            "from twisted.internet import reactor\n"
            "from scheduler0.twisted_private import exit_after_shutdown\n"
            "reactor.addSystemEventTrigger('before', 'shutdown', print, 'stopping')\n"
            "reactor.callWhenRunning(exit_after_shutdown, reactor, 3, lambda: print('before'))\n"
            "reactor.run()\n"
            "print('returned')\n")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=60, cwd=os.path.dirname(PACKAGE))
        self.assertEqual((done.returncode, done.stdout.split()), (3, ["stopping", "before"]),
                         done.stderr)
