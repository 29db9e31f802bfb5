"""
In-process fixtures: a real sqlite store in a temp dir, the command log writing
synchronously, the API driven through treq's StubTreq (no sockets) and a Clock for time.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock

from scheduler0.api.app import Api, ApiSettings
from scheduler0.api.auth import Authenticator
from scheduler0.consensus.local import LocalCommandLog
from scheduler0.schedule.service import SchedulerService
from scheduler0.secrets_at_rest import SigningSecretBox
from scheduler0.store.service import StoreService

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


class ApiHarness:
    """
    @param scheduler: also run a real L{SchedulerService} on the Clock, observing the
        command log; the occurrences it dispatches collect in C{self.dispatched}.
    """

    def __init__(self, testcase: Any, start: float = T0, scheduler: bool = False,
                 url_policy: Any = None) -> None:
        self.testcase = testcase
        self.data_dir = testcase.mktemp()
        self.clock = Clock()
        self.clock.advance(start)
        # signing secrets sealed as a node seals them
        self.signing_box = SigningSecretBox(SECRET_KEY)
        self.store = StoreService(self.data_dir, signing_box=self.signing_box)
        self.store.startService()
        self.commands = LocalCommandLog(self.store.path, self.clock, threaded=False)
        testcase.successResultOf(self.commands.startService())
        self.dispatched: list[Any] = []
        self.scheduler = None
        if scheduler:
            reads = self.store.schedule_reader
            self.scheduler = SchedulerService(
                clock=self.clock,
                load=lambda: (reads.all_jobs(), reads.last_scheduled_times()),
                job_records=lambda ids: self.store.reader.jobs_by_ids(ids),
                dispatch=self.dispatched.extend,
            )
            self.commands.add_observer(self.scheduler.observe)
            self.scheduler.startService()
            testcase.addCleanup(self.scheduler.stopService)
        self.api = Api(
            reader=lambda: self.store.reader,
            commands=self.commands,
            clock=self.clock,
            authenticator=Authenticator(lambda: self.store.reader, PEER_USER, PEER_PASSWORD),
            settings=ApiSettings(default_misfire_grace=60, url_policy=url_policy,
                                 signing_box=self.signing_box),
            scheduler=self.scheduler,
        )
        self.stub = StubTreq(self.api.resource())
        self.headers: dict[str, str] = peer_headers()
        testcase.addCleanup(self.close)

    def close(self) -> None:
        self.testcase.successResultOf(self.commands.stopService())
        self.store.stopService()

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
