"""
The HTTP site: request bodies are bounded before the API sees them.

Twisted buffers a whole request body before rendering, so the limit has to be enforced
while the body arrives: past the limit the rest is discarded and the request is answered
413 without being parsed.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site


class BoundedRequest(Request):
    """A request that stops buffering its body once it exceeds the site's C{max_body}."""

    body_too_large = False
    _received = 0

    def _limit(self) -> int:
        return getattr(self.channel.site, "max_body", 16 * 1024 * 1024)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self.body_too_large = True
            self.content = BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self._received > self._limit():
            self.body_too_large = True
            self.content.close()
            self.content = BytesIO()
            return
        super().handleContentChunk(data)


class GuardResource(Resource):
    """Answers 413 for an oversized body; everything else goes to the wrapped resource."""

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped

    def render(self, request: Any) -> Any:
        if getattr(request, "body_too_large", False):
            limit = request.channel.site.max_body
            request.setResponseCode(413)
            request.setHeader("content-type", "application/json")
            request.setHeader("connection", "close")
            return json.dumps({"success": False, "data": (
                f"the request body is larger than {limit} bytes (MaxRequestBodyMb); "
                "split it into smaller requests")}).encode()
        return self._wrapped.render(request)


def make_site(resource: IResource, max_body: int) -> Site:
    site = Site(GuardResource(resource), requestFactory=BoundedRequest)
    site.max_body = max_body  # type: ignore[attr-defined]
    site.displayTracebacks = False
    return site
