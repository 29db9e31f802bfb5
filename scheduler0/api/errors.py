"""
Errors the API answers with. Each maps to one status code; L{scheduler0.api.error_map}
maps domain errors to them and turns them into the JSON envelope, in one place.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    status = 429


class Unavailable(ApiError):
    status = 503


class InsufficientStorage(ApiError):
    """The node's disk is full: the write was not stored; it can be retried once freed."""

    status = 507


_BY_STATUS = {cls.status: cls for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
    PayloadTooLarge, TooManyRequests, Unavailable)}


def error_for_status(status: int, message: str) -> ApiError:
    """The API error for a state-machine rejection's status."""
    error = _BY_STATUS.get(status, ApiError)(message)
    return error
