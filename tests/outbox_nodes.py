"""
Shared by the outbox tests (test_outbox_*): L{Node}, a node restarted over an existing data
directory (it resumes the outbox and unfinished executions at start), what a node's outbox
lists (L{outbox}) and a crash (L{crash}).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from .ops import Ops


# -- a node over an existing data directory, with recovery --------------------------------


class Node(Ops):
    """A node restarted over the sqlite file in C{data_dir} at C{at}, built as the daemon
    builds it (retry_max 2, timeout 10); it resumes the outbox and unfinished executions
    at start. C{before_recovery} sees the node just before recovery starts."""

    def __init__(self, tc: SynchronousTestCase, data_dir: str, at: float, *,
                 before_recovery: Callable[[Node], None] | None = None) -> None:
        super().__init__(tc, retry_max=2, timeout=10, data_dir=data_dir, start=at,
                         before_recovery=before_recovery)  # type: ignore[arg-type]


def outbox(node: Ops) -> list[list]:
    """Every occurrence the outbox lists: [execution id, job id, scheduled, attempt]."""
    return [list(o) for row in node.store.schedule_reader.deliveries() for o in row.occurrences]


def crash(h: Ops) -> str:
    """Stop a node without waiting for the answers of its POSTs (a restarted L{Node}
    dies: it writes nothing more); its data directory."""
    if isinstance(h, Node):
        h.crash()
    else:
        h.close()
    return h.store.data_dir
