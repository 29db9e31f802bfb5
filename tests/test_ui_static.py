"""
The dashboard's files at C{/ui/} (issue 15 item 3): served without auth, with their content
types and a strict Content-Security-Policy, from the package's list of files only (no path
reaches any other file), while the API calls the page makes still need a credential.

Requests go as raw bytes through the node's own site (a L{Clock}, a StringTransport): what
is asserted is what a browser would read, paths exactly as sent.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

import scheduler0
from scheduler0.api.ui import CONTENT_SECURITY_POLICY, UiAssets
from tests.harness import ApiHarness
from tests.raw_http import RawResponse, parse_response

UI_DIR = Path(scheduler0.__file__).resolve().parent / "data" / "ui"


def get(harness: ApiHarness, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> RawResponse:
    """One request to the node's site, as the bytes a client would send and read."""
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = harness.node.site.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    head = f"{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    protocol.dataReceived(head.encode("latin-1") + b"\r\n")
    harness.clock.advance(0)
    return parse_response(transport.value())


class StaticFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = ApiHarness(self)

    def assert_served(self, response: RawResponse, content_type: str) -> None:
        self.assertEqual(response.code, 200, response.raw[:500])
        self.assertEqual(response.headers["content-type"], content_type)
        self.assertEqual(response.headers["content-security-policy"], CONTENT_SECURITY_POLICY)
        self.assertEqual(response.headers["x-content-type-options"], "nosniff")
        self.assertEqual(response.headers["x-frame-options"], "DENY")

    def test_index_and_its_files_are_served_without_auth_with_their_types(self) -> None:
        index = get(self.node, "/ui/")
        self.assert_served(index, "text/html; charset=utf-8")
        self.assertEqual(index.body, (UI_DIR / "index.html").read_bytes())
        expected = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                    ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
        # every file the page names is one the node serves, with the right type
        named = re.findall(rb'(?:src|href)="([^"#?]+)"', index.body)
        self.assertEqual(sorted(named), [b"app.js", b"favicon.svg", b"style.css"])
        for name in sorted(p.name for p in UI_DIR.iterdir()):
            response = get(self.node, f"/ui/{name}")
            self.assert_served(response, expected[Path(name).suffix])
            self.assertEqual(response.body, (UI_DIR / name).read_bytes())

    def test_policy_forbids_inline_code_and_other_origins(self) -> None:
        policy = dict(part.strip().split(" ", 1)
                      for part in CONTENT_SECURITY_POLICY.split(";"))
        self.assertEqual(policy["default-src"], "'none'")
        for directive in ("script-src", "style-src", "connect-src"):
            self.assertEqual(policy[directive], "'self'", directive)
        self.assertEqual(policy["frame-ancestors"], "'none'")
        # and the page needs nothing it forbids: no inline script, style or handler, no CDN
        for path in UI_DIR.iterdir():
            # an XML namespace is a name, not something fetched
            text = re.sub(r'xmlns="[^"]*"', "", path.read_text(encoding="utf-8"))
            self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=)", text), path.name)
            self.assertIsNone(re.search(r"\sstyle=|\son[a-z]+=|<style", text), path.name)
            self.assertIsNone(re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text),
                              path.name)
            self.assertNotIn("innerHTML", text, path.name)

    def test_bare_ui_redirects_to_the_page(self) -> None:
        response = get(self.node, "/ui")
        self.assertEqual((response.code, response.headers["location"]), (301, "/ui/"))

    def test_the_api_calls_of_the_page_still_need_a_credential(self) -> None:
        self.assertEqual(get(self.node, "/api/v1/projects").code, 401)
        self.assertEqual(get(self.node, "/api/monitoring/scheduler/health").code, 401)

    def test_only_get_is_allowed(self) -> None:
        response = get(self.node, "/ui/app.js", method="POST",
                       headers={"Content-Length": "0"})
        self.assertEqual(response.code, 405)
        self.assertIn("GET", response.headers["allow"])

    def test_no_path_reaches_another_file(self) -> None:
        # files that exist beside (and above) the dashboard's: none may come out
        secrets = (UI_DIR.parent / "scheduler0.service").read_bytes()
        paths = ["/ui/../scheduler0.service", "/ui/..%2fscheduler0.service",
                 "/ui/%2e%2e/scheduler0.service", "/ui/%2E%2E%2Fscheduler0.service",
                 "/ui/..%5cscheduler0.service", "/ui/../../api/ui.py",
                 "/ui/..%2f..%2fapi%2fui.py", "/ui/../../../setup.py",
                 "/ui//etc/passwd", "/ui/%2fetc%2fpasswd", "/ui/./app.js",
                 "/ui/app.js/", "/ui/app.js%00.html", "/ui/APP.JS", "/ui/.",
                 "/ui/" + "../" * 40 + "etc/passwd", "/ui/x/../app.js"]
        for path in paths:
            response = get(self.node, path)
            self.assertIn(response.code, (400, 404), f"{path}: {response.raw[:300]!r}")
            self.assertEqual(response.headers["content-type"], "application/json", path)
            self.assertFalse(response.json()["success"], path)
            self.assertNotIn(b"root:", response.body, path)
            self.assertNotIn(secrets[:40], response.body, path)
            self.assertNotIn(b"import", response.body, path)

    def test_missing_file_names_where_the_dashboard_is(self) -> None:
        response = get(self.node, "/ui/nothing.js")
        self.assertEqual(response.code, 404)
        self.assertIn("open /ui/", response.json()["data"])


class AssetListTests(SynchronousTestCase):
    def test_every_file_is_in_the_package_data(self) -> None:
        """A pip-installed node has the files: setup.py's package_data globs match each."""
        setup = ast.parse((UI_DIR.parents[2] / "setup.py").read_text(encoding="utf-8"))
        call = next(node for node in ast.walk(setup) if isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "setup")
        package_data = ast.literal_eval(next(k.value for k in call.keywords
                                             if k.arg == "package_data"))
        for path in UI_DIR.iterdir():
            name = path.relative_to(UI_DIR.parents[1]).as_posix()
            # as setuptools globs: a * stays within one directory
            self.assertTrue(any(len(pattern.split("/")) == len(name.split("/")) and all(
                fnmatch.fnmatchcase(part, glob)
                for part, glob in zip(name.split("/"), pattern.split("/")))
                for pattern in package_data["scheduler0"]), name)

    def test_only_plain_files_of_known_kinds_are_listed(self) -> None:
        directory = Path(self.mktemp())
        (directory / "sub").mkdir(parents=True)
        for name in ("index.html", "app.js", "style.css", "notes.json", ".hidden.js",
                     "README", "sub/inner.js", "key.pem"):
            (directory / name).write_text(name)
        assets = UiAssets.from_directory(directory)
        self.assertEqual(sorted(assets.files), ["app.js", "index.html", "style.css"])
        self.assertEqual(assets.get("app.js").body, b"app.js")
