"""
Shared by the executor's tests (test_executor_*, test_callback_safety and others): a real
sqlite store whose execution records are really applied (StoreService +
LocalCommandLog(threaded=False) + ExecutionRecorder, L{Store}), an executor wired like the
node's (L{make_executor}), the deterministic cases on a C{task.Clock} with the fake HTTP
client (L{DeliveryCase}, and L{ExecutorCase} of the hostile-receiver and packing tests) and
a quiet twisted.web site for real receivers (L{QuietSite}).
"""

from __future__ import annotations

import random
from typing import Any, Callable

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from scheduler0.consensus.local import LocalCommandLog
from scheduler0.execution.breaker import Breakers
from scheduler0.execution.executor import Executor, ExecutorSettings
from scheduler0.execution.recorder import ExecutionRecorder
from scheduler0.schedule.occurrence import Occurrence, execution_id, job_payload, target_of
from scheduler0.state import commands as C
from scheduler0.state.commands import new_command
from scheduler0.store.service import StoreService
from scheduler0.timestamps import format_time, from_seconds

from .fakes import FakeHTTP
from .records import job_of, next_id_will_be, shown


T0 = 1795708800.0  # 2026-11-26T16:00:00Z
SECRET_1 = "whsec_project-one-secret-0123456789abcdefghijklmnop"
SECRET_2 = "whsec_project-two-secret-0123456789abcdefghijklmnop"


def stamp(seconds: float) -> str:
    return format_time(from_seconds(seconds))


# -- a real store -------------------------------------------------------------------------


class Store:
    """Projects, jobs and execution records in a real sqlite file, written synchronously."""

    def __init__(self, testcase: SynchronousTestCase, clock: Any) -> None:
        self.testcase = testcase
        self.clock = clock
        self.service = StoreService(testcase.mktemp())
        self.service.startService()
        self.commands = LocalCommandLog(self.service.path, clock, threaded=False)
        testcase.successResultOf(self.commands.startService())
        self.jobs: dict[int, dict] = {}
        testcase.addCleanup(self.close)

    def close(self) -> None:
        self.testcase.successResultOf(self.commands.stopService())
        self.service.stopService()

    def apply(self, kind: str, payload: dict) -> dict:
        result = self.testcase.successResultOf(
            self.commands.submit(new_command(kind, payload, self.clock.seconds())))
        self.testcase.assertTrue(result["ok"], result)
        return result

    def project(self, project_id: int, secret: str) -> None:
        next_id_will_be(self.service.path, "projects", project_id)
        result = self.apply(C.PROJECT_CREATE, {"project": {
            "name": f"project {project_id}", "description": "", "signing_secret": secret}})
        self.testcase.assertEqual(result["id"], project_id)

    def rotate(self, project_id: int, secret: str, previous_expires: float) -> None:
        self.apply(C.PROJECT_ROTATE_SECRET, {"id": project_id, "secret": secret,
                                             "previous_expires": stamp(previous_expires)})

    def job(self, job_id: int, url: str, project_id: int = 1, data: str | None = None) -> dict:
        next_id_will_be(self.service.path, "jobs", job_id)
        self.apply(C.JOB_CREATE, {"jobs": [{
            "project_id": project_id, "spec": "@every 1m", "callback_url": url,
            "data": data, "execution_type": "http", "timezone": "UTC", "start_date": None,
            "end_date": None, "paused": 0, "misfire_policy": "fire_once",
            "misfire_grace_seconds": 60}]})
        public = {"id": job_id, "projectId": project_id, "spec": "@every 1m",
                  "callbackUrl": url, "data": data, "executionType": "http",
                  "timezone": "UTC", "startDate": None, "endDate": None,
                  "dateCreated": "2026-11-26T15:00:00.000Z"}
        self.jobs[job_id] = public
        return public

    def occurrence(self, job_id: int, scheduled: float = T0) -> Occurrence:
        job = self.jobs[job_id]
        return Occurrence(
            execution_id=execution_id(job_id, scheduled), job_id=job_id,
            project_id=job["projectId"], scheduled=scheduled, callback_url=job["callbackUrl"],
            target=target_of(job["callbackUrl"]), payload=job_payload(job_of(job)))

    def expected_item(self, o: Occurrence, attempt: int = 1) -> dict:
        return {**self.jobs[o.job_id], "executionId": o.execution_id,
                "scheduledTime": stamp(o.scheduled), "attempt": attempt}

    def record(self, eid: str) -> dict | None:
        assert self.service.reader is not None
        return shown(self.service.reader.execution(eid))

    def state(self, eid: str) -> str | None:
        record = self.record(eid)
        return None if record is None else record["state"]

    def secrets_for(self, project_id: int) -> list[str]:
        assert self.service.schedule_reader is not None
        return self.service.schedule_reader.signing_secrets(
            project_id, stamp(self.clock.seconds()))


