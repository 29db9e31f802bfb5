"""
Credentials limited to projects (issue 10 item 4): a credential made with C{projectIds}
sees and changes only those projects, their jobs, executions, dead letters and signing
secrets. Anything of another project answers 404, exactly as if it did not exist; putting a
job in another project answers 403; node-wide calls answer 403. Node-wide credentials keep
seeing everything.

The node is wired as L{scheduler0.node.build_node} wires it (L{tests.ops.Ops}:
real sqlite, scheduler, executor with a fake callback client, repairs, health), so every
route of the API is exercised for real. The matrix test makes each call of the API with a
credential limited to projects 1 and 3, on its own resources and on project 2's, and a
coverage test fails when a route is added without being classified here.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from scheduler0.api.app import Api
from scheduler0.schedule.occurrence import execution_id
from scheduler0.node_secrets import NodeSecrets, write_file

from .harness import T0, key_headers, peer_headers
from .cli_fixtures import NODE_PASSWORD, NODE_USER, RunningNode, http_get, run
from .ops import Ops

OWN = "http://own.test:8001"      # project 1's callbacks
OTHER = "http://other.test:8002"  # project 2's callbacks
LIMITED = ["read", "write", "execute"]


#: the cluster-management API (tests/test_cluster_api.py): node-wide, for peers only
CLUSTER_ROUTES = [("GET", "/api/v1/cluster/list-nodes")] + [
    ("POST", f"/api/v1/cluster/{call}") for call in (
        "add-node", "remove-node", "add-self", "remove-self", "promote-node", "demote-node",
        "transfer-leadership", "force-rebuild", "reset-raft")] + [
    ("GET", f"/api/v1/cluster/dump/{name}") for name in (
        "schedule-queue", "job-executions-cache", "job-queues", "job-queue-versions")]


class Tenants:
    """
    Projects 1 (own), 2 (other) and 3 (own, empty); jobs 1 and 2 in project 1, job 3 in
    project 2; two failed rounds (retry_max 0), so each job has two dead letters. The
    credential C{limited} may see projects 1 and 3.
    """

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.tc = testcase
        self.ops = ops = Ops(testcase, retry_max=0)
        self.own = ops.project("own")
        self.other = ops.project("other")
        self.spare = ops.project("spare")
        self.job = ops.job(self.own, OWN + "/a")
        self.doomed = ops.job(self.own, OWN + "/doomed")
        self.foreign = ops.job(self.other, OTHER + "/b")
        for at in (T0 + 60, T0 + 120):
            ops.clock.advance(at - ops.clock.seconds())
            ops.answer("", 503)
        self.dead = {name: [execution_id(job["id"], at) for at in (T0 + 60, T0 + 120)]
                     for name, job in (("job", self.job), ("doomed", self.doomed),
                                       ("foreign", self.foreign))}
        for ids in self.dead.values():
            for eid in ids:
                testcase.assertEqual(ops.execution(eid)["state"], "dead", eid)
        self.credential = ops.ok("POST", "/api/v1/credentials", {
            "scopes": LIMITED, "projectIds": [self.spare["id"], self.own["id"]]}, expect=201)
        self.limited = key_headers(self.credential)

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, the envelope's data) as the limited credential (or C{headers})."""
        code, envelope, _ = self.ops.call(method, path, body,
                                          self.limited if headers is None else headers)
        if isinstance(envelope, dict) and "success" in envelope:
            return code, envelope["data"]
        return code, envelope


