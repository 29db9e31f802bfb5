"""
Callback connections are not logged one by one (issue 11 item 4): a busy node opens and
closes receiver connections all the time, and a "Starting factory"/"Stopping factory" line
for each would bury the lines an operator reads.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.client import readBody
from twisted.web.server import Site

from scheduler0.config import Config
from scheduler0.execution.network_policy import NetworkPolicy
from scheduler0.node import callback_client


class _Receiver(Resource):
    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        return b"{}"


class _CountingSite(Site):
    """A Site that counts its open connections, so a test can wait until all have closed."""

    noisy = False  # only the client's lines are under test
    open_connections = 0

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.open_connections += 1
        lost = protocol.connectionLost

        def connection_lost(reason: Any) -> None:
            self.open_connections -= 1
            lost(reason)

        protocol.connectionLost = connection_lost
        return protocol


class CallbackConnectionLoggingTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.site = site = _CountingSite(_Receiver())
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}/"
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def factory_lines(self) -> list[str]:
        return [str(e.get("log_format", "")) for e in self.events
                if "factory" in str(e.get("log_format", "")).lower()]

    @defer.inlineCallbacks
    def test_pooled_and_fresh_callbacks_log_no_line_per_connection(self) -> None:
        http, pool = callback_client(reactor, Config(), NetworkPolicy([], []))
        for post in (http.post, http.post_fresh, http.post, http.post_fresh):
            response = yield post(self.url, data=b"{}")
            yield readBody(response)
        yield pool.closeCachedConnections()
        # every connection closed on both ends, so each client factory has stopped
        while self.site.open_connections:
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.factory_lines(), [])
