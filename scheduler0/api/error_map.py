"""
The one place errors become answers: domain errors (a full disk, a node that does not
accept writes, a write not applied in time, a refused repair, a signing key that does not
open) map to L{ApiError}s in L{api_error_for}, and the Klein error handlers of
L{ErrorHandlers} turn those (and routing errors, and anything unexpected) into the JSON
envelope.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import Logger
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import RequestRedirect

from ..consensus.interface import NotAccepting, StorageFull
from ..operability.repairs import RepairError
from ..secrets_at_rest import SigningKeyError
from .envelope import respond, shown_path
from .errors import (ApiError, InsufficientStorage, MethodNotAllowed, Unavailable,
                     error_for_status)
from .routing import app

# the namespace operators filter on since the API was one module
log = Logger(namespace="scheduler0.api.app")

#: the domain errors L{api_error_for} knows how to answer
DOMAIN_ERRORS = (StorageFull, NotAccepting, DeferredTimeout, RepairError, SigningKeyError)


def api_error_for(error: BaseException, *, apply_timeout: float = 0.0) -> ApiError:
    """The answer to a domain error; C{apply_timeout} words the message of a write that
    timed out."""
    if isinstance(error, StorageFull):
        return InsufficientStorage(str(error))
    if isinstance(error, NotAccepting):
        return Unavailable(str(error))
    if isinstance(error, DeferredTimeout):
        return Unavailable(
            f"the write was not applied within {apply_timeout:g} s; it may "
            "still be applied, check before retrying")
    if isinstance(error, RepairError):
        return error_for_status(error.status, error.message)
    if isinstance(error, SigningKeyError):
        return Unavailable(f"{error}; the node cannot read this project's signing secret")
    raise TypeError(f"no API answer for {type(error).__name__}")


def rejection_error(result: dict[str, Any]) -> ApiError:
    """The answer to a command the state machine rejected (its result's status)."""
    return error_for_status(result.get("status", 500), result.get("error", "rejected"))


def run_repair(action: Callable, *args: Any) -> Any:
    """Run an operability repair; a refusal becomes its status's L{ApiError}."""
    try:
        return action(*args)
    except RepairError as e:
        raise api_error_for(e) from None


class ErrorHandlers:
    """The Klein error handlers, registered in the order Klein tries them."""

    authenticator: Any

    @app.handle_errors(ApiError)
    def _api_error(self, request: Any, failure: Any) -> bytes:
        error = failure.value
        if error.status == 503:
            # no leader, a full queue, a write not applied in time: all pass within seconds
            request.setHeader("retry-after", "1")
        return respond(request, error.status, error.message)

    @app.handle_errors(RouteNotFound, RequestRedirect)
    def _no_route(self, request: Any, failure: Any) -> bytes:
        return respond(request, 404, f"no such endpoint: {shown_path(request)}")

    @app.handle_errors(RouteMethodNotAllowed)
    def _wrong_method(self, request: Any, failure: Any) -> bytes:
        allowed = ", ".join(getattr(failure.value, "valid_methods", None) or [])
        if allowed:
            request.setHeader("allow", allowed)
        error = MethodNotAllowed(
            f"{request.method.decode('ascii', 'replace')} is not allowed on "
            f"{shown_path(request)}" + (f"; use {allowed}" if allowed else ""))
        return respond(request, error.status, error.message)

    @app.handle_errors(HTTPException)
    def _routing_error(self, request: Any, failure: Any) -> bytes:
        """Any other werkzeug routing answer (none is expected): its status, as JSON."""
        code = failure.value.code or 400
        if code >= 500:
            return self._unexpected(request, failure)
        return respond(request, code, f"cannot route {shown_path(request)}: "
                                      f"{failure.value.name}")

    @app.handle_errors(Exception)
    def _unexpected(self, request: Any, failure: Any) -> bytes:
        method, path = request.method.decode("ascii", "replace"), shown_path(request)
        if getattr(request, "principal", None) is None:
            # an unauthenticated caller must not be able to fill the log with tracebacks
            log.error("unexpected {error} ({detail}) serving unauthenticated {method} {path}",
                      error=failure.type.__name__, detail=str(failure.value)[:200],
                      method=method, path=path)
        else:
            log.failure("unexpected error serving {method} {path}", failure,
                        method=method, path=path)
        return respond(request, 500, "internal error; the node logged the details")