def make_executor(testcase: SynchronousTestCase, clock: Any, http: Any, store: Store,
                  rng: random.Random, is_live: Callable[[int], bool] = lambda job_id: True,
                  **settings: Any) -> Executor:
    """Wired like L{scheduler0.node.build_node}: breaker changes reach the executor."""
    breakers = Breakers(clock, rng, on_change=lambda breaker, old, new:
                        executor.on_breaker_change(breaker, old, new))
    executor = Executor(clock, http, ExecutionRecorder(clock, store.commands), breakers,
                        secrets_for=store.secrets_for, is_live=is_live,
                        settings=ExecutorSettings(**settings), rng=rng)
    executor.startService()
    return executor


class DeliveryCase(SynchronousTestCase):
    """
    A C{task.Clock} at 5 s past T0, a real store with projects 1 and 2, the fake HTTP
    client, and executors wired like the node's whose jobs are live unless C{self.live}
    says otherwise.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0 + 5)  # every occurrence at T0 is 5 s late
        self.store = Store(self, self.clock)
        self.store.project(1, SECRET_1)
        self.store.project(2, SECRET_2)
        self.http = FakeHTTP(self.clock, self.store)
        self.rng = random.Random(20261126)
        self.live: set[int] | None = None  # None: every job is live

    def executor(self, **settings: Any) -> Executor:
        executor = make_executor(self, self.clock, self.http, self.store, self.rng,
                                 is_live=lambda job_id: self.live is None or job_id in self.live,
                                 **settings)
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def jobs(self, base: str, ids: range | list[int], project_id: int = 1,
             own_url: bool = True) -> list[Occurrence]:
        """A job per id; C{own_url}: each at C{base/<id>} (its own POST), else all at C{base}."""
        for job_id in ids:
            self.store.job(job_id, f"{base}/{job_id}" if own_url else base, project_id)
        return [self.store.occurrence(job_id) for job_id in ids]

    def assertRecord(self, eid: str, **expected: Any) -> dict:
        record = self.store.record(eid)
        assert record is not None, f"no record for {eid}"
        self.assertEqual({k: record[k] for k in expected}, expected)
        return record


class QuietSite(Site):
    def __init__(self, resource: Resource) -> None:
        super().__init__(resource, timeout=None)  # no idle-timeout DelayedCalls
        self.noisy = False

    def log(self, request: Any) -> None:
        pass


class ExecutorCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0 + 5)
        self.store = Store(self, self.clock)
        self.store.project(1, SECRET_1)
        self.store.project(2, SECRET_2)
        self.http = FakeHTTP(self.clock, self.store)
        self.rng = random.Random(20261126)

    def jobs(self, base: str, ids: list[int]) -> list[Occurrence]:
        for job_id in ids:
            self.store.job(job_id, f"{base}/{job_id}")
        return [self.store.occurrence(job_id) for job_id in ids]

    def record(self, o: Occurrence) -> dict:
        record = self.store.record(o.execution_id)
        assert record is not None, f"no record for {o.execution_id}"
        return record
