#!/usr/bin/env python
"""
How long one retention command holds the sqlite writer.

Fills a fresh database with JOBS jobs and ROWS finished execution records per job (one a
minute), then prunes it the way the retention service does: ``execution.prune`` commands
over job-id ranges of ``--jobs-per-command``, with the default bounds (keep 100 per job).
Every command runs in the writer thread of a real node and holds it for its whole duration,
so its time is what a delivery's outbox write may wait behind.

    PYTHONPATH=/work/main /work/venv/bin/python bench/retention_prune.py --jobs 20000 \\
        --rows 160 --jobs-per-command 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from scheduler0.state import commands as C
from scheduler0.state.commands import Command
from scheduler0.state.machine import apply_batch
from scheduler0.store.database import connect, ensure_schema

AT = "2026-11-26T16:00:00.000Z"


def job(job_id: int) -> dict:
    return {"id": job_id, "project_id": 1, "spec": "@every 1m",
            "callback_url": "http://127.0.0.1:3000/callback", "data": None,
            "execution_type": "http", "timezone": "UTC", "start_date": None, "end_date": None,
            "paused": 0, "misfire_policy": "fire_once", "misfire_grace_seconds": 60}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=160, help="records per job, one a minute")
    parser.add_argument("--jobs-per-command", type=int, default=100)
    parser.add_argument("--keep", type=int, default=100)
    parser.add_argument("--whole-table", action="store_true",
                        help="one command over every job, as before the ranges existed")
    args = parser.parse_args()

    conn = connect(os.path.join(tempfile.mkdtemp(), "state.sqlite"), check_same_thread=False)
    ensure_schema(conn)
    apply_batch(conn, [
        Command("p", C.PROJECT_CREATE, AT, {"project": {
            "id": 1, "name": "bench", "description": "", "signing_secret": "s"}}),
        Command("j", C.JOB_CREATE, AT, {"jobs": [job(i) for i in range(1, args.jobs + 1)]})])
    started = time.perf_counter()
    conn.execute("BEGIN")
    for minute in range(args.rows):
        stamp = f"2026-11-{20 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00.000Z"
        conn.executemany(
            "INSERT INTO executions (id, job_id, project_id, scheduled_time, state, attempts, "
            "target, node_id, date_created, date_modified) "
            "VALUES (?, ?, 1, ?, 'succeeded', 1, 'http://127.0.0.1:3000', 1, ?, ?)",
            [(f"{j}-{minute}", j, stamp, stamp, stamp) for j in range(1, args.jobs + 1)])
    conn.execute("COMMIT")
    print(f"filled {args.jobs * args.rows:,} execution records in "
          f"{time.perf_counter() - started:.1f} s")

    times, deleted, low = [], 0, 1
    if args.whole_table:
        args.jobs_per_command = args.jobs
    while low <= args.jobs:
        started = time.perf_counter()
        payload = {"before": "2026-11-19T00:00:00.000Z", "keep_per_job": args.keep}
        if not args.whole_table:
            payload["jobs"] = [low, low + args.jobs_per_command]
        (result,) = apply_batch(conn, [Command(f"prune-{low}", C.EXECUTION_PRUNE,
                                               "2026-11-27T00:00:00.000Z", payload)])
        times.append(time.perf_counter() - started)
        deleted += result["deleted"]
        low += args.jobs_per_command
    print(f"{len(times)} commands of {args.jobs_per_command} jobs deleted {deleted:,} records: "
          f"per command median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms, total {sum(times):.1f} s "
          f"({sum(times) / deleted * 1e6:.1f} us per record)")


if __name__ == "__main__":
    main()
