"""
Callback signatures (PRODUCT §5): C{X-Scheduler0-Signature: t=<unix seconds>,v1=<hex>}.

The HMAC-SHA256 covers C{"<t>.<body>"} so a receiver can reject both a forged body and a
replayed old request. The key is the whole secret string (C{whsec_...}) as UTF-8. Several
C{v1} values appear while a rotated-out secret is still in its grace period, so receivers
holding either secret keep verifying during the changeover.
"""

from __future__ import annotations

import secrets as _secrets
from typing import Sequence

# one implementation of the scheme, standard library only, that receivers import too
from ..client.signature import SIGNATURE_HEADER, verify_signature
from ..client.signature import signature_digest as _digest

__all__ = ["SECRET_PREFIX", "SIGNATURE_HEADER", "new_signing_secret", "signature_header",
           "verify"]

SECRET_PREFIX = "whsec_"


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
    return verify_signature(secret, header, body, tolerance=tolerance, now=now)


def new_signing_secret() -> str:
    """C{whsec_} and 32 random bytes in URL-safe base64 (unpadded, 43 characters)."""
    return SECRET_PREFIX + _secrets.token_urlsafe(32)
