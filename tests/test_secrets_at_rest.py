"""
Signing secrets at rest (issue 10 item 5): a copy of the database alone does not reveal a
project's signing secret, and what could be read from DataDir is its user's only.

The secrets are sealed with a key derived from the node's SecretKey before they become
commands, opened by the reads, and the executor signs with the plaintext; a database of an
earlier version is sealed in place at start, and a node given another SecretKey refuses to
start rather than send callbacks it cannot sign.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.signing import verify
from scheduler0.secrets_at_rest import (
    HKDF_INFO, KEY_MISMATCH, SEALED_PREFIX, SEALED_UNBOUND_PREFIX, SigningKeyError,
    SigningSecretBox, restrict_data_dir)
from scheduler0.store.sealing import seal_stored_secrets
from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import connect
from scheduler0.store.service import StoreService

from .harness import ApiHarness
from .ops import Ops

#: how every stored or carried signing secret starts (L{scheduler0.secrets_at_rest})
SEALED = (SEALED_PREFIX, SEALED_UNBOUND_PREFIX)

AT = "2026-11-26T16:00:00.000Z"
LATER = "2026-11-26T17:00:00.000Z"
KEY = "the node's SecretKey"


def stored_secrets(path: str) -> list[str]:
    """Every signing secret as the database file holds it, current and previous."""
    conn = sqlite3.connect(path)
    try:
        return ([row[0] for row in conn.execute("SELECT signing_secret FROM projects")]
                + [row[0] for row in conn.execute("SELECT secret FROM previous_signing_secrets")])
    finally:
        conn.close()


def file_bytes(path: str) -> bytes:
    """The database and its WAL, as a copy of DataDir would have them."""
    data = b""
    for name in (path, path + "-wal"):
        if os.path.exists(name):
            with open(name, "rb") as f:
                data += f.read()
    return data


def legacy_database(data_dir: str) -> str:
    """A database as an earlier version left it: two projects, plaintext secrets, one of
    them rotated (its previous secret in previous_signing_secrets, plaintext too)."""
    store = StoreService(data_dir)
    store.open()
    conn = connect(store.path)
    apply_batch(conn, [
        Command("p1", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": "billing", "description": "", "signing_secret": "whsec_old1"}}),
        Command("p2", C.PROJECT_CREATE, AT, {"project": {
            "id": 2, "name": "mail", "description": "", "signing_secret": "whsec_two"}}),
        Command("r1", C.PROJECT_ROTATE_SECRET, AT, {
            "id": 1, "secret": "whsec_new1", "previous_expires": LATER}),
    ])
    conn.close()
    store.stopService()
    return store.path


class BoxTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.box = SigningSecretBox(KEY)

    def test_sealed_form(self) -> None:
        sealed = self.box.seal(7, "whsec_abc")
        self.assertTrue(sealed.startswith(SEALED_PREFIX), sealed)
        self.assertNotIn("whsec_abc", sealed)
        self.assertEqual(self.box.unseal(7, sealed), "whsec_abc")
        # a fresh nonce each time: the same secret never seals to the same text
        self.assertNotEqual(self.box.seal(7, "whsec_abc"), sealed)
        # the same SecretKey opens it on another node (nodes of a cluster share it)
        self.assertEqual(SigningSecretBox(KEY).unseal(7, sealed), "whsec_abc")

    def test_a_new_projects_secret_is_sealed_to_a_name_of_its_own(self) -> None:
        """Before its project has an id (ids are chosen when the command is applied), a
        secret is bound to a random name it carries; any node with the key opens it, a
        changed name or another key does not."""
        sealed = self.box.seal_new("whsec_new")
        self.assertTrue(sealed.startswith(SEALED_UNBOUND_PREFIX), sealed)
        self.assertNotIn("whsec_new", sealed)
        self.assertEqual(SigningSecretBox(KEY).unseal(5, sealed), "whsec_new")
        name, _, encoded = sealed[len(SEALED_UNBOUND_PREFIX):].partition(":")
        renamed = f"{SEALED_UNBOUND_PREFIX}{'0' * len(name)}:{encoded}"
        for box, value in ((self.box, renamed), (SigningSecretBox("another"), sealed)):
            with self.assertRaises(SigningKeyError):
                box.unseal(5, value)

    def test_key_derived_for_this_purpose(self) -> None:
        """HKDF-SHA256 with its own info string: the AES key is not the SecretKey."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.hashes import SHA256
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        import base64
        sealed = base64.b64decode(self.box.seal(3, "whsec_x")[len(SEALED_PREFIX):])
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
            KEY.encode())
        plain = AESGCM(key).decrypt(sealed[:12], sealed[12:],
                                    b"scheduler0 project 3 signing secret")
        self.assertEqual(plain, b"whsec_x")
        self.assertEqual(HKDF_INFO, b"scheduler0 signing secrets v1")

    def test_other_key_project_or_damage_does_not_open(self) -> None:
        sealed = self.box.seal(7, "whsec_abc")
        middle = len(SEALED_PREFIX) + 20
        flipped = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1:]
        cases = {
            "other key": (SigningSecretBox("another SecretKey"), 7, sealed),
            "other project": (self.box, 8, sealed),
            "flipped byte": (self.box, 7, flipped),
            "truncated": (self.box, 7, SEALED_PREFIX + "AAAA"),
            "not base64": (self.box, 7, SEALED_PREFIX + "%%%"),
        }
        for name, (box, project_id, value) in cases.items():
            with self.assertRaises(SigningKeyError, msg=name) as caught:
                box.unseal(project_id, value)
            self.assertIn(KEY_MISMATCH, str(caught.exception), name)
        with self.assertRaises(SigningKeyError) as caught:
            self.box.unseal(7, "enc:v9:AAAA")
        self.assertIn("unknown format", str(caught.exception))

    def test_plaintext_of_an_earlier_version_reads_as_is(self) -> None:
        self.assertEqual(self.box.unseal(7, "whsec_legacy"), "whsec_legacy")

    def test_never_shows_its_key(self) -> None:
        self.assertNotIn(KEY, repr(self.box))
        self.assertRaises(ValueError, SigningSecretBox, "")


