#!/usr/bin/env python
"""
The seed harness's workload on APScheduler 3, the Python peer (see bench/seed_harness.py).

Benchmark-only dependency, installed by hand and deliberately NOT in setup.py:

    /work/venv/bin/pip install 'apscheduler<4'

What a typical Python user would write: a ``BackgroundScheduler`` with the default
``MemoryJobStore`` and a ``ThreadPoolExecutor`` (``--workers``, default 20); one interval job
per Scheduler0 job (``IntervalTrigger(seconds=60)``, timezone America/New_York), added in
batches of ``--batch`` (1,000) like the Scheduler0 run's POSTs, optionally paced to
``--create-rate`` jobs/s so the jobs' phases are spread like in a Scheduler0 run. Job n's phase
is the whole second it was added: it fires at ``floor(added) + k*60 s`` (``start_date`` =
that + 60 s), like Scheduler0's ``@every 1m`` from ``dateCreated``.

Each run of a job POSTs, on its own, with ``urllib``, a one-element JSON array holding its job
object in Scheduler0's shape (``id``, ``projectId``, ``spec``, ``callbackUrl``, ``data``,
``timezone``, plus ``executionId``, ``scheduledTime``, ``attempt``) to the same receiver as
the Scheduler0 harness (a separate process). APScheduler 3 does not tell a job its scheduled
run time, so the job computes it from its phase: ``base + 60*floor((now - base)/60)``. That is
exact as long as a run starts less than 60 s late, which ``misfire_grace_time``
(``--misfire-grace``, default 30 s; APScheduler's own default is 1 s) guarantees: runs later
than that are dropped by APScheduler (counted as ``EVENT_JOB_MISSED`` and show up as misses).

Reported exactly like the Scheduler0 harness: jobs added per second, per-minute windows
aligned to each job's phase (min/max hits per job, misses, duplicates), lateness p50/p99/max,
and RSS per job of the scheduler process (this process; the receiver is another process).

    /work/venv/bin/python bench/peer_apscheduler.py --jobs 10000 --minutes 3 [--json]
"""

from __future__ import annotations

import argparse
import array
import json
import logging
import math
import os
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_harness as H  # noqa: E402

