"""
What one receiver answers never reaches another request, and every callback URL the API
accepts can be delivered (issue 10 items 2, 3 and 7).

- L{RequestUriTests}, L{CallbackUrlValidationTests}: the request target the client builds
  from a callback URL, and the 400s the API gives for a URL it could not deliver.
- L{CookieTests}, L{RedirectTests}, L{DeliverableUrlTests}: the client the node builds
  (C{scheduler0.node.callback_client}) and the executor, against real twisted.web receivers
  on loopback standing in for other tenants' and internal hosts.
"""

from __future__ import annotations

import random
import socket
from typing import Any, Callable

import treq.client
from twisted.internet import defer, reactor, task
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource

from scheduler0.config import Config
from scheduler0.execution.callback_client import UnsupportedURL, request_uri
from scheduler0.execution.executor import Executor
from scheduler0.execution.network_policy import NetworkPolicy
from scheduler0.execution.signing import SIGNATURE_HEADER
from scheduler0.node import callback_client
from scheduler0.schedule.occurrence import Occurrence

from .harness import ApiHarness
from .executor_fixtures import SECRET_1, SECRET_2, QuietSite, Store, make_executor


class RequestUriTests(SynchronousTestCase):
    def test_an_ipv6_literal(self) -> None:
        # treq (hyperlink's IDNA step) failed on it with InvalidCodepoint
        self.assertEqual(request_uri("http://[::1]:3001/"), b"http://[::1]:3001/")
        self.assertEqual(request_uri("https://[2001:db8::7]/hook?a=1"),
                         b"https://[2001:db8::7]/hook?a=1")

    def test_an_international_host_name_and_path(self) -> None:
        self.assertEqual(request_uri("https://b\u00fccher.example/pfad/\u00fc?q=\u00e4#frag"),
                         b"https://xn--bcher-kva.example/pfad/%C3%BC?q=%C3%A4")

    def test_escapes_and_reserved_characters_are_kept(self) -> None:
        self.assertEqual(request_uri("http://h:8/a%20b/c;d=e?x=%2F&y=a/b?c"),
                         b"http://h:8/a%20b/c;d=e?x=%2F&y=a/b?c")
        self.assertEqual(request_uri('http://h/a<b>"{}|^`'), b"http://h/a%3Cb%3E%22%7B%7D%7C%5E%60")
        self.assertEqual(request_uri("http://h"), b"http://h/")

    def test_user_info_is_refused(self) -> None:
        for url in ["http://user:secret@127.0.0.1:3000/", "http://user@h/", "http://@h/"]:
            with self.assertRaises(UnsupportedURL) as caught:
                request_uri(url)
            self.assertEqual(str(caught.exception),
                             "user:password@ in the URL is not supported")

    def test_a_host_name_twisted_cannot_connect_to(self) -> None:
        with self.assertRaises(UnsupportedURL) as caught:
            request_uri("http://my_service:3000/")
        self.assertTrue(str(caught.exception).startswith(
            "the host name 'my_service' is not a valid DNS name ("), str(caught.exception))


