"""
Who is calling, and may they.

Clients present an API key and secret (C{x-api-key}/C{x-secret-key}, or
C{Authorization: Bearer <key>:<secret>}); nodes and the CLI present the node's Basic
credentials with C{X-Peer: peer|cmd}. Secrets are compared as SHA-256 digests in constant
time, so timing says nothing about how much of a guess was right.

Headers are read as raw bytes and decoded here: a header that is not UTF-8 is a 401 like
any other bad credential, never an exception (unauthenticated callers must not be able to
write tracebacks into the log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Callable

import attrs

from ..store.reads import StateReader
from .errors import Forbidden, Unauthorized

PEER_KINDS = ("peer", "cmd")


def hash_secret(secret: str) -> str:
    """What is stored for an API secret. The secret is 256 random bits, so a plain hash is
    as strong as a slow one and keeps every request cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> str:
    return secrets.token_hex(20)


def new_api_secret() -> str:
    return secrets.token_urlsafe(32)


def _header(request, name: str) -> str | None:  # type: ignore[no-untyped-def]
    """The first value of header C{name}, or None; L{Unauthorized} if it is not UTF-8."""
    values = request.requestHeaders.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise Unauthorized(f"header {name} is not valid UTF-8; credentials are ASCII text") \
            from None


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha256(a).digest(), hashlib.sha256(b).digest())


@attrs.frozen
class Principal:
    """
    An authenticated caller: a credential (C{credential_id}) or a peer/operator.

    @ivar projects: None for a node-wide caller; for a credential limited to projects,
        their ids. Such a credential sees only those projects and what belongs to them: the
        API answers 404 for anything else, exactly as for something that does not exist,
        so it learns nothing of other projects, and 403 for calls that are node-wide.
    """

    scopes: frozenset[str]
    credential_id: int | None = None
    peer: str | None = None
    projects: frozenset[int] | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"this credential lacks the {scope!r} scope")

    def sees(self, project_id: int) -> bool:
        """Whether this caller may see (and, with the scope, change) C{project_id}."""
        return self.projects is None or project_id in self.projects

    def limits(self) -> str:
        """What this credential is limited to, for messages."""
        ids = sorted(self.projects or ())
        return f"this credential is limited to project{'s' if len(ids) > 1 else ''} " + \
            ", ".join(str(i) for i in ids)

    def require_node_wide(self, call: str) -> None:
        """A call about the whole node (credentials, monitoring, the supervisor, new
        projects) is not for a credential limited to projects."""
        if self.projects is not None:
            raise Forbidden(f"{self.limits()}; {call} is node-wide and needs a credential "
                            "without projectIds")

    def require_project(self, project_id: int, field: str = "projectId") -> None:
        """Putting something in C{project_id} (a new or moved job). 403 for a project
        outside this credential's, whether or not it exists."""
        if not self.sees(project_id):
            raise Forbidden(f"{field}: {self.limits()}")


PEER_SCOPES = frozenset({"read", "write", "execute", "admin"})


class Authenticator:
    """
    @param reader: returns the current L{StateReader} (credentials are read per request,
        so archiving or deleting one takes effect at once).
    """

    def __init__(self, reader: Callable[[], StateReader], username: str, password: str) -> None:
        self._reader = reader
        self._username = username.encode()
        self._password = password.encode()

    def authenticate(self, request) -> Principal:  # type: ignore[no-untyped-def]
        peer = _header(request, "x-peer")
        if peer is not None:
            return self._peer(request, peer.strip().lower())
        key = _header(request, "x-api-key")
        secret = _header(request, "x-secret-key")
        if not (key and secret):
            bearer = _header(request, "authorization") or ""
            if bearer[:7].lower() == "bearer ":
                key, _, secret = bearer[7:].strip().partition(":")
        if not (key and secret):
            raise Unauthorized(
                "missing credentials: send headers x-api-key and x-secret-key, or "
                "Authorization: Bearer <apiKey>:<apiSecret>"
            )
        found = self._reader().credential_for_key(key)
        expected = found[1] if found else hash_secret(secrets.token_hex(8))
        if not hmac.compare_digest(hash_secret(secret), expected) or found is None:
            raise Unauthorized("invalid API key or secret")
        credential = found[0]
        if credential.archived:
            raise Unauthorized(f"credential {credential.id} is archived")
        projects = credential.project_ids
        return Principal(scopes=frozenset(credential.scopes), credential_id=credential.id,
                         projects=frozenset(projects) if projects is not None else None)

    def _peer(self, request, kind: str) -> Principal:  # type: ignore[no-untyped-def]
        if kind not in PEER_KINDS:
            raise Unauthorized("X-Peer must be 'peer' or 'cmd'")
        self._node_basic(request, missing="peer requests need HTTP Basic auth with the node's "
                                          "AuthUsername and AuthPassword", who="peer")
        return Principal(scopes=PEER_SCOPES, peer=kind)

    def authenticate_basic(self, request) -> None:  # type: ignore[no-untyped-def]
        """
        HTTP Basic with the node's AuthUsername and AuthPassword, without C{X-Peer}: what
        a Prometheus C{basic_auth} sends to C{/metrics} under C{MetricsAuth: basic}.
        Compared in constant time, like a peer's.

        @raise Unauthorized: anything else.
        """
        self._node_basic(request, missing="/metrics needs HTTP Basic auth with the node's "
                                          "AuthUsername and AuthPassword (MetricsAuth: basic)",
                         who="Basic")

    def _node_basic(self, request, missing: str, who: str) -> None:  # type: ignore[no-untyped-def]
        """Check HTTP Basic against the node's AuthUsername and AuthPassword, both compared
        in constant time whatever the first one gave."""
        header = _header(request, "authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise Unauthorized(missing)
        try:
            username, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except ValueError:
            raise Unauthorized("malformed Basic credentials") from None
        user_ok = _same(username, self._username)
        password_ok = _same(password, self._password)
        if not (user_ok and password_ok):
            raise Unauthorized(f"invalid {who} credentials")
