"""A node refuses, in one line and before touching its data, a sqlite too old for it."""

from __future__ import annotations

import os
import sqlite3

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.store.database import MIN_SQLITE, DatabaseError, require_sqlite
from scheduler0.store.service import StoreService


class SqliteVersionTests(SynchronousTestCase):
    def test_an_old_sqlite_is_refused_before_the_data_dir_is_touched(self) -> None:
        self.patch(sqlite3, "sqlite_version_info", (3, 31, 1))
        data_dir = self.mktemp()
        with self.assertRaises(DatabaseError) as caught:
            StoreService(data_dir).open()
        message = str(caught.exception)
        self.assertIn("needs sqlite 3.38.0 or later", message)
        self.assertIn("linked with sqlite 3.31.1", message)
        self.assertNotIn("\n", message)
        self.assertFalse(os.path.exists(data_dir))

    def test_the_oldest_supported_sqlite_and_this_one_are_accepted(self) -> None:
        require_sqlite(MIN_SQLITE)
        require_sqlite()
        # the features the floor stands for really are in the sqlite this test runs on
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("""SELECT '[1, "a"]' ->> 1""").fetchone(), ("a",))
