"""
The README's table of which scope each call needs ("Operating a node") is what the node
enforces, and lists every call (issue 9 item 8: a user scripting against the API could not
tell which key to create, and the default credential lacks C{admin}).

Each call is made in-process with a credential that lacks the listed scope (403) and with
one that has only that scope (not 401 or 403: whatever the call then answers, the scope let
it through).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.app import Api
from tests.harness import ApiHarness, key_headers

README = Path(__file__).resolve().parent.parent / "README.md"
SCOPES = ("read", "write", "execute", "admin")
ROW = re.compile(r"^\| (none|`(\w+)`) \| (.*) \|$")
CALL = re.compile(r"`([A-Z]+) (/[^`]*)`")
# what stands for a path parameter when a documented call is made
VALUES = {"target": "127.0.0.1:9", "executionId": "1-20261126T160000Z"}


def documented() -> dict[tuple[str, str], str | None]:
    """(method, path) -> scope (None: no credential) from the README's scope table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Operating a node\n", 1)[1].split("\n## ", 1)[0]
    calls: dict[tuple[str, str], str | None] = {}
    for line in section.splitlines():
        row = ROW.match(line)
        if row is None:
            continue
        scope = row.group(2)
        for method, path in CALL.findall(row.group(3)):
            if (method, path) in calls:
                raise AssertionError(f"{method} {path} is listed twice")
            calls[(method, path)] = scope
    return calls


def node_wide_documented() -> set[tuple[str, str]]:
    """The calls the README's table of credentials limited to projects says are node-wide
    (403 for such a credential)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Operating a node\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| 403: node-wide |")]
    if len(rows) != 1:
        raise AssertionError(f"expected one '403: node-wide' row, found {len(rows)}")
    return set(CALL.findall(rows[0]))


def words(path: Path) -> str:
    """A file's text with every run of whitespace made one space (line breaks vary)."""
    return " ".join(path.read_text(encoding="utf-8").split())


def shape(path: str) -> str:
    """A route or a documented path with every parameter replaced by {}."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path)


class ScopeTableTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.table = documented()

    def call(self, method: str, path: str, headers: dict[str, str]) -> int:
        url = "http://node.test" + re.sub(
            r"\{(\w+)\}", lambda m: VALUES.get(m.group(1), "1"), path)
        body = json.dumps({}).encode() if method in ("POST", "PUT") else None
        d = self.h.stub.request(method, url, data=body,
                                headers={"Content-Type": "application/json", **headers})
        self.h.stub.flush()
        response = self.successResultOf(d)
        self.successResultOf(response.content())
        return response.code

    def test_table_lists_every_call(self) -> None:
        self.assertTrue(self.table, "no scope table under 'Operating a node' in README.md")
        # the dashboard's files are no API call (README "Dashboard": public, by name only)
        routes = {(method, shape(rule.rule)) for rule in Api.app.url_map.iter_rules()
                  for method in rule.methods if method not in ("HEAD", "OPTIONS")
                  and rule.rule.split("/")[1] != "ui"
                  # peer-only, no scope (tests/test_cluster_api.py checks them)
                  and not rule.rule.startswith("/api/v1/cluster/")}
        listed = {(method, shape(path)) for method, path in self.table}
        self.assertEqual(sorted(routes - listed), [], "calls missing from the README table")
        self.assertEqual(sorted(listed - routes), [], "README lists calls the node lacks")

    def test_default_credential_lacks_admin(self) -> None:
        self.assertEqual(self.h.credential()["scopes"], ["read", "write", "execute"])
        self.assertIn("`read`, `write` and `execute`, not `admin`", words(README))

    def test_each_call_needs_the_documented_scope(self) -> None:
        self.h.credential()  # credential 1, which the credential calls act on (and delete)
        only = {scope: key_headers(self.h.credential([scope])) for scope in SCOPES}
        all_but = {scope: key_headers(self.h.credential([s for s in SCOPES
                                                         if s not in (scope, "admin")]))
                   for scope in SCOPES}
        self.h.project()  # project 1, so that calls on it get past the lookup
        for (method, path), scope in sorted(self.table.items(), key=str):
            where = f"{method} {path} ({scope or 'no credential'})"
            if scope is None:
                self.assertNotIn(self.call(method, path, {}), (401, 403), where)
                continue
            self.assertEqual(self.call(method, path, all_but[scope]), 403, where)
            code = self.call(method, path, only[scope])
            self.assertNotIn(code, (401, 403), f"{where}: {code}")

    def test_node_wide_calls_are_refused_to_a_credential_limited_to_projects(self) -> None:
        """Issue 10 item 4: the README's second table says which calls a credential limited
        to projects cannot make (403, whatever its scopes); it can make every other one on
        its own project."""
        node_wide = node_wide_documented()
        self.assertEqual(sorted(node_wide - set(self.table)), [],
                         "node-wide calls missing from the scope table")
        self.assertEqual(sorted(c for c in node_wide if self.table[c] is None), [])
        self.h.credential()  # credential 1, which the credential calls act on
        self.h.project()     # project 1: the credential's own
        limited = self.h.ok("POST", "/credentials", {"scopes": ["read", "write", "execute"],
                                                     "projectIds": [1]}, expect=201)
        headers = key_headers(limited)
        for (method, path), scope in sorted(self.table.items(), key=str):
            if scope is None:
                continue
            where = f"{method} {path}"
            code, message = self.call_for_message(method, path, headers)
            if (method, path) in node_wide:
                self.assertEqual(code, 403, where)
                self.assertIn("is node-wide", message, where)
            else:
                self.assertNotIn(code, (401, 403), f"{where}: {code} {message}")

    def call_for_message(self, method: str, path: str,
                         headers: dict[str, str]) -> tuple[int, str]:
        url = "http://node.test" + re.sub(
            r"\{(\w+)\}", lambda m: VALUES.get(m.group(1), "1"), path)
        body = json.dumps({}).encode() if method in ("POST", "PUT") else None
        d = self.h.stub.request(method, url, data=body,
                                headers={"Content-Type": "application/json", **headers})
        self.h.stub.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        data = json.loads(content)["data"] if content else ""
        return response.code, data if isinstance(data, str) else json.dumps(data)

    def test_signing_secret_is_not_readable_with_read(self) -> None:
        """Kept at `write` on purpose (README says why): a read-only key must not be able to
        sign callbacks that receivers would accept."""
        self.assertEqual(self.table[("GET", "/api/v1/projects/{id}/signing-secret")], "write")
        self.assertIn("a read-only key (a dashboard's, say) must not be able to forge one",
                      words(README))
