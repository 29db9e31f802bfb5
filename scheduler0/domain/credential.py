"""An API credential: a key, the scopes it grants and the projects it is limited to."""

from __future__ import annotations

import attrs


@attrs.define(eq=True)
class Credential:
    """
    A stored credential. Never its secret, nor the secret's hash: authentication reads the
    hash apart (L{scheduler0.store.reads.StateReader.credential_for_key}), so a record that
    is shown cannot carry it.

    C{scopes} are in the order the API lists them; C{project_ids} are sorted, or None for a
    node-wide credential. A value (not frozen, like L{scheduler0.domain.Job}).
    """

    id: int
    api_key: str
    scopes: tuple[str, ...]
    project_ids: tuple[int, ...] | None
    archived: bool
    date_created: str
    date_modified: str

    @property
    def node_wide(self) -> bool:
        """Whether it sees every project (not limited to some)."""
        return self.project_ids is None
