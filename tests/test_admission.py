"""
Tests for scheduler0.api.admission: requests are rendered a bounded slice per reactor turn,
so timers (the scheduler's, the writer's results) run between slices (issue 8).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from scheduler0.api.admission import AdmissionResource


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CostlyResource(Resource):
    """Each render costs C{cost} seconds of the fake timer and is logged by path."""

    isLeaf = True

    def __init__(self, timer: FakeTimer, events: list[str], cost: float = 0.01,
                 body: bytes | None = None) -> None:
        super().__init__()
        self.timer, self.events, self.cost, self.body = timer, events, cost, body

    def render(self, request: Any) -> Any:
        self.timer.now += self.cost
        self.events.append(request.path.decode())
        if self.body is not None:
            return self.body
        request.write(b"ok")
        request.finish()
        return NOT_DONE_YET


def request(path: str) -> DummyRequest:
    r = DummyRequest(path.lstrip("/").split("/"))
    r.path = path.encode()
    return r


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.timer = FakeTimer()
        self.events: list[str] = []
        self.resource = AdmissionResource(CostlyResource(self.timer, self.events), self.clock,
                                          budget=0.02, timer=self.timer)

    def test_a_due_timer_runs_between_slices_of_requests(self) -> None:
        self.clock.callLater(0, self.events.append, "tick")  # e.g. the scheduler's fire
        requests = [request(f"/api/v1/jobs/{i}") for i in range(1, 6)]
        for r in requests:  # one reactor turn: five readable connections
            self.resource.render(r)
        self.assertEqual(self.events, ["/api/v1/jobs/1", "/api/v1/jobs/2"])
        self.assertEqual(self.resource.waiting, 3)
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual(self.events, ["/api/v1/jobs/1", "/api/v1/jobs/2", "tick",
                                       "/api/v1/jobs/3", "/api/v1/jobs/4", "/api/v1/jobs/5"])
        self.assertEqual([r.written for r in requests], [[b"ok"]] * 5)
        self.assertEqual(self.resource.waiting, 0)

    def test_arrival_order_is_kept_when_requests_wait(self) -> None:
        for i in range(1, 4):
            self.resource.render(request(f"/a/{i}"))
        self.clock.advance(0)
        # a new request in the next turn goes behind those still waiting
        self.resource.render(request("/a/4"))
        self.clock.advance(0)
        self.assertEqual(self.events, ["/a/1", "/a/2", "/a/3", "/a/4"])

    def test_probes_are_never_queued(self) -> None:
        for i in range(5):
            self.resource.render(request(f"/api/v1/jobs/{i}"))
        self.resource.render(request("/api/v1/healthcheck"))
        self.resource.render(request("/metrics"))
        self.assertEqual(self.events[-2:], ["/api/v1/healthcheck", "/metrics"])

    def test_a_client_that_left_while_waiting_is_skipped(self) -> None:
        for i in range(1, 4):
            self.resource.render(request(f"/a/{i}"))
        gone = request("/a/4")
        self.resource.render(gone)
        gone.processingFailed(Failure(ConnectionDone()))  # its connection was lost
        self.clock.advance(0)
        self.assertNotIn("/a/4", self.events)

    def test_a_waiting_request_whose_resource_answers_with_bytes_is_finished(self) -> None:
        resource = AdmissionResource(CostlyResource(self.timer, self.events, body=b"{}"),
                                     self.clock, budget=0.02, timer=self.timer)
        first, second, third = request("/a"), request("/b"), request("/c")
        self.assertEqual(resource.render(first), b"{}")
        self.assertEqual(resource.render(second), b"{}")
        self.assertIs(resource.render(third), NOT_DONE_YET)
        self.clock.advance(0)
        self.assertEqual(third.written, [b"{}"])
        self.assertEqual(third.finished, 1)
