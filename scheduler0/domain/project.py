"""A project, and its callback signing secrets (read apart: only C{write} may see them)."""

from __future__ import annotations

import attrs


@attrs.define(eq=True)
class Project:
    """
    A stored project: what groups jobs and signs their callbacks. Times are RFC 3339 UTC
    text. Its signing secrets are not here: they are read apart (L{SigningSecrets}), so
    that no code path that shows a project can leak them.

    A value: nothing changes one once it is made (not frozen, like L{scheduler0.domain.Job}).
    """

    id: int
    name: str
    description: str
    date_created: str
    date_modified: str


@attrs.define(eq=True)
class PreviousSecret:
    """A secret rotated out of a project: it keeps signing beside the current one until
    C{expires} (RFC 3339 UTC text)."""

    secret: str
    expires: str


@attrs.define(eq=True)
class SigningSecrets:
    """
    A project's signing secrets, opened: the current one and the previous ones kept,
    newest first (expired ones included until the next rotation drops them).
    """

    current: str
    previous: tuple[PreviousSecret, ...] = ()

    @property
    def newest_previous(self) -> PreviousSecret | None:
        """The secret most recently rotated out (None: never rotated, or all dropped)."""
        return self.previous[0] if self.previous else None
