"""
The store as a service: checks or creates the database file, then opens the read
connection.
"""

from __future__ import annotations

import os
import sqlite3

from twisted.application.service import Service
from twisted.logger import Logger

from ..secrets_at_rest import SigningSecretBox
from .sealing import seal_stored_secrets
from .database import connect, database_path, require_sqlite
from .integrity import open_database
from .reads import OperationsReader, ScheduleReader, StateReader

log = Logger()


class StoreService(Service):
    """
    Owns the reactor thread's read connection. Started before anything that reads or
    writes, stopped after them.

    @param signing_box: what the readers open sealed signing secrets with; with it,
        opening the store also seals the plaintext secrets of an earlier version and
        proves that the box opens the sealed ones.
    """

    def __init__(self, data_dir: str, signing_box: SigningSecretBox | None = None) -> None:
        self.data_dir = data_dir
        self.signing_box = signing_box
        self.path = database_path(data_dir)
        self._conn: sqlite3.Connection | None = None
        self.reader: StateReader | None = None
        self.schedule_reader: ScheduleReader | None = None
        self.operations_reader: OperationsReader | None = None

    def open(self) -> StateReader:
        """
        Open synchronously; idempotent, so C{makeService} can fail early on a bad file.

        @raise scheduler0.store.database.DatabaseError: the file is damaged, of another
            schema version, or empty where it had state; the message is one line.
        @raise scheduler0.secrets_at_rest.SigningKeyError: its signing secrets were sealed
            with another SecretKey; the message is one line.
        """
        if self.reader is None:
            require_sqlite()
            os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
            done = open_database(self.path)
            if self.signing_box is not None:
                seal_stored_secrets(self.path, self.signing_box)
            self._conn = connect(self.path)
            self.reader = StateReader(self._conn, self.signing_box)
            self.schedule_reader = ScheduleReader(self._conn, self.signing_box)
            self.operations_reader = OperationsReader(self._conn)
            log.info("opened database {path} ({done})", path=self.path, done=done)
        return self.reader

    def startService(self) -> None:
        self.open()
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self.reader = None
            self.schedule_reader = None
            self.operations_reader = None
            log.info("closed database {path}", path=self.path)
