"""How the client authenticates: an API credential, or an operator's peer Basic auth."""

from __future__ import annotations

import base64
from typing import Mapping, Protocol


class Auth(Protocol):
    """Anything that gives the headers that authenticate one request."""

    def headers(self) -> Mapping[str, str]: ...


class ApiKeyAuth:
    """A credential from C{POST /credentials} or C{scheduler0 create credential}."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._headers = {"x-api-key": api_key, "x-secret-key": api_secret}

    def headers(self) -> Mapping[str, str]:
        return self._headers

    def __repr__(self) -> str:  # never the secret
        return f"ApiKeyAuth({self._headers['x-api-key']!r}, ...)"


class PeerAuth:
    """The node's C{AuthUsername}/C{AuthPassword} with C{X-Peer} (C{cmd} for operators and
    scripts, C{peer} for nodes): all scopes, for bootstrapping the first credential."""

    def __init__(self, username: str, password: str, peer: str = "cmd") -> None:
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}", "X-Peer": peer}
        self._username = username

    def headers(self) -> Mapping[str, str]:
        return self._headers

    def __repr__(self) -> str:
        return f"PeerAuth({self._username!r}, ...)"


class NoAuth:
    """No credentials: only C{GET /api/v1/healthcheck} answers."""

    def headers(self) -> Mapping[str, str]:
        return {}
