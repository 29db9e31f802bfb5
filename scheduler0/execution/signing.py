"""
Callback signatures (PRODUCT §5): C{X-Scheduler0-Signature: t=<unix seconds>,v1=<hex>}.

The HMAC-SHA256 covers C{"<t>.<body>"} so a receiver can reject both a forged body and a
replayed old request. The key is the whole secret string (C{whsec_...}) as UTF-8. Several
C{v1} values appear while a rotated-out secret is still in its grace period, so receivers
holding either secret keep verifying during the changeover.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from typing import Sequence

SIGNATURE_HEADER = "X-Scheduler0-Signature"
SECRET_PREFIX = "whsec_"


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """
    C{'t=<timestamp>,v1=<hex>[,v1=<hex>...]'}: one C{v1} per secret, in the given order
    (the current secret first; during a rotation's grace period the previous one too).
    """
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    timestamp = int(timestamp)
    return ",".join([f"t={timestamp}"] + [f"v1={_digest(s, timestamp, body)}" for s in secrets])


def verify(header: str, body: bytes, secret: str, now: int, tolerance: int = 300) -> bool:
    """
    Receiver-side check: true if any C{v1} matches C{body} under C{secret} and C{t} is
    within C{tolerance} seconds of C{now}. A malformed header is simply false. Every
    candidate is compared in constant time, so timing reveals nothing about the digest.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body).encode("ascii")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched


def new_signing_secret() -> str:
    """C{whsec_} and 32 random bytes in URL-safe base64 (unpadded, 43 characters)."""
    return SECRET_PREFIX + _secrets.token_urlsafe(32)