class CallbackUrlValidationTests(SynchronousTestCase):
    """Issue 10 item 7: accepted means deliverable; otherwise a 400 that says why."""

    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.pid = self.h.project()["id"]

    def create(self, url: str) -> tuple[int, Any]:
        return self.h.request("POST", "/jobs", {"projectId": self.pid, "spec": "@every 1m",
                                                "callbackUrl": url})

    def test_ipv6_literals_are_accepted(self) -> None:
        for url in ["http://[::1]:3001/", "https://[2606:4700::1111]/hook"]:
            code, envelope = self.create(url)
            self.assertEqual(code, 201, envelope)
            self.assertEqual(envelope["data"]["callbackUrl"], url)

    def test_user_info_is_refused_without_echoing_the_password(self) -> None:
        for url in ["http://user:hunter2@127.0.0.1:3000/cb", "http://hunter2@example.com/"]:
            code, envelope = self.create(url)
            self.assertEqual(code, 400, envelope)
            self.assertEqual(envelope["data"],
                             "callbackUrl: user:password@ in the URL is not supported; remove "
                             "it (a receiver knows a callback is genuine by its "
                             "X-Scheduler0-Signature header)")
            self.assertNotIn("hunter2", envelope["data"])
        self.assertEqual(self.h.ok("GET", "/jobs")["total"], 0)

    def test_a_host_name_that_could_never_be_connected_to_is_refused(self) -> None:
        code, envelope = self.create("http://my_service:3000/cb")
        self.assertEqual(code, 400, envelope)
        self.assertTrue(envelope["data"].startswith(
            "callbackUrl: 'http://my_service:3000/cb' cannot be delivered: the host name "
            "'my_service' is not a valid DNS name"), envelope["data"])

    def test_an_update_is_checked_too(self) -> None:
        job = self.h.ok("POST", "/jobs", {"projectId": self.pid, "spec": "@every 1m",
                                          "callbackUrl": "http://127.0.0.1:3000/"},
                        expect=201)
        code, envelope = self.h.request("PUT", f"/jobs/{job['id']}",
                                        {"callbackUrl": "http://u:p@127.0.0.1:3000/"})
        self.assertEqual(code, 400, envelope)
        self.assertIn("user:password@ in the URL is not supported", envelope["data"])


# -- real receivers ---------------------------------------------------------------------------


class Answering(Resource):
    """A receiver: records each request (method, path, headers) and answers with
    C{answer(request)}, which may set headers and returns the status."""

    isLeaf = True

    def __init__(self, answer: Callable[[Any], int] = lambda request: 200) -> None:
        super().__init__()
        self.answer = answer
        self.hits: list[dict] = []

    def render(self, request: Any) -> bytes:
        self.hits.append({
            "method": request.method, "path": request.path,
            "headers": {k.decode().lower(): [v.decode() for v in vs]
                        for k, vs in request.requestHeaders.getAllRawHeaders()},
        })
        request.setResponseCode(self.answer(request))
        return b"{}"


class CountingFactory(WrappingFactory):
    """A listener's factory that counts every connection it accepts (C{protocols} holds
    only the open ones)."""

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self.accepted = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.accepted += 1
        return super().buildProtocol(addr)


