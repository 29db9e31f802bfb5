"""Routes of C{/api/v1/projects}: projects and their callback signing secrets."""

from __future__ import annotations

from typing import Any

from ..domain import SigningSecrets
from ..secrets_at_rest import SigningKeyError
from . import validation as V
from .base import ApiBase
from .envelope import no_content, read_json, respond
from .error_map import api_error_for
from .errors import NotFound
from .routing import app, requires, visible_projects
from .shapes import project_json, signing_secrets_json


class ProjectRoutes(ApiBase):
    @app.route("/api/v1/projects", methods=["POST"])
    @requires("write", node_wide=True)
    async def create_project(self, request: Any) -> bytes:
        fields = V.validate_project(read_json(request))
        project_id = await self.facade.create_project(fields)
        project = self.reader().project(project_id)
        assert project is not None
        return respond(request, 201, project_json(project))

    @app.route("/api/v1/projects", methods=["GET"])
    @requires("read")
    def list_projects(self, request: Any) -> bytes:
        limit, offset = V.page(request.args)
        projects, total = self.reader().projects(limit, offset,
                                                 only=visible_projects(request))
        return respond(request, 200, {"total": total, "offset": offset, "limit": limit,
                                      "projects": [project_json(p) for p in projects]})

    @app.route("/api/v1/projects/<int:project_id>", methods=["GET"])
    @requires("read")
    def get_project(self, request: Any, project_id: int) -> bytes:
        return respond(request, 200, project_json(self._project(request, project_id)))

    @app.route("/api/v1/projects/<int:project_id>", methods=["PUT"])
    @requires("write")
    async def update_project(self, request: Any, project_id: int) -> bytes:
        existing = self._project(request, project_id)
        changes = V.validate_project(read_json(request), existing)
        await self.facade.update_project(project_id, changes)
        return respond(request, 200, project_json(self._project(request, project_id)))

    @app.route("/api/v1/projects/<int:project_id>", methods=["DELETE"])
    @requires("write")
    async def delete_project(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        await self.facade.delete_project(project_id)
        return no_content(request)

    def _signing_secrets(self, project_id: int) -> SigningSecrets:
        """The project's signing secrets, opened; 503 if they do not open."""
        try:
            record = self.reader().signing_secret(project_id)
        except SigningKeyError as e:
            raise api_error_for(e) from None
        if record is None:
            raise NotFound(f"project {project_id} does not exist")
        return record

    @app.route("/api/v1/projects/<int:project_id>/signing-secret", methods=["GET"])
    @requires("write")
    def get_signing_secret(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        return respond(request, 200, signing_secrets_json(self._signing_secrets(project_id)))

    @app.route("/api/v1/projects/<int:project_id>/signing-secret/rotate", methods=["POST"])
    @requires("write")
    async def rotate_signing_secret(self, request: Any, project_id: int) -> bytes:
        self._project(request, project_id)
        grace = V.validate_rotation(read_json(request, optional=True))
        await self.facade.rotate_signing_secret(project_id, grace)
        return respond(request, 200, signing_secrets_json(self._signing_secrets(project_id)))
