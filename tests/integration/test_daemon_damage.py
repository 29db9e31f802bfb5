"""
End to end (real twistd): a node refuses a damaged database and a data dir that another
node holds, fast and in one line, instead of hanging on the port, printing a traceback,
starting empty or delivering everything twice (issue 8, items 6 and 7).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from typing import Callable

from twisted.trial.unittest import TestCase

from .daemon import Daemon, port_is_free, run, twistd_argv
from .test_daemon import assert_clean_stop, job
from ..test_store_integrity import populate


def corrupt_middle_page(path: str) -> None:
    page_size = 4096
    pages = os.path.getsize(path) // page_size
    with open(path, "r+b") as f:
        f.seek(pages // 2 * page_size)
        f.write(random.Random(7).randbytes(page_size))


def sql(path: str, statement: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(statement)
    finally:
        conn.close()


class DamagedDatabaseTests(TestCase):
    async def refused(self, node: Daemon, *fragments: str) -> str:
        """Start twistd on C{node}'s config: it must exit (so it holds no port) non-zero
        within seconds, with one line naming the database file."""
        started = time.monotonic()
        status, out, err = await run(self, twistd_argv(node.config_path), cwd=node.workdir,
                                     env=node.env(), timeout=30)
        self.assertLess(time.monotonic() - started, 15, out + err)
        self.assertNotEqual(status.code, 0, (status, out, err))
        self.assertIsNone(status.signal)
        lines = (out + err).splitlines()
        self.assertEqual(len(lines), 1, out + err)
        self.assertIn(os.path.join(node.data_dir, "scheduler0.db"), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        return lines[0]

    async def test_damaged_after_a_clean_stop(self) -> None:
        """A node that ran and stopped; a page in the middle of its file goes bad."""
        node = Daemon(self)
        await node.start()
        client = node.client(peer=True)
        project = await client.ok("POST", "/projects", {"name": "p", "description": ""},
                                  expect=201)
        await client.ok("POST", "/jobs", [job(project["id"], n) for n in range(500)],
                        expect=201)
        assert_clean_stop(self, await node.stop(), node.log_text())
        corrupt_middle_page(os.path.join(node.data_dir, "scheduler0.db"))
        line = await self.refused(node, "is damaged", "restore it from a backup")
        self.assertTrue(line.startswith("scheduler0: database "), line)

    async def check(self, damage: Callable[[str], None], *fragments: str) -> None:
        node = Daemon(self)
        path = populate(node.data_dir)
        damage(path)
        await self.refused(node, *fragments)

    async def test_empty_file(self) -> None:
        await self.check(lambda path: open(path, "w").close(), "is empty (0 bytes)",
                         "delete it to start a node with no jobs")

    async def test_dropped_jobs_table(self) -> None:
        await self.check(lambda path: sql(path, "DROP TABLE jobs"), "has lost its table 'jobs'")

    async def test_dropped_column(self) -> None:
        await self.check(lambda path: sql(path, "ALTER TABLE jobs DROP COLUMN data"),
                         "has lost column(s) data")

    async def test_unknown_schema_version(self) -> None:
        await self.check(lambda path: sql(path, "PRAGMA user_version = 99"),
                         "has schema version 99")

    async def test_directory_in_place_of_the_file(self) -> None:
        def swap(path: str) -> None:
            os.remove(path)
            os.mkdir(path)
        await self.check(swap, "is not a regular file")

    async def test_truncated_file(self) -> None:
        def truncate(path: str) -> None:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        await self.check(truncate, "is damaged")


class OneNodePerDataDirTests(TestCase):
    async def test_second_node_on_the_same_data_dir_is_refused(self) -> None:
        first = Daemon(self)
        await first.start()
        client = first.client(peer=True)
        await client.ok("POST", "/projects", {"name": "kept", "description": ""}, expect=201)
        assert first.process is not None
        holder = first.process.transport.pid

        second = Daemon(self, config={"DataDir": first.data_dir})
        started = time.monotonic()
        status, out, err = await run(self, twistd_argv(second.config_path),
                                     cwd=second.workdir, env=second.env(), timeout=30)
        self.assertLess(time.monotonic() - started, 15)
        self.assertNotEqual(status.code, 0, (status, out, err))
        self.assertEqual((out + err).splitlines(), [
            f"scheduler0: data directory {first.data_dir} is in use by another node (pid "
            f"{holder}); stop that node first, or give this one its own DataDir"])
        self.assertTrue(port_is_free(second.port))
        # the first node is untouched
        self.assertEqual((await client.ok("GET", "/projects"))["total"], 1)

        # once the holder is gone (even kill -9), the lock goes with it
        await first.kill()
        await second.start()
        projects = await second.client(peer=True).ok("GET", "/projects")
        self.assertEqual([p["name"] for p in projects["projects"]], ["kept"])
        with open(os.path.join(first.data_dir, "scheduler0.lock")) as f:
            assert second.process is not None
            self.assertEqual(f.read().strip(), str(second.process.transport.pid))
        assert_clean_stop(self, await second.stop(), second.log_text())