class MatrixTests(SynchronousTestCase):
    """Every route, as a credential limited to projects 1 and 3."""

    def setUp(self) -> None:
        self.t = Tenants(self)

    def cases(self) -> list[tuple[str, str, str, Any, int, str | None, Any, int | None]]:
        """(method, route, own path, own body, own status, other path, other body, other
        status); None: the call has no other project's resource to aim at."""
        t = self.t
        own, other, spare = t.own["id"], t.other["id"], t.spare["id"]
        job, doomed, foreign = t.job["id"], t.doomed["id"], t.foreign["id"]
        new_job = {"projectId": own, "spec": "@every 1h", "callbackUrl": OWN + "/new"}
        v1 = "/api/v1"
        return [
            ("POST", "/api/v1/projects", f"{v1}/projects", {"name": "mine"}, 403, None, None,
             None),
            ("GET", "/api/v1/projects", f"{v1}/projects", None, 200, None, None, None),
            ("GET", "/api/v1/projects/<int:project_id>", f"{v1}/projects/{own}", None, 200,
             f"{v1}/projects/{other}", None, 404),
            ("PUT", "/api/v1/projects/<int:project_id>", f"{v1}/projects/{own}",
             {"description": "changed"}, 200, f"{v1}/projects/{other}",
             {"description": "changed"}, 404),
            ("DELETE", "/api/v1/projects/<int:project_id>", f"{v1}/projects/{spare}", None,
             204, f"{v1}/projects/{other}", None, 404),
            ("GET", "/api/v1/projects/<int:project_id>/signing-secret",
             f"{v1}/projects/{own}/signing-secret", None, 200,
             f"{v1}/projects/{other}/signing-secret", None, 404),
            ("POST", "/api/v1/projects/<int:project_id>/signing-secret/rotate",
             f"{v1}/projects/{own}/signing-secret/rotate", {}, 200,
             f"{v1}/projects/{other}/signing-secret/rotate", {}, 404),
            ("POST", "/api/v1/jobs", f"{v1}/jobs", new_job, 201, f"{v1}/jobs",
             {**new_job, "projectId": other}, 403),
            ("GET", "/api/v1/jobs", f"{v1}/jobs", None, 200, None, None, None),
            ("GET", "/api/v1/jobs/<int:job_id>", f"{v1}/jobs/{job}", None, 200,
             f"{v1}/jobs/{foreign}", None, 404),
            ("PUT", "/api/v1/jobs/<int:job_id>", f"{v1}/jobs/{job}", {"data": "changed"},
             200, f"{v1}/jobs/{foreign}", {"data": "changed"}, 404),
            ("POST", "/api/v1/jobs/<int:job_id>/pause", f"{v1}/jobs/{job}/pause", None, 200,
             f"{v1}/jobs/{foreign}/pause", None, 404),
            ("POST", "/api/v1/jobs/<int:job_id>/resume", f"{v1}/jobs/{job}/resume", None,
             200, f"{v1}/jobs/{foreign}/resume", None, 404),
            ("POST", "/api/v1/jobs/<int:job_id>/run", f"{v1}/jobs/{job}/run", None, 202,
             f"{v1}/jobs/{foreign}/run", None, 404),
            ("GET", "/api/v1/jobs/<int:job_id>/executions", f"{v1}/jobs/{job}/executions",
             None, 200, f"{v1}/jobs/{foreign}/executions", None, 404),
            ("GET", "/api/v1/executions", f"{v1}/executions", None, 200, None, None, None),
            ("GET", "/api/v1/executions/<execution_id>", f"{v1}/executions/{t.dead['job'][0]}",
             None, 200, f"{v1}/executions/{t.dead['foreign'][0]}", None, 404),
            ("POST", "/api/v1/executions/<execution_id>/retry",
             f"{v1}/executions/{t.dead['job'][0]}/retry", None, 202,
             f"{v1}/executions/{t.dead['foreign'][0]}/retry", None, 404),
            ("DELETE", "/api/v1/executions/<execution_id>",
             f"{v1}/executions/{t.dead['job'][1]}", None, 204,
             f"{v1}/executions/{t.dead['foreign'][1]}", None, 404),
            ("DELETE", "/api/v1/jobs/<int:job_id>", f"{v1}/jobs/{doomed}", None, 204,
             f"{v1}/jobs/{foreign}", None, 404),
            # node-wide: refused whatever they aim at
            ("POST", "/api/v1/credentials", f"{v1}/credentials", {}, 403, None, None, None),
            ("GET", "/api/v1/credentials", f"{v1}/credentials", None, 403, None, None, None),
            ("GET", "/api/v1/credentials/<int:credential_id>",
             f"{v1}/credentials/{t.credential['id']}", None, 403, None, None, None),
            ("PUT", "/api/v1/credentials/<int:credential_id>",
             f"{v1}/credentials/{t.credential['id']}", {"projectIds": None}, 403, None, None,
             None),
            ("DELETE", "/api/v1/credentials/<int:credential_id>",
             f"{v1}/credentials/{t.credential['id']}", None, 403, None, None, None),
            ("GET", "/api/monitoring/scheduler/health", "/api/monitoring/scheduler/health",
             None, 403, None, None, None),
            ("POST", "/api/monitoring/breakers/<path:target>/reset",
             "/api/monitoring/breakers/own.test:8001/reset", None, 403, None, None, None),
            ("POST", "/api/monitoring/dlq/retry", "/api/monitoring/dlq/retry", None, 403,
             None, None, None),
            ("POST", "/api/monitoring/dlq/<path:target>/retry",
             "/api/monitoring/dlq/own.test:8001/retry", None, 403, None, None, None),
            ("DELETE", "/api/monitoring/dlq/<path:target>", "/api/monitoring/dlq/own.test:8001",
             None, 403, None, None, None),
            ("GET", "/api/supervisor/state", "/api/supervisor/state", None, 403, None, None,
             None),
            ("POST", "/api/supervisor/halt", "/api/supervisor/halt", None, 403, None, None,
             None),
            ("POST", "/api/supervisor/restart", "/api/supervisor/restart", None, 403, None,
             None, None),
            ("GET", "/api/supervisor/hanging", "/api/supervisor/hanging", None, 403, None,
             None, None),
            ("POST", "/api/supervisor/hanging/<execution_id>/resolve",
             f"/api/supervisor/hanging/{t.dead['job'][0]}/resolve", {"action": "complete"},
             403, None, None, None),
        ] + [(method, route, route, None, 403, None, None, None)  # peer-only, node-wide
             for method, route in CLUSTER_ROUTES]

    def test_every_authenticated_route_is_in_the_matrix(self) -> None:
        # the dashboard's files (/ui/) are public and hold no project's data
        routes = {(method, rule.rule) for rule in Api.app.url_map.iter_rules()
                  for method in rule.methods if method not in ("HEAD", "OPTIONS")
                  and rule.rule.split("/")[1] != "ui"}
        unauthenticated = {("GET", "/api/v1/healthcheck"), ("GET", "/api/v1/openapi.json"),
                           ("GET", "/metrics")}
        covered = {(case[0], case[1]) for case in self.cases()}
        self.assertEqual(sorted(routes - unauthenticated - covered), [],
                         "routes a credential limited to projects was not checked on")
        self.assertEqual(sorted(covered - routes), [])

    def test_own_resources_work_and_other_projects_are_404(self) -> None:
        t = self.t
        for method, route, path, body, expect, other, other_body, other_expect in self.cases():
            where = f"{method} {route}"
            if other is not None:
                code, data = t.call(method, other, other_body)
                self.assertEqual(code, other_expect, f"{where} on project 2: {data}")
            code, data = t.call(method, path, body)
            self.assertEqual(code, expect, f"{where}: {data}")
            if expect == 403:
                self.assertIn("this credential is limited to projects 1, 3", data, where)
        # nothing of project 2 was touched
        ops = t.ops
        self.assertEqual(ops.ok("GET", f"/api/v1/projects/{t.other['id']}"), t.other)
        job = ops.ok("GET", f"/api/v1/jobs/{t.foreign['id']}")
        self.assertEqual((job["data"], job["paused"], job["dateModified"]),
                         (t.foreign["data"], False, t.foreign["dateModified"]))
        secret = ops.ok("GET", f"/api/v1/projects/{t.other['id']}/signing-secret")
        self.assertIsNone(secret["previousSigningSecret"])  # never rotated
        for eid in t.dead["foreign"]:
            self.assertEqual(ops.execution(eid)["state"], "dead", eid)
        self.assertEqual([p.url for p in ops.http.pending()], [OWN + "/a", OWN + "/a"])
        self.assertFalse(ops.supervisor.halted)

    def test_the_404_is_the_same_as_for_what_does_not_exist(self) -> None:
        """A credential limited to projects cannot tell whether another project's job or
        execution exists."""
        t = self.t
        for kind, present, absent in (
                ("projects", t.other["id"], 999), ("jobs", t.foreign["id"], 999),
                ("executions", t.dead["foreign"][0], "999-20261126T160100Z")):
            hidden = t.call("GET", f"/api/v1/{kind}/{present}")
            missing = t.call("GET", f"/api/v1/{kind}/{absent}")
            self.assertEqual(hidden[0], 404)
            self.assertEqual(hidden[1], missing[1].replace(str(absent), str(present)))

    def test_lists_show_only_its_projects(self) -> None:
        t = self.t
        projects = t.call("GET", "/api/v1/projects")[1]
        self.assertEqual((projects["total"], [p["id"] for p in projects["projects"]]),
                         (2, [t.own["id"], t.spare["id"]]))
        jobs = t.call("GET", "/api/v1/jobs")[1]
        self.assertEqual((jobs["total"], [j["id"] for j in jobs["jobs"]]),
                         (2, [t.job["id"], t.doomed["id"]]))
        for query in (f"projectId={t.other['id']}", f"project_id={t.other['id']}"):
            self.assertEqual(t.call("GET", f"/api/v1/jobs?{query}")[1]["total"], 0, query)
        self.assertEqual(t.call("GET", f"/api/v1/jobs?projectId={t.own['id']}")[1]["total"],
                         2)
        executions = t.call("GET", "/api/v1/executions")[1]
        self.assertEqual(sorted(e["executionId"] for e in executions["executions"]),
                         sorted(t.dead["job"] + t.dead["doomed"]))
        self.assertEqual(executions["total"], 4)
        # the dead-letter queue, its part of it
        dead = t.call("GET", "/api/v1/executions?state=dead")[1]
        self.assertEqual(dead["total"], 4)
        for query in (f"projectId={t.other['id']}", f"jobId={t.foreign['id']}"):
            self.assertEqual(t.call("GET", f"/api/v1/executions?{query}")[1]["total"], 0,
                             query)
        # a node-wide credential still sees everything
        everyone = key_headers(t.ops.ok("POST", "/api/v1/credentials", {}, expect=201))
        self.assertEqual(t.call("GET", "/api/v1/projects", headers=everyone)[1]["total"], 3)
        self.assertEqual(t.call("GET", "/api/v1/executions", headers=everyone)[1]["total"], 6)

    def test_executions_in_flight_are_filtered_too(self) -> None:
        """Occurrences being delivered now (the outbox) are listed with the stored ones:
        they are filtered the same way."""
        t = self.t
        t.ops.clock.advance(T0 + 180 - t.ops.clock.seconds())
        self.assertEqual(len(t.ops.http.pending()), 3)
        listed = t.call("GET", "/api/v1/executions?state=dispatched")[1]
        self.assertEqual(sorted(e["jobId"] for e in listed["executions"]),
                         [t.job["id"], t.doomed["id"]])
        hidden = execution_id(t.foreign["id"], T0 + 180)
        self.assertEqual(t.call("GET", f"/api/v1/executions/{hidden}")[0], 404)

    def test_a_deleted_jobs_history_stays_its_projects(self) -> None:
        t = self.t
        t.ops.ok("DELETE", f"/api/v1/jobs/{t.foreign['id']}", expect=204)
        t.ops.ok("DELETE", f"/api/v1/jobs/{t.doomed['id']}", expect=204)
        self.assertEqual(t.call("GET", f"/api/v1/jobs/{t.foreign['id']}/executions")[0], 404)
        code, page = t.call("GET", f"/api/v1/jobs/{t.doomed['id']}/executions")
        self.assertEqual((code, page["total"]), (200, 2))