class ApiSealsTests(SynchronousTestCase):
    """Through the API, wired as a node wires it (L{ApiHarness} has a SecretKey)."""

    def setUp(self) -> None:
        self.h = ApiHarness(self)
        self.commands: list[Command] = []
        submit = self.h.commands.submit

        def recording(command: Command) -> Any:
            self.commands.append(command)
            return submit(command)

        self.h.commands.submit = recording  # type: ignore[method-assign]

    def test_database_holds_no_secret_in_plaintext(self) -> None:
        project = self.h.project()
        path = f"/projects/{project['id']}/signing-secret"
        first = self.h.ok("GET", path)["signingSecret"]
        rotated = self.h.ok("POST", path + "/rotate", {"graceSeconds": 3600})
        second = rotated["signingSecret"]
        self.assertTrue(first.startswith("whsec_") and second.startswith("whsec_"))
        self.assertEqual(rotated["previousSigningSecret"], first)
        self.assertEqual(self.h.ok("GET", path)["signingSecret"], second)

        stored = stored_secrets(self.h.store.path)
        self.assertEqual(len(stored), 2)
        self.assertTrue(all(s.startswith(SEALED) for s in stored), stored)
        data = file_bytes(self.h.store.path)
        for secret in (first, second):
            self.assertNotIn(secret.encode(), data)
        # what the executor signs with: the secrets themselves
        self.assertEqual(self.h.store.schedule_reader.signing_secrets(project["id"], AT),
                         [second, first])

    def test_commands_carry_the_sealed_secret(self) -> None:
        """Sealed before the command (the state machine stays deterministic: every node
        stores the bytes the command carries)."""
        project = self.h.project()
        path = f"/projects/{project['id']}/signing-secret"
        self.h.ok("POST", path + "/rotate")
        secrets = self.h.ok("GET", path)
        create, rotate = [c for c in self.commands
                          if c.kind in (C.PROJECT_CREATE, C.PROJECT_ROTATE_SECRET)]
        carried = [create.payload.signing_secret, rotate.payload.secret]
        self.assertTrue(all(s.startswith(SEALED) for s in carried), carried)
        self.assertEqual([self.h.signing_box.unseal(project["id"], s) for s in carried],
                         [secrets["previousSigningSecret"], secrets["signingSecret"]])

    def test_secret_sealed_under_another_key_is_503_not_500(self) -> None:
        project = self.h.project()
        conn = sqlite3.connect(self.h.store.path, isolation_level=None)
        conn.execute("UPDATE projects SET signing_secret = ?",
                     (SigningSecretBox("other").seal(project["id"], "whsec_x"),))
        conn.close()
        code, envelope = self.h.request("GET", f"/projects/{project['id']}/signing-secret")
        self.assertEqual(code, 503, envelope)
        self.assertIn(KEY_MISMATCH, envelope["data"])


