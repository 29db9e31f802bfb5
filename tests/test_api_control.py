"""Job control, execution records, signing secrets and the callback network policy over
the API (in-process, with a real scheduler on a Clock)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.state import commands as C
from scheduler0.state.commands import new_command

from .harness import ApiHarness, key_headers

URL = "http://127.0.0.1:3000/callback"


def job(project_id: int, **fields: object) -> dict:
    return {"projectId": project_id, "spec": "@every 1m", "callbackUrl": URL, **fields}


class ControlTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.project = self.h.project()
        self.job = self.h.ok("POST", "/jobs", job(self.project["id"]), expect=201)

    def fired(self) -> list[str]:
        return [eid for eid in self.h.sent() if eid.startswith(f"{self.job['id']}-")]

    def test_new_job_fires_at_its_first_due_time(self) -> None:
        self.h.clock.advance(59)
        self.assertEqual(self.fired(), [])
        self.h.clock.advance(1)
        self.assertEqual(self.fired(), [f"{self.job['id']}-20261126T160100Z"])

    def test_pause_and_resume(self) -> None:
        paused = self.h.ok("POST", f"/jobs/{self.job['id']}/pause")
        self.assertEqual((paused["paused"], paused["nextRunAt"]), (True, None))
        self.h.clock.advance(290)
        self.assertEqual(self.fired(), [])
        resumed = self.h.ok("POST", f"/jobs/{self.job['id']}/resume")
        self.assertEqual(resumed["paused"], False)
        # no catch-up for the paused time; the phase from dateCreated is kept
        self.assertEqual(resumed["nextRunAt"], "2026-11-26T16:05:00.000Z")
        self.h.clock.advance(10)
        self.assertEqual(self.fired(), [f"{self.job['id']}-20261126T160500Z"])

    def test_run_now_is_one_extra_occurrence(self) -> None:
        self.h.clock.advance(10.5)
        run = self.h.ok("POST", f"/jobs/{self.job['id']}/run", expect=202)
        self.assertEqual(run["scheduledTime"], "2026-11-26T16:00:10.500Z")
        self.assertEqual(self.fired(), [run["executionId"]])
        self.h.clock.advance(49.5)
        self.assertEqual(len(self.fired()), 2)
        self.assertNotEqual(self.fired()[1], run["executionId"])

    def test_run_needs_the_execute_scope(self) -> None:
        reader = key_headers(self.h.credential(["read", "write"]))
        code, envelope = self.h.request("POST", f"/jobs/{self.job['id']}/run", headers=reader)
        self.assertEqual(code, 403)
        self.assertIn("execute", envelope["data"])

    def test_update_replans_at_once(self) -> None:
        self.h.clock.advance(1)
        updated = self.h.ok("PUT", f"/jobs/{self.job['id']}", {"spec": "*/10 * * * * *"})
        self.assertEqual(updated["nextRunAt"], "2026-11-26T16:00:10.000Z")
        self.h.clock.advance(10)
        self.assertEqual(self.fired(), [f"{self.job['id']}-20261126T160010Z"])

    def test_delete_stops_before_the_next_occurrence(self) -> None:
        self.h.ok("DELETE", f"/jobs/{self.job['id']}", expect=204)
        self.h.clock.advance(600)
        self.assertEqual(self.fired(), [])

    def test_unknown_job_is_404(self) -> None:
        for action in ("pause", "resume", "run"):
            self.assertEqual(self.h.request("POST", f"/jobs/999/{action}")[0], 404)


class ExecutionApiTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.project = self.h.project()
        self.jobs = self.h.ok("POST", "/jobs", [job(self.project["id"]) for _ in range(2)],
                              expect=201)
        records = []
        for n, (state, minute) in enumerate([("succeeded", 1), ("dead", 2), ("retrying", 3)]):
            records.append({
                "id": f"{self.jobs[0]['id']}-20261126T16{minute:02d}00Z",
                "job_id": self.jobs[0]["id"], "project_id": self.project["id"],
                "scheduled_time": f"2026-11-26T16:{minute:02d}:00.000Z", "state": state,
                "attempts": n + 1, "target": "http://127.0.0.1:3000", "node_id": 1,
                "last_status": 500 if state != "succeeded" else 200,
            })
        records.append(dict(records[0], id=f"{self.jobs[1]['id']}-20261126T160100Z",
                            job_id=self.jobs[1]["id"]))
        command = new_command(C.EXECUTION_RECORD, {"records": records}, self.h.clock.seconds())
        self.successResultOf(self.h.commands.submit(command))

    def test_filters(self) -> None:
        first = self.jobs[0]["id"]
        everything = self.h.ok("GET", "/executions")
        self.assertEqual(everything["total"], 4)
        self.assertEqual(everything["executions"][0]["scheduledTime"], "2026-11-26T16:03:00.000Z")
        self.assertEqual(self.h.ok("GET", f"/executions?jobId={first}")["total"], 3)
        self.assertEqual(self.h.ok("GET", f"/jobs/{first}/executions")["total"], 3)
        dead = self.h.ok("GET", "/executions?state=dead")
        self.assertEqual([e["executionId"] for e in dead["executions"]],
                         [f"{first}-20261126T160200Z"])
        window = self.h.ok("GET", "/executions?from=2026-11-26T16:02:00Z&to=2026-11-26T16:03:00Z")
        self.assertEqual(window["total"], 1)
        self.assertEqual(self.h.ok("GET", f"/executions?projectId={self.project['id']}&limit=1")
                         ["total"], 4)

    def test_total_stops_counting_at_the_cap(self) -> None:
        """A listing over millions of executions answers at once: the count stops at the
        cap and says so, and the page itself is whole."""
        self.assertNotIn("totalCapped", self.h.ok("GET", "/executions"))
        self.h.store.reader.executions_count_cap = 3
        page = self.h.ok("GET", "/executions?limit=10")
        self.assertEqual((page["total"], page["totalCapped"], len(page["executions"])),
                         (3, True, 4))
        exact = self.h.ok("GET", f"/executions?jobId={self.jobs[0]['id']}")
        self.assertEqual(exact["total"], 3)
        self.assertNotIn("totalCapped", exact)

    def test_one_execution(self) -> None:
        execution_id = f"{self.jobs[0]['id']}-20261126T160100Z"
        record = self.h.ok("GET", f"/executions/{execution_id}")
        self.assertEqual((record["state"], record["attempts"], record["lastStatus"]),
                         ("succeeded", 1, 200))
        self.assertEqual(self.h.request("GET", "/executions/nope")[0], 404)

    def test_bad_filters_are_400(self) -> None:
        for query in ("state=exploded", "from=yesterday", "jobId=x"):
            code, envelope = self.h.request("GET", f"/executions?{query}")
            self.assertEqual(code, 400, query)

    def test_deleting_a_job_keeps_its_executions(self) -> None:
        """Its history stays listed (until retention prunes it; tests.test_job_history)."""
        first = self.jobs[0]["id"]
        self.h.ok("DELETE", f"/jobs/{first}", expect=204)
        self.assertEqual(self.h.ok("GET", "/executions")["total"], 4)
        self.assertEqual(self.h.ok("GET", f"/jobs/{first}/executions")["total"], 3)
        self.assertEqual(self.h.request("GET", "/jobs/999/executions")[0], 404)


class SigningSecretTests(SynchronousTestCase):
    def test_rotation_keeps_the_previous_secret_for_the_grace_period(self) -> None:
        h = ApiHarness(self)
        project = h.project()
        first = h.ok("GET", f"/projects/{project['id']}/signing-secret")
        self.assertTrue(first["signingSecret"].startswith("whsec_"))
        self.assertIsNone(first["previousSigningSecret"])
        self.assertNotIn("signingSecret", project)
        rotated = h.ok("POST", f"/projects/{project['id']}/signing-secret/rotate",
                       {"graceSeconds": 3600})
        self.assertNotEqual(rotated["signingSecret"], first["signingSecret"])
        self.assertEqual(rotated["previousSigningSecret"], first["signingSecret"])
        self.assertEqual(rotated["previousSecretExpires"], "2026-11-26T17:00:00.000Z")
        reads = h.store.schedule_reader
        self.assertEqual(reads.signing_secrets(project["id"], "2026-11-26T16:30:00.000Z"),
                         [rotated["signingSecret"], first["signingSecret"]])
        self.assertEqual(reads.signing_secrets(project["id"], "2026-11-26T17:00:01.000Z"),
                         [rotated["signingSecret"]])
        code, _ = h.request("POST", f"/projects/{project['id']}/signing-secret/rotate",
                            {"graceSeconds": -1})
        self.assertEqual(code, 400)

    def test_reading_the_secret_needs_write(self) -> None:
        h = ApiHarness(self)
        project = h.project()
        reader = key_headers(h.credential(["read"]))
        code, _ = h.request("GET", f"/projects/{project['id']}/signing-secret", headers=reader)
        self.assertEqual(code, 403)


class NetworkPolicyTests(SynchronousTestCase):
    def test_jobs_to_barred_networks_are_refused(self) -> None:
        h = ApiHarness(self, callback_deny_networks=("10.0.0.0/8",))
        project = h.project()
        code, envelope = h.request("POST", "/jobs", [
            job(project["id"]), job(project["id"], callbackUrl="http://10.1.2.3/hook")])
        self.assertEqual(code, 400)
        self.assertTrue(envelope["data"].startswith("jobs[1].callbackUrl"), envelope["data"])
        self.assertIn("10.0.0.0/8", envelope["data"])
        self.assertEqual(h.request("POST", "/jobs", job(project["id"]))[0], 201)
