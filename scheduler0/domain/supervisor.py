"""The operator's last halt or restart of the scheduler, as stored so a restart keeps it."""

from __future__ import annotations

import attrs


@attrs.define(eq=True)
class SupervisorHalt:
    """
    Whether an operator's halt holds the scheduler (False: the last word was a restart),
    why, and since when (RFC 3339 UTC text). A value (not frozen, like
    L{scheduler0.domain.Job}).
    """

    halted: bool
    reason: str | None
    at: str | None
