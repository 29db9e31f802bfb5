"""
In-process fixtures: nodes built by L{scheduler0.node.build_node}, as the daemon builds
them, over a real sqlite store in a temp dir, with what must not touch the real world
swapped: a C{task.Clock} for time, the command log writing synchronously
(L{InlineWriter}), the fake callback client of L{tests.fakes}, and no listening port (the
API is driven through treq's StubTreq).
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any, Callable

from treq.testing import StubTreq
from twisted.application.service import Service
from twisted.internet.task import Clock

from scheduler0.config import Config
from scheduler0.consensus.applier import InlineWriter, Writer
from scheduler0.node import Node, build_node
from scheduler0.node_secrets import NodeSecrets

from .fakes import FakeHTTP

# 2026-11-26T16:00:00Z
T0 = 1795708800.0
PEER_USER = "operator"
PEER_PASSWORD = "peer-password"
SECRET_KEY = "harness-secret-key"
BASE = "http://node.test/api/v1"


def peer_headers(kind: str = "cmd", user: str = PEER_USER,
                 password: str = PEER_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "X-Peer": kind}


def in_process_node(clock: Clock, data_dir: str, *, http: Any = None,
                    writer: Writer | None = None, read_memory: Callable[[], int] = lambda: 0,
                    rng: random.Random | None = None, secret_key: str = SECRET_KEY,
                    **config: Any) -> Node:
    """
    A node as the daemon builds it, not started, over C{data_dir}: its time is C{clock},
    its callbacks go to C{http} (a L{FakeHTTP} by default), its command log writes inline,
    its memory guard reads C{read_memory}, it listens on nothing. C{config}: L{Config}
    fields by attribute name (C{job_execution_retry_max=0}); the rest are the defaults.
    """
    return build_node(Config(data_dir=data_dir, **config),
                      NodeSecrets(secret_key, PEER_USER, PEER_PASSWORD),
                      clock=clock, http=FakeHTTP(clock) if http is None else http,
                      writer=InlineWriter() if writer is None else writer,
                      read_memory=read_memory, rng=rng, listen=False)


def start_node(node: Node, before: dict[Any, Callable[[], None]] | None = None) -> None:
    """
    Start the node's services in their order, as twistd does. C{before} maps a part
    (C{node.recovery}, say) to a function called just before that part starts: what a
    test sets up once the parts before it are running.
    """
    before = before or {}
    Service.startService(node.service)
    for service in node.service:
        if service in before:
            before[service]()
        service.startService()


def crash_node(testcase: Any, node: Node) -> None:
    """
    The process dies: nothing more is written (the command log refuses writes and the
    database is closed) and nothing more is planned; whatever was in flight is neither
    answered nor recorded. The node's parts are not stopped otherwise.
    """
    node.scheduler.stopService()
    testcase.successResultOf(node.commands.stopService())
    node.store.stopService()


def stop_node(testcase: Any, node: Node, clock: Clock) -> None:
    """
    Stop the node as on SIGTERM, in its order, without waiting for callbacks in flight
    (as if their drain had timed out): they are cancelled unrecorded, and their outbox
    entries send them again after a restart.
    """
    if not node.service.running:
        return
    node.executor.drain_timeout = 0
    d = node.service.stopService()
    clock.advance(0)
    testcase.successResultOf(d)


class ApiHarness:
    """
    A node built as the daemon builds it (L{in_process_node}), its API driven through
    StubTreq, its callbacks collected unanswered in C{self.http} (a L{FakeHTTP}).

    @param config: L{Config} fields by attribute name (C{callback_deny_networks=...}).
    """

    def __init__(self, testcase: Any, start: float = T0, **config: Any) -> None:
        self.testcase = testcase
        self.data_dir = testcase.mktemp()
        self.clock = Clock()
        self.clock.advance(start)
        self.http = FakeHTTP(self.clock)
        self.node = in_process_node(self.clock, self.data_dir, http=self.http, **config)
        start_node(self.node)
        self.store = self.node.store
        self.commands = self.node.commands
        self.scheduler = self.node.scheduler
        self.api = self.node.api
        # signing secrets sealed as a node seals them
        self.signing_box = self.node.api.settings.signing_box
        self.stub = StubTreq(self.api.resource())
        self.headers: dict[str, str] = peer_headers()
        testcase.addCleanup(self.close)

    def close(self) -> None:
        stop_node(self.testcase, self.node, self.clock)

    def sent(self) -> list[str]:
        """The execution ids whose callbacks were sent, in order, each once (a retry is
        the same occurrence sent again)."""
        ids = [eid for post in self.http.posts for eid in post.ids()]
        return list(dict.fromkeys(ids))

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """Send a request; returns (status, decoded envelope or None for an empty body)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        hdrs = dict(self.headers if headers is None else headers)
        hdrs.setdefault("Content-Type", "application/json")
        d = self.stub.request(method, BASE + path, data=data, headers=hdrs)
        self.stub.flush()
        response = self.testcase.successResultOf(d)
        content = self.testcase.successResultOf(response.content())
        envelope = json.loads(content) if content else None
        if envelope is not None:
            self.testcase.assertEqual(envelope["success"], response.code < 400, envelope)
        return response.code, envelope

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        code, envelope = self.request(method, path, body)
        self.testcase.assertEqual(code, expect, envelope)
        return envelope["data"] if envelope else None

    def credential(self, scopes: list[str] | None = None) -> dict[str, Any]:
        body = {"scopes": scopes} if scopes is not None else None
        return self.ok("POST", "/credentials", body, expect=201)

    def project(self, name: str = "sample project") -> dict[str, Any]:
        return self.ok("POST", "/projects", {"name": name, "description": "d"}, expect=201)


def key_headers(credential: dict[str, Any]) -> dict[str, str]:
    return {"x-api-key": credential["apiKey"], "x-secret-key": credential["apiSecret"]}
