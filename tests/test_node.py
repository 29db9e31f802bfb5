"""
L{scheduler0.node.build_node} takes what in-process tests must swap (the clock, the
callback client, the command log's writer, the memory reader, whether to listen) and
defaults the rest to the daemon's parts, so a test's node is the daemon's wiring. The
daemon itself (its reactor, writer thread, pooled client and port) is covered end to end
by L{tests.integration.test_daemon}.
"""

from __future__ import annotations

import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.occurrence import execution_id

from .harness import T0
from .ops import GOOD, Ops

MB = 2**20


class BuiltNodeTests(SynchronousTestCase):
    def test_a_job_is_called_back_on_the_given_clock_and_client_and_recorded(self) -> None:
        """No reactor and no socket: the node's timers run on the test's Clock, its
        callbacks go to the test's client, its writes are applied before they return."""
        h = Ops(self)
        self.assertEqual([s.name for s in h.node.service if s.name in ("http", "callback-pool")],
                         [])
        job = h.job(h.project(), GOOD + "/hook")
        h.clock.advance(59)
        self.assertEqual(h.http.posts, [])
        h.clock.advance(1)
        (post,) = h.http.pending(GOOD)
        eid = execution_id(job["id"], T0 + 60)
        self.assertEqual(post.ids(), [eid])
        self.assertEqual(h.execution(eid)["state"], "dispatched")
        post.answer(200)
        self.assertEqual(h.execution(eid)["state"], "succeeded")

    def test_the_memory_guard_reads_the_given_reader(self) -> None:
        """Over MaxMemory by what the given reader says, the node holds its callbacks and
        its supervisor says why; back under, it sends them."""
        h = Ops(self, max_memory_mb=100)
        job = h.job(h.project(), GOOD + "/hook")
        h.memory = 80 * MB
        h.clock.advance(1)
        self.assertIn("MaxMemory", h.state()["reason"])
        h.clock.advance(59)
        self.assertEqual(h.http.posts, [])
        h.memory = 10 * MB
        h.clock.advance(1)
        self.assertEqual(h.state()["state"], "RUNNING")
        self.assertEqual(h.sent_ids(), [execution_id(job["id"], T0 + 60)])

    def test_a_replaced_state_is_what_the_scheduler_plans_from(self) -> None:
        """A snapshot installed under a node (the state of another replica): the scheduler
        drops the plans of the state it had and plans the new state's jobs."""
        here, there = Ops(self), Ops(self)
        here.job(here.project(), GOOD + "/old")
        there.job(there.project("p"), GOOD + "/new", spec="@every 2m")
        source = sqlite3.connect(there.node.store.path)
        self.addCleanup(source.close)
        replaced = here.node.commands.applier.replace_state(source.backup, 1)
        self.successResultOf(replaced)
        here.clock.advance(120)
        self.assertEqual(sorted(p.url for p in here.http.posts), [GOOD + "/new"])