class RealReceiverCase(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.store = Store(self, reactor)
        self.store.project(1, SECRET_1)
        self.store.project(2, SECRET_2)
        self.rng = random.Random(10)
        self.listening: list[tuple[Any, CountingFactory]] = []
        self.factories: dict[str, CountingFactory] = {}
        self.addCleanup(self.close_receivers)

    def listen(self, resource: Resource, interface: str = "127.0.0.1") -> str:
        """Serve C{resource}; its base URL."""
        site = CountingFactory(QuietSite(resource))
        port = reactor.listenTCP(0, site, interface=interface)
        self.listening.append((port, site))
        host = f"[{interface}]" if ":" in interface else interface
        base = f"http://{host}:{port.getHost().port}"
        self.factories[base] = site
        return base

    @defer.inlineCallbacks
    def connections_before_now(self, base: str) -> Any:
        """
        How many connections the listener at C{base} had been sent before this call: a
        request of our own on a new connection, once answered, proves the listener has
        accepted every connection made before it (the kernel hands them to accept() in
        the order they were made). Ours is not counted.
        """
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        response = yield treq.client.HTTPClient(Agent(reactor, pool=pool)).get(
            base + "/later")
        yield response.content()
        return self.factories[base].accepted - 1

    @defer.inlineCallbacks
    def close_receivers(self) -> Any:
        for port, site in self.listening:
            yield port.stopListening()
            for connection in list(site.protocols):
                connection.transport.abortConnection()
            while site.protocols:
                yield task.deferLater(reactor, 0.01, lambda: None)

    def executor(self, policy: str = "default") -> Executor:
        config = Config(job_execution_timeout=5.0, callback_concurrency_per_target=4)
        http, pool = callback_client(reactor, config, NetworkPolicy([], [], policy))
        executor = make_executor(self, reactor, http, self.store, self.rng, timeout=5.0,
                                 per_target=4, retry_max=0)
        self.addCleanup(pool.closeCachedConnections)
        self.addCleanup(executor.stopService)
        return executor

    def occurrence(self, job_id: int, url: str, project_id: int = 1) -> Occurrence:
        self.store.job(job_id, url, project_id=project_id)
        return self.store.occurrence(job_id, float(int(reactor.seconds())))

    @defer.inlineCallbacks
    def deliver(self, executor: Executor, o: Occurrence) -> Any:
        """Submit C{o} and wait for its outcome; its execution record."""
        executor.submit([o])
        deadline = reactor.seconds() + 10
        while self.store.state(o.execution_id) not in ("succeeded", "dead", "failed"):
            if reactor.seconds() > deadline:
                self.fail(f"{o.execution_id} not finished within 10 s")
            yield task.deferLater(reactor, 0.005, lambda: None)
        return self.store.record(o.execution_id)


class CookieTests(RealReceiverCase):
    """Issue 10 item 3: no cookie jar, so nothing a receiver sets reaches another request."""

    @defer.inlineCallbacks
    def test_a_cookie_one_project_s_receiver_sets_is_never_sent(self) -> Any:
        def answer(request: Any) -> int:
            request.addCookie(b"session", b"tenant-one", path=b"/")
            request.setHeader(b"set-cookie2", b"other=1")
            return 200

        receiver = Answering(answer)
        base = self.listen(receiver)
        executor = self.executor()
        # project 1's receiver sets a cookie; then project 2's job on the same host, and
        # project 1's own job again
        for job_id, path, project_id in [(1, "/one", 1), (2, "/two", 2), (3, "/one", 1)]:
            record = yield self.deliver(executor, self.occurrence(job_id, base + path,
                                                                  project_id))
            self.assertEqual(record["state"], "succeeded", record)
        self.assertEqual(len(receiver.hits), 3)
        for hit in receiver.hits:
            self.assertNotIn("cookie", hit["headers"], hit)
            self.assertNotIn("cookie2", hit["headers"], hit)

    @defer.inlineCallbacks
    def test_nor_to_another_receiver_on_the_same_host(self) -> Any:
        # cookies know no ports: a jar would send this one to every port of localhost
        def answer(request: Any) -> int:
            request.addCookie(b"sid", b"x", path=b"/")
            return 200

        setter = Answering(answer)
        other = Answering()
        setter_base = self.listen(setter)
        other_port = self.listen(other).rsplit(":", 1)[1]
        executor = self.executor()
        yield self.deliver(executor, self.occurrence(1, setter_base.replace(
            "127.0.0.1", "localhost") + "/set"))
        record = yield self.deliver(executor, self.occurrence(
            2, f"http://localhost:{other_port}/next", project_id=2))
        self.assertEqual(record["state"], "succeeded", record)
        (hit,) = other.hits
        self.assertNotIn("cookie", hit["headers"], hit)


class RedirectTests(RealReceiverCase):
    """Issue 10 item 2: a 3xx is a failure that says so; its target gets nothing."""

    @defer.inlineCallbacks
    def test_a_redirect_to_another_listener_is_a_failure_and_not_followed(self) -> Any:
        elsewhere = Answering()
        elsewhere_base = self.listen(elsewhere)
        target = elsewhere_base + "/internal"
        for job_id, status in enumerate([301, 302, 303, 307, 308], start=1):
            def answer(request: Any, status: int = status) -> int:
                request.setHeader(b"location", target.encode())
                return status

            redirector = Answering(answer)
            base = self.listen(redirector)
            executor = self.executor()
            record = yield self.deliver(executor, self.occurrence(job_id, base + "/hook"))
            self.assertEqual((record["state"], record["lastStatus"]), ("dead", status))
            self.assertEqual(record["lastError"], f"HTTP {status}: redirects are not followed "
                                                  f"(Location: {target})")
            (hit,) = redirector.hits
            self.assertEqual(hit["method"], b"POST")
            self.assertIn(SIGNATURE_HEADER.lower(), hit["headers"])
        # a client that followed a redirect would have connected to its target before
        # the outcome was recorded: before a request we send now
        self.assertEqual((yield self.connections_before_now(elsewhere_base)), 0,
                         "the redirect was followed")
        self.assertEqual([hit["path"] for hit in elsewhere.hits], [b"/later"])

    @defer.inlineCallbacks
    def test_a_redirect_without_location(self) -> Any:
        base = self.listen(Answering(lambda request: 302))
        record = yield self.deliver(self.executor(), self.occurrence(1, base + "/hook"))
        self.assertEqual(record["lastError"],
                         "HTTP 302: redirects are not followed (the answer had no Location)")

    @defer.inlineCallbacks
    def test_a_long_location_is_cut(self) -> Any:
        long_target = "http://elsewhere.example/" + "x" * 1000

        def answer(request: Any) -> int:
            request.setHeader(b"location", long_target.encode())
            return 307

        base = self.listen(Answering(answer))
        record = yield self.deliver(self.executor(), self.occurrence(1, base + "/hook"))
        self.assertEqual(record["lastError"], "HTTP 307: redirects are not followed "
                                              f"(Location: {long_target[:300]}...)")


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (some sandboxes have no IPv6 loopback)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class DeliverableUrlTests(RealReceiverCase):
    """Issue 10 item 7: what the API accepts is delivered."""

    @defer.inlineCallbacks
    def test_an_ipv6_literal_is_delivered(self) -> Any:
        if not ipv6_loopback():
            raise SkipTest("no IPv6 loopback here")
        receiver = Answering()
        base = self.listen(receiver, interface="::1")
        self.assertTrue(base.startswith("http://[::1]:"), base)
        record = yield self.deliver(self.executor(), self.occurrence(1, base + "/hook"))
        self.assertEqual((record["state"], record["lastStatus"]), ("succeeded", 200), record)
        (hit,) = receiver.hits
        self.assertEqual(hit["path"], b"/hook")
        self.assertEqual(hit["headers"]["host"], [base.split("//", 1)[1]])

    @defer.inlineCallbacks
    def test_an_ipv6_literal_is_checked_against_the_policy(self) -> Any:
        if not ipv6_loopback():
            raise SkipTest("no IPv6 loopback here")
        receiver = Answering()
        base = self.listen(receiver, interface="::1")
        record = yield self.deliver(self.executor("public-only"),
                                    self.occurrence(1, base + "/hook"))
        self.assertEqual(record["state"], "dead", record)
        self.assertEqual(record["lastError"],
                         "refused to deliver to ::1: ::1 is the loopback address (::1/128), "
                         "refused by CallbackNetworkPolicy public-only")
        self.assertEqual(receiver.hits, [])

    @defer.inlineCallbacks
    def test_a_stored_url_with_user_info_fails_with_a_sentence(self) -> Any:
        # accepted by earlier versions: it fails, saying why, and nothing is sent
        receiver = Answering()
        base = self.listen(receiver)
        url = base.replace("http://", "http://user:secret@") + "/hook"
        record = yield self.deliver(self.executor(), self.occurrence(1, url))
        self.assertEqual((record["state"], record["errorCategory"]), ("dead", "permanent"))
        self.assertEqual(record["lastError"], "the callback URL cannot be sent: user:password@ "
                                              "in the URL is not supported")
        self.assertEqual(receiver.hits, [])
