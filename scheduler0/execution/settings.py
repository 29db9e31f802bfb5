"""
The callback executor's settings, in a module of their own: every part of the executor
(packing, lanes, sending, outcomes, the outbox gate) reads the same object.
"""

from __future__ import annotations

import attrs

MAX_RETRY_WAIT = 300.0


@attrs.define
class ExecutorSettings:
    timeout: float = 30.0
    retry_delay: float = 1.0
    retry_max: int = 3
    retry_cap: float = MAX_RETRY_WAIT
    max_payload_bytes: int = 2_000_000
    per_target: int = 8
    max_in_flight: int = 100
    max_queue: int = 1_000_000
    node_id: int = 1
    #: most bytes of an answer's body read; a longer body's connection is closed
    answer_prefix_bytes: int = 4096
    #: backoff of the outbox write after it failed (a full disk): first delay, most
    record_retry_delay: float = 1.0
    record_retry_cap: float = 30.0
    #: an endpoint quiet (and not failing) for this long is forgotten: its poll status
    #: and idle breaker go, so a node whose jobs come and go does not keep them forever
    forget_after: float = 86_400.0
