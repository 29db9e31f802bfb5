"""Route of C{GET /api/v1/openapi.json}: the API's OpenAPI contract
(L{scheduler0.api.openapi}), served by every node without credentials so clients and
tools can read what the node they talk to accepts."""

from __future__ import annotations

from typing import Any

from .base import ApiBase
from .envelope import JSON_CONTENT_TYPE
from .openapi import OPENAPI_PATH, document_bytes
from .routing import app


class ContractRoutes(ApiBase):
    @app.route(OPENAPI_PATH, methods=["GET"])
    def openapi(self, request: Any) -> bytes:
        request.setHeader("content-type", JSON_CONTENT_TYPE)
        return document_bytes()
