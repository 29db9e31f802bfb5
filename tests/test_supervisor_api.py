"""
The supervisor through the HTTP API (issue 4, seed "Scheduler Admin API"): halt and
restart, and an operator's halt kept across a process restart, on a node built as the
daemon builds it (L{tests.ops.Ops}).
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0, peer_headers
from .ops import FLAKY, GOOD, MB, Ops, stamp


class SupervisorTests(SynchronousTestCase):
    def test_503_without_a_job(self) -> None:
        h = Ops(self)
        message = h.fails("GET", "/api/supervisor/state", 503)
        self.assertIn("no job", message)
        h.project()
        h.fails("GET", "/api/supervisor/state", 503)

    def test_running_then_finished_after_the_only_at_job_fired(self) -> None:
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/once", spec="@at 2026-11-26T16:00:30Z")
        self.assertEqual(h.state(), {"state": "RUNNING", "reason": None})
        h.clock.advance(29)
        self.assertEqual(h.state()["state"], "RUNNING")
        h.clock.advance(1)
        (post,) = h.http.pending(GOOD)
        self.assertEqual(post.ids(), [execution_id(job["id"], T0 + 30)])
        self.assertEqual(h.state(), {"state": "FINISHED", "reason": None})
        post.answer(200)
        self.assertEqual(h.state()["state"], "FINISHED")
        # a job with a future occurrence: running again
        h.job(p, GOOD + "/every")
        self.assertEqual(h.state()["state"], "RUNNING")

    def test_halt_lets_flights_finish_and_restart_follows_the_misfire_policies(self) -> None:
        h = Ops(self)
        p = h.project()
        once = h.job(p, GOOD + "/once", misfirePolicy="fire_once")
        skip = h.job(p, GOOD + "/skip", misfirePolicy="skip")
        every = h.job(p, GOOD + "/all", misfirePolicy="fire_all")
        self.assertEqual(h.state()["state"], "RUNNING")
        h.clock.advance(60)
        in_flight = h.http.pending()
        self.assertEqual(len(in_flight), 3)

        # halt returns at once, with the callbacks still in flight
        halted = h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(halted["state"], "HALTED")
        self.assertIn("operator", halted["reason"])
        self.assertEqual(len(h.http.pending()), 3)
        state = h.state()
        self.assertEqual(state["state"], "HALTED")
        self.assertIn("operator", state["reason"])
        # in flight: finishes and is recorded
        for post in in_flight:
            post.answer(200)
        for job in (once, skip, every):
            self.assertEqual(h.execution(execution_id(job["id"], T0 + 60))["state"],
                             "succeeded")
        # nothing leaves the node while halted, run-now included
        h.ok("POST", f"/api/v1/jobs/{once['id']}/run", expect=202)
        h.clock.advance(570)                                # T0+630
        self.assertEqual(len(h.http.posts), 3)
        self.assertEqual(h.state()["state"], "HALTED")
        self.assertIs(h.health()["enabled"], False)

        restarted = h.ok("POST", "/api/supervisor/restart")
        self.assertEqual(restarted, {"state": "RUNNING", "reason": None})
        after = h.http.posts[3:]
        by_url: dict[str, list[str]] = {}
        for post in after:
            by_url.setdefault(post.url, []).extend(post.ids())
        # fire_once: the latest missed (16:10:00, 30 s late, within the 60 s grace) once
        self.assertEqual(by_url[GOOD + "/once"][-1], execution_id(once["id"], T0 + 600))
        self.assertEqual(len([e for e in by_url[GOOD + "/once"]
                              if not e.endswith(".001Z")]), 1)
        self.assertEqual(len(by_url[GOOD + "/once"]), 2)    # + the run-now that waited
        # skip: nothing; fire_all: every missed one, 16:02 .. 16:10
        self.assertNotIn(GOOD + "/skip", by_url)
        self.assertEqual(by_url[GOOD + "/all"],
                         [execution_id(every["id"], T0 + 60 * k) for k in range(2, 11)])
        h.answer("", 200)
        h.clock.advance(30)                                 # T0+660: back on schedule
        self.assertEqual(sorted(eid for p in h.http.pending() for eid in p.ids()),
                         sorted(execution_id(j["id"], T0 + 660) for j in (once, skip, every)))

    def test_a_halt_during_a_retry_wait_sends_nothing_until_restart(self) -> None:
        h = Ops(self, retry_max=2)
        p = h.project()
        job = h.job(p, FLAKY + "/hook")
        h.clock.advance(60)
        h.ok("POST", "/api/supervisor/halt")
        h.answer(FLAKY, 503)                                # in flight: recorded retrying
        eid = execution_id(job["id"], T0 + 60)
        self.assertEqual(h.execution(eid)["state"], "retrying")
        h.clock.advance(30)                                 # the retry comes due
        self.assertEqual(h.http.pending(), [])
        self.assertEqual(len(h.http.posts), 1)
        h.ok("POST", "/api/supervisor/restart")
        (post,) = h.http.pending()
        self.assertEqual((post.ids(), post.attempts()), ([eid], [2]))

    def test_supervisor_endpoints_need_admin_or_peer(self) -> None:
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        rwx = h.credential(["read", "write", "execute"])
        admin = h.credential(["admin"])
        endpoints = [("GET", "/api/supervisor/state", None),
                     ("POST", "/api/supervisor/halt", None),
                     ("POST", "/api/supervisor/restart", None),
                     ("GET", "/api/supervisor/hanging", None),
                     ("POST", "/api/supervisor/hanging/1-20261126T160100Z/resolve",
                      {"action": "complete"})]
        for method, path, body in endpoints:
            h.fails(method, path, 403, body=body, headers=rwx)
            h.fails(method, path, 401, body=body, headers={})
        self.assertEqual(h.state()["state"], "RUNNING")     # the 403s halted nothing
        code, envelope, _ = h.call("POST", "/api/supervisor/halt", headers=admin)
        self.assertEqual((code, envelope["data"]["state"]), (200, "HALTED"))
        code, envelope, _ = h.call("GET", "/api/supervisor/state", headers=admin)
        self.assertEqual((code, envelope["data"]["state"]), (200, "HALTED"))
        code, envelope, _ = h.call("POST", "/api/supervisor/restart",
                                   headers=peer_headers("peer"))
        self.assertEqual((code, envelope["data"]["state"]), (200, "RUNNING"))
        code, envelope, _ = h.call("GET", "/api/supervisor/hanging", headers=admin)
        self.assertEqual((code, envelope["data"]["total"]), (200, 0))


class SupervisorRestartTests(SynchronousTestCase):
    """
    Issue 9, item 7: an operator's halt survives a restart of the process (it is stored,
    and restored before anything is dispatched); the restart is stored too; memory
    pressure is not. Each "restart" is a new node, wired as build_node wires it, over the
    same data directory.
    """

    def again(self, h: Ops, at: float, **settings: Any) -> Ops:
        """Stop C{h} and start a node on its data directory at C{at}; as the daemon does,
        it resumes the outbox and the unfinished executions."""
        h.close()
        return Ops(self, data_dir=h.store.data_dir, start=at, **settings)

    def test_an_operators_halt_survives_a_restart_and_nothing_goes_out_at_start(self) -> None:
        h = Ops(self)
        p = h.project()
        once = h.job(p, GOOD + "/once", misfirePolicy="fire_once")
        skip = h.job(p, GOOD + "/skip", misfirePolicy="skip")
        every = h.job(p, GOOD + "/all", misfirePolicy="fire_all")
        h.clock.advance(60)
        h.answer("", 200)
        h.clock.advance(1)                                  # T0+61
        h.ok("POST", "/api/supervisor/halt")
        h.clock.advance(89)                                 # T0+150: 16:02 missed, halted

        node = self.again(h, T0 + 400)                      # down: 16:03 .. 16:06 missed
        self.assertEqual(node.state(), {
            "state": "HALTED",
            "reason": f"halted by an operator (POST /api/supervisor/halt) since "
                      f"{stamp(T0 + 61)}"})
        self.assertIs(node.health()["enabled"], False)
        node.clock.advance(230)                             # T0+630
        self.assertEqual(node.http.posts, [])               # no catch-up, nothing due
        self.assertEqual(node.state()["state"], "HALTED")

        self.assertEqual(node.ok("POST", "/api/supervisor/restart"),
                         {"state": "RUNNING", "reason": None})
        by_url: dict[str, list[str]] = {}
        for post in node.http.posts:
            by_url.setdefault(post.url, []).extend(post.ids())
        # the misfire policies over everything missed, halted or down alike:
        # fire_all every slot 16:02 .. 16:10; fire_once the latest (30 s late); skip none
        self.assertEqual(by_url.pop(GOOD + "/all"),
                         [execution_id(every["id"], T0 + 60 * k) for k in range(2, 11)])
        self.assertEqual(by_url.pop(GOOD + "/once"), [execution_id(once["id"], T0 + 600)])
        self.assertEqual(by_url, {})
        node.answer("", 200)
        node.clock.advance(30)                              # T0+660: back on schedule
        self.assertEqual(sorted(e for post in node.http.pending() for e in post.ids()),
                         sorted(execution_id(j["id"], T0 + 660) for j in (once, skip, every)))

    def test_a_resend_after_the_restart_waits_for_the_operator(self) -> None:
        """A POST in flight at the crash is sent again only after the operator's restart,
        once, with the same execution id."""
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/hook")                      # fire_once, grace 60
        h.clock.advance(60)
        (lost,) = h.http.pending(GOOD)
        h.ok("POST", "/api/supervisor/halt")
        node = self.again(h, T0 + 90)
        node.clock.advance(60)                              # T0+150: 16:02 passes
        self.assertEqual(node.http.posts, [])
        node.ok("POST", "/api/supervisor/restart")
        sent = sorted((e, a) for post in node.http.posts
                      for e, a in zip(post.ids(), post.attempts()))
        self.assertEqual(sent, sorted([(execution_id(job["id"], T0 + 60), 2),
                                       (execution_id(job["id"], T0 + 120), 1)]))

    def test_the_operators_restart_is_stored_too(self) -> None:
        h = Ops(self)
        p = h.project()
        job = h.job(p, GOOD + "/hook")
        h.ok("POST", "/api/supervisor/halt")
        h.ok("POST", "/api/supervisor/restart")
        node = self.again(h, T0 + 30)
        self.assertEqual(node.state(), {"state": "RUNNING", "reason": None})
        node.clock.advance(30)
        self.assertEqual(node.sent_ids(), [execution_id(job["id"], T0 + 60)])

    def test_memory_pressure_is_not_kept_across_a_restart(self) -> None:
        h = Ops(self, max_memory_mb=100)
        p = h.project()
        job = h.job(p, GOOD + "/hook")
        h.memory = 80 * MB
        h.clock.advance(1)
        self.assertIn("MaxMemory", h.state()["reason"])
        node = self.again(h, T0 + 30)
        self.assertEqual(node.state(), {"state": "RUNNING", "reason": None})
        node.clock.advance(30)
        self.assertEqual(node.sent_ids(), [execution_id(job["id"], T0 + 60)])

    def test_a_halt_that_cannot_be_stored_holds_and_is_logged(self) -> None:
        """The API answers at once whatever the store does; a failed write is logged with
        what it means, and the halt holds in memory."""
        from twisted.internet.defer import fail, succeed
        from twisted.logger import globalLogPublisher

        from scheduler0.consensus.interface import StorageFull

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        h = Ops(self)
        p = h.project()
        h.job(p, GOOD + "/hook")
        answers = [fail(StorageFull()), succeed({"ok": False, "status": 400, "error": "no"})]
        h.supervisor._commands = type("Failing", (), {
            "submit": lambda self, command: answers.pop(0)})()
        halted = h.ok("POST", "/api/supervisor/halt")
        self.assertEqual(halted["state"], "HALTED")
        self.assertEqual(len(self.flushLoggedErrors(StorageFull)), 1)
        h.ok("POST", "/api/supervisor/halt")
        messages = [e for e in events if e.get("what") == "halt"]
        self.assertEqual(len(messages), 2, messages)
        for event in messages:
            self.assertIn("a restart of the process would resume the scheduler",
                          event["after"])
        h.clock.advance(120)
        self.assertEqual(h.http.posts, [])
        self.assertIsNone(h.store.schedule_reader.supervisor())    # nothing was stored
