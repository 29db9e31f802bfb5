"""
The API's JSON of each domain record (issue 11 item 2): exactly the documented shape, in
camelCase, produced at the edge (L{scheduler0.api.shapes}) from the typed records the store
reads return; never a signing secret in a project, never a secret or its hash in a
credential.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.shapes import (credential_json, execution_json, job_json, project_json,
                                   signing_secrets_json)
from scheduler0.domain import (Credential, Execution, Job, JobFields, PreviousSecret, Project,
                               SigningSecrets, SupervisorHalt)
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import connect
from scheduler0.store.reads import ScheduleReader
from scheduler0.store.service import StoreService

AT = "2026-11-26T16:00:00.000Z"
LATER = "2026-11-26T17:00:00.000Z"
SECRET_HASH = "0" * 64


def wire(value: object) -> str:
    """What a client receives: the JSON text, key order included."""
    return json.dumps(value)


class ProjectShapeTests(SynchronousTestCase):
    def test_project(self) -> None:
        project = Project(id=7, name="billing", description="invoices", date_created=AT,
                          date_modified=LATER)
        self.assertEqual(wire(project_json(project)), wire({
            "id": 7, "name": "billing", "description": "invoices", "dateCreated": AT,
            "dateModified": LATER}))

    def test_signing_secrets_never_rotated(self) -> None:
        self.assertEqual(wire(signing_secrets_json(SigningSecrets(current="whsec_a"))), wire({
            "signingSecret": "whsec_a", "previousSigningSecret": None,
            "previousSecretExpires": None, "previousSigningSecrets": []}))

    def test_signing_secrets_rotated_name_the_newest_previous_one(self) -> None:
        secrets = SigningSecrets(current="whsec_c", previous=(
            PreviousSecret(secret="whsec_b", expires=LATER),
            PreviousSecret(secret="whsec_a", expires=AT)))
        self.assertEqual(wire(signing_secrets_json(secrets)), wire({
            "signingSecret": "whsec_c", "previousSigningSecret": "whsec_b",
            "previousSecretExpires": LATER, "previousSigningSecrets": [
                {"secret": "whsec_b", "expires": LATER},
                {"secret": "whsec_a", "expires": AT}]}))


class CredentialShapeTests(SynchronousTestCase):
    def credential(self, project_ids: tuple[int, ...] | None) -> Credential:
        return Credential(id=3, api_key="key-3", scopes=("read", "write"),
                          project_ids=project_ids, archived=False, date_created=AT,
                          date_modified=LATER)

    def test_limited_to_projects(self) -> None:
        self.assertEqual(wire(credential_json(self.credential((1, 2)))), wire({
            "id": 3, "apiKey": "key-3", "scopes": ["read", "write"], "projectIds": [1, 2],
            "archived": False, "dateCreated": AT, "dateModified": LATER}))

    def test_node_wide_has_null_project_ids(self) -> None:
        self.assertIsNone(credential_json(self.credential(None))["projectIds"])

    def test_secret_shown_once_at_creation_last(self) -> None:
        shown = credential_json(self.credential(None), api_secret="s3cret")
        self.assertEqual(list(shown), ["id", "apiKey", "scopes", "projectIds", "archived",
                                       "dateCreated", "dateModified", "apiSecret"])
        self.assertEqual(shown["apiSecret"], "s3cret")
        self.assertNotIn("apiSecret", credential_json(self.credential(None)))


class JobAndExecutionShapeTests(SynchronousTestCase):
    """The shapes that were already produced at the edge keep their documented keys."""

    def test_job(self) -> None:
        job = Job(id=4, fields=JobFields(
            project_id=1, spec="@every 1h", callback_url="https://example.com/hook", data=None,
            execution_type="http", timezone="UTC", start_date=None, end_date=None,
            paused=False, misfire_policy="fire_once", misfire_grace_seconds=60),
            date_created=AT, date_modified=LATER)
        self.assertEqual(wire(job_json(job, LATER)), wire({
            "id": 4, "projectId": 1, "spec": "@every 1h",
            "callbackUrl": "https://example.com/hook", "data": None, "executionType": "http",
            "timezone": "UTC", "startDate": None, "endDate": None, "paused": False,
            "misfirePolicy": "fire_once", "misfireGraceSeconds": 60, "dateCreated": AT,
            "dateModified": LATER, "nextRunAt": LATER}))

    def test_execution(self) -> None:
        execution = Execution(id="4-1", job_id=4, project_id=1, scheduled_time=AT,
                              state="succeeded", attempts=1)
        self.assertEqual(list(execution_json(execution)), [
            "executionId", "jobId", "projectId", "scheduledTime", "state", "attempts",
            "target", "nodeId", "lastStatus", "lastError", "errorCategory", "durationMs",
            "latenessMs", "firstAttemptAt", "lastAttemptAt", "nextRetryAt", "dateCreated",
            "dateModified"])


class StoreReadsRecordsTests(SynchronousTestCase):
    """The store's reads return the typed records (not the API's shape), from a real
    sqlite file."""

    def setUp(self) -> None:
        store = StoreService(self.mktemp())
        self.reader = store.open()
        self.addCleanup(store.stopService)
        self.conn = conn = connect(store.path)
        self.addCleanup(conn.close)
        results = apply_batch(conn, [
            Command("p1", C.PROJECT_CREATE, AT, {"project": {
                "id": 1, "name": "billing", "description": "", "signing_secret": "whsec_1"}}),
            Command("p2", C.PROJECT_CREATE, AT, {"project": {
                "id": 2, "name": "mail", "description": "post", "signing_secret": "whsec_2"}}),
            Command("r1", C.PROJECT_ROTATE_SECRET, AT, {
                "id": 1, "secret": "whsec_1b", "previous_expires": LATER}),
            Command("c1", C.CREDENTIAL_CREATE, AT, {"credential": {
                "id": 1, "api_key": "key-one", "secret_hash": SECRET_HASH,
                "scopes": "read,write", "project_ids": [2, 1]}}),
            Command("c2", C.CREDENTIAL_CREATE, AT, {"credential": {
                "id": 2, "api_key": "key-two", "secret_hash": SECRET_HASH,
                "scopes": "admin"}}),
            Command("u2", C.CREDENTIAL_UPDATE, LATER, {"id": 2, "changes": {"archived": 1}}),
        ])
        self.assertTrue(all(r["ok"] for r in results), results)

    def test_projects(self) -> None:
        mail = Project(id=2, name="mail", description="post", date_created=AT,
                       date_modified=AT)
        self.assertEqual(self.reader.project(2), mail)
        projects, total = self.reader.projects(10, 0, only={2})
        self.assertEqual((projects, total), ([mail], 1))
        self.assertIsNone(self.reader.project(3))

    def test_signing_secrets(self) -> None:
        self.assertEqual(self.reader.signing_secret(1), SigningSecrets(
            current="whsec_1b", previous=(PreviousSecret(secret="whsec_1", expires=LATER),)))
        self.assertEqual(self.reader.signing_secret(2), SigningSecrets(current="whsec_2"))
        self.assertIsNone(self.reader.signing_secret(3))

    def test_credentials(self) -> None:
        one = Credential(id=1, api_key="key-one", scopes=("read", "write"), project_ids=(1, 2),
                         archived=False, date_created=AT, date_modified=AT)
        two = Credential(id=2, api_key="key-two", scopes=("admin",), project_ids=None,
                         archived=True, date_created=AT, date_modified=LATER)
        self.assertEqual(self.reader.credential(1), one)
        self.assertEqual(self.reader.credentials(10, 0), ([one, two], 2))
        self.assertEqual(self.reader.credential_for_key("key-two"), (two, SECRET_HASH))
        self.assertIsNone(self.reader.credential_for_key("key-none"))

    def test_supervisor_halt(self) -> None:
        schedule = ScheduleReader(self.conn)
        self.assertIsNone(schedule.supervisor())
        results = apply_batch(self.conn, [Command("h", C.SUPERVISOR_SET, LATER, {
            "halted": True, "reason": "halted by an operator", "at": AT})])
        self.assertTrue(all(r["ok"] for r in results), results)
        self.assertEqual(schedule.supervisor(), SupervisorHalt(
            halted=True, reason="halted by an operator", at=AT))
