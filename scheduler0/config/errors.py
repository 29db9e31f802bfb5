"""ConfigError and the helpers that make every configuration message one readable line.

Parsers and checks raise ``Invalid`` without knowing where a value came from; the loader turns
it into a ``ConfigError`` once the origin (default, file, variable, command line) is known.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from .replica import Replica


class ConfigError(Exception):
    """One line naming the key, the offending value and what is allowed, e.g.
    'Port: 70000 is not allowed; expected an integer from 1 to 65535 (from SCHEDULER0_PORT)'.

    ``key`` is the key name when the problem belongs to one key (None for file-level problems),
    so callers can point at it without parsing the message.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class Invalid(Exception):
    """Raised by parsers and checks; turned into a ConfigError once the origin is known.

    ``reason`` replaces the generic "expected <allowed>" text; ``shown`` replaces the rendering
    of the whole value (used to point at one entry of a list).
    """

    def __init__(self, reason: str | None = None, shown: str | None = None) -> None:
        super().__init__(reason or "")
        self.reason = reason
        self.shown = shown


_PLAIN = re.compile(r"[^\s'\"\\]+")


def show(value: object, limit: int = 120) -> str:
    """Render a value for a one-line message: simple strings plain (Port: 70000), anything else
    as repr, which quotes empty or odd strings and escapes newlines."""
    if isinstance(value, str) and _PLAIN.fullmatch(value) and len(value) <= limit:
        return value
    if isinstance(value, Replica):
        value = value.to_mapping()
    if isinstance(value, tuple):
        value = list(value)
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def type_name(value: object) -> str:
    """A human name for the YAML/Python type of a value, used in wrong-type messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def origin_plain(source: str) -> str:
    """Turn a ``Config.source`` entry into words: 'default', 'from SCHEDULER0_PORT', ..."""
    if source == "default":
        return "default"
    if source.startswith("env "):
        return f"from {source[4:]}"
    return f"from {source}"


def origin_text(source: str) -> str:
    """The trailing parenthesis of an error message."""
    return f"({origin_plain(source)})"


def suggest(name: str, candidates: list[str]) -> str | None:
    """Closest known name for a misspelling: case/underscore-insensitive first, then difflib."""
    squashed = {c.replace("_", "").lower(): c for c in candidates}
    wanted = name.replace("_", "").replace("-", "").lower()
    if wanted in squashed:
        return squashed[wanted]
    close = difflib.get_close_matches(wanted, list(squashed), n=1, cutoff=0.6)
    return squashed[close[0]] if close else None
