"""
The dashboard's static files, served at C{/ui/} (issue 15 item 3).

The files ship inside the package (C{scheduler0/data/ui/}: plain HTML, CSS and JS, no build
step, nothing fetched from elsewhere). They are public: the page holds no data, and every
API call it makes carries the API key and secret the user typed, so serving them needs no
auth. Only the files listed when the assets are loaded can be served, looked up by exact
name, so no path (C{..}, percent-encoded or not) can reach any other file. Every answer
carries a strict Content-Security-Policy: scripts, styles and API calls only from this
node, no inline script or style, no framing.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Mapping

import attrs

from .base import ApiBase
from .errors import NotFound
from .routing import app

#: where the files live inside the package
UI_RESOURCE = "data/ui"
#: what C{/ui/} answers with
INDEX = "index.html"

#: Only this node's own scripts, styles and API; no inline code, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

#: Content types by suffix; a file of any other kind is not served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}


@attrs.frozen
class Asset:
    body: bytes
    content_type: str


@attrs.frozen
class UiAssets:
    """The dashboard's files by name, read once (requests never touch the disk)."""

    files: Mapping[str, Asset]

    @classmethod
    def from_package(cls) -> "UiAssets":
        return cls.from_directory(resources.files("scheduler0").joinpath(UI_RESOURCE))

    @classmethod
    def from_directory(cls, directory: Any) -> "UiAssets":
        """Every file of a known kind directly in C{directory} (a path or a Traversable)."""
        files = {}
        for entry in directory.iterdir():
            suffix = "." + entry.name.rpartition(".")[2] if "." in entry.name else ""
            if entry.is_file() and suffix in CONTENT_TYPES and not entry.name.startswith("."):
                files[entry.name] = Asset(entry.read_bytes(), CONTENT_TYPES[suffix])
        return cls(files)

    def get(self, name: str) -> Asset:
        asset = self.files.get(name)
        if asset is None:
            raise NotFound(f"the dashboard has no file {name[:200]!r}; open /ui/")
        return asset


@functools.cache
def packaged_assets() -> UiAssets:
    """The package's files, read at the first dashboard request."""
    return UiAssets.from_package()


class UiRoutes(ApiBase):
    """C{GET /ui/} and its files, without auth; C{/ui} redirects to C{/ui/} so the page's
    relative links resolve under it."""

    #: tests set their own; a node serves the package's
    ui_assets: UiAssets | None = None

    @app.route("/ui", methods=["GET"])
    def ui_redirect(self, request: Any) -> bytes:
        request.setResponseCode(301)
        request.setHeader("location", "/ui/")
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"the dashboard is at /ui/\n"

    @app.route("/ui/", methods=["GET"])
    def ui_index(self, request: Any) -> bytes:
        return self._ui_file(request, INDEX)

    @app.route("/ui/<path:name>", methods=["GET"])
    def ui_file(self, request: Any, name: str) -> bytes:
        return self._ui_file(request, name)

    def _ui_file(self, request: Any, name: str) -> bytes:
        assets = self.ui_assets if self.ui_assets is not None else packaged_assets()
        asset = assets.get(name)
        request.setHeader("content-type", asset.content_type)
        request.setHeader("content-security-policy", CONTENT_SECURITY_POLICY)
        request.setHeader("x-content-type-options", "nosniff")
        request.setHeader("x-frame-options", "DENY")
        request.setHeader("referrer-policy", "no-referrer")
        # an upgraded node serves its own files at once
        request.setHeader("cache-control", "no-cache")
        return asset.body
