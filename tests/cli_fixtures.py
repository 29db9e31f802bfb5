"""
Shared by the tests of the scheduler0 command line (test_cli_*, test_project_scopes):
L{run} calls C{scheduler0.cli.main()} with captured streams, an explicit environment and
scripted hidden answers; L{RunningNode} is a node built as the daemon builds it, its API on
a real loopback socket, for the commands that talk to one.
"""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from scheduler0 import cli
from scheduler0.config import Config
from scheduler0.node import build_node
from scheduler0.node_secrets import NodeSecrets


REPO_ROOT = str(Path(cli.__file__).resolve().parents[2])
NODE_USER = "operator"
NODE_PASSWORD = "node-password"


class Tty(io.StringIO):
    """Scripted answers on what looks like a terminal."""

    def isatty(self) -> bool:
        return True


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err

    def __repr__(self) -> str:
        return f"Result({self.status!r}, out={self.out!r}, err={self.err!r})"


def run(argv: list[str], *, stdin: Any = None, environ: dict[str, str] | None = None,
        hidden: list[str] | None = None) -> Result:
    """main() with captured streams, an explicit environment and scripted hidden answers."""
    out, err = io.StringIO(), io.StringIO()
    answers = list(hidden or [])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        if not answers:
            raise AssertionError(f"unexpected hidden prompt {prompt!r}")
        return answers.pop(0)

    status = cli.main(argv, stdin=io.StringIO("") if stdin is None else stdin, stdout=out,
                      stderr=err, environ={} if environ is None else environ, getpass=getpass)
    result = Result(status, out.getvalue(), err.getvalue())
    result.hidden_prompts = prompts  # type: ignore[attr-defined]
    return result


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class RunningNode:
    """A node built as the daemon builds it (its reactor, writer thread and callback
    client), its API site on a real socket on a free loopback port."""

    def __init__(self, case: TestCase) -> None:
        self.node = build_node(Config(data_dir=case.mktemp()),
                               NodeSecrets("secret-key", NODE_USER, NODE_PASSWORD), reactor,
                               listen=False)
        self.node.service.startService()
        case.addCleanup(self.node.service.stopService)
        self.port = reactor.listenTCP(0, self.node.site, interface="127.0.0.1")
        case.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port
        self.base = f"http://127.0.0.1:{self.number}"
