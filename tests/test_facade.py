"""
The command facade as the API uses it: what a write submits, so that concurrent writes of
different fields of one job never undo each other.
"""

from __future__ import annotations

from datetime import datetime, timezone

from typing import Any, Coroutine

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import SynchronousTestCase

from scheduler0.api.validation import validate_job
from scheduler0.domain import Job, JobFields

from .harness import ApiHarness


class JobUpdateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = ApiHarness(self)
        project = self.h.project()
        self.job = self.h.ok("POST", "/jobs", {
            "projectId": project["id"], "spec": "@every 1m",
            "callbackUrl": "http://127.0.0.1:3000/callback"}, expect=201)
        self.facade = self.h.api.facade
        self.reader = self.h.store.reader

    def edit(self, body: dict) -> tuple[Job, JobFields]:
        """What PUT /jobs/<id> does, from the job as it was read before another write."""
        existing = self.reader.job(self.job["id"])
        fields = validate_job(body, now=datetime.now(timezone.utc), default_grace=60,
                              existing=existing)
        return existing, fields

    def test_an_edit_read_before_a_pause_does_not_resume_the_job(self) -> None:
        existing, fields = self.edit({"spec": "@every 5m"})
        self.successResultOf(_deferred(self.facade.set_paused(self.job["id"], True)))
        self.successResultOf(_deferred(self.facade.update_job(existing, fields)))
        stored = self.reader.job(self.job["id"]).fields
        self.assertEqual((stored.spec, stored.paused), ("@every 5m", True))

    def test_two_edits_of_different_fields_both_hold(self) -> None:
        first = self.edit({"spec": "@every 5m"})
        second = self.edit({"data": "second"})
        self.successResultOf(_deferred(self.facade.update_job(*first)))
        self.successResultOf(_deferred(self.facade.update_job(*second)))
        stored = self.reader.job(self.job["id"]).fields
        self.assertEqual((stored.spec, stored.data), ("@every 5m", "second"))

    def test_an_edit_that_changes_nothing_still_answers_and_stamps_the_job(self) -> None:
        before = self.reader.job(self.job["id"])
        self.h.clock.advance(5)
        shown = self.h.ok("PUT", f"/jobs/{self.job['id']}", {"spec": "@every 1m"})
        self.assertEqual(attrs.evolve(self.reader.job(self.job["id"]),
                                      date_modified=before.date_modified), before)
        self.assertNotEqual(shown["dateModified"], before.date_modified)


def _deferred(coroutine: Coroutine[Any, Any, Any]) -> Deferred:
    return ensureDeferred(coroutine)
