"""
The callback executor (PRODUCT §5 delivery): occurrences of one URL and project share a
POST, chunked by payload size, as a JSON array signed with the project's secret (both
secrets during a rotation). A C{task.Clock} and a fake HTTP client.
"""

from __future__ import annotations

import random

from scheduler0.execution.signing import SIGNATURE_HEADER, verify

from .fakes import FakeHTTP
from .executor_fixtures import DeliveryCase, SECRET_1, SECRET_2, T0


ROTATED = "whsec_project-one-rotated-0123456789abcdefghijklmno"


class GroupingAndSigningTests(DeliveryCase):
    """Occurrences grouped by URL and project, chunked, as one signed JSON array a POST."""

    def test_same_url_and_project_share_one_post(self) -> None:
        executor = self.executor()
        for job_id in (1, 2):
            self.store.job(job_id, "http://a.test/hook")
        self.store.job(3, "http://a.test/other")        # same target, another URL
        self.store.job(4, "http://a.test/hook", project_id=2)  # same URL, another project
        self.store.job(5, "http://b.test/hook")
        o = {j: self.store.occurrence(j) for j in range(1, 6)}
        executor.submit([o[1], o[3], o[2], o[4], o[5]])
        sent = sorted((p.url, p.ids()) for p in self.http.posts)
        self.assertEqual(sent, sorted([
            ("http://a.test/hook", [o[1].execution_id, o[2].execution_id]),
            ("http://a.test/other", [o[3].execution_id]),
            ("http://a.test/hook", [o[4].execution_id]),
            ("http://b.test/hook", [o[5].execution_id]),
        ]))
        by_ids = {tuple(p.ids()): p for p in self.http.posts}
        # each POST is signed with its own project's secret
        now = int(self.clock.seconds())
        self.assertTrue(verify(by_ids[(o[4].execution_id,)].header(SIGNATURE_HEADER),
                               by_ids[(o[4].execution_id,)].body, SECRET_2, now))
        self.assertFalse(verify(by_ids[(o[4].execution_id,)].header(SIGNATURE_HEADER),
                                by_ids[(o[4].execution_id,)].body, SECRET_1, now))
        for post in self.http.posts:
            self.assertEqual(post.header("x-payload-chunk-id"), "0")

    def test_body_is_a_json_array_of_jobs_with_execution_fields(self) -> None:
        executor = self.executor()
        self.store.job(7, "http://a.test/hook")
        self.store.job(8, "http://a.test/hook")
        first, second = self.store.occurrence(7), self.store.occurrence(8, T0 + 0.25)
        executor.submit([first, second])
        (post,) = self.http.posts
        self.assertEqual(post.items(), [self.store.expected_item(first),
                                        self.store.expected_item(second)])
        self.assertEqual(post.items()[1]["executionId"], "8-20261126T160000.250Z")
        self.assertEqual(post.items()[1]["scheduledTime"], "2026-11-26T16:00:00.250Z")
        self.assertEqual(post.body, b"[" + first.body_item() + b"," + second.body_item() + b"]")
        self.assertEqual(post.header("Content-Type"), "application/json")
        self.assertEqual(post.header("x-payload-chunk-id"), "0")

    def test_chunks_respect_max_payload_bytes(self) -> None:
        rng = random.Random(7)
        url = "http://a.test/bulk"
        occurrences = []
        for n in range(30):
            job_id = 1_000_001 + n  # long ids and run-now milliseconds: long items
            self.store.job(job_id, url, data="x" * rng.randrange(0, 400))
            occurrences.append(self.store.occurrence(job_id, T0 + n + 0.123))
        all_ids = [o.execution_id for o in occurrences]
        sizes = {o.execution_id: len(o.body_item()) for o in occurrences}
        for limit in (250, 700, 1000, 1333, 1500, 2000, 2501, 4000, 10_000_000):
            self.http = FakeHTTP(self.clock, self.store)
            executor = self.executor(max_payload_bytes=limit, per_target=100)
            executor.submit(occurrences)
            posts = self.http.posts
            self.assertEqual([p.header("x-payload-chunk-id") for p in posts],
                             [str(i) for i in range(len(posts))], limit)
            # every occurrence in exactly one chunk, in order
            self.assertEqual([eid for p in posts for eid in p.ids()], all_ids, limit)
            for i, post in enumerate(posts):
                if len(post.ids()) > 1:
                    self.assertLessEqual(len(post.body), limit, (limit, i))
                else:
                    self.assertTrue(len(post.body) <= limit
                                    or sizes[post.ids()[0]] + 2 > limit, (limit, i))
                if i + 1 < len(posts):  # greedy: the next item did not fit
                    self.assertGreater(len(post.body) + 1 + sizes[posts[i + 1].ids()[0]],
                                       limit, (limit, i))
            if limit == 10_000_000:
                self.assertEqual(len(posts), 1)
            if limit == 250:
                self.assertEqual(len(posts), 30)
            for post in posts:
                post.answer(200)
            for eid in all_ids:
                self.assertEqual(self.store.state(eid), "succeeded")

    def test_signature_verifies_with_the_project_secret(self) -> None:
        executor = self.executor()
        (o,) = self.jobs("http://a.test", [1])
        executor.submit([o])
        (post,) = self.http.posts
        header = post.header(SIGNATURE_HEADER)
        now = int(self.clock.seconds())
        self.assertTrue(header.startswith(f"t={now},v1="), header)
        self.assertEqual(header.count("v1="), 1)
        self.assertTrue(verify(header, post.body, SECRET_1, now))
        self.assertFalse(verify(header, post.body, SECRET_2, now))
        self.assertFalse(verify(header, post.body + b" ", SECRET_1, now))

    def test_signature_during_rotation_verifies_with_both_secrets(self) -> None:
        executor = self.executor()
        first, second = self.jobs("http://a.test", [1, 2])
        self.store.rotate(1, ROTATED, previous_expires=self.clock.seconds() + 3600)
        executor.submit([first])
        (post,) = self.http.posts
        header, now = post.header(SIGNATURE_HEADER), int(self.clock.seconds())
        self.assertEqual(header.count("v1="), 2)
        self.assertTrue(verify(header, post.body, ROTATED, now))
        self.assertTrue(verify(header, post.body, SECRET_1, now))
        self.assertFalse(verify(header, post.body, SECRET_2, now))
        # once the grace period is over, only the new secret signs
        self.clock.advance(3601)
        executor.submit([second])
        later = self.http.posts[1]
        header, now = later.header(SIGNATURE_HEADER), int(self.clock.seconds())
        self.assertTrue(verify(header, later.body, ROTATED, now))
        self.assertFalse(verify(header, later.body, SECRET_1, now))