class StartTests(SynchronousTestCase):
    """Opening the store with the node's key: an earlier version's plaintext secrets are
    sealed in place, and a wrong SecretKey is refused before anything runs."""

    def test_plaintext_sealed_in_place(self) -> None:
        data_dir = self.mktemp()
        path = legacy_database(data_dir)
        self.assertEqual(sorted(stored_secrets(path)), ["whsec_new1", "whsec_old1", "whsec_two"])
        box = SigningSecretBox(KEY)
        store = StoreService(data_dir, signing_box=box)
        store.open()
        self.addCleanup(store.stopService)
        stored = stored_secrets(path)
        self.assertEqual(len(stored), 3)
        self.assertTrue(all(s.startswith(SEALED) for s in stored), stored)
        for secret in (b"whsec_new1", b"whsec_old1", b"whsec_two"):
            self.assertNotIn(secret, file_bytes(path))
        # read back as they were, previous secret included
        self.assertEqual(store.schedule_reader.signing_secrets(1, AT),
                         ["whsec_new1", "whsec_old1"])
        self.assertEqual(store.reader.signing_secret(2).current, "whsec_two")
        # a second start seals nothing more and checks what is sealed
        report = seal_stored_secrets(path, box)
        self.assertEqual((report.sealed, report.checked), (0, 3))

    def test_other_secret_key_refused_and_nothing_changed(self) -> None:
        data_dir = self.mktemp()
        path = legacy_database(data_dir)
        # project 2's secret sealed under the old key; project 1's still plaintext
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("UPDATE projects SET signing_secret = ? WHERE id = 2",
                     (SigningSecretBox(KEY).seal(2, "whsec_two"),))
        conn.close()
        before = stored_secrets(path)
        store = StoreService(data_dir, signing_box=SigningSecretBox("a new SecretKey"))
        with self.assertRaises(SigningKeyError) as caught:
            store.open()
        message = str(caught.exception)
        self.assertIn("signing secrets were encrypted with a different SecretKey; restore "
                      "the old one", message)
        self.assertIn(path, message)
        self.assertNotIn("\n", message)
        self.assertEqual(stored_secrets(path), before)  # no half-sealed file
        # the right key opens it, and seals the rest
        store = StoreService(data_dir, signing_box=SigningSecretBox(KEY))
        store.open()
        self.addCleanup(store.stopService)
        self.assertEqual(store.reader.signing_secret(2).current, "whsec_two")
        self.assertTrue(all(s.startswith(SEALED) for s in stored_secrets(path)))

    def test_reader_without_key_refuses_sealed_secret(self) -> None:
        data_dir = self.mktemp()
        legacy_database(data_dir)
        StoreService(data_dir, signing_box=SigningSecretBox(KEY)).open().signing_secret(1)
        store = StoreService(data_dir)
        store.open()
        self.addCleanup(store.stopService)
        self.assertRaises(SigningKeyError, store.schedule_reader.signing_secrets, 1, AT)


class ExecutorSignsTests(SynchronousTestCase):
    """The executor signs with the opened secret, and never sends a callback unsigned."""

    def ops(self) -> Ops:
        return Ops(self, secret_key=KEY)

    def test_callback_signed_with_the_plaintext(self) -> None:
        h = self.ops()
        project = h.project()
        secret = h.ok("GET", f"/api/v1/projects/{project['id']}/signing-secret")["signingSecret"]
        job = h.job(project, "http://receiver.test:80/hook", spec="@every 1h")
        h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
        (post,) = h.http.pending("http://receiver.test:80/hook")
        header = post.header("X-Scheduler0-Signature")
        self.assertTrue(verify(header, post.body, secret, int(h.clock.seconds())), header)
        post.answer(200)

    def test_unopenable_secret_is_not_sent_unsigned(self) -> None:
        h = self.ops()
        project = h.project()
        job = h.job(project, "http://receiver.test:80/hook", spec="@every 1h")
        conn = sqlite3.connect(h.store.path, isolation_level=None)
        conn.execute("UPDATE projects SET signing_secret = ?",
                     (SigningSecretBox("other").seal(project["id"], "whsec_x"),))
        conn.close()
        run = h.ok("POST", f"/api/v1/jobs/{job['id']}/run", expect=202)
        self.assertEqual(h.http.posts, [])
        # the attempt fails (and is retried) instead; the log has the one-line reason
        record = h.execution(run["executionId"])
        self.assertEqual(record["state"], "retrying", record)
        self.assertIn("SigningKeyError", record["lastError"])
        (logged,) = self.flushLoggedErrors(SigningKeyError)
        self.assertIn(KEY_MISMATCH, str(logged.value))


class FileModeTests(SynchronousTestCase):
    def test_earlier_files_restricted(self) -> None:
        data_dir = self.mktemp()
        os.makedirs(os.path.join(data_dir, "raft"))
        files = [os.path.join(data_dir, name) for name in
                 ("scheduler0.db", "scheduler0.db-wal", "node-secrets.json",
                  os.path.join("raft", "journal"))]
        for path in files:
            with open(path, "w") as f:
                f.write("x")
            os.chmod(path, 0o644)
        os.chmod(data_dir, 0o755)
        os.chmod(os.path.join(data_dir, "raft"), 0o775)
        outside = os.path.abspath(self.mktemp())
        with open(outside, "w") as f:
            f.write("not ours")
        os.chmod(outside, 0o644)
        os.symlink(outside, os.path.join(data_dir, "link"))

        changed = restrict_data_dir(data_dir)
        self.assertEqual(len(changed), 6)
        self.assertEqual(stat.S_IMODE(os.stat(data_dir).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data_dir, "raft")).st_mode), 0o700)
        for path in files:
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
        # a symbolic link is not followed out of DataDir
        self.assertEqual(stat.S_IMODE(os.stat(outside).st_mode), 0o644)
        self.assertEqual(restrict_data_dir(data_dir), [])
