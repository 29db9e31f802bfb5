"""
A cluster shares its secrets (issue 12 item 9): the Raft port is encrypted with a password
derived from C{SecretKey}, and API credentials and peer Basic auth must work on every node.
A node of a multi-node config therefore never generates its own: it refuses to start until
they are set the same on every node.
"""

from __future__ import annotations

import os
from typing import Any

from ..node_secrets import SecretsError, secrets_path


def check_cluster_secrets(config: Any) -> None:
    """
    With a non-empty C{Replicas}, the secrets must come from the configuration (file,
    environment, command line) or a C{node-secrets.json} copied into DataDir, never be
    generated on this node alone.

    @raise SecretsError: one line saying how to set them.
    """
    if not config.replicas:
        return
    if config.secret_key and config.auth_username and config.auth_password:
        return
    if os.path.exists(secrets_path(config.data_dir)):
        return
    missing = [name for name, value in (("SecretKey", config.secret_key),
                                        ("AuthUsername", config.auth_username),
                                        ("AuthPassword", config.auth_password)) if not value]
    raise SecretsError(
        f"Replicas lists a cluster but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
        f" not set, and every node of a cluster needs the same SecretKey, AuthUsername and "
        f"AuthPassword: run `scheduler0 credential init --generate` on one node and copy its "
        f"{secrets_path('<DataDir>')} to every other node's DataDir, or set "
        f"SCHEDULER0_SECRET_KEY, SCHEDULER0_AUTH_USERNAME and SCHEDULER0_AUTH_PASSWORD (or the "
        f"keys in the config file) to the same values on every node")
