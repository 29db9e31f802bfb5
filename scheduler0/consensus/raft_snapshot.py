"""
Raft snapshots of the sqlite state, through PySyncObj's custom serializer (issue 12 item 8).

A snapshot is a sqlite file made with the online backup API, plus one table holding what
PySyncObj asks to be kept with it (its last two entries and the cluster). It claims exactly
the index PySyncObj has applied: it is only taken while the applier has stored every entry
handed to it (the checker holds compaction back otherwise), and its C{raft_applied} row says
that index. Installing one (a follower far behind) replaces the live database in the
applier's order, then tells the "state replaced" observers.

PySyncObj calls the serializer in its tick (the reactor thread), and the backup costs about
0.35 s per 87 MiB (reference/stack.md §1.5): seconds for a database of millions of jobs,
long enough for the followers to elect another leader. So in a node the backup runs in a
thread (C{in_thread}) and the checker answers SERIALIZING until it is done: PySyncObj takes
no other snapshot meanwhile and compacts its journal only once the file is in place. The
backup reads the database in one read transaction (sqlite's WAL lets the writer go on), so
the file may hold entries after the index it claims: replaying them onto it changes
nothing (a command id applies once), and it never lacks one (it starts once the applier
has stored every entry up to that index).
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
from typing import Any, Callable

from pysyncobj.config import SERIALIZER_STATE
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()

_META_TABLE = "raft_snapshot_meta"


class SqliteSnapshots:
    """
    The serializer, deserializer and serializeChecker given to C{SyncObjConf}.

    @param db_path: the live sqlite file.
    @param idle: True when the applier has stored everything handed to it.
    @param local_index: the highest Raft index this node has stored or handed to the applier.
    @param install: C{install(path, index)} queues the replacement of the live database by
        the snapshot file at C{path} (a copy this object made: the received one is
        overwritten by the next snapshot).
    """

    def __init__(self, db_path: str, idle: Callable[[], bool],
                 local_index: Callable[[], int],
                 install: Callable[[str, int], None],
                 in_thread: Callable[[Callable[[], None]], Deferred] | None = None) -> None:
        self._in_thread = in_thread
        self._taking = False  # a backup runs in a thread
        self._db_path = db_path
        self._idle = idle
        self._local_index = local_index
        self._install = install
        self._outcome = SERIALIZER_STATE.NOT_SERIALIZING
        self._installs = 0

    def check(self) -> int:
        """SUCCESS/FAILED once after a snapshot; SERIALIZING (hold on) while the applier is
        behind what PySyncObj applied, so a snapshot never claims entries sqlite lacks."""
        if self._taking:
            return SERIALIZER_STATE.SERIALIZING
        outcome, self._outcome = self._outcome, SERIALIZER_STATE.NOT_SERIALIZING
        if outcome != SERIALIZER_STATE.NOT_SERIALIZING:
            return outcome
        return SERIALIZER_STATE.NOT_SERIALIZING if self._idle() else SERIALIZER_STATE.SERIALIZING

    def serialize(self, file_name: str, data: Any) -> None:
        """Back the live database up into C{file_name}, with PySyncObj's C{data}; with
        C{in_thread}, into the snapshot file itself (PySyncObj's C{file_name} less its
        C{.tmp}), in a thread."""
        index = int(data[0][1])
        meta = pickle.dumps(data, protocol=4)
        if self._in_thread is None:
            try:
                if os.path.exists(file_name):
                    os.unlink(file_name)
                write_snapshot(self._db_path, file_name, index, meta)
            except Exception:
                log.failure("taking a Raft snapshot failed")
                self._outcome = SERIALIZER_STATE.FAILED
                raise
            log.info("took a Raft snapshot up to index {index}", index=index)
            self._outcome = SERIALIZER_STATE.SUCCESS
            return
        final = file_name[:-len(".tmp")] if file_name.endswith(".tmp") else file_name
        work = final + ".taking"

        def take() -> None:
            if os.path.exists(work):
                os.unlink(work)
            write_snapshot(self._db_path, work, index, meta)
            os.replace(work, final)  # PySyncObj may be sending the previous one meanwhile

        def taken(_: Any) -> None:
            self._taking = False
            self._outcome = SERIALIZER_STATE.SUCCESS
            log.info("took a Raft snapshot up to index {index}", index=index)

        def failed(failure: Any) -> None:
            self._taking = False
            self._outcome = SERIALIZER_STATE.FAILED
            log.failure("taking a Raft snapshot failed", failure)

        self._taking = True
        self._in_thread(take).addCallbacks(taken, failed)
        # PySyncObj moves C{file_name} into place when this returns: there is none (it
        # logs nothing about it; the checker's answer is what counts)

    def deserialize(self, file_name: str) -> Any:
        """
        PySyncObj's C{data} from the snapshot; when the snapshot holds entries this node has
        neither stored nor handed to the applier, queue the replacement of the database.
        """
        data, index = read_snapshot_meta(file_name)
        if index > self._local_index():
            self._installs += 1
            copy = f"{self._db_path}.raft-install-{self._installs}"
            shutil.copyfile(file_name, copy)
            log.info("installing a Raft snapshot up to index {index}", index=index)
            self._install(copy, index)
        return data


def write_snapshot(db_path: str, file_name: str, index: int, meta: bytes) -> None:
    """A standalone sqlite file (no WAL) with the live database, C{index} and C{meta}."""
    src = sqlite3.connect(db_path)
    dst = sqlite3.connect(file_name)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
        dst.execute(f"CREATE TABLE IF NOT EXISTS {_META_TABLE} (data BLOB NOT NULL)")
        dst.execute(f"DELETE FROM {_META_TABLE}")
        dst.execute(f"INSERT INTO {_META_TABLE} (data) VALUES (?)", (meta,))
        dst.execute("INSERT OR REPLACE INTO raft_applied (id, applied_index) VALUES (1, ?)",
                    (index,))
        dst.commit()
    finally:
        dst.close()
        src.close()


def read_snapshot_meta(file_name: str) -> tuple[Any, int]:
    """PySyncObj's C{data} kept in a snapshot and the index the snapshot holds."""
    conn = sqlite3.connect(f"file:{file_name}?mode=ro", uri=True)
    try:
        (meta,) = conn.execute(f"SELECT data FROM {_META_TABLE}").fetchone()
        (index,) = conn.execute("SELECT applied_index FROM raft_applied").fetchone()
    finally:
        conn.close()
    return pickle.loads(meta), int(index)


def restore_from(path: str) -> Callable[[sqlite3.Connection], None]:
    """What the writer runs to replace the live database by the snapshot at C{path}."""
    def restore(conn: sqlite3.Connection) -> None:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            src.backup(conn)
        finally:
            src.close()
        # the live file keeps only the state: the snapshot's PySyncObj data is not state
        conn.execute(f"DROP TABLE IF EXISTS {_META_TABLE}")
        os.unlink(path)
    return restore


def stored_index(db_path: str) -> int:
    """The Raft index stored in the live database (0 when none was ever applied)."""
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute("SELECT applied_index FROM raft_applied WHERE id = 1").fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0
