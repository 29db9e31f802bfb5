"""
Project, credential and signing-secret rotation bodies: names and descriptions, scopes and
the projects a credential is limited to, and a rotation's grace period.
"""

from __future__ import annotations

from typing import Any

from ...domain import Credential, Project
from ..errors import BadRequest
from .text import (MAX_DESCRIPTION_CHARS, MAX_ID, MAX_NAME_CHARS, _aliases, _bounded_text,
                   _is_id, _is_int, _normalise)

SCOPES = ("read", "write", "execute", "admin")
DEFAULT_SCOPES = ("read", "write", "execute")
#: Most projects one credential can be limited to.
MAX_CREDENTIAL_PROJECTS = 1000
MAX_ROTATION_GRACE = 30 * 86400

_PROJECT_NAMES = _aliases({"name": "name", "description": "description"},
                          frozenset({"id", "dateCreated", "dateModified"}))
_CREDENTIAL_NAMES = _aliases({"scopes": "scopes", "archived": "archived",
                              "projectIds": "projectIds"},
                             frozenset({"id", "dateCreated", "dateModified", "apiKey",
                                        "apiSecret"}))


def validate_project(raw: Any, existing: Project | None = None) -> dict[str, Any]:
    """Columns of a new project, or the changes to C{existing} (absent fields kept)."""
    fields = _normalise(raw, _PROJECT_NAMES, "")
    if existing is None and "name" not in fields:
        raise BadRequest("name: required, a non-empty string")
    out: dict[str, Any] = {}
    if "name" in fields:
        name = fields["name"]
        _bounded_text(name, "name", MAX_NAME_CHARS, "")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: must be a non-empty string")
        out["name"] = name
    if "description" in fields or existing is None:
        description = fields.get("description")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise BadRequest("description: must be a string")
        _bounded_text(description, "description", MAX_DESCRIPTION_CHARS, "")
        out["description"] = description
    return out


def validate_credential(raw: Any, *, creating: bool,
                        existing: Credential | None = None) -> dict[str, Any]:
    """
    Columns of a new credential, or the changes to C{existing}. C{project_ids} is a sorted
    list of ids, or None for a node-wide credential. A credential limited to projects
    cannot have C{admin}: what only admin may do is node-wide.
    """
    fields = _normalise({} if raw is None else raw, _CREDENTIAL_NAMES, "")
    out: dict[str, Any] = {}
    if "scopes" in fields or creating:
        scopes = fields.get("scopes")
        if scopes is None:
            scopes = list(DEFAULT_SCOPES)
        if isinstance(scopes, str):
            scopes = [s.strip() for s in scopes.split(",") if s.strip()]
        if (not isinstance(scopes, list) or not scopes
                or not all(isinstance(s, str) and s in SCOPES for s in scopes)):
            raise BadRequest(f"scopes: must be a non-empty list drawn from {', '.join(SCOPES)}")
        out["scopes"] = ",".join(s for s in SCOPES if s in scopes)
    if "archived" in fields:
        if not isinstance(fields["archived"], bool):
            raise BadRequest("archived: must be true or false")
        out["archived"] = int(fields["archived"])
    if "projectIds" in fields:
        out["project_ids"] = _project_ids(fields["projectIds"])
    scopes = out.get("scopes", ",".join(existing.scopes) if existing else "")
    projects = out.get("project_ids", existing.project_ids if existing else None)
    if projects is not None and "admin" in scopes.split(","):
        raise BadRequest("scopes: admin is node-wide (it manages credentials, monitoring and "
                         "the supervisor), so a credential limited to projects (projectIds) "
                         "can have read, write and execute only")
    return out


def _project_ids(value: Any) -> list[int] | None:
    """C{projectIds}: null (node-wide) or a non-empty list of project ids."""
    if value is None:
        return None
    if (not isinstance(value, list) or not value or len(value) > MAX_CREDENTIAL_PROJECTS
            or not all(_is_id(i) for i in value)):
        got = (f" (got {len(value)})" if isinstance(value, list)
               and len(value) > MAX_CREDENTIAL_PROJECTS else "")
        raise BadRequest(f"projectIds: must be a non-empty list of at most "
                         f"{MAX_CREDENTIAL_PROJECTS} project ids (whole numbers from 1 to "
                         f"{MAX_ID}){got}, or null for a node-wide credential")
    return sorted(set(value))


def validate_rotation(raw: Any) -> int:
    """Seconds the previous signing secret stays valid (C{graceSeconds}, default a day)."""
    fields = _normalise({} if raw is None else raw, _aliases({"graceSeconds": "graceSeconds"},
                                                             frozenset()), "")
    grace = fields.get("graceSeconds", 86400)
    if not _is_int(grace) or not 0 <= grace <= MAX_ROTATION_GRACE:
        raise BadRequest(f"graceSeconds: must be a whole number from 0 to {MAX_ROTATION_GRACE}")
    return grace
