"""Appliers of the project commands: create, update, delete and rotate the signing secret."""

from __future__ import annotations

import sqlite3

from ..store.schema import MAX_PREVIOUS_SECRETS
from .payloads import CreateProject, DeleteProject, RotateProjectSecret, UpdateProject
from .rows import Rejected, Result, allocate_ids, require_row, update_row


def _project_name_taken(conn: sqlite3.Connection, name: str, except_id: int | None) -> None:
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != except_id:
        raise Rejected(409, f"a project named {name!r} already exists (id {row[0]})")


def create_project(conn: sqlite3.Connection, project: CreateProject, stamp: str) -> Result:
    _project_name_taken(conn, project.name, None)
    project_id = allocate_ids(conn, "projects")
    conn.execute(
        "INSERT INTO projects (id, name, description, signing_secret, date_created, "
        "date_modified) VALUES (?, ?, ?, ?, ?, ?)",
        (project_id, project.name, project.description, project.signing_secret, stamp, stamp),
    )
    return {"id": project_id}


def update_project(conn: sqlite3.Connection, update: UpdateProject, stamp: str) -> Result:
    project_id = update.id
    require_row(conn, "projects", project_id, "project")
    changes = update.changes
    if "name" in changes:
        _project_name_taken(conn, changes["name"], project_id)
    update_row(conn, "projects", project_id, changes, stamp)
    return {"id": project_id}


def delete_project(conn: sqlite3.Connection, delete: DeleteProject, stamp: str) -> Result:
    project_id = delete.id
    require_row(conn, "projects", project_id, "project")
    (jobs,) = conn.execute(
        "SELECT count(*) FROM jobs WHERE project_id = ?", (project_id,)
    ).fetchone()
    if jobs:
        raise Rejected(
            409, f"project {project_id} still has {jobs} job(s); delete them first"
        )
    conn.execute("DELETE FROM previous_signing_secrets WHERE project_id = ?", (project_id,))
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
    return {"id": project_id}


def rotate_project_secret(conn: sqlite3.Connection, rotate: RotateProjectSecret,
                          stamp: str) -> Result:
    """
    The new secret signs from now on; the one it replaces is kept beside it until
    C{previous_expires}. Earlier previous secrets keep their own expiry (a second rotation
    within the first one's grace does not cut it short); expired ones are dropped, and at
    most L{MAX_PREVIOUS_SECRETS} are kept, the most recently rotated out.
    """
    project_id = rotate.id
    project = require_row(conn, "projects", project_id, "project")
    conn.execute(
        "INSERT OR REPLACE INTO previous_signing_secrets (project_id, secret, expires, "
        "rotated_at) VALUES (?, ?, ?, ?)",
        (project_id, project["signing_secret"], rotate.previous_expires, stamp))
    conn.execute("DELETE FROM previous_signing_secrets WHERE project_id = ? AND expires <= ?",
                 (project_id, stamp))
    conn.execute(
        "DELETE FROM previous_signing_secrets WHERE project_id = ? AND secret NOT IN ("
        "SELECT secret FROM previous_signing_secrets WHERE project_id = ? "
        "ORDER BY rotated_at DESC, expires DESC, secret LIMIT ?)",
        (project_id, project_id, MAX_PREVIOUS_SECRETS))
    update_row(conn, "projects", project_id, {"signing_secret": rotate.secret},
               stamp)
    return {"id": project_id}
