"""
One node per data directory (issue 8, item 7): the lock, in-process. The end-to-end
refusal of a second twistd is in L{tests.integration.test_daemon_damage}.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from scheduler0.store.lock import (LOCK_FILENAME, DataDirError, DataDirInUse, DataDirLock,
                                   DataDirLockService)


class DataDirLockTests(SynchronousTestCase):
    def held(self, data_dir: str) -> DataDirLock:
        lock = DataDirLock(data_dir)
        lock.acquire()
        self.addCleanup(lock.release)
        return lock

    def test_second_holder_is_refused_with_the_dir_and_the_pid(self) -> None:
        data_dir = os.path.abspath(self.mktemp())
        self.held(data_dir)
        with self.assertRaises(DataDirInUse) as caught:
            DataDirLock(data_dir).acquire()
        message = str(caught.exception)
        self.assertEqual(message, f"data directory {data_dir} is in use by another node "
                         f"(pid {os.getpid()}); stop that node first, or give this one its "
                         "own DataDir")

    def test_creates_the_data_dir_and_writes_the_pid(self) -> None:
        data_dir = self.mktemp()
        self.held(data_dir)
        with open(os.path.join(data_dir, LOCK_FILENAME)) as f:
            self.assertEqual(f.read(), f"{os.getpid()}\n")
        self.assertEqual(os.stat(data_dir).st_mode & 0o777, 0o700)

    def test_released_lock_can_be_taken_again(self) -> None:
        data_dir = self.mktemp()
        first = DataDirLock(data_dir)
        first.acquire()
        first.release()
        self.assertTrue(self.held(data_dir).held)

    def test_a_stale_pid_in_the_file_does_not_block(self) -> None:
        """The kernel drops the lock when its process ends; the file's content is only
        for the message."""
        data_dir = self.mktemp()
        os.makedirs(data_dir)
        with open(os.path.join(data_dir, LOCK_FILENAME), "w") as f:
            f.write("999999999\n")
        self.held(data_dir)

    def test_unusable_data_dir_is_one_line(self) -> None:
        parent = self.mktemp()
        os.makedirs(parent)
        data_dir = os.path.join(parent, "data")
        open(data_dir, "w").close()  # a file where the directory should be
        with self.assertRaises(DataDirError) as caught:
            DataDirLock(data_dir).acquire()
        self.assertEqual(len(str(caught.exception).splitlines()), 1)
        self.assertIn(f"cannot use data directory {os.path.abspath(data_dir)}",
                      str(caught.exception))

    def test_service_records_the_pid_of_the_running_process(self) -> None:
        """twistd forks after makeService when it daemonizes: the running process (the
        child) writes its own pid at start."""
        data_dir = self.mktemp()
        lock = self.held(data_dir)
        path = os.path.join(data_dir, LOCK_FILENAME)
        with open(path, "w") as f:
            f.write("1\n")  # what the parent (before the fork) would have left
        service = DataDirLockService(lock)
        service.startService()
        with open(path) as f:
            self.assertEqual(f.read(), f"{os.getpid()}\n")
        service.stopService()
        self.assertTrue(lock.held, "the lock lasts until the process ends")
