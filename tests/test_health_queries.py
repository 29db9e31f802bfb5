"""
L{tests.health_queries}: the jq the health tests use behaves like the command line a user
runs the documented queries with (issue 16 item 1), so a passing health test means the
user's C{curl ... | jq} works too.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .health_queries import STALE, jq_exit_status, run_jq


class RunJqTests(SynchronousTestCase):
    def test_every_value_the_program_prints(self) -> None:
        document = b'{"staleness": [{"score": 0.2}, {"score": 0.9}, {"score": 1}]}'
        self.assertEqual(run_jq(STALE, document), [{"score": 0.9}, {"score": 1}])

    def test_the_answer_is_parsed_as_jq_parses_it(self) -> None:
        # a large integer stays an integer; a non-ASCII string arrives whole
        document = '{"n": 12345678901234, "s": "b\u00fccher"}'.encode()
        self.assertEqual(run_jq("[.n, .s]", document), [[12345678901234, "b\u00fccher"]])

    def test_a_bad_program_says_so(self) -> None:
        self.assertRaises(ValueError, run_jq, ".instances[", b"{}")


class ExitStatusTests(SynchronousTestCase):
    """C{jq -e}: the shape checks fail on any status but 0."""

    def test_the_last_value_decides(self) -> None:
        for program, status in [("1", 0), ("true", 0), ("{}", 0), ("false", 1), ("null", 1),
                                ("1, false", 1), ("false, 1", 0), ("empty", 4)]:
            self.assertEqual(jq_exit_status(program, b"{}"), status, program)
