"""
The one Klein app every resource module registers its routes on, and what routing needs
before a handler runs: path converters, the scope check (L{requires}) and L{EdgeResource}.

Hostile paths end in a 4xx before they reach a handler: ids in paths are ASCII digits up to
2^63-1 (L{IdConverter}), other path segments are bounded (L{SegmentConverter}), C{//} is not
merged (no redirect), and a method or URL that is not UTF-8 is refused by L{EdgeResource}.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from klein import Klein
from twisted.web.resource import IResource, Resource
from werkzeug.routing import BaseConverter, IntegerConverter

from . import validation as V
from .envelope import respond, shown_path
from .errors import NotFound


class IdConverter(IntegerConverter):
    """C{<int:...>} path segments: ASCII digits only (werkzeug's C{\\d} takes full-width
    digits) and at most 2^63-1, so no id reaches sqlite that its INTEGER cannot hold."""

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0") or "0"
        if len(digits) > 19 or int(digits) > V.MAX_ID:
            # raised from routing, this reaches the error handlers like any ApiError
            raise NotFound(f"no such resource: ids are whole numbers from 1 to {V.MAX_ID}")
        return int(digits)


class SegmentConverter(BaseConverter):
    """Plain C{<name>} path segments (execution ids): at most 128 characters."""

    MAX_CHARS = 128

    def to_python(self, value: str) -> str:
        if len(value) > self.MAX_CHARS:
            raise NotFound(f"no such resource: a path segment is longer than "
                           f"{self.MAX_CHARS} characters")
        return value


#: the API's routes and error handlers; each resource module's mixin adds its own, and
#: L{scheduler0.api.app.Api} combines the mixins so one instance serves them all
app = Klein()
# before any route is added: rules take these when they are bound
app.url_map.converters["int"] = IdConverter
app.url_map.converters["default"] = SegmentConverter
# "//" in a path is a 404, not a 308 redirect to the merged path
app.url_map.merge_slashes = False


def requires(scope: str | None, *, node_wide: bool = False) -> Callable:
    """
    Authenticate the caller and check C{scope} before the handler runs. A C{node_wide}
    call (about the whole node rather than some projects) is refused to a credential
    limited to projects; the other calls are checked per project by the handler, through
    L{scheduler0.api.base.ApiBase._project} (C{_job}, C{_execution}) and the C{only}
    filter of the lists.
    """

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def wrapper(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if scope is not None:
                principal = self.authenticator.authenticate(request)
                if node_wide:
                    principal.require_node_wide(
                        f"{request.method.decode('ascii', 'replace')} {shown_path(request)}")
                principal.require(scope)
                request.principal = principal
            return handler(self, request, *args, **kwargs)

        return wrapper

    return decorate


def visible_projects(request: Any) -> frozenset[int] | None:
    """The projects the caller may see, for a list's filter (None: all of them)."""
    return request.principal.projects


class EdgeResource(Resource):
    """
    What Klein cannot route: a method that is not ASCII, or a host or path (percent-decoded)
    that is not UTF-8. Klein would answer plain text and log a traceback (or fail with a
    500); this answers 400 in the API's envelope and logs nothing.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource) -> None:
        super().__init__()
        self._wrapped = wrapped

    def render(self, request: Any) -> Any:
        problem = self._problem(request)
        if problem is not None:
            return respond(request, 400, problem)
        return self._wrapped.render(request)

    @staticmethod
    def _problem(request: Any) -> str | None:
        if not request.method.isascii():
            return "the request method is not an ASCII HTTP method"
        try:
            b"/".join(request.prepath + request.postpath).decode("utf-8")
        except UnicodeDecodeError:
            return "the request path is not valid UTF-8 once percent-decoded"
        try:
            # what werkzeug does when Klein binds the URL map (outside Klein's error
            # handling, so its BadHost would be a 500 with a traceback)
            host = request.getRequestHostname().decode("utf-8")
            host.lower().partition(":")[0].encode("idna")
        except UnicodeError:
            return "the Host header is not a valid host name"
        return None
