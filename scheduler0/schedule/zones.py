"""IANA time zones by name, refusing host-dependent ones, with errors fit for API users."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .base import ZoneError


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


_NOT_IANA = {"", "local", "localtime", "posixrules"}


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ZoneError for anything else (host-dependent names included)."""
    if not isinstance(name, str) or name.strip().lower() in _NOT_IANA:
        raise ZoneError(
            f"time zone {name!r} is not an IANA zone name; use e.g. 'UTC' or 'Europe/London'"
        )
    if name not in _zone_names():
        hint = ""
        folded = [z for z in _zone_names() if z.lower() == name.lower()]
        if folded:
            hint = f" (did you mean {folded[0]!r}?)"
        raise ZoneError(
            f"unknown time zone {name!r}{hint}; use an IANA name such as 'UTC' or "
            "'America/New_York'"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ZoneError(f"time zone {name!r} cannot be loaded ({exc})") from exc
