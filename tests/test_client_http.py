"""
scheduler0.client over real sockets: its http.client transport against a local HTTP server
thread that answers like a node (the envelope, 429 with Retry-After, a 400 message), and a
node that is not there. The fake sleep means no test waits.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.client import Client, PeerAuth, Scheduler0Error

from .integration.daemon import free_port


class _Handler(BaseHTTPRequestHandler):
    """Answers each request with the server's next scripted (status, headers, data)."""

    server: "FakeNode"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append({"method": self.command, "path": self.path,
                                 "headers": dict(self.headers.items()), "body": body})
        if not self.server.script:  # nothing scripted: hang up without an answer
            self.close_connection = True
            return
        status, headers, data = self.server.script.pop(0)
        payload = json.dumps({"success": status < 400, "data": data}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test.log
        pass


class FakeNode(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class HttpTransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = FakeNode()
        thread = threading.Thread(target=self.node.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            self.node.shutdown()
            self.node.server_close()
            thread.join(5)

        self.addCleanup(stop)
        self.sleeps: list[float] = []
        self.client = Client(self.node.url, api_key="key", api_secret="secret",
                             sleep=self.sleeps.append, timeout=10)

    def test_rate_limited_then_created(self) -> None:
        self.node.script = [
            (429, {"Retry-After": "2"}, "too many requests from this address; retry in 2 s"),
            (201, {}, [{"id": 11}, {"id": 12}])]
        ids = self.client.jobs.create_many([{"projectId": 1, "spec": "@every 1m"}] * 2)
        self.assertEqual(ids, [11, 12])
        self.assertEqual(self.sleeps, [2.0])
        first, second = self.node.seen
        self.assertEqual(first["body"], second["body"])
        self.assertEqual((second["method"], second["path"]), ("POST", "/api/v1/jobs"))
        self.assertEqual((second["headers"]["x-api-key"], second["headers"]["x-secret-key"]),
                         ("key", "secret"))
        self.assertEqual(json.loads(second["body"]), [{"projectId": 1, "spec": "@every 1m"}] * 2)

    def test_the_nodes_message_reaches_the_caller(self) -> None:
        self.node.script = [(400, {}, "spec: '61 * * * *' is not a valid cron spec")]
        with self.assertRaises(Scheduler0Error) as caught:
            self.client.jobs.create({"projectId": 1, "spec": "61 * * * *"})
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (400, "spec: '61 * * * *' is not a valid cron spec"))

    def test_query_and_peer_auth_on_the_wire(self) -> None:
        self.node.script = [(200, {}, {"total": 0, "offset": 0, "limit": 10, "jobs": []})]
        client = Client(self.node.url, auth=PeerAuth("u", "p"))
        page = client.jobs.list(project_id=3, limit=10)
        self.assertEqual((page.items, page.total), ([], 0))
        seen = self.node.seen[0]
        self.assertEqual(seen["path"], "/api/v1/jobs?projectId=3&limit=10&offset=0")
        self.assertEqual((seen["headers"]["Authorization"], seen["headers"]["X-Peer"]),
                         ("Basic dTpw", "cmd"))


    def test_a_connection_closed_before_an_answer(self) -> None:
        with self.assertRaises(Scheduler0Error) as caught:
            self.client.jobs.run(1)
        self.assertIsNone(caught.exception.status)
        self.assertTrue(caught.exception.message.startswith(
            f"the connection to {self.node.url} broke before an answer: "),
            caught.exception.message)
        self.assertEqual(len(self.node.seen), 1)  # not sent again


class UnreachableTests(SynchronousTestCase):
    def test_a_node_that_never_answers_is_a_timeout(self) -> None:
        with socket.socket() as listening:  # accepts connections (backlog), never answers
            listening.bind(("127.0.0.1", 0))
            listening.listen(1)
            port = listening.getsockname()[1]
            client = Client(f"http://127.0.0.1:{port}", api_key="k", api_secret="s",
                            timeout=0.2)
            with self.assertRaises(Scheduler0Error) as caught:
                client.health.check()
        self.assertEqual((caught.exception.status, caught.exception.message),
                         (None, f"no answer from http://127.0.0.1:{port} within 0.2 s"))

    def test_no_node_is_an_error_without_a_status(self) -> None:
        port = free_port()
        client = Client(f"http://127.0.0.1:{port}", api_key="k", api_secret="s", timeout=5)
        with self.assertRaises(Scheduler0Error) as caught:
            client.health.check()
        self.assertIsNone(caught.exception.status)
        self.assertTrue(caught.exception.message.startswith(
            f"could not reach http://127.0.0.1:{port}: "), caught.exception.message)
        self.assertTrue(str(caught.exception).startswith(
            f"GET /api/v1/healthcheck: could not reach http://127.0.0.1:{port}: "))

    def test_a_url_that_is_not_http(self) -> None:
        with self.assertRaises(Scheduler0Error) as caught:
            Client("ftp://node", api_key="k", api_secret="s").health.check()
        self.assertIn("is not an http:// or https:// URL", caught.exception.message)
