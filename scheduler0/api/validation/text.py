"""
The helpers every request body and query string shares: the documented limits, bounded
text, quoting a value in a message, and turning a JSON object into known fields.

Field names are camelCase; the snake_case spellings the seed's Node client sends
(C{project_id}, C{callback_url}, ...) are accepted too. Fields the server owns (C{id},
C{dateCreated}, ...) are ignored on input so a client may send back what it read.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import BadRequest

MAX_JOBS_PER_REQUEST = 10_000
MAX_PAGE = 10_000
#: The largest id (and offset) sqlite's INTEGER holds.
MAX_ID = 2**63 - 1
MAX_SPEC_CHARS = 1024
MAX_URL_CHARS = 2048
MAX_TIMEZONE_CHARS = 64
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 4096
MAX_DATA_BYTES = 64 * 1024
#: A century, like the longest @every: far below any overflow, far above any real need.
MAX_GRACE_SECONDS = 36500 * 86400
#: Parsing a cron spec costs up to a few microseconds per character, so the distinct cron
#: specs of one request are bounded in total (10,000 distinct typical specs are ~150,000
#: characters); @every and @at specs cost next to nothing and are not counted.
MAX_CRON_CHARS_PER_REQUEST = 256 * 1024
#: Values longer than this are described, not quoted, in error messages.
_ECHO_CHARS = 64


def _aliases(fields: Mapping[str, str], server_owned: frozenset[str]) -> dict[str, str | None]:
    """Every accepted spelling -> camelCase name (None for server-owned fields)."""
    names: dict[str, str | None] = {}
    for camel in list(fields) + list(server_owned):
        value = camel if camel in fields else None
        names[camel] = value
        names[_snake(camel)] = value
    return names


def _snake(camel: str) -> str:
    """The snake_case spelling of C{camel}, which older clients send."""
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _echo(value: Any) -> str:
    """A value for an error message: quoted when short, described when not."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _ECHO_CHARS else f"a {len(value)}-character string"
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -10**18 < value < 10**18 else "a very large integer"
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _bounded_text(value: Any, name: str, limit: int, where: str) -> None:
    """A string field's maximum length, checked before anything else looks at it."""
    if isinstance(value, str) and len(value) > limit:
        raise BadRequest(f"{where}{name}: at most {limit} characters (got {len(value)})")


def _normalise(raw: Any, names: Mapping[str, str | None], where: str) -> dict[str, Any]:
    """The known fields of the JSON object C{raw} by camelCase name, server-owned ones
    dropped, so an unknown (misspelt) field is refused rather than silently ignored."""
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}must be a JSON object")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            allowed = ", ".join(sorted(k for k, v in names.items() if v == k))
            shown = key if len(key) <= _ECHO_CHARS else f"a {len(key)}-character name"
            raise BadRequest(f"{where}{shown}: unknown field; the fields are {allowed}")
        camel = names[key]
        if camel is not None:
            fields[camel] = value
    return fields


def _is_int(value: Any) -> bool:
    """A JSON integer (C{true} is a bool, not 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    """An integer that fits an sqlite row id."""
    return _is_int(value) and 1 <= value <= MAX_ID
