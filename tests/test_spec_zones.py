"""
Tests for scheduler0.schedule.spec: time zones by IANA name, and the messages for names
that are not one.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.schedule.spec import ZoneError, load_zone


class ZoneTests(SynchronousTestCase):
    def test_valid(self) -> None:
        self.assertEqual(load_zone("America/New_York").key, "America/New_York")
        self.assertEqual(load_zone("UTC").key, "UTC")

    def test_invalid(self) -> None:
        cases = {
            "": "not an IANA zone",
            "Local": "not an IANA zone",
            "localtime": "not an IANA zone",
            "Mars/Olympus_Mons": "unknown time zone",
            "america/new_york": "did you mean 'America/New_York'",
            "../etc/passwd": "unknown time zone",
            "/etc/localtime": "unknown time zone",
        }
        for name, fragment in cases.items():
            with self.assertRaises(ZoneError, msg=name) as caught:
                load_zone(name)
            self.assertIn(fragment, str(caught.exception))
            self.assertIsInstance(caught.exception, ValueError)
