"""
Splitting any list of jobs into requests the node takes (README "Limits"): at most 10,000
jobs, a body of at most C{MaxRequestBodyMb}, and distinct cron specs totalling at most
262,144 characters per request. Each job is encoded once; a batch is the longest run of
them that fits every limit (a job too large on its own goes alone, and the node's 413 says
so).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

_LIMIT_IN_413 = re.compile(r"larger than (\d+) bytes")


@dataclass(frozen=True)
class BatchLimits:
    """What one C{POST /jobs} may hold; the defaults are the node's."""

    max_jobs: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024  # MaxRequestBodyMb 16
    max_cron_chars: int = 262_144
    max_spec_chars: int = 1024  # longer specs are refused on their own, not counted

    def after_413(self, message: str, refused_bytes: int) -> "BatchLimits":
        """The limits after a batch of C{refused_bytes} was answered 413: the node's limit
        when its message names it, else half of what was refused."""
        found = _LIMIT_IN_413.search(message)
        limit = int(found.group(1)) if found else 0
        if not 0 < limit < refused_bytes:
            limit = refused_bytes // 2
        return replace(self, max_body_bytes=max(1, limit))


@dataclass(frozen=True)
class Batch:
    """Jobs C{start} to C{start + count} of the caller's list, encoded as a JSON array."""

    start: int
    count: int
    body: bytes


def encode_jobs(jobs: Sequence[Any]) -> list[bytes]:
    """Each job as compact JSON (ASCII, so its length is its size on the wire)."""
    return [json.dumps(job, separators=(",", ":")).encode("ascii") for job in jobs]


def _cron_chars(job: Any, limits: BatchLimits) -> tuple[str | None, int]:
    """The spec the node counts against the cron budget, if any, and its length."""
    spec = job.get("spec") if isinstance(job, dict) else None
    if (isinstance(spec, str) and len(spec) <= limits.max_spec_chars
            and not spec.lstrip().startswith("@")):
        return spec, len(spec)
    return None, 0


def next_batch(jobs: Sequence[Any], encoded: Sequence[bytes], start: int,
               limits: BatchLimits) -> Batch:
    """The longest batch from C{start} within C{limits} (at least one job)."""
    size = 2  # "[" and "]"
    cron_total = 0
    specs: set[str] = set()
    end = start
    while end < len(jobs) and end - start < limits.max_jobs:
        grow = len(encoded[end]) + (1 if end > start else 0)
        spec, chars = _cron_chars(jobs[end], limits)
        new_spec = spec is not None and spec not in specs
        if end > start and (size + grow > limits.max_body_bytes or (
                new_spec and cron_total + chars > limits.max_cron_chars)):
            break
        size += grow
        if new_spec:
            specs.add(spec)  # type: ignore[arg-type]
            cron_total += chars
        end += 1
    body = b"[" + b",".join(encoded[start:end]) + b"]"
    return Batch(start, end - start, body)


def rebase_message(message: str, start: int) -> str:
    """The node names C{jobs[i]} within its batch; the caller's list index is C{start + i}."""
    return re.sub(r"^jobs\[(\d+)\]", lambda m: f"jobs[{int(m.group(1)) + start}]", message)
