"""
Query-string arguments: paging, optional ids and the execution listing's filters. Only
ASCII digits make an integer, and every value is bounded so nothing past here overflows
sqlite's 64-bit INTEGER.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ...timestamps import format_time, parse_time
from ..errors import BadRequest
from .text import MAX_ID, MAX_PAGE, _ECHO_CHARS, _echo

def page(args: Mapping[bytes, list[bytes]]) -> tuple[int, int]:
    """C{limit} (default 50) and C{offset} (default 0) from a query string."""
    return (_int_arg(args, "limit", 50, 1, MAX_PAGE), _int_arg(args, "offset", 0, 0, MAX_ID))


_INTEGER = re.compile(rb"-?[0-9]{1,20}")


def _int_arg(args: Mapping[bytes, list[bytes]], name: str, default: int, low: int,
             high: int) -> int:
    """An integer query argument in C{[low, high]}: ASCII digits only (C{int()} would take
    full-width digits, underscores and spaces)."""
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return default
    raw = values[0]
    if _INTEGER.fullmatch(raw) is None:
        shown = (repr(raw.decode("utf-8", "replace")) if len(raw) <= _ECHO_CHARS
                 else f"a {len(raw)}-byte value")
        raise BadRequest(f"{name}: {shown} is not an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name}: {_echo(value)} is out of range; use an integer from {low} "
                         f"to {high}")
    return value


def optional_int_arg(args: Mapping[bytes, list[bytes]], name: str) -> int | None:
    """An id argument, or None when absent or empty."""
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return None
    return _int_arg(args, name, 0, 1, MAX_ID)


EXECUTION_STATES = ("scheduled", "dispatched", "succeeded", "failed", "retrying", "dead")


def execution_filters(args: Mapping[bytes, list[bytes]]) -> dict[str, Any]:
    """C{projectId}, C{state}, C{from} and C{to} (RFC 3339, on the scheduled time)."""
    filters: dict[str, Any] = {"project_id": optional_int_arg(args, "projectId")}
    state = _text_arg(args, "state")
    if state is not None and state not in EXECUTION_STATES:
        raise BadRequest(f"state: {_echo(state)} is not one of {', '.join(EXECUTION_STATES)}")
    filters["state"] = state
    for name, key in (("from", "since"), ("to", "until")):
        text = _text_arg(args, name)
        if text is None:
            filters[key] = None
            continue
        try:
            filters[key] = format_time(parse_time(text))
        except ValueError as e:
            raise BadRequest(f"{name}: {e}") from None
    return filters


def _text_arg(args: Mapping[bytes, list[bytes]], name: str) -> str | None:
    """A text argument, or None when absent or empty (undecodable bytes replaced)."""
    values = args.get(name.encode())
    if not values or values[0] == b"":
        return None
    return values[0].decode("utf-8", "replace")