UTC = timezone.utc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=20, help="ThreadPoolExecutor max_workers")
    parser.add_argument("--misfire-grace", type=int, default=30,
                        help="misfire_grace_time in s (< 60, see the docstring)")
    parser.add_argument("--create-rate", type=float, default=0.0,
                        help="pace job creation to this many jobs/s (0 = as fast as possible)")
    parser.add_argument("--receiver-port", type=int, default=0)
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds to wait after the last window for late hits")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.misfire_grace < 60:
        parser.error("--misfire-grace must be between 1 and 59 s")
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else H.text_report(result))
    return 0 if all(result["verdict"].values()) else 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    import apscheduler
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    # APScheduler logs every missed or failed run at WARNING/ERROR; with thousands of them
    # the logging itself would cost CPU. The listener below counts them instead.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)

    load_start = H.loadavg()
    H.log(f"load average at start: {load_start}")
    receiver = H.Receiver(args.receiver_port)
    url = receiver.callback_url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    zone = ZoneInfo(H.TIMEZONE)
    events = {"missed": 0, "error": 0, "max_instances": 0}
    codes = {EVENT_JOB_MISSED: "missed", EVENT_JOB_ERROR: "error",
             EVENT_JOB_MAX_INSTANCES: "max_instances"}
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        with lock:
            events[codes[event.code]] += 1

    def deliver(job: dict[str, Any], base: float) -> None:
        now = time.time()
        scheduled = base + H.PERIOD * math.floor((now - base) / H.PERIOD)
        body = json.dumps([dict(job, executionId=f"{job['id']}-{scheduled:.0f}",
                                scheduledTime=H.rfc3339(scheduled), attempt=1)]).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with opener.open(request, timeout=30) as response:
            response.read()

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=args.workers)},
        job_defaults={"misfire_grace_time": args.misfire_grace, "coalesce": False,
                      "max_instances": 1},
        timezone=UTC)
    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    pid = os.getpid()
    try:
        time.sleep(1.0)
        rss_idle = H.rss_bytes(pid)
        bases = array.array("d")  # 8 bytes per job, so the harness adds little to the RSS
        started = time.time()
        for start in range(0, args.jobs, args.batch):
            for n in range(start, min(start + args.batch, args.jobs)):
                job_id = n + 1
                base = float(math.floor(time.time()))
                job = {"id": job_id, "projectId": 1, "spec": H.SPEC, "callbackUrl": url,
                       "data": json.dumps({"jobId": n}), "executionType": "http",
                       "timezone": H.TIMEZONE}
                scheduler.add_job(
                    deliver, IntervalTrigger(seconds=H.PERIOD, timezone=zone,
                                             start_date=datetime.fromtimestamp(
                                                 base + H.PERIOD, UTC)),
                    args=(job, base), id=str(job_id))
                bases.append(base)
            if args.create_rate > 0:
                ahead = started + len(bases) / args.create_rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
        t0 = time.time()
        create_wall = t0 - started
        H.log(f"added {len(bases):,} jobs in {create_wall:.2f} s; measuring "
              f"{args.minutes} minutes")
        rss_after_create = H.rss_bytes(pid)
        cpu0 = H.cpu_seconds(pid)
        rcpu0 = H.cpu_seconds(receiver.pid())
        watched = H.wait_and_watch(receiver, t0, args.minutes, len(bases), pid, args.grace)
        cpu1 = H.cpu_seconds(pid)
        rcpu1 = H.cpu_seconds(receiver.pid())
        rss_end = H.rss_bytes(pid)
        hwm = H.hwm_bytes(pid)
        window_span = time.time() - t0
    finally:
        scheduler.shutdown(wait=False)
    dump = receiver.dump()
    receiver.stop()
    result = H.analyze(dump, {i + 1: b for i, b in enumerate(bases)}, t0, args.minutes)
    result.update({
        "system": f"APScheduler {apscheduler.__version__} (BackgroundScheduler, "
                  f"ThreadPoolExecutor({args.workers}), urllib, misfire_grace_time "
                  f"{args.misfire_grace} s)",
        "jobs": args.jobs, "created": len(bases), "minutes": args.minutes, "batch": args.batch,
        "machine": H.machine(), "create_wall_s": round(create_wall, 3),
        "jobs_per_s": round(len(bases) / create_wall, 1) if create_wall else None,
        "create_rate_limit": args.create_rate or None,
        "t0": H.rfc3339(t0), "load_start": load_start, "load_end": H.loadavg(),
        "rss_of": f"APScheduler process pid {pid}",
        "rss": {"idle": rss_idle, "after_create": rss_after_create, "end": rss_end,
                "peak_sampled": watched["rss_peak_sampled"], "hwm": hwm,
                "per_job_bytes": (round((rss_end - rss_idle) / len(bases))
                                  if rss_end and rss_idle and bases else None),
                "per_job_bytes_after_create": (round((rss_after_create - rss_idle) / len(bases))
                                               if rss_after_create and rss_idle and bases
                                               else None)},
        "cpu_percent_during_windows": (round(100 * (cpu1 - cpu0) / window_span, 1)
                                       if cpu0 is not None and cpu1 is not None else None),
        "receiver_cpu_percent": (round(100 * (rcpu1 - rcpu0) / window_span, 1)
                                 if rcpu0 is not None and rcpu1 is not None else None),
        "flush_wait_s": watched["flush_wait_s"],
        "apscheduler_events": events,
    })
    result["verdict"] = H.verdict(result)
    H.log(f"load average at end: {result['load_end']}; APScheduler events {events}")
    return result


if __name__ == "__main__":
    sys.exit(main())
