"""
The JSON envelope every API answer uses, and the one reader of request bodies.

Every answer is C{{"success": bool, "data": ...}}; L{read_json} bounds what a body may be
(UTF-8, nesting, valid Unicode) so hostile input ends in a 400 before a handler sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import BadRequest

JSON_CONTENT_TYPE = "application/json"
#: compact JSON text of a value (no spaces: answers can hold thousands of jobs)
encode_json = json.JSONEncoder(separators=(",", ":")).encode

#: Deepest nesting of arrays and objects in a request body (a batch of jobs is 2).
MAX_JSON_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def respond(request: Any, status: int, data: Any) -> bytes:
    """Render the envelope. C{success} follows the status code."""
    request.setResponseCode(status)
    request.setHeader("content-type", JSON_CONTENT_TYPE)
    return encode_json({"success": status < 400, "data": data}).encode()


def no_content(request: Any) -> bytes:
    """A 204: deletes answer with no body at all, not an empty envelope."""
    request.setResponseCode(204)
    return b""


def shown_path(request: Any) -> str:
    """The request path for a message, cut short: paths can be up to 16 KB."""
    path = request.path.decode("utf-8", "replace")
    return path if len(path) <= 200 else path[:200] + "..."


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def read_json(request: Any, *, optional: bool = False) -> Any:
    """
    The request body as JSON: UTF-8, nested at most L{MAX_JSON_DEPTH} deep, strings valid
    Unicode (no lone surrogate escapes, which sqlite cannot store), no NaN or Infinity.
    """
    body = request.content.read() if request.content is not None else b""
    if not body.strip():
        if optional:
            return None
        raise BadRequest("a JSON request body is required")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the request body is not valid UTF-8 (byte {e.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest(f"the request body nests arrays and objects more than "
                         f"{MAX_JSON_DEPTH} levels deep") from None
    except ValueError as e:
        if str(e).startswith("Exceeds the limit"):
            raise BadRequest("the request body has a number with more than 4300 digits") \
                from None
        raise BadRequest(f"the request body is not valid JSON: {e}") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_json(value, surrogates)
    return value


def _check_json(value: Any, surrogates: bool) -> None:
    """Nesting depth (iteratively: the value may be ~1000 deep) and, if the text had
    surrogate escapes, that every string is valid Unicode."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"the request body nests arrays and objects more than "
                             f"{MAX_JSON_DEPTH} levels deep")
        children = list(item.values()) if isinstance(item, dict) else item
        if surrogates and isinstance(item, dict):
            children.extend(item)
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif surrogates and isinstance(child, str) and not _is_unicode(child):
                raise BadRequest("the request body has a \\uD800-\\uDFFF escape that is not "
                                 "part of a surrogate pair; strings must be valid Unicode")
    if surrogates and isinstance(value, str) and not _is_unicode(value):
        raise BadRequest("the request body has a \\uD800-\\uDFFF escape that is not part of "
                         "a surrogate pair; strings must be valid Unicode")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