class JobPlacementTests(SynchronousTestCase):
    """Putting a job in a project outside the credential's is 403, whether it exists."""

    def setUp(self) -> None:
        self.t = Tenants(self)

    def test_creating_in_another_or_a_missing_project_is_the_same_403(self) -> None:
        t = self.t
        job = {"spec": "@every 1h", "callbackUrl": OWN + "/x"}
        for project_id in (t.other["id"], 999):
            code, message = t.call("POST", "/api/v1/jobs", {**job, "projectId": project_id})
            self.assertEqual((code, message),
                             (403, "projectId: this credential is limited to projects 1, 3"))
        code, message = t.call("POST", "/api/v1/jobs", [
            {**job, "projectId": t.own["id"]}, {**job, "projectId": t.other["id"]}])
        self.assertEqual((code, message),
                         (403, "jobs[1].projectId: this credential is limited to projects "
                               "1, 3"))
        self.assertEqual(t.ops.ok("GET", "/api/v1/jobs")["total"], 3)  # nothing created

    def test_moving_a_job_to_another_project_is_403(self) -> None:
        t = self.t
        code, message = t.call("PUT", f"/api/v1/jobs/{t.job['id']}",
                               {"projectId": t.other["id"]})
        self.assertEqual((code, message),
                         (403, "projectId: this credential is limited to projects 1, 3"))
        moved = t.call("PUT", f"/api/v1/jobs/{t.job['id']}", {"projectId": t.spare["id"]})
        self.assertEqual((moved[0], moved[1]["projectId"]), (200, t.spare["id"]))


