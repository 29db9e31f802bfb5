"""
Callback signature verification with the standard library only, so a receiver can check
C{X-Scheduler0-Signature} after C{pip install --no-deps scheduler0} (or by copying this
file). The node's signer (L{scheduler0.execution.signing}) uses the same digest and the
same verifier, so there is one definition of the scheme.

The header is C{t=<unix seconds>,v1=<hex>[,v1=<hex>...]}; each C{v1} is the HMAC-SHA256 of
C{"<t>.<body>"} keyed with a whole signing secret (C{whsec_...}) as UTF-8. More than one
C{v1} appears while a rotated-out secret is still in its grace period.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Scheduler0-Signature"


def signature_digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of C{"<timestamp>.<body>"} under C{secret}."""
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]] | None:
    """The header's timestamp and C{v1} candidates; None when it is malformed."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return None
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return None
    return timestamp, candidates


def verify_signature(secret: str, header: str | bytes | None, body: bytes | str,
                     tolerance: int = 300, now: float | None = None) -> bool:
    """
    True if C{header} (the C{X-Scheduler0-Signature} value) signs C{body} under C{secret}
    and its timestamp is within C{tolerance} seconds of C{now} (default: the current time),
    which is what stops an old request from being replayed. A missing or malformed header
    is simply False. Pass the body exactly as received (bytes); a C{str} is taken as UTF-8.
    Every candidate is compared in constant time, so timing reveals nothing about the
    expected digest.
    """
    if header is None:
        return False
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if isinstance(body, str):
        body = body.encode("utf-8")
    parsed = _parse(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature_digest(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched
