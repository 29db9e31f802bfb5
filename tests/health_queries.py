"""
The health API's documented C{jq} queries, and a C{jq} to run them with.

The queries are the seed's "Useful jq Queries" (scheduler-health-api.txt), verbatim: users
paste them after C{curl ... | jq}, so the answer must keep working with them unchanged.

They run through the C{jq} package (PyPI C{jq}, a test dependency that ships its own
libjq), not a system binary: the tests that use them run everywhere, never skip, and read
the answer's bytes exactly as C{curl ... | jq} does (issue 16 item 1).
"""

from __future__ import annotations

from typing import Any

import jq

RECENT_ERRORS = ('.instances[] | select(.pollStatus.lastError != null) | '
                 '{key, lastError: .pollStatus.lastError}')
DEAD_LETTERS = ('.instances[] | select(.deadLetter.present) | '
                '{key, reason: .deadLetter.reason, retryCount: .deadLetter.retryCount}')
BREAKERS_NOT_CLOSED = ('.instances[] | select(.breaker.state != "closed") | '
                       '{key, breaker: .breaker}')
STALE = '.staleness[] | select(.score > 0.5)'
FAILURE_STREAK = ('.instances[] | select(.pollStatus.consecutiveFailures > 0) | '
                  '{key, failures: .pollStatus.consecutiveFailures}')


def run_jq(program: str, document: bytes | str) -> list[Any]:
    """The values C{jq PROGRAM} prints for C{document} (the HTTP answer's body, parsed by
    libjq as the command line would); a bad program or a runtime error raises ValueError."""
    text = document.decode("utf-8") if isinstance(document, bytes) else document
    return jq.compile(program).input_text(text).all()


def jq_exit_status(program: str, document: bytes | str) -> int:
    """What C{jq -e PROGRAM} exits with: 0 if its last value is neither false nor null, 1
    if it is, 4 if there was no value at all (the jq manual's C{--exit-status})."""
    values = run_jq(program, document)
    if not values:
        return 4
    return 1 if values[-1] is None or values[-1] is False else 0
