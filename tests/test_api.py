"""The REST API in-process (StubTreq over the Klein resource, real sqlite, Clock)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .harness import ApiHarness, key_headers, peer_headers

JOB = {"spec": "*/5 * * * *", "callbackUrl": "http://127.0.0.1:3000/callback", "data": "x"}


class HealthcheckTests(SynchronousTestCase):
    def test_no_auth_needed(self) -> None:
        h = ApiHarness(self)
        code, envelope = h.request("GET", "/healthcheck", headers={})
        self.assertEqual(code, 200)
        self.assertEqual(envelope["data"]["leaderId"], "1")
        self.assertEqual(envelope["data"]["raftStats"]["state"], "Leader")


class EnvelopeTests(SynchronousTestCase):
    def test_unknown_route_is_404_json(self) -> None:
        code, envelope = ApiHarness(self).request("GET", "/nothing-here")
        self.assertEqual(code, 404)
        self.assertIn("/api/v1/nothing-here", envelope["data"])

    def test_wrong_method_is_405_json(self) -> None:
        code, envelope = ApiHarness(self).request("PATCH", "/projects")
        self.assertEqual(code, 405)
        self.assertIn("PATCH", envelope["data"])

    def test_malformed_json_is_400(self) -> None:
        code, envelope = ApiHarness(self).request("POST", "/projects", raw=b"{not json")
        self.assertEqual(code, 400)
        self.assertIn("not valid JSON", envelope["data"])

    def test_missing_body_is_400(self) -> None:
        code, envelope = ApiHarness(self).request("POST", "/projects", raw=b"")
        self.assertEqual(code, 400)
        self.assertIn("body is required", envelope["data"])


class AuthTests(SynchronousTestCase):
    def test_no_credentials_is_401(self) -> None:
        code, envelope = ApiHarness(self).request("GET", "/projects", headers={})
        self.assertEqual(code, 401)
        self.assertIn("x-api-key", envelope["data"])

    def test_wrong_peer_password_is_401(self) -> None:
        h = ApiHarness(self)
        code, _ = h.request("GET", "/projects", headers=peer_headers(password="nope"))
        self.assertEqual(code, 401)
        code, _ = h.request("GET", "/projects", headers=peer_headers(kind="intruder"))
        self.assertEqual(code, 401)

    def test_credential_secret_shown_once_and_works(self) -> None:
        h = ApiHarness(self)
        credential = h.credential()
        self.assertEqual(credential["scopes"], ["read", "write", "execute"])
        self.assertTrue(credential["apiSecret"])
        shown = h.ok("GET", f"/credentials/{credential['id']}")
        self.assertNotIn("apiSecret", shown)
        listed = h.ok("GET", "/credentials")
        self.assertEqual(listed["total"], 1)
        self.assertNotIn("apiSecret", listed["credentials"][0])
        code, _ = h.request("GET", "/projects", headers=key_headers(credential))
        self.assertEqual(code, 200)
        bearer = {"Authorization": f"Bearer {credential['apiKey']}:{credential['apiSecret']}"}
        code, _ = h.request("GET", "/projects", headers=bearer)
        self.assertEqual(code, 200)
        wrong = {"x-api-key": credential["apiKey"], "x-secret-key": "guess"}
        self.assertEqual(h.request("GET", "/projects", headers=wrong)[0], 401)

    def test_archived_and_deleted_credentials_are_refused(self) -> None:
        h = ApiHarness(self)
        archived, deleted = h.credential(), h.credential()
        h.ok("PUT", f"/credentials/{archived['id']}", {"archived": True})
        code, envelope = h.request("GET", "/projects", headers=key_headers(archived))
        self.assertEqual((code, envelope["data"]), (401, f"credential {archived['id']} is archived"))
        h.ok("DELETE", f"/credentials/{deleted['id']}", expect=204)
        self.assertEqual(h.request("GET", "/projects", headers=key_headers(deleted))[0], 401)

    def test_scopes_are_enforced(self) -> None:
        h = ApiHarness(self)
        reader = key_headers(h.credential(["read"]))
        writer = key_headers(h.credential(["read", "write"]))
        self.assertEqual(h.request("GET", "/projects", headers=reader)[0], 200)
        code, envelope = h.request("POST", "/projects", {"name": "p"}, headers=reader)
        self.assertEqual(code, 403)
        self.assertIn("'write'", envelope["data"])
        self.assertEqual(h.request("POST", "/projects", {"name": "p"}, headers=writer)[0], 201)
        # managing credentials needs admin
        self.assertEqual(h.request("POST", "/credentials", {}, headers=writer)[0], 403)
        admin = key_headers(h.credential(["admin"]))
        self.assertEqual(h.request("POST", "/credentials", {}, headers=admin)[0], 201)

    def test_bad_scopes_are_400(self) -> None:
        code, envelope = ApiHarness(self).request("POST", "/credentials", {"scopes": ["root"]})
        self.assertEqual(code, 400)
        self.assertIn("scopes", envelope["data"])


class ProjectTests(SynchronousTestCase):
    def test_crud(self) -> None:
        h = ApiHarness(self)
        project = h.project("calendar")
        self.assertEqual(project["name"], "calendar")
        self.assertEqual(project["dateCreated"], "2026-11-26T16:00:00.000Z")
        self.assertEqual(h.ok("GET", f"/projects/{project['id']}"), project)
        h.clock.advance(5)
        updated = h.ok("PUT", f"/projects/{project['id']}", {"description": "new"})
        self.assertEqual((updated["name"], updated["description"]), ("calendar", "new"))
        self.assertEqual(updated["dateModified"], "2026-11-26T16:00:05.000Z")
        h.ok("DELETE", f"/projects/{project['id']}", expect=204)
        self.assertEqual(h.request("GET", f"/projects/{project['id']}")[0], 404)

    def test_list_pages(self) -> None:
        h = ApiHarness(self)
        for i in range(5):
            h.project(f"p{i}")
        page = h.ok("GET", "/projects?limit=2&offset=1")
        self.assertEqual((page["total"], page["limit"], page["offset"]), (5, 2, 1))
        self.assertEqual([p["name"] for p in page["projects"]], ["p1", "p2"])
        default = h.ok("GET", "/projects")
        self.assertEqual((default["limit"], default["offset"], len(default["projects"])), (50, 0, 5))
        self.assertEqual(h.request("GET", "/projects?limit=zero")[0], 400)

    def test_duplicate_name_is_409(self) -> None:
        h = ApiHarness(self)
        h.project("same")
        code, envelope = h.request("POST", "/projects", {"name": "same"})
        self.assertEqual(code, 409)
        self.assertIn("already exists", envelope["data"])
        other = h.project("other")
        self.assertEqual(h.request("PUT", f"/projects/{other['id']}", {"name": "same"})[0], 409)

    def test_name_required(self) -> None:
        code, envelope = ApiHarness(self).request("POST", "/projects", {"description": "x"})
        self.assertEqual(code, 400)
        self.assertIn("name", envelope["data"])

    def test_delete_with_jobs_is_409_and_keeps_everything(self) -> None:
        h = ApiHarness(self)
        project = h.project()
        h.ok("POST", "/jobs", dict(JOB, projectId=project["id"]), expect=201)
        code, envelope = h.request("DELETE", f"/projects/{project['id']}")
        self.assertEqual(code, 409)
        self.assertIn("job", envelope["data"])
        self.assertEqual(h.ok("GET", f"/jobs?projectId={project['id']}")["total"], 1)


class JobTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.project = self.h.project()

    def job(self, **fields: object) -> dict:
        return {**JOB, "projectId": self.project["id"], **fields}

    def test_create_one(self) -> None:
        job = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.assertEqual(job["projectId"], self.project["id"])
        self.assertEqual((job["executionType"], job["timezone"], job["paused"]),
                         ("http", "UTC", False))
        self.assertEqual(job["nextRunAt"], "2026-11-26T16:05:00.000Z")
        self.assertEqual(self.h.ok("GET", f"/jobs/{job['id']}")["spec"], "*/5 * * * *")

    def test_create_batch_returns_ids(self) -> None:
        jobs = self.h.ok("POST", "/jobs", [self.job(data=str(i)) for i in range(1000)], expect=201)
        self.assertEqual(len(jobs), 1000)
        self.assertEqual(len({j["id"] for j in jobs}), 1000)
        self.assertEqual([j["data"] for j in jobs], [str(i) for i in range(1000)])
        listed = self.h.ok("GET", f"/jobs?projectId={self.project['id']}&limit=10&offset=990")
        self.assertEqual(listed["total"], 1000)
        self.assertEqual([j["id"] for j in listed["jobs"]], [j["id"] for j in jobs[990:]])

    def test_one_bad_element_fails_the_batch(self) -> None:
        batch = [self.job() for _ in range(5)]
        batch[3] = self.job(spec="61 * * * *")
        code, envelope = self.h.request("POST", "/jobs", batch)
        self.assertEqual(code, 400)
        self.assertTrue(envelope["data"].startswith("jobs[3].spec"), envelope["data"])
        self.assertEqual(self.h.ok("GET", "/jobs")["total"], 0)

    def test_field_errors(self) -> None:
        cases = {
            "timezone": self.job(timezone="Mars/Olympus"),
            "callbackUrl": self.job(callbackUrl="ftp://example.com/x"),
            "projectId": self.job(projectId=999),
            "executionType": self.job(executionType="lambda"),
            "misfirePolicy": self.job(misfirePolicy="sometimes"),
            "data": self.job(data={"not": "a string"}),
            "nope": self.job(nope=1),
        }
        for field, body in cases.items():
            code, envelope = self.h.request("POST", "/jobs", [self.job(), body])
            self.assertEqual(code, 400, field)
            self.assertTrue(envelope["data"].startswith(f"jobs[1].{field}"), envelope["data"])

    def test_spec_that_never_fires_is_400(self) -> None:
        code, envelope = self.h.request("POST", "/jobs", self.job(spec="0 0 30 2 *"))
        self.assertEqual(code, 400)
        self.assertIn("spec", envelope["data"])
        code, _ = self.h.request("POST", "/jobs", self.job(spec="@at 2020-01-01T00:00:00Z"))
        self.assertEqual(code, 400)

    def test_too_many_jobs_is_400(self) -> None:
        code, envelope = self.h.request("POST", "/jobs", [self.job()] * 10_001)
        self.assertEqual(code, 400)
        self.assertIn("10000", envelope["data"])

    def test_snake_case_fields_from_the_seed_client(self) -> None:
        body = [{"spec": "@every 1m", "project_id": self.project["id"], "execution_type": "http",
                 "data": '{"jobId":1}', "timezone": "America/New_York",
                 "callback_url": "http://localhost:3000/callback"}]
        (job,) = self.h.ok("POST", "/jobs", body, expect=201)
        self.assertEqual((job["callbackUrl"], job["timezone"]),
                         ("http://localhost:3000/callback", "America/New_York"))
        self.assertEqual(job["nextRunAt"], "2026-11-26T16:01:00.000Z")

    def test_update_spec_and_timezone(self) -> None:
        job = self.h.ok("POST", "/jobs", self.job(spec="0 9 * * *"), expect=201)
        self.assertEqual(job["nextRunAt"], "2026-11-27T09:00:00.000Z")
        updated = self.h.ok("PUT", f"/jobs/{job['id']}", {"timezone": "Europe/Berlin"})
        self.assertEqual(updated["nextRunAt"], "2026-11-27T08:00:00.000Z")
        updated = self.h.ok("PUT", f"/jobs/{job['id']}", {"spec": "30 17 * * *", "paused": True})
        self.assertEqual((updated["spec"], updated["paused"], updated["nextRunAt"]),
                         ("30 17 * * *", True, None))
        code, _ = self.h.request("PUT", f"/jobs/{job['id']}", {"spec": "bogus"})
        self.assertEqual(code, 400)
        self.assertEqual(self.h.ok("GET", f"/jobs/{job['id']}")["spec"], "30 17 * * *")

    def test_delete(self) -> None:
        job = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.h.ok("DELETE", f"/jobs/{job['id']}", expect=204)
        self.assertEqual(self.h.request("GET", f"/jobs/{job['id']}")[0], 404)
        self.assertEqual(self.h.request("DELETE", f"/jobs/{job['id']}")[0], 404)

    def test_ids_of_deleted_jobs_are_not_reused(self) -> None:
        first = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.h.ok("DELETE", f"/jobs/{first['id']}", expect=204)
        # ids are chosen from the stored sequence when a command is applied, so neither a
        # deletion nor a restart hands one out again
        second = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.assertGreater(second["id"], first["id"])
        self.h.ok("DELETE", f"/jobs/{second['id']}", expect=204)
        third = self.h.ok("POST", "/jobs", self.job(), expect=201)
        self.assertGreater(third["id"], second["id"])
