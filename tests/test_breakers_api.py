"""
Circuit breakers through the HTTP API (issue 4, seed "Scheduler Admin API"): closed, open,
half-open and closed again as health shows them, and reset by an operator, on a node built
as the daemon builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import FLAKY, GOOD, Ops, Shape, scrape, seconds_of, stamp, value


class BreakerTests(SynchronousTestCase):
    def test_closed_open_half_open_closed_watched_through_health(self) -> None:
        h = Ops(self, retry_max=2)
        # one endpoint, five POSTs a round (one per project)
        jobs = [h.job(h.project(f"p{i}"), f"{FLAKY}/hook") for i in range(5)]
        h.clock.advance(60)
        fired = T0 + 60
        posts = h.http.pending(FLAKY)
        self.assertEqual(len(posts), 5)
        self.assertEqual(h.instance(FLAKY)["breaker"]["state"], "closed")
        for n, post in enumerate(posts, 1):
            post.answer(503)
            breaker = h.instance(FLAKY)["breaker"]
            if n < 5:
                self.assertEqual((breaker["state"], breaker["failureCount"]), ("closed", n))
        # open after 5 consecutive failures
        snapshot = h.health()
        Shape(self).snapshot(snapshot)
        breaker = h.instance(FLAKY, snapshot)["breaker"]
        self.assertEqual(breaker["state"], "open")
        self.assertEqual(breaker["failureCount"], 5)
        self.assertEqual(breaker["since"], stamp(fired))
        self.assertEqual(breaker["lastTransition"], stamp(fired))
        retry_at = seconds_of(breaker["retryAt"])
        self.assertTrue(fired + 4 <= retry_at <= fired + 6, breaker)  # 5 s +- 20 % jitter
        (legacy,) = snapshot["breakers"]
        self.assertEqual((legacy["state"], legacy["failures"], legacy["retryAt"]),
                         ("open", 5, breaker["retryAt"]))

        # the retries come due while it is open: held, nothing is sent
        h.clock.advance(1.5)
        self.assertEqual(h.http.pending(), [])
        self.assertEqual(h.health()["queue"]["depth"], 5)
        for job in jobs:
            self.assertEqual(h.execution(execution_id(job["id"], fired))["state"], "scheduled")
        h.clock.advance(retry_at - h.clock.seconds() - 0.05)
        self.assertEqual(h.instance(FLAKY)["breaker"]["state"], "open")
        self.assertEqual(h.http.pending(), [])

        # half_open after the delay: exactly one probe goes out
        h.clock.advance(0.1)
        breaker = h.instance(FLAKY)["breaker"]
        self.assertEqual(breaker["state"], "half_open")
        self.assertEqual(seconds_of(breaker["since"]), seconds_of(breaker["lastTransition"]))
        self.assertGreater(seconds_of(breaker["since"]), fired)
        (probe,) = h.http.pending(FLAKY)
        self.assertEqual(probe.attempts(), [2])
        self.assertEqual(h.health()["queue"]["depth"], 4)

        # the probe succeeds: closed, and what was held is delivered
        probe.answer(200)
        breaker = h.instance(FLAKY)["breaker"]
        self.assertEqual((breaker["state"], breaker["failureCount"], breaker["retryAt"]),
                         ("closed", 0, None))
        self.assertEqual(breaker["since"], stamp(h.clock.seconds()))
        held = h.http.pending(FLAKY)
        self.assertEqual(len(held), 4)
        for post in held:
            self.assertEqual(post.attempts(), [2])
            post.answer(200)
        for job in jobs:
            record = h.execution(execution_id(job["id"], fired))
            self.assertEqual((record["state"], record["attempts"]), ("succeeded", 2))
        s = h.health()
        self.assertEqual(s["queue"]["depth"], 0)
        self.assertEqual(h.instance(FLAKY, s)["pollStatus"]["consecutiveFailures"], 0)
        self.assertEqual(s["deadLetter"]["count"], 0)

    def test_reset_closes_an_open_host_breaker(self) -> None:
        h = Ops(self, retry_max=0)
        p = h.project()
        tripping = [h.job(p, f"{FLAKY}/trip/{i}", spec="@every 1h") for i in range(5)]
        waiting = h.job(p, f"{FLAKY}/waiting", spec="@every 1h")
        forms = [FLAKY, quote(FLAKY, safe=""), "flaky.test:8003", f"http::{FLAKY}"]
        for form in forms:
            h.clock.advance(1)
            for job in tripping:
                h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
            h.refuse(FLAKY)                                  # the host cannot be reached
            breaker = h.instance(FLAKY + "/trip/0")["breaker"]
            self.assertEqual((breaker["state"], breaker["scope"]), ("open", "host"))
            run = h.ok("POST", f"/api/v1/jobs/{waiting['id']}/run", expect=202)
            self.assertEqual(h.http.pending(), [])          # held by the open breaker
            self.assertEqual(h.health()["queue"]["depth"], 1)
            result = h.ok("POST", f"/api/monitoring/breakers/{form}/reset")
            self.assertEqual(result, {"instance": FLAKY, "breaker": "closed"})
            breaker = h.instance(FLAKY + "/trip/0")["breaker"]
            self.assertEqual((breaker["state"], breaker["failureCount"], breaker["retryAt"]),
                             ("closed", 0, None), form)
            (post,) = h.http.pending(FLAKY)                  # the held one goes at once
            self.assertEqual(post.ids(), [run["executionId"]])
            post.answer(200)
            self.assertEqual(h.execution(run["executionId"])["state"], "succeeded")

    def test_reset_closes_an_open_endpoint_breaker(self) -> None:
        """An endpoint's breaker is reset by its URL as the health API lists it (percent-
        encoded or not); the host's other endpoints were never held."""
        h = Ops(self, retry_max=0)
        p = h.project()
        tripping = h.job(p, f"{FLAKY}/trip", spec="@every 1h")
        other = h.job(p, f"{FLAKY}/other", spec="@every 1h")
        endpoint = FLAKY + "/trip"
        forms = [quote(endpoint, safe=""), endpoint, f"http::{endpoint}",
                 quote(f"http::{endpoint}", safe="")]
        for form in forms:
            for _ in range(5):                              # five POSTs, five failures
                h.clock.advance(0.01)
                h.ok("POST", f"/api/v1/jobs/{tripping['id']}/run", expect=202)
            h.answer(endpoint, 503)
            breaker = h.instance(endpoint)["breaker"]
            self.assertEqual((breaker["state"], breaker["scope"]), ("open", "endpoint"))
            # /metrics: the host counted in its worst state; no host or URL as a label
            m = scrape(h)
            self.assertEqual(value(m, "scheduler0_breakers", state="open"), 1)
            self.assertEqual(value(m, "scheduler0_endpoint_breakers_not_closed"), 1)
            self.assertEqual([k for k in m if "target" in dict(k[1])], [])
            run = h.ok("POST", f"/api/v1/jobs/{tripping['id']}/run", expect=202)
            self.assertEqual(h.http.pending(endpoint), [])  # held by its open breaker
            fine = h.ok("POST", f"/api/v1/jobs/{other['id']}/run", expect=202)
            (sent,) = h.http.pending(FLAKY + "/other")      # the same host's other one goes
            self.assertEqual(sent.ids(), [fine["executionId"]])
            sent.answer(200)
            result = h.ok("POST", f"/api/monitoring/breakers/{form}/reset")
            self.assertEqual(result, {"instance": endpoint, "breaker": "closed"}, form)
            (post,) = h.http.pending(endpoint)               # the held one goes at once
            self.assertEqual(post.ids(), [run["executionId"]])
            post.answer(200)
            self.assertEqual(h.execution(run["executionId"])["state"], "succeeded")
            self.assertEqual(h.instance(endpoint)["breaker"]["state"], "closed")

    def test_reset_of_an_unknown_target_is_404_and_needs_admin(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        h.clock.advance(60)
        h.answer(GOOD, 200)
        for form in ("http://nowhere.test:9", "nowhere.test:9", quote("http://nowhere.test:9",
                                                                      safe="")):
            message = h.fails("POST", f"/api/monitoring/breakers/{form}/reset", 404)
            self.assertIn("nowhere.test:9", message)
        message = h.fails("POST", "/api/monitoring/breakers/"
                          f"{quote(GOOD + '/nope', safe='')}/reset", 404)
        self.assertIn("good.test:8001/nope", message)
        writer = h.credential(["read", "write", "execute"])
        h.fails("POST", f"/api/monitoring/breakers/{GOOD}/reset", 403, headers=writer)
        h.fails("POST", f"/api/monitoring/breakers/{GOOD}/reset", 401, headers={})
        self.assertEqual(h.ok("POST", f"/api/monitoring/breakers/{GOOD}/reset"),
                         {"instance": GOOD, "breaker": "closed"})
