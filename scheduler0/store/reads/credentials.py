"""
Credentials (never their secret) and projects' signing secrets, opened with the signing
box when they are sealed at rest.
"""

from __future__ import annotations

import sqlite3

from ...domain import Credential, PreviousSecret, SigningSecrets
from ...secrets_at_rest import SigningSecretBox, unseal_with
from .common import Queries

#: a project's previous signing secrets, the most recently rotated out first
_PREVIOUS_SECRETS = ("SELECT secret, expires FROM previous_signing_secrets WHERE project_id = ? "
                     "ORDER BY rotated_at DESC, expires DESC, secret")


def credential_from_row(row: sqlite3.Row) -> Credential:
    """A stored credential: never the secret, not even its hash. C{project_ids} is None
    for a node-wide credential."""
    projects = row["project_ids"]
    return Credential(
        id=row["id"],
        api_key=row["api_key"],
        scopes=tuple(row["scopes"].split(",")) if row["scopes"] else (),
        project_ids=(tuple(int(i) for i in projects.split(","))
                     if projects is not None else None),
        archived=bool(row["archived"]),
        date_created=row["date_created"],
        date_modified=row["date_modified"],
    )


class CredentialQueries(Queries):
    """The credential and signing-secret queries of L{StateReader}."""

    _signing_box: SigningSecretBox | None

    # signing secrets

    def signing_secret(self, project_id: int) -> SigningSecrets | None:
        """The current secret and the previous ones kept (newest first, expired ones
        included until the next rotation drops them), opened; None: no such project.

        @raise scheduler0.secrets_at_rest.SigningKeyError: a secret does not open."""
        row = self._one("SELECT signing_secret FROM projects WHERE id = ?", (project_id,))
        if row is None:
            return None
        box = self._signing_box
        previous = tuple(
            PreviousSecret(secret=unseal_with(box, project_id, secret), expires=expires)
            for secret, expires in self._conn.execute(_PREVIOUS_SECRETS, (project_id,)))
        return SigningSecrets(current=unseal_with(box, project_id, row[0]), previous=previous)

    # credentials

    def credential(self, credential_id: int) -> Credential | None:
        row = self._one("SELECT * FROM credentials WHERE id = ?", (credential_id,))
        return credential_from_row(row) if row else None

    def credentials(self, limit: int, offset: int) -> tuple[list[Credential], int]:
        rows = self._conn.execute(
            "SELECT * FROM credentials ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return ([credential_from_row(r) for r in rows],
                self._count("SELECT count(*) FROM credentials"))

    def credential_for_key(self, api_key: str) -> tuple[Credential, str] | None:
        """The credential with C{api_key} and its stored secret hash, apart from it: for
        authentication only."""
        row = self._one("SELECT * FROM credentials WHERE api_key = ?", (api_key,))
        return (credential_from_row(row), row["secret_hash"]) if row else None
