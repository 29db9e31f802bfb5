"""
Row ids are chosen by the node that proposes a command, so they can travel inside it.

Only the node that proposes writes allocates; it starts above the highest id the state
has ever used (the C{sequences} table), so the id of a deleted row is never reused: an
execution id derived from a job id must never name two different jobs.
"""

from __future__ import annotations

from typing import Callable


class IdAllocator:
    """
    @param highest_used: C{highest_used(table)} is the largest id the state has recorded.
    """

    def __init__(self, highest_used: Callable[[str], int]) -> None:
        self._highest_used = highest_used
        self._next: dict[str, int] = {}

    def allocate(self, table: str, count: int = 1) -> range:
        start = self._next.get(table)
        if start is None:
            start = self._highest_used(table) + 1
        self._next[table] = start + count
        return range(start, start + count)

    def reset(self) -> None:
        """Forget what was handed out; the next allocation re-reads the state."""
        self._next.clear()