class CredentialTests(SynchronousTestCase):
    """Making, changing and reading credentials limited to projects (as an operator)."""

    def setUp(self) -> None:
        self.ops = Ops(self)
        self.first = self.ops.project("first")
        self.second = self.ops.project("second")

    def create(self, body: Any) -> tuple[int, Any]:
        code, envelope, _ = self.ops.call("POST", "/api/v1/credentials", body)
        return code, envelope["data"]

    def test_the_credential_shows_its_projects(self) -> None:
        code, made = self.create({"scopes": ["read"], "projectIds": [2, 1, 2]})
        self.assertEqual((code, made["projectIds"], made["scopes"]), (201, [1, 2], ["read"]))
        self.assertEqual(self.ops.ok("GET", f"/api/v1/credentials/{made['id']}")["projectIds"],
                         [1, 2])
        code, node_wide = self.create({})
        self.assertEqual(node_wide["projectIds"], None)
        code, explicit = self.create({"projectIds": None})
        self.assertEqual((code, explicit["projectIds"]), (201, None))
        listed = self.ops.ok("GET", "/api/v1/credentials")["credentials"]
        self.assertEqual([c["projectIds"] for c in listed], [[1, 2], None, None])

    def test_bad_project_lists_are_400_saying_what_to_send(self) -> None:
        for value in ([], [0], ["1"], [True], [1.5], "1,2", {"1": 1}, [2**63], [[1]],
                      list(range(1, 1002))):
            code, message = self.create({"projectIds": value})
            self.assertEqual(code, 400, value)
            self.assertTrue(message.startswith("projectIds: must be a non-empty list of at "
                                               "most 1000 project ids"), message)
            self.assertLess(len(message), 200)
        code, message = self.create({"project_ids": [7]})
        self.assertEqual((code, message), (400, "projectIds: project 7 does not exist"))
        self.assertEqual(self.ops.ok("GET", "/api/v1/credentials")["total"], 0)

    def test_admin_is_not_for_a_credential_limited_to_projects(self) -> None:
        code, message = self.create({"scopes": ["read", "admin"], "projectIds": [1]})
        self.assertEqual(code, 400)
        self.assertIn("admin is node-wide", message)
        code, made = self.create({"scopes": ["read"], "projectIds": [1]})
        code, envelope, _ = self.ops.call("PUT", f"/api/v1/credentials/{made['id']}",
                                          {"scopes": ["admin"]})
        self.assertEqual(code, 400, envelope)
        code, admin = self.create({"scopes": ["admin"]})
        code, envelope, _ = self.ops.call("PUT", f"/api/v1/credentials/{admin['id']}",
                                          {"projectIds": [1]})
        self.assertEqual(code, 400, envelope)
        self.assertIn("admin is node-wide", envelope["data"])

    def test_changing_the_list_takes_effect_at_once(self) -> None:
        code, made = self.create({"scopes": ["read"], "projectIds": [1]})
        headers = key_headers(made)

        def visible() -> list[int]:
            code, envelope, _ = self.ops.call("GET", "/api/v1/projects", headers=headers)
            self.assertEqual(code, 200, envelope)
            return [p["id"] for p in envelope["data"]["projects"]]

        self.assertEqual(visible(), [1])
        path = f"/api/v1/credentials/{made['id']}"
        self.assertEqual(self.ops.ok("PUT", path, {"projectIds": [2]})["projectIds"], [2])
        self.assertEqual(visible(), [2])
        code, envelope, _ = self.ops.call("PUT", path, {"projectIds": [2, 9]})
        self.assertEqual((code, envelope["data"]), (400, "projectIds: project 9 does not exist"))
        self.assertEqual(self.ops.ok("PUT", path, {"projectIds": None})["projectIds"], None)
        self.assertEqual(visible(), [1, 2])

    def test_deleting_a_project_never_widens_a_credential(self) -> None:
        code, made = self.create({"scopes": ["read", "write"], "projectIds": [2]})
        headers = key_headers(made)
        self.ops.ok("DELETE", f"/api/v1/projects/{self.second['id']}", expect=204)
        self.assertEqual(self.ops.ok("GET", f"/api/v1/credentials/{made['id']}")["projectIds"],
                         [2])
        for path in ("/api/v1/projects", "/api/v1/jobs", "/api/v1/executions"):
            code, envelope, _ = self.ops.call("GET", path, headers=headers)
            self.assertEqual((code, envelope["data"]["total"]), (200, 0), path)
        code, _, _ = self.ops.call("GET", f"/api/v1/projects/{self.first['id']}",
                                   headers=headers)
        self.assertEqual(code, 404)
        code, envelope, _ = self.ops.call("POST", "/api/v1/projects", {"name": "new"},
                                          headers=headers)
        self.assertEqual(code, 403)
        self.assertIn("node-wide", envelope["data"])

    def test_the_limit_survives_a_restart(self) -> None:
        made = self.ops.ok("POST", "/api/v1/credentials",
                           {"scopes": ["read"], "projectIds": [2]}, expect=201)
        self.ops.close()
        again = Ops(self, data_dir=self.ops.store.data_dir)
        code, envelope, _ = again.call("GET", "/api/v1/projects", headers=key_headers(made))
        self.assertEqual([p["name"] for p in envelope["data"]["projects"]], ["second"])


