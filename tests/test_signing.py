"""Tests for scheduler0.execution.signing: header format, verification, secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.execution.signing import (
    SIGNATURE_HEADER,
    new_signing_secret,
    signature_header,
    verify,
)

BODY = b'[{"executionId":"e1","scheduledTime":"2026-01-01T00:00:00Z","attempt":1}]'
CURRENT = "whsec_current"
PREVIOUS = "whsec_previous"
T = 1_767_225_600


def independent(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


class SignatureHeaderTests(SynchronousTestCase):
    def test_header_name(self) -> None:
        self.assertEqual(SIGNATURE_HEADER, "X-Scheduler0-Signature")

    def test_known_answer(self) -> None:
        self.assertEqual(signature_header(BODY, [CURRENT], T),
                         f"t={T},v1={independent(CURRENT, T, BODY)}")

    def test_fixed_vector(self) -> None:
        # Pinned so a change of key encoding or message layout cannot go unnoticed.
        expected = hmac.new(b"key", b"1.", hashlib.sha256).hexdigest()
        self.assertEqual(signature_header(b"", ["key"], 1), f"t=1,v1={expected}")

    def test_one_v1_per_secret_current_first(self) -> None:
        header = signature_header(BODY, [CURRENT, PREVIOUS], T)
        self.assertEqual(header, f"t={T},v1={independent(CURRENT, T, BODY)},"
                                 f"v1={independent(PREVIOUS, T, BODY)}")

    def test_float_timestamp_is_whole_seconds(self) -> None:
        self.assertEqual(signature_header(BODY, [CURRENT], T + 0.9),  # type: ignore[arg-type]
                         signature_header(BODY, [CURRENT], T))

    def test_needs_a_secret(self) -> None:
        self.assertRaises(ValueError, signature_header, BODY, [], T)


class VerifyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.header = signature_header(BODY, [CURRENT, PREVIOUS], T)

    def test_accepts_current_and_previous(self) -> None:
        self.assertTrue(verify(self.header, BODY, CURRENT, T))
        self.assertTrue(verify(self.header, BODY, PREVIOUS, T))

    def test_accepts_single_secret_header(self) -> None:
        self.assertTrue(verify(signature_header(BODY, [CURRENT], T), BODY, CURRENT, T + 5))

    def test_rejects_wrong_secret(self) -> None:
        self.assertFalse(verify(self.header, BODY, "whsec_other", T))

    def test_rejects_tampered_body(self) -> None:
        self.assertFalse(verify(self.header, BODY.replace(b'"e1"', b'"e2"'), CURRENT, T))

    def test_rejects_tampered_timestamp(self) -> None:
        forged = self.header.replace(f"t={T}", f"t={T + 1}")
        self.assertFalse(verify(forged, BODY, CURRENT, T))

    def test_tolerance_boundary(self) -> None:
        self.assertTrue(verify(self.header, BODY, CURRENT, T + 300))
        self.assertTrue(verify(self.header, BODY, CURRENT, T - 300))
        self.assertFalse(verify(self.header, BODY, CURRENT, T + 301))
        self.assertFalse(verify(self.header, BODY, CURRENT, T - 301))
        self.assertTrue(verify(self.header, BODY, CURRENT, T + 1000, tolerance=1000))

    def test_rejects_malformed(self) -> None:
        digest = independent(CURRENT, T, BODY)
        for header in ["", "garbage", f"v1={digest}", f"t={T}", f"t=abc,v1={digest}",
                       f"t=-{T},v1={digest}", f"t={T},t={T},v1={digest}",
                       f"t={T},v1=é{digest}"]:
            self.assertFalse(verify(header, BODY, CURRENT, T), header)

    def test_tolerates_spaces_and_unknown_schemes(self) -> None:
        digest = independent(CURRENT, T, BODY)
        self.assertTrue(verify(f"t={T}, v0=abc, v1={digest}", BODY, CURRENT, T))


class NewSecretTests(SynchronousTestCase):
    def test_format(self) -> None:
        secret = new_signing_secret()
        self.assertTrue(secret.startswith("whsec_"))
        raw = base64.urlsafe_b64decode(secret[len("whsec_"):] + "=")
        self.assertEqual(len(raw), 32)

    def test_random(self) -> None:
        self.assertEqual(len({new_signing_secret() for _ in range(20)}), 20)


class RotationTests(SynchronousTestCase):
    """
    Issue 9, item 8: two rotations in a row keep the first one's grace for its old
    secret. Every previous secret signs beside the current one until its own expiry (at
    most MAX_PREVIOUS_SECRETS of them, the most recently rotated out), through the API
    and the reads the executor signs with.
    """

    def setUp(self) -> None:
        from .harness import ApiHarness

        self.h = ApiHarness(self)
        self.project = self.h.project()
        self.path = f"/projects/{self.project['id']}/signing-secret"
        self.original = self.h.ok("GET", self.path)["signingSecret"]

    def rotate(self, grace: int) -> dict:
        return self.h.ok("POST", self.path + "/rotate", {"graceSeconds": grace})

    def signing(self, at: float) -> list[str]:
        from scheduler0.timestamps import format_time, from_seconds

        return self.h.store.schedule_reader.signing_secrets(
            self.project["id"], format_time(from_seconds(at)))

    def test_a_second_rotation_keeps_the_first_ones_grace(self) -> None:
        start = self.h.clock.seconds()
        first = self.rotate(3600)["signingSecret"]          # the original: until +1 h
        self.h.clock.advance(600)
        second = self.rotate(7200)["signingSecret"]         # first: until +10 min + 2 h
        self.assertEqual(self.signing(start + 601), [second, first, self.original])
        # every one of them verifies the header the executor builds from that list
        header = signature_header(BODY, self.signing(start + 601), T)
        for secret in (second, first, self.original):
            self.assertTrue(verify(header, BODY, secret, T), secret)
        self.assertEqual(self.signing(start + 3599), [second, first, self.original])
        self.assertEqual(self.signing(start + 3601), [second, first])   # its own expiry
        self.assertEqual(self.signing(start + 600 + 7201), [second])

    def test_the_api_lists_every_previous_secret(self) -> None:
        first = self.rotate(3600)["signingSecret"]
        self.h.clock.advance(600)
        shown = self.rotate(7200)
        self.assertEqual(shown["previousSigningSecrets"], [
            {"secret": first, "expires": "2026-11-26T18:10:00.000Z"},
            {"secret": self.original, "expires": "2026-11-26T17:00:00.000Z"}])
        # the single-secret fields name the newest previous one, as before
        self.assertEqual((shown["previousSigningSecret"], shown["previousSecretExpires"]),
                         (first, "2026-11-26T18:10:00.000Z"))

    def test_at_most_five_are_kept_and_expired_ones_are_dropped(self) -> None:
        from scheduler0.store.schema import MAX_PREVIOUS_SECRETS

        secrets = [self.original]
        for _ in range(MAX_PREVIOUS_SECRETS + 2):
            self.h.clock.advance(60)
            secrets.append(self.rotate(86400)["signingSecret"])
        now = self.h.clock.seconds()
        # the current one, then the five most recently rotated out
        self.assertEqual(self.signing(now), secrets[::-1][:MAX_PREVIOUS_SECRETS + 1])
        self.assertEqual(len(self.h.ok("GET", self.path)["previousSigningSecrets"]),
                         MAX_PREVIOUS_SECRETS)
        # a rotation with no grace adds nothing that signs, and drops what has expired
        self.h.clock.advance(86400)
        latest = self.rotate(0)
        self.assertEqual(latest["previousSigningSecrets"], [])
        self.assertEqual(self.signing(self.h.clock.seconds()), [latest["signingSecret"]])

    def test_deleting_the_project_deletes_its_previous_secrets(self) -> None:
        self.rotate(3600)
        self.h.ok("DELETE", f"/projects/{self.project['id']}", expect=204)
        conn = self.h.store.reader._conn
        self.assertEqual(conn.execute(
            "SELECT count(*) FROM previous_signing_secrets").fetchone()[0], 0)
