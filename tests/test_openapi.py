"""
Issue 15 item 1: the OpenAPI contract (L{scheduler0.api.openapi}) is valid OpenAPI 3.1,
names exactly the routes the node serves with the scope each one needs, and every node
serves it at C{GET /api/v1/openapi.json} without credentials. Whether the node keeps it is
the fuzz run's job (L{tests.integration.test_openapi_fuzz}).
"""

from __future__ import annotations

import json
import re

from openapi_spec_validator import validate
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.app import Api
from scheduler0.api.openapi import OPENAPI_PATH, build_document, installed_version

from .harness import ApiHarness
from .test_scopes_doc import documented, shape

METHODS = ("get", "put", "post", "delete", "patch")
#: the dashboard's pages (HTML for a browser, issue 15 item 3) are not API operations
NOT_API = re.compile(r"^/ui(/|$)")


def klein_routes() -> set[tuple[str, str]]:
    """(method, path in OpenAPI's spelling) of every API route in Klein's URL map."""
    routes = set()
    for rule in Api.app.url_map.iter_rules():
        if NOT_API.match(rule.rule):
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>",
                      lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
        routes |= {(method, path) for method in rule.methods or ()
                   if method not in ("HEAD", "OPTIONS")}
    return routes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {(method.upper(), path): item[method]
            for path, item in document["paths"].items()
            for method in METHODS if method in item}


class ContractTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.document = build_document()

    def test_valid_openapi_31(self) -> None:
        self.assertEqual(self.document["openapi"], "3.1.0")
        validate(self.document)  # raises with the first problem

    def test_every_route_and_nothing_else(self) -> None:
        documented_ops = set(operations(self.document))
        routes = klein_routes()
        self.assertEqual(sorted(routes - documented_ops), [], "routes missing from the contract")
        self.assertEqual(sorted(documented_ops - routes), [], "the contract names calls the "
                                                              "node lacks")

    def test_scopes_are_the_readmes(self) -> None:
        """The scope each operation names is the README table's, which
        L{tests.test_scopes_doc} checks against the node."""
        table = {(method, shape(path)): scope for (method, path), scope in documented().items()}
        found = {key: op.get("x-scope") for key, op in operations(self.document).items()}
        # the cluster calls are peer-only, no scope (tests/test_cluster_api.py)
        self.assertEqual({(method, shape(path)): scope for (method, path), scope in found.items()
                          if scope != "peer"}, table)
        for key, op in operations(self.document).items():
            statuses = set(op["responses"])
            if found[key] is None:
                self.assertNotIn("403", statuses, key)
            else:
                self.assertTrue({"401", "403"} <= statuses, key)
                self.assertTrue(op["security"], key)

    def test_every_error_is_the_envelope(self) -> None:
        for key, op in operations(self.document).items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    self.assertEqual(response, {"$ref": f"#/components/responses/E{status}"},
                                     key)
        error = self.document["components"]["schemas"]["Error"]
        self.assertEqual(error["required"], ["success", "data"])

    def test_served_without_credentials(self) -> None:
        h = ApiHarness(self)
        d = h.stub.request("GET", "http://node.test" + OPENAPI_PATH)
        h.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(json.loads(body), build_document(installed_version()))


class FoundByTheFuzzRunTests(SynchronousTestCase):
    """What schemathesis found against a real node (L{tests.integration.test_openapi_fuzz}),
    fixed in the server; each is a request a client could really send."""

    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.project_id = self.h.project()["id"]

    def job(self, **fields: object) -> dict:
        return {"projectId": self.project_id, "spec": "*/5 * * * *",
                "callbackUrl": "http://127.0.0.1:9/callback", **fields}

    def test_a_wrong_type_is_not_the_default(self) -> None:
        """C{misfirePolicy: {}} made a job with the default policy, C{timezone: 0} one in
        UTC: a mistake the client never heard of. Only null or "" ask for the default."""
        for name, value in (("misfirePolicy", {}), ("misfirePolicy", False),
                            ("timezone", 0), ("timezone", []), ("timezone", False),
                            ("executionType", []), ("executionType", 0)):
            code, envelope = self.h.request("POST", "/jobs", self.job(**{name: value}))
            self.assertEqual(code, 400, (name, value, envelope))
            self.assertTrue(envelope["data"].startswith(f"{name}: "), envelope)
        for name in ("misfirePolicy", "timezone", "executionType"):
            for value in (None, ""):
                created = self.h.ok("POST", "/jobs", self.job(**{name: value}), expect=201)
                self.assertEqual(created[name], {"misfirePolicy": "fire_once",
                                                 "timezone": "UTC",
                                                 "executionType": "http"}[name])
