"""
End to end (issue 10 items 1, 2, 3, 7): a real C{twistd scheduler0} node whose callbacks
are aimed at receivers on loopback standing in for internal hosts and other tenants.

  - by default, URLs that reach the node itself in disguise (C{0.0.0.0}, C{0}, C{[::]}) or
    the cloud metadata service (in any spelling) are refused at creation with a 400, and so
    is user info; loopback (the quick start) and IPv6 literals are delivered;
  - a receiver's cookie never reaches another project's callbacks, and a 303 to another
    listener is a failure that says so, with nothing sent to that listener;
  - C{CallbackNetworkPolicy: public-only} refuses loopback at creation, and a host name
    resolving to it at delivery.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from twisted.internet import reactor as _reactor
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from ..test_callback_safety import ipv6_loopback
from .daemon import Daemon, NodeClient, sleep

reactor: Any = _reactor

EVERY_SECOND = "* * * * * *"
FAST = {"JobExecutionTimeout": 5, "JobExecutionRetryDelay": 0.2, "JobExecutionRetryMax": 0,
        "RateLimitPerMinute": 0}


class Listener(Resource):
    """A receiver on loopback: records each request's method, path and headers and answers
    with C{answer(request)} (which may set headers; it returns the status)."""

    isLeaf = True

    def __init__(self, testcase: TestCase, answer: Callable[[Any], int] = lambda r: 200,
                 interface: str = "127.0.0.1") -> None:
        super().__init__()
        self.answer = answer
        self.hits: list[dict] = []
        site = Site(self)
        site.log = lambda request: None  # type: ignore[method-assign]
        site.noisy = False
        self.site = WrappingFactory(site)  # knows its open connections
        self.port_object = reactor.listenTCP(0, self.site, interface=interface)
        self.port = self.port_object.getHost().port
        host = f"[{interface}]" if ":" in interface else interface
        self.base = f"http://{host}:{self.port}"
        testcase.addCleanup(self.close)

    def render(self, request: Any) -> bytes:
        self.hits.append({
            "method": request.method.decode(), "path": request.path.decode(),
            "headers": {k.decode().lower(): [v.decode() for v in vs]
                        for k, vs in request.requestHeaders.getAllRawHeaders()},
        })
        request.setResponseCode(self.answer(request))
        return b"{}"

    async def close(self) -> None:
        await self.port_object.stopListening()
        for connection in list(self.site.protocols):
            connection.transport.abortConnection()
        while self.site.protocols:
            await sleep(0.01)


class SsrfTestCase(TestCase):
    timeout = 90

    async def start_node(self, **config: Any) -> tuple[Daemon, NodeClient]:
        node = Daemon(self, {**FAST, **config})
        await node.start()
        return node, node.client(peer=True)

    async def project(self, client: NodeClient, name: str) -> int:
        return (await client.ok("POST", "/projects", {"name": name}, expect=201))["id"]

    async def create(self, client: NodeClient, project_id: int, url: str,
                     spec: str = EVERY_SECOND) -> tuple[int, Any]:
        return await client.request("POST", "/jobs", {"projectId": project_id, "spec": spec,
                                                      "callbackUrl": url})

    async def wait(self, predicate: Callable[[], bool], what: str, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                self.fail(f"{what} not seen within {within} s")
            await sleep(0.05)

    async def last_execution(self, client: NodeClient, job_id: int,
                             within: float = 10) -> dict:
        """The newest finished execution record of a job, once there is one."""
        deadline = time.monotonic() + within
        while True:
            code, envelope = await client.request("GET", f"/jobs/{job_id}/executions")
            if code == 200:
                done = [e for e in envelope["data"]["executions"]
                        if e["state"] in ("dead", "failed", "succeeded")]
                if done:
                    return done[0]
            if time.monotonic() > deadline:
                self.fail(f"job {job_id} has no finished execution within {within} s")
            await sleep(0.1)


class DefaultPolicyTests(SsrfTestCase):
    async def test_disguised_local_and_metadata_urls_are_refused_loopback_works(self) -> None:
        internal = Listener(self)  # an internal service on the node's host
        node, client = await self.start_node()
        pid = await self.project(client, "tenant")
        port = internal.port
        hostile = [
            f"http://0.0.0.0:{port}/", f"http://0:{port}/", f"http://0x0:{port}/",
            f"http://00:{port}/",
            f"http://[::]:{port}/", f"http://[::ffff:0.0.0.0]:{port}/",
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[::ffff:169.254.169.254]/", "http://2852039166/",
            "http://0251.0376.0251.0376/", "http://0xa9fea9fe/", "http://169.254.43518/",
            "http://[fd00:ec2::254]/latest/meta-data/", "http://100.100.100.200/latest/",
            "http://192.0.0.192/opc/v2/", f"http://[fe80::1%25lo]:{port}/",
        ]
        for url in hostile:
            code, envelope = await self.create(client, pid, url)
            self.assertEqual(code, 400, f"{url}: {envelope}")
            self.assertTrue(envelope["data"].startswith("callbackUrl: "), envelope["data"])
            self.assertTrue(envelope["data"].endswith("; callbacks never go there"),
                            envelope["data"])
        code, envelope = await self.create(client, pid,
                                           f"http://user:pw@127.0.0.1:{port}/")
        self.assertEqual(code, 400, envelope)
        self.assertIn("user:password@ in the URL is not supported", envelope["data"])
        self.assertEqual((await client.ok("GET", "/jobs"))["total"], 0)

        # the quick start's loopback receiver, and an IPv6 literal, are delivered
        code, envelope = await self.create(client, pid, internal.base + "/callback")
        self.assertEqual(code, 201, envelope)
        await self.wait(lambda: len(internal.hits) >= 1, "a callback to 127.0.0.1")
        if ipv6_loopback():
            six = Listener(self, interface="::1")
            code, envelope = await self.create(client, pid, six.base + "/callback")
            self.assertEqual(code, 201, envelope)
            await self.wait(lambda: len(six.hits) >= 1, "a callback to [::1]")
            self.assertEqual(six.hits[0]["headers"]["host"], [f"[::1]:{six.port}"])
            record = await self.last_execution(client, envelope["data"]["id"])
            self.assertEqual((record["state"], record["lastStatus"]), ("succeeded", 200))
        self.assertEqual({h["path"] for h in internal.hits}, {"/callback"})

    async def test_cookies_and_redirects_stay_with_their_receiver(self) -> None:
        def sets_cookie(request: Any) -> int:
            request.addCookie(b"session", b"tenant-one", path=b"/")
            return 200

        elsewhere = Listener(self)  # an internal service a redirect points at
        target = elsewhere.base + "/admin"

        def redirects(request: Any) -> int:
            request.setHeader(b"location", target.encode())
            return 303

        one = Listener(self, sets_cookie)
        two = Listener(self)
        redirector = Listener(self, redirects)
        node, client = await self.start_node()
        first = await self.project(client, "one")
        second = await self.project(client, "two")
        # the same host name (ports do not separate cookies) for both tenants
        for pid, listener in ((first, one), (second, two)):
            url = listener.base.replace("127.0.0.1", "localhost") + "/hook"
            code, envelope = await self.create(client, pid, url)
            self.assertEqual(code, 201, envelope)
        code, envelope = await self.create(client, second, redirector.base + "/hook")
        self.assertEqual(code, 201, envelope)
        redirect_job = envelope["data"]["id"]
        await self.wait(lambda: len(one.hits) >= 3 and len(two.hits) >= 3,
                        "three callbacks to each tenant")
        for hit in one.hits + two.hits:
            self.assertNotIn("cookie", hit["headers"], hit)
        record = await self.last_execution(client, redirect_job)
        self.assertEqual((record["state"], record["lastStatus"]), ("dead", 303))
        self.assertEqual(record["lastError"],
                         f"HTTP 303: redirects are not followed (Location: {target})")
        await sleep(0.3)
        self.assertEqual(elsewhere.hits, [], "a redirect was followed")


class PublicOnlyTests(SsrfTestCase):
    async def test_loopback_is_refused_at_creation_and_at_connect_time(self) -> None:
        internal = Listener(self)
        node, client = await self.start_node(CallbackNetworkPolicy="public-only")
        pid = await self.project(client, "tenant")
        for url in [internal.base + "/cb", f"http://2130706433:{internal.port}/",
                    f"http://[::1]:{internal.port}/", "http://10.0.0.1/",
                    "http://192.168.1.1/", "http://100.64.0.1/", "http://[fd00::1]/"]:
            code, envelope = await self.create(client, pid, url)
            self.assertEqual(code, 400, f"{url}: {envelope}")
            self.assertIn("refused by CallbackNetworkPolicy public-only", envelope["data"])
        # a host name is looked at once resolved: accepted, never delivered
        code, envelope = await self.create(client, pid,
                                           f"http://localhost:{internal.port}/cb")
        self.assertEqual(code, 201, envelope)
        record = await self.last_execution(client, envelope["data"]["id"])
        self.assertEqual(record["state"], "dead", record)
        self.assertTrue(record["lastError"].startswith("refused to deliver to localhost: "),
                        record["lastError"])
        self.assertTrue(record["lastError"].endswith(
            "refused by CallbackNetworkPolicy public-only"), record["lastError"])
        self.assertEqual(internal.hits, [])
