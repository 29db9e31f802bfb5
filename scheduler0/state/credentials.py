"""Appliers of the API credential commands: create, update (scopes, projects) and delete."""

from __future__ import annotations

import sqlite3
from typing import Any

from .payloads import (CREDENTIAL_PROJECTS_VERSION, CreateCredential, DeleteCredential,
                       UpdateCredential)
from .rows import Rejected, Result, allocate_ids, missing_projects, require_row, update_row

__all__ = ["CREDENTIAL_PROJECTS_VERSION", "create_credential", "delete_credential",
           "update_credential"]


def _project_ids_column(conn: sqlite3.Connection, project_ids: Any) -> str | None:
    """
    C{credentials.project_ids} for a payload's C{project_ids}: None (node-wide) or the
    ids, sorted and comma-separated. Each must be a project that exists when the command
    is applied; an empty list is refused (it would read as node-wide).
    """
    if project_ids is None:
        return None
    if not isinstance(project_ids, list) or not project_ids or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in project_ids):
        raise Rejected(400, "projectIds: must be a non-empty list of project ids, or null")
    wanted = set(project_ids)
    missing = missing_projects(conn, wanted)
    if missing:
        raise Rejected(400, f"projectIds: project {min(missing)} does not exist")
    return ",".join(str(i) for i in sorted(wanted))


def create_credential(conn: sqlite3.Connection, credential: CreateCredential,
                      stamp: str) -> Result:
    project_ids = _project_ids_column(conn, credential.project_ids)
    credential_id = allocate_ids(conn, "credentials")
    conn.execute(
        "INSERT INTO credentials (id, api_key, secret_hash, scopes, archived, date_created, "
        "date_modified, project_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (credential_id, credential.api_key, credential.secret_hash, credential.scopes,
         int(credential.archived), stamp, stamp, project_ids),
    )
    return {"id": credential_id}


def update_credential(conn: sqlite3.Connection, update: UpdateCredential,
                      stamp: str) -> Result:
    credential_id = update.id
    require_row(conn, "credentials", credential_id, "credential")
    changes = dict(update.changes)
    if "project_ids" in changes:
        changes["project_ids"] = _project_ids_column(conn, changes["project_ids"])
    update_row(conn, "credentials", credential_id, changes, stamp)
    return {"id": credential_id}


def delete_credential(conn: sqlite3.Connection, delete: DeleteCredential,
                      stamp: str) -> Result:
    credential_id = delete.id
    require_row(conn, "credentials", credential_id, "credential")
    conn.execute("DELETE FROM credentials WHERE id = ?", (credential_id,))
    return {"id": credential_id}
