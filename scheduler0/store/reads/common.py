"""
What every query module of the read side shares: the project filter and the connection
with its two helpers. (What the queries return are the domain's records:
L{scheduler0.domain}.)
"""

from __future__ import annotations

import json
import sqlite3
from typing import AbstractSet, Any, Iterable, Optional

#: Which projects a caller may see: None for all of them (a node-wide caller), else their
#: ids (a credential limited to projects).
Projects = Optional[AbstractSet[int]]


def _only(column: str, projects: Projects) -> tuple[str, list[Any]]:
    """A WHERE clause (and its argument) keeping rows whose C{column} is one of
    C{projects}; C{"1"} when every project is visible. One JSON argument, whatever the
    number of ids."""
    if projects is None:
        return "1", []
    return (f"{column} IN (SELECT value FROM json_each(?))",
            [json.dumps(sorted(projects))])


class Queries:
    """A read connection and the helpers the query mixins of L{StateReader} run on.

    Subclasses set C{_conn}; kept as a base so each mixin can be read (and typed) alone.
    """

    _conn: sqlite3.Connection

    def _one(self, sql: str, args: Iterable[Any]) -> sqlite3.Row | None:
        """The first row of C{sql}, or None."""
        return self._conn.execute(sql, tuple(args)).fetchone()

    def _count(self, sql: str, args: Iterable[Any] = ()) -> int:
        """The single number a C{count(*)} query answers."""
        return self._conn.execute(sql, tuple(args)).fetchone()[0]
