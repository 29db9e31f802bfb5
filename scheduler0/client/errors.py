"""The one exception the client raises, so callers catch one thing."""

from __future__ import annotations

from typing import Sequence


class Scheduler0Error(Exception):
    """
    A call that did not succeed. C{status} is the HTTP status (None when no answer came:
    the node could not be reached or the connection broke), C{message} the node's own
    message (it says what to fix). C{created_ids} lists the jobs a multi-batch
    L{JobsApi.create_many} had already created before the batch that failed.
    """

    def __init__(self, status: int | None, message: str, *, method: str = "",
                 path: str = "", created_ids: Sequence[int] = ()) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.created_ids: list[int] = list(created_ids)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        if self.status is None:
            return f"{where}{self.message}"
        return f"{where}HTTP {self.status}: {self.message}"

    def __repr__(self) -> str:
        return f"Scheduler0Error({self.status!r}, {self.message!r})"
