"""Routes of C{/api/v1/credentials}: API keys and the scopes and projects they allow
(all node-wide and C{admin})."""

from __future__ import annotations

from typing import Any

from ..domain import Credential
from . import validation as V
from .base import ApiBase
from .envelope import no_content, read_json, respond
from .errors import BadRequest, NotFound
from .routing import app, requires
from .shapes import credential_json


class CredentialRoutes(ApiBase):
    @app.route("/api/v1/credentials", methods=["POST"])
    @requires("admin", node_wide=True)
    async def create_credential(self, request: Any) -> bytes:
        fields = V.validate_credential(read_json(request, optional=True), creating=True)
        self._require_projects(fields.get("project_ids"))
        credential_id, api_secret = await self.facade.create_credential(fields)
        credential = self.reader().credential(credential_id)
        assert credential is not None
        return respond(request, 201, credential_json(credential, api_secret=api_secret))

    @app.route("/api/v1/credentials", methods=["GET"])
    @requires("admin", node_wide=True)
    def list_credentials(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        credentials, total = self.reader().credentials(limit, offset)
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "credentials": [credential_json(c)
                                                      for c in credentials]})

    def _require_projects(self, project_ids: list[int] | None) -> None:
        """400 when a credential would be limited to a project that does not exist (the
        caller is node-wide: it may know)."""
        if project_ids is None:
            return
        missing = set(project_ids) - self.reader().existing_project_ids(project_ids)
        if missing:
            raise BadRequest(f"projectIds: project {min(missing)} does not exist")

    def _credential(self, credential_id: int) -> Credential:
        credential = self.reader().credential(credential_id)
        if credential is None:
            raise NotFound(f"credential {credential_id} does not exist")
        return credential

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["GET"])
    @requires("admin", node_wide=True)
    def get_credential(self, request: Any, credential_id: int) -> bytes:
        return respond(request, 200, credential_json(self._credential(credential_id)))

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["PUT"])
    @requires("admin", node_wide=True)
    async def update_credential(self, request: Any, credential_id: int) -> bytes:
        existing = self._credential(credential_id)
        changes = V.validate_credential(read_json(request), creating=False, existing=existing)
        if not changes:
            raise BadRequest('nothing to change; send e.g. {"archived": true}')
        self._require_projects(changes.get("project_ids"))
        await self.facade.update_credential(credential_id, changes)
        return respond(request, 200, credential_json(self._credential(credential_id)))

    @app.route("/api/v1/credentials/<int:credential_id>", methods=["DELETE"])
    @requires("admin", node_wide=True)
    async def delete_credential(self, request: Any, credential_id: int) -> bytes:
        self._credential(credential_id)
        await self.facade.delete_credential(credential_id)
        return no_content(request)
