"""
What a copy of DataDir gives away: signing secrets sealed, every file readable by the
node's user only.

A project's signing secret lets whoever holds it sign callbacks that receivers accept as
Scheduler0's, so the database stores it sealed: AES-256-GCM under a key derived with
HKDF-SHA256 from the node's C{SecretKey} (kept apart from the database: in
C{node-secrets.json} or the configuration), with the project id as associated data, so a
sealed secret cannot be moved to another project either. Stored form:
C{enc:v1:<base64 of the 12-byte nonce and the ciphertext>}.

A new project's first secret is sealed before its id exists (ids are chosen when its command
is applied, so that nodes proposing at once never collide): it is bound instead to a random
name stored beside it, C{enc:v2:<name>:<base64>}. Its first rotation seals the next one to
the project id.

The API seals a new secret before it becomes a command, so the state machine only ever
stores the ciphertext it is given and stays deterministic (every node of a cluster applies
the same bytes; nodes share C{SecretKey}, so any of them can open them). Reads open them;
the executor signs with the plaintext in memory only.

A database written before secrets were sealed is sealed in place at start
(L{scheduler0.store.sealing.seal_stored_secrets}), which also proves that C{SecretKey}
opens what is stored: a node given another C{SecretKey} stops with one line instead of
sending callbacks it cannot sign.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.logger import Logger

log = Logger()

#: how a sealed secret starts; anything else is a plaintext secret of an earlier version
SEALED_PREFIX = "enc:v1:"
#: a secret sealed before its project had an id, bound to a random name instead
SEALED_UNBOUND_PREFIX = "enc:v2:"
#: HKDF's info: a key derived for this purpose is never the key of another one
HKDF_INFO = b"scheduler0 signing secrets v1"
_NONCE_BYTES = 12
KEY_MISMATCH = ("signing secrets were encrypted with a different SecretKey; restore the old "
                "one")


class SigningKeyError(Exception):
    """A stored signing secret cannot be opened (another SecretKey, or a damaged value)."""


def _associated_data(project_id: int) -> bytes:
    return b"scheduler0 project %d signing secret" % project_id


def _unbound_associated_data(name: str) -> bytes:
    return b"scheduler0 new project signing secret " + name.encode("ascii")


def is_sealed(stored: str) -> bool:
    return stored.startswith("enc:")


class SigningSecretBox:
    """Seals and opens projects' signing secrets with the key derived from C{SecretKey}."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("SecretKey must not be empty")
        key = HKDF(algorithm=SHA256(), length=32, salt=None,
                   info=HKDF_INFO).derive(secret_key.encode("utf-8"))
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "<SigningSecretBox>"

    def seal(self, project_id: int, secret: str) -> str:
        """C{secret} as it is stored: C{enc:v1:...}, with a fresh random nonce."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"),
                                    _associated_data(project_id))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def seal_new(self, secret: str) -> str:
        """C{secret} as a new project's command carries it, before the project has an id:
        C{enc:v2:<random name>:...}, bound to that name."""
        name = os.urandom(12).hex()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"),
                                    _unbound_associated_data(name))
        return (SEALED_UNBOUND_PREFIX + name + ":"
                + base64.b64encode(nonce + sealed).decode("ascii"))

    def unseal(self, project_id: int, stored: str) -> str:
        """
        The secret in C{stored}. A value of an earlier version (plaintext, not yet sealed
        by L{scheduler0.store.sealing.seal_stored_secrets}) is returned as it is.

        @raise SigningKeyError: the value was sealed under another key or for another
            project, or is damaged.
        """
        if not is_sealed(stored):
            return stored
        if stored.startswith(SEALED_PREFIX):
            encoded, associated = stored[len(SEALED_PREFIX):], _associated_data(project_id)
        elif stored.startswith(SEALED_UNBOUND_PREFIX):
            name, _, encoded = stored[len(SEALED_UNBOUND_PREFIX):].partition(":")
            if not name.isascii():
                raise SigningKeyError(f"project {project_id}'s {KEY_MISMATCH}")
            associated = _unbound_associated_data(name)
        else:
            raise SigningKeyError(f"project {project_id}'s signing secret is stored in an "
                                  f"unknown format ({stored[:7]!r}); this version reads "
                                  f"{SEALED_PREFIX!r} and {SEALED_UNBOUND_PREFIX!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
            if len(raw) <= _NONCE_BYTES:
                raise ValueError("too short")
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated)
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
            raise SigningKeyError(f"project {project_id}'s {KEY_MISMATCH}") from None


def unseal_with(box: SigningSecretBox | None, project_id: int, stored: str) -> str:
    """For the readers: C{box} may be absent (an in-process test wiring without a
    SecretKey), which reads plaintext values and refuses sealed ones."""
    if box is not None:
        return box.unseal(project_id, stored)
    if is_sealed(stored):
        raise SigningKeyError(f"project {project_id}'s signing secret is sealed and this "
                              "reader has no SecretKey to open it")
    return stored


# (the start-up pass that seals what an earlier version stored in plaintext reads and
# writes the database: it lives with the store, in scheduler0.store.sealing)

# -- files ---------------------------------------------------------------------------------

#: the process's file creation mask from start: everything the node creates is its own
NODE_UMASK = 0o077


def restrict_data_dir(data_dir: str) -> list[str]:
    """
    Take group and other permissions off DataDir and everything in it (a directory or
    files an earlier version created 0755/0644). Files of another user are left as they
    are (logged). Returns the paths whose mode changed.
    """
    changed = []
    for root, _dirs, files in os.walk(data_dir):  # symbolic links are not followed
        for path in [root] + [os.path.join(root, name) for name in files]:
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o077:
                    continue
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
                changed.append(path)
            except OSError as e:
                log.warn("cannot restrict the permissions of {path}: {error}", path=path,
                         error=e.strerror or str(e))
    if changed:
        log.info("took group and other permissions off {count} path(s) in {data_dir}",
                 count=len(changed), data_dir=data_dir)
    return changed
