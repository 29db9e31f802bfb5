"""
The start-up pass over the stored signing secrets: seal, in place, what an earlier version
stored in plaintext, and open every sealed one, so a wrong C{SecretKey} is found at start
rather than at the first callback. The sealing itself is L{scheduler0.secrets_at_rest}.
"""

from __future__ import annotations

import sqlite3

import attrs
from twisted.logger import Logger

from ..secrets_at_rest import KEY_MISMATCH, SigningKeyError, SigningSecretBox, is_sealed

log = Logger()


@attrs.frozen
class SealReport:
    sealed: int   # plaintext secrets sealed now
    checked: int  # secrets that were sealed already, and opened


def seal_stored_secrets(path: str, box: SigningSecretBox) -> SealReport:
    """
    At start, before anything else writes: seal, in place and in one transaction, every
    signing secret an earlier version stored in plaintext (current and previous ones), and
    open every sealed one, so a wrong C{SecretKey} is found now rather than at the first
    callback.

    @raise SigningKeyError: with a one-line message naming the file, when a sealed secret
        does not open with this C{SecretKey}; nothing is changed then.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        # the plaintext a row held is overwritten, not left in the page's free space
        # (the default of some sqlite builds, not all)
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            report = _seal_rows(conn, box, path)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if report.sealed:
            # and the pages that held it leave the WAL for the file, overwritten there
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if report.sealed:
        log.info("sealed {count} signing secret(s) stored in plaintext by an earlier version "
                 "in {path}", count=report.sealed, path=path)
    return report


def _seal_rows(conn: sqlite3.Connection, box: SigningSecretBox, path: str) -> SealReport:
    sealed = checked = 0
    tables = (("projects", "id", "signing_secret"),
              ("previous_signing_secrets", "project_id", "secret"))
    for table, id_column, column in tables:
        rows = conn.execute(f"SELECT rowid, {id_column}, {column} FROM {table}").fetchall()
        for rowid, project_id, stored in rows:
            if is_sealed(stored):
                try:
                    box.unseal(project_id, stored)
                except SigningKeyError:
                    raise SigningKeyError(
                        f"the {KEY_MISMATCH} (the database {path} cannot be opened with "
                        "this node's SecretKey, from node-secrets.json or the SecretKey "
                        "setting)") from None
                checked += 1
            else:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                             (box.seal(project_id, stored), rowid))
                sealed += 1
    return SealReport(sealed=sealed, checked=checked)
