"""What the dead letters of a callback target add up to: the health API's per-instance view."""

from __future__ import annotations

import attrs


@attrs.define(eq=True)
class DeadLetterSummary:
    """
    The dead letters of one target (or of one job at one target): how many, the first and
    last attempt among them (RFC 3339 UTC text), the most attempts any had, and whether
    any failed permanently (a 4xx, say) rather than running out of retries.
    A value (not frozen, like L{scheduler0.domain.Job}).
    """

    count: int
    first_attempt: str | None
    last_attempt: str | None
    attempts: int
    permanent: bool

    def merged(self, other: "DeadLetterSummary") -> "DeadLetterSummary":
        """The summary of both sets of dead letters (several jobs calling one endpoint)."""
        return DeadLetterSummary(
            count=self.count + other.count,
            first_attempt=min(filter(None, (self.first_attempt, other.first_attempt)),
                              default=None),
            last_attempt=max(filter(None, (self.last_attempt, other.last_attempt)),
                             default=None),
            attempts=max(self.attempts, other.attempts),
            permanent=self.permanent or other.permanent)
