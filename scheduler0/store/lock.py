"""
One node per data directory.

Two nodes on the same DataDir would both deliver every occurrence and write the same
sqlite file from two writers. A node takes an exclusive C{flock} on C{<DataDir>/
scheduler0.lock} before it touches anything else there (secrets, database) and holds it
for the life of the process; the kernel releases it when the process ends, however it
ends, so a stale file never blocks a restart. The holder's pid is written into the file
so the refusal can name it.

C{flock} (not C{fcntl}/C{lockf} record locks) because it belongs to the open file, which
survives twistd's fork into the background: the daemon child keeps the lock its parent
took, and L{DataDirLockService} records the child's pid once it runs.
"""

from __future__ import annotations

import fcntl
import os

from twisted.application.service import Service

LOCK_FILENAME = "scheduler0.lock"


class DataDirError(Exception):
    """The data directory cannot be used by this process; the message is one line."""


class DataDirInUse(DataDirError):
    """Another process holds the data directory's lock."""


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.path = os.path.join(self.data_dir, LOCK_FILENAME)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """
        @raise DataDirInUse: another process holds it; the message names the directory
            and that process's pid.
        @raise DataDirError: the directory or lock file cannot be created or opened.
        """
        if self._fd is not None:
            return
        try:
            os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise DataDirError(f"cannot use data directory {self.data_dir}: "
                               f"{e.strerror} ({e.filename})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "a process that has not written its pid yet"
            raise DataDirInUse(
                f"data directory {self.data_dir} is in use by another node ({who}); stop "
                "that node first, or give this one its own DataDir") from None
        except OSError as e:
            os.close(fd)
            raise DataDirError(f"cannot lock data directory {self.data_dir}: "
                               f"{e.strerror}") from None
        self._fd = fd
        self.record_pid()

    def record_pid(self) -> None:
        """Write this process's pid into the lock file (again after a fork)."""
        if self._fd is None:
            return
        data = f"{os.getpid()}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Let go (tests; a node simply keeps it until the process exits)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DataDirLockService(Service):
    """
    Keeps the node's lock with its service tree and records the pid of the process that
    actually runs (twistd forks after C{makeService} unless C{--nodaemon}). It does not
    release the lock on stop: the node is still closing its database then, and the
    process's end releases it.
    """

    def __init__(self, lock: DataDirLock) -> None:
        self.lock = lock

    def startService(self) -> None:
        Service.startService(self)
        self.lock.record_pid()