class CreateCredentialCliTests(TestCase):
    """C{scheduler0 create credential --projects 1,2} against a node on a real socket."""

    def setUp(self) -> None:
        self.node = RunningNode(self)
        self.data_dir = self.mktemp()
        write_file(self.data_dir, NodeSecrets("secret-key", NODE_USER, NODE_PASSWORD))

    def cli(self, *extra: str) -> Any:
        return deferToThread(run, ["create", "credential", "--url", self.node.base,
                                   "--data-dir", self.data_dir, *extra])

    def peer_post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.node.base + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json",
                     **peer_headers(user=NODE_USER, password=NODE_PASSWORD)})
        return deferToThread(lambda: urllib.request.urlopen(request, timeout=10).read())

    def test_projects_option_limits_the_credential(self) -> Any:
        async def scenario() -> None:
            for name in ("one", "two", "three"):
                await self.peer_post("/api/v1/projects", {"name": name})
            result = await self.cli("--scopes", "read,write", "--projects", "3, 1")
            self.assertEqual(result.status, 0, result)
            credential = json.loads(result.out)
            self.assertEqual(credential["projectIds"], [1, 3])
            status, envelope = await deferToThread(
                http_get, self.node.base + "/api/v1/projects", key_headers(credential))
            self.assertEqual(status, 200, envelope)
            self.assertEqual([p["name"] for p in envelope["data"]["projects"]],
                             ["one", "three"])
            field = await self.cli("--projects", "2", "--field", "projectIds")
            self.assertEqual(field.out, "[2]\n")
            missing = await self.cli("--projects", "9")
            self.assertEqual((missing.status, missing.err),
                             (1, "scheduler0: 400 projectIds: project 9 does not exist\n"))
        return ensureDeferred(scenario())

    def test_bad_projects_exit_2_before_asking_the_node(self) -> None:
        for value, shown in (("1,x", "'x' is not a project id"), ("0", "'0' is not a project id"),
                             (",", "no project given"), ("\uff11", "'\uff11' is not a project id")):
            result = run(["create", "credential", "--url", self.node.base, "-d", self.data_dir,
                          "--projects", value])
            self.assertEqual(result.status, 2, (value, result))
            self.assertEqual(result.err, f"scheduler0: --projects: {shown}; expected a "
                                         "comma-separated list of at most 1000 project ids, "
                                         "e.g. 1,2\n")
        self.assertIn("--projects", run(["create", "credential", "--help"]).out)
