"""
End to end (issue 8 item 4): a client that opens hundreds of connections and sends half a
request on each cannot lock other clients out of a real C{twistd scheduler0} node, and its
connections are closed once their read deadline passes.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from ..raw_http import parse_response
from .daemon import Daemon, reactor, sleep

HALF_REQUEST = b"POST /api/v1/jobs HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Le"
# loopback addresses of their own (the fixture's own client keeps a connection from 127.0.0.1)
HOARDER = "127.0.0.3"
NEWCOMER = "127.0.0.2"
HEALTHCHECK = b"GET /api/v1/healthcheck HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"


class Client(Protocol):
    """Sends C{request} on connect and keeps whatever comes back until the node closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = bytearray()
        self.sent_at = 0.0
        self.closed_at: float | None = None
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)
        self.sent_at = time.monotonic()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any) -> None:
        self.closed_at = time.monotonic()
        self.closed.callback(bytes(self.received))

    def abort(self) -> None:
        if self.closed_at is None:
            self.transport.abortConnection()


def connect(port: int, request: bytes, source: str = "127.0.0.1") -> Deferred:
    """A L{Client} connected from C{source} to the node on 127.0.0.1:C{port}."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10,
                                  bindAddress=(source, 0))
    return connectProtocol(endpoint, Client(request))


async def healthcheck(port: int, source: str) -> Any:
    client = await connect(port, HEALTHCHECK, source)
    answer = client.closed
    answer.addTimeout(10, reactor)
    return parse_response(await answer)


class SlowClientTests(TestCase):
    timeout = 120

    HOARD = 300  # half-sent connections from one address
    PER_CLIENT = 100  # MaxConnectionsPerClient
    READ_TIMEOUT = 5.0  # RequestReadTimeout

    async def test_half_sent_requests_lock_no_one_out_and_are_closed_at_the_deadline(
            self) -> None:
        node = Daemon(self, config={"RequestReadTimeout": self.READ_TIMEOUT,
                                    "MaxConnectionsPerClient": self.PER_CLIENT})
        await node.start()
        hoard: list[Client] = []
        self.addCleanup(lambda: [client.abort() for client in hoard])
        for start in range(0, self.HOARD, 50):  # batches: the listen backlog is 50
            hoard += await gatherResults([connect(node.port, HALF_REQUEST, HOARDER)
                                          for _ in range(start, min(start + 50, self.HOARD))])

        # another address is answered at once, while the hoard still holds its connections
        response = await healthcheck(node.port, NEWCOMER)
        self.assertEqual(response.code, 200, response.raw)
        self.assertTrue(response.json()["success"])
        held = [client for client in hoard if client.closed_at is None]
        self.assertGreaterEqual(len(held), self.PER_CLIENT)

        # every hoarded connection is closed: past the per-client cap at once with a 429,
        # the others with a 408 once RequestReadTimeout has passed since their first byte
        answers = gatherResults([client.closed for client in hoard])
        answers.addTimeout(self.READ_TIMEOUT + 30, reactor)
        await answers
        codes = [parse_response(bytes(client.received)).code for client in hoard]
        self.assertEqual(codes.count(429), self.HOARD - self.PER_CLIENT)
        self.assertEqual(codes.count(408), self.PER_CLIENT)
        refused = next(c for c in hoard if parse_response(bytes(c.received)).code == 429)
        self.assertEqual(parse_response(bytes(refused.received)).json(), {
            "success": False,
            "data": f"too many open connections from this address (MaxConnectionsPerClient="
                    f"{self.PER_CLIENT}); close some or retry shortly"})
        timed_out = [c for c in hoard if parse_response(bytes(c.received)).code == 408]
        waited = [c.closed_at - c.sent_at for c in timed_out]  # type: ignore[operator]
        self.assertGreaterEqual(min(waited), self.READ_TIMEOUT - 0.5, waited)
        self.assertIn("RequestReadTimeout",
                      parse_response(bytes(timed_out[0].received)).json()["data"])

        # the hoarding address is served again once its connections are gone
        await sleep(0.2)
        response = await healthcheck(node.port, HOARDER)
        self.assertEqual(response.code, 200, response.raw)

        status = await node.stop()
        self.assertTrue(status.clean, node.log_text()[-2000:])
        self.assertNotIn("Traceback", node.log_text())
