"""
How the executor packs occurrences into POSTs, whichever path queues them: a dispatch
round (C{submit}), the re-send of an outbox row after a restart (C{redeliver}) and a retry
resumed after a restart (C{retry_later}) all group by (callback URL, project) and chunk by
MaxPayload alike; a round past MaxQueue sends what fits and dead-letters the rest.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from scheduler0.execution.executor import Executor
from scheduler0.schedule.occurrence import Occurrence

from .fakes import FakeHTTP
from .executor_fixtures import ExecutorCase, make_executor

LIMIT = 700


class PackingTests(ExecutorCase):
    def executor(self, **settings: Any) -> Executor:
        executor = make_executor(self, self.clock, self.http, self.store, self.rng,
                                 **settings)
        self.addCleanup(lambda: executor.running and executor.stopService())
        return executor

    def occurrences(self) -> list[Occurrence]:
        """Jobs on two URLs and two projects, interleaved, with bodies of many sizes."""
        rng = random.Random(11)
        plan = [("http://a.test/hook", 1), ("http://a.test/hook", 2),
                ("http://b.test/other", 1)]
        occurrences = []
        for n in range(24):
            url, project_id = plan[n % len(plan)]
            self.store.job(500 + n, url, project_id, data="x" * rng.randrange(0, 300))
            occurrences.append(self.store.occurrence(500 + n))
        return occurrences

    def posts_of(self, deliver: Callable[[Executor, list[Occurrence]], None],
                 occurrences: list[Occurrence]) -> list[tuple[str, str, tuple[str, ...]]]:
        """(URL, chunk id, execution ids) of every POST C{deliver} leads to."""
        self.http = FakeHTTP(self.clock, self.store)
        executor = self.executor(max_payload_bytes=LIMIT, per_target=100)
        deliver(executor, occurrences)
        self.clock.advance(10)  # a resumed retry waits out its delay
        posts = self.http.posts
        for post in posts:
            self.assertTrue(len(post.body) <= LIMIT or len(post.ids()) == 1, post.url)
            post.answer(200)
        return sorted((p.url, p.header("x-payload-chunk-id"), tuple(p.ids())) for p in posts)

    def test_every_path_groups_and_chunks_alike(self) -> None:
        occurrences = self.occurrences()
        paths = {
            "dispatch round": lambda executor, os: executor.submit(os),
            "restart re-send": lambda executor, os: executor.redeliver(os, replaces="row-1"),
            "resumed retry": lambda executor, os: executor.retry_later(os, 5.0),
        }
        sent = {name: self.posts_of(path, occurrences) for name, path in paths.items()}
        expected = sent["dispatch round"]
        # three (URL, project) groups, each in several chunks numbered from 0
        self.assertGreater(len(expected), 3)
        self.assertEqual(sorted(eid for _, _, ids in expected for eid in ids),
                         sorted(o.execution_id for o in occurrences))
        for url, project_id in (("http://a.test/hook", 1), ("http://a.test/hook", 2)):
            group = [o.execution_id for o in occurrences
                     if (o.callback_url, o.project_id) == (url, project_id)]
            chunks = [ids for _, _, ids in expected if set(ids) <= set(group)]
            self.assertEqual([eid for ids in chunks for eid in ids], group)
        for name, posts in sent.items():
            self.assertEqual(posts, expected, name)
        for o in occurrences:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")

    def test_a_round_past_max_queue_sends_what_fits_and_dead_letters_the_rest(self) -> None:
        executor = self.executor(max_queue=3, per_target=1)
        for job_id in (1, 2, 3, 4):
            self.store.job(job_id, f"http://a.test/{'one' if job_id < 3 else 'two'}")
        occurrences = [self.store.occurrence(job_id) for job_id in (1, 2, 3, 4)]
        executor.submit(occurrences)
        # three fit: one POST in flight (per_target=1) with jobs 1 and 2, job 3 queued;
        # job 4, the last of the round, is refused
        self.assertEqual([p.ids() for p in self.http.pending()],
                         [[occurrences[0].execution_id, occurrences[1].execution_id]])
        self.assertEqual(executor.queued(), 1)
        dead = self.store.record(occurrences[3].execution_id)
        assert dead is not None
        self.assertEqual((dead["state"], dead["lastError"], dead["errorCategory"]),
                         ("dead", "the dispatch queue is full (MaxQueue)", "transient"))
        self.assertEqual(executor.counters["dead"], 1)
        while self.http.pending():
            self.http.pending()[0].answer(200)
        for o in occurrences[:3]:
            self.assertEqual(self.store.state(o.execution_id), "succeeded")
