"""
What one POST carries. A L{Delivery} is occurrences sharing a callback URL and project
(whose secret signs the body), in one chunk whose body (a JSON array) is at most
C{max_payload_bytes}. L{pack} makes them; every path that queues occurrences (a dispatch
round, the re-send of an outbox row after a restart, a retry resumed after a restart) packs
through it, so occurrences are grouped and measured one way.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterable, Iterator

import attrs

from ..domain import DeliveryFinished
from ..schedule.occurrence import Occurrence, endpoint_of


@attrs.define
class Delivery:
    """One POST: occurrences sharing a callback URL and project, in one chunk."""

    target: str
    url: str
    project_id: int
    chunk_id: int
    occurrences: list[Occurrence]
    held: bool = False  # recorded as 'scheduled' while waiting for an open breaker
    #: the occurrences' body items, encoded when the chunk was measured (None: encode)
    items: list[bytes] | None = None
    #: its outbox row's id
    id: str = attrs.Factory(lambda: uuid.uuid4().hex)
    #: resumed after a restart: the outbox row its occurrences are still listed in, until
    #: they are started, held or dropped (each of which takes them out of it atomically)
    replaces: str | None = None
    #: decides which of its jobs are still to be sent instead of the executor's
    #: C{is_live}: an operator's replay sends a paused job's occurrences too
    live: Callable[[int], bool] | None = None
    #: the endpoint it goes to (its breaker and queue)
    endpoint: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.endpoint = endpoint_of(self.url)

    def release(self, occurrences: list[Occurrence]) -> list[DeliveryFinished]:
        """The outbox change that takes C{occurrences} out of the row this replaces."""
        if self.replaces is None or not occurrences:
            return []
        return [DeliveryFinished(self.replaces, [o.execution_id for o in occurrences])]

    def retry(self, occurrences: list[Occurrence]) -> Delivery:
        """The same chunk's next attempt for C{occurrences} (a new outbox row; the items
        are encoded again, their attempt number has changed)."""
        return Delivery(self.target, self.url, self.project_id, self.chunk_id, occurrences,
                        live=self.live)

    def body(self) -> bytes:
        """The POST's body: the occurrences' items as one JSON array."""
        items = self.items
        if items is None:
            items = [o.body_item() for o in self.occurrences]
        return b"[" + b",".join(items) + b"]"


def chunks(group: list[Occurrence], max_bytes: int,
           most_attempts: int) -> Iterator[tuple[list[Occurrence], list[bytes]]]:
    """Greedy chunks whose body (C{[item,item,...]}) is at most C{max_bytes}, measured
    exactly and with room for the attempt number to grow up to C{most_attempts} (a retry
    re-sends the same chunk). An item larger than the limit goes alone. Each chunk comes
    with its body items, so they are encoded once."""
    widest_attempt = len(str(most_attempts))
    chunk: list[Occurrence] = []
    items: list[bytes] = []
    size = 1  # "["; every item then adds its length and a "," or the closing "]"
    for occurrence in group:
        digits = len(str(occurrence.attempt))
        body = occurrence.body_item()
        item = len(body) + max(widest_attempt - digits, 0) + 1
        if chunk and size + item > max_bytes:
            yield chunk, items
            chunk, items, size = [], [], 1
        chunk.append(occurrence)
        items.append(body)
        size += item
    if chunk:
        yield chunk, items


def pack(occurrences: Iterable[Occurrence], max_bytes: int, most_attempts: int,
         room: int | None = None,
         **fields: Any) -> tuple[list[Delivery], list[list[Occurrence]]]:
    """
    Group C{occurrences} by (callback URL, project) and chunk each group (L{chunks}) into
    deliveries, which get C{fields} (C{live}, C{replaces}). With C{room}, at most that
    many occurrences are packed, groups in order; what did not fit comes back, per group,
    as the second item.
    """
    groups: dict[tuple[str, int], list[Occurrence]] = {}
    for occurrence in occurrences:
        groups.setdefault((occurrence.callback_url, occurrence.project_id), []).append(
            occurrence)
    deliveries: list[Delivery] = []
    overflow: list[list[Occurrence]] = []
    for (url, project_id), group in groups.items():
        if room is not None:
            if len(group) > room:
                overflow.append(group[max(room, 0):])
                group = group[:max(room, 0)]
            room -= len(group)
        for chunk_id, (chunk, items) in enumerate(chunks(group, max_bytes, most_attempts)):
            deliveries.append(Delivery(chunk[0].target, url, project_id, chunk_id, chunk,
                                       items=items, **fields))
    return deliveries, overflow
