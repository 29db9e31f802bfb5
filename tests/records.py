"""
Test helpers between the API's JSON shapes (camelCase, what tests write and read) and the
domain records (L{scheduler0.domain}) the node's parts hand each other.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping

from scheduler0.api.shapes import JOB_JSON_NAMES, execution_json
from scheduler0.domain import Execution, Job, JobFields

#: a job's fields a test may leave out, with the API's defaults
_DEFAULTS = {"data": None, "executionType": "http", "timezone": "UTC", "startDate": None,
             "endDate": None, "paused": False, "misfirePolicy": "fire_once",
             "misfireGraceSeconds": 60}


def job_of(shown: Mapping[str, Any]) -> Job:
    """The L{Job} a job in the API's shape stands for (fields it leaves out get the
    API's defaults)."""
    values = {**_DEFAULTS, **shown}
    return Job(id=values["id"],
               fields=JobFields(**{name: values[camel] for name, camel in JOB_JSON_NAMES.items()}),
               date_created=values.get("dateCreated"), date_modified=values.get("dateModified"))


def shown(execution: Execution | None) -> dict[str, Any] | None:
    """An execution in the API's shape (None stays None)."""
    return None if execution is None else execution_json(execution)


def next_id_will_be(path: str, table: str, row_id: int) -> None:
    """Make C{row_id} the next id the state machine chooses for C{table} (ids are chosen
    when a command is applied, from the stored sequence): for tests that want a row with a
    given id. Only forwards: an id is never handed out twice."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            (last,) = conn.execute("SELECT coalesce(max(last), 0) FROM sequences WHERE name = ?",
                                   (table,)).fetchone()
            if row_id <= last:
                raise ValueError(f"{table} id {row_id} was handed out already (last {last})")
            conn.execute("INSERT INTO sequences (name, last) VALUES (?, ?) ON CONFLICT (name) "
                         "DO UPDATE SET last = excluded.last", (table, row_id - 1))
    finally:
        conn.close()
