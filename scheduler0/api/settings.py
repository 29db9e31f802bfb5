"""What an L{scheduler0.api.app.Api} is configured with, apart from its collaborators."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from ..secrets_at_rest import SigningSecretBox


@attrs.define
class Operations:
    """What the operability endpoints work with (absent in API-only tests)."""

    health: Any
    supervisor: Any
    repairs: Any
    metrics: Any = None


@attrs.define
class ApiSettings:
    node_id: int = 1
    default_misfire_grace: int = 60
    apply_timeout: float = 10.0
    #: C{url -> message or None}: refuses callback URLs in networks the operator bars
    url_policy: Callable[[str], str | None] | None = None
    #: seals new signing secrets before they become commands (a node always has one; None,
    #: in-process test wirings only, stores them as generated)
    signing_box: SigningSecretBox | None = None
    #: C{none}: /metrics answers anyone; C{basic}: only the node's AuthUsername/AuthPassword
    metrics_auth: str = "none"
