"""
The node secrets: C{SecretKey}, C{AuthUsername} and C{AuthPassword}.

A node that is started with none configured generates them on first start and keeps them
in C{<DataDir>/node-secrets.json}, readable by the node's user only (mode 0600), so a
restart and the CLI on the same machine find the same values. Values set in the config
(file, environment or command line) win over the file.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import attrs

SECRETS_FILENAME = "node-secrets.json"


class SecretsError(Exception):
    """The secrets file exists but cannot be used."""


@attrs.frozen
class NodeSecrets:
    secret_key: str
    auth_username: str
    auth_password: str = attrs.field(repr=False)

    def to_json(self) -> dict[str, str]:
        return {"SecretKey": self.secret_key, "AuthUsername": self.auth_username,
                "AuthPassword": self.auth_password}


def secrets_path(data_dir: str) -> str:
    return os.path.join(data_dir, SECRETS_FILENAME)


def generate() -> NodeSecrets:
    return NodeSecrets(secret_key=secrets.token_hex(32), auth_username="scheduler0",
                       auth_password=secrets.token_urlsafe(24))


def read_file(data_dir: str) -> NodeSecrets | None:
    path = secrets_path(data_dir)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SecretsError(f"cannot read node secrets from {path}: {e}") from None
    try:
        return NodeSecrets(secret_key=raw["SecretKey"], auth_username=raw["AuthUsername"],
                           auth_password=raw["AuthPassword"])
    except (KeyError, TypeError):
        raise SecretsError(f"{path} must hold SecretKey, AuthUsername and AuthPassword") from None


def write_file(data_dir: str, values: NodeSecrets) -> str:
    """Write atomically with mode 0600 (the file never exists with wider permissions)."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    path = secrets_path(data_dir)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(values.to_json(), f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def resolve(config: Any, *, create: bool) -> tuple[NodeSecrets, bool]:
    """
    The node's secrets: config values over the file's. With C{create}, missing values are
    generated and the file written. Returns the secrets and whether the file was created.

    @raise SecretsError: when values are missing and C{create} is false.
    """
    stored = read_file(config.data_dir)
    created = False
    if stored is None and create and not (
            config.secret_key and config.auth_username and config.auth_password):
        stored = generate()
        write_file(config.data_dir, stored)
        created = True
    values = {
        "secret_key": config.secret_key or (stored.secret_key if stored else None),
        "auth_username": config.auth_username or (stored.auth_username if stored else None),
        "auth_password": config.auth_password or (stored.auth_password if stored else None),
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise SecretsError(
            f"node secrets are not set ({', '.join(missing)}); run `scheduler0 credential init` "
            f"or start the node once to generate them in {secrets_path(config.data_dir)}")
    return NodeSecrets(**values), created
