#!/usr/bin/env python
"""
Job-creation benchmark against a RUNNING Scheduler0 node (the seed harness's load).

Creates one project and N jobs (spec "@every 1m", timezone America/New_York, callback
http://127.0.0.1:3000/callback, data a JSON string like the seed's Node client) in batches
POSTed to /api/v1/jobs, with --concurrency batches in flight. Meanwhile a separate process
probes GET /api/v1/healthcheck every 20 ms on its own keep-alive connection, so a stalled
reactor on the server shows up as a slow healthcheck.

Reported: jobs/s over the total wall time of the load (first batch sent to last answer
read), per-batch latency median/p99/max, and the p99 and worst healthcheck latency seen
during the load. Request bodies are encoded before the clock starts; answers are read and
checked (201, envelope, one created job per job sent), then the job count is verified.

Usage: on a fresh node it starts itself (temp dir, free ports, RateLimitPerMinute 0), from the
repository root:

    python bench/create_jobs.py --start-node --jobs 50000 --batch 1000 --concurrency 4 --json

or against a running node (give it RateLimitPerMinute: 0: the API counts many batches from one
address, the probe does not count):

    PYTHONPATH=. twistd --nodaemon --pidfile= scheduler0 --config /tmp/bench/scheduler0.yml &
    python bench/create_jobs.py --url http://127.0.0.1:9091 --config /tmp/bench/scheduler0.yml
    python bench/create_jobs.py --url http://127.0.0.1:9091 --api-key K --api-secret S \\
        --jobs 50000 --batch 1000 --concurrency 4 --json

With --config the script asks the node for a credential through the CLI
(`python -m scheduler0.cli create credential --config PATH`, same interpreter). --json prints
one JSON object instead of the text report. Exit status 0 when every batch was created, 1
otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

SPEC = "@every 1m"
TIMEZONE = "America/New_York"
CALLBACK = "http://127.0.0.1:3000/callback"


# --------------------------------------------------------------------------------------------
# statistics


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(min(rank, len(ordered))) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# --------------------------------------------------------------------------------------------
# the healthcheck probe (runs in its own process)


def probe(url: str, interval: float, stop: Any, results: Any) -> None:
    """GET <url>/api/v1/healthcheck every C{interval} s on one keep-alive connection until
    C{stop} is set; sends (latencies, errors, started, ended) through C{results}."""
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=30)
    latencies: list[tuple[float, float]] = []  # (time since start, latency)
    errors: list[str] = []
    started = time.monotonic()
    next_at = started
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            conn.request("GET", "/api/v1/healthcheck")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"status {response.status}")
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")
            conn.close()
            conn = conn_class(parts.hostname, parts.port, timeout=30)
        t1 = time.monotonic()
        latencies.append((t0 - started, t1 - t0))
        next_at += interval
        if next_at < t1:
            next_at = t1  # the server was slow: do not send a burst to catch up
        time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    results.send((latencies, errors[:20], len(errors), started, time.monotonic()))
    results.close()


# --------------------------------------------------------------------------------------------
# the load


def create_credential(config: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "scheduler0.cli", "create", "credential", "--config", config],
        capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"create credential failed ({done.returncode}): "
                         f"{done.stdout}{done.stderr}")
    return json.loads(done.stdout)


def job_bodies(project_id: int, jobs: int, batch: int) -> list[bytes]:
    bodies = []
    for start in range(0, jobs, batch):
        bodies.append(json.dumps([
            {"spec": SPEC, "projectId": project_id, "executionType": "http",
             "data": json.dumps({"jobId": n}), "timezone": TIMEZONE, "callbackUrl": CALLBACK}
            for n in range(start, min(start + batch, jobs))
        ]).encode())
    return bodies


async def load(reactor: Any, args: argparse.Namespace, headers: dict[str, str]) -> dict[str, Any]:
    import treq
    from treq.client import HTTPClient
    from twisted.internet.defer import DeferredList, DeferredSemaphore
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = args.concurrency
    pool.retryAutomatically = False
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=10))
    base = args.url.rstrip("/") + "/api/v1"
    hdrs = {**headers, "Content-Type": "application/json"}

    async def post(path: str, body: bytes) -> tuple[int, Any]:
        d = http.post(base + path, data=body, headers=hdrs)
        d.addTimeout(args.timeout, reactor)
        response = await d
        content_d = treq.content(response)
        content_d.addTimeout(args.timeout, reactor)
        content = await content_d
        try:
            return response.code, json.loads(content)
        except ValueError:
            return response.code, content[:300]

    try:
        code, envelope = await post("/projects", json.dumps(
            {"name": f"{args.project_name} {os.getpid()}-{time.time():.0f}",
             "description": "bench/create_jobs.py"}).encode())
        if code != 201:
            raise SystemExit(f"creating the project failed: {code} {envelope}")
        project_id = envelope["data"]["id"]
        bodies = job_bodies(project_id, args.jobs, args.batch)

        latencies: list[float] = []
        failures: list[str] = []
        created = 0
        semaphore = DeferredSemaphore(args.concurrency)

        async def one(index: int, body: bytes) -> None:
            nonlocal created
            t0 = time.monotonic()
            try:
                code, envelope = await post("/jobs", body)
            except Exception as e:  # timeout, reset, refused
                failures.append(f"batch {index}: {type(e).__name__}: {e}")
                return
            latencies.append(time.monotonic() - t0)
            expected = min(args.batch, args.jobs - index * args.batch)
            if code != 201 or not isinstance(envelope, dict) or len(envelope["data"]) != expected:
                failures.append(f"batch {index}: {code} {str(envelope)[:200]}")
                return
            created += expected

        started = time.monotonic()
        await DeferredList([semaphore.run(lambda i=i, b=b: _deferred(one(i, b)))
                            for i, b in enumerate(bodies)])
        wall = time.monotonic() - started

        d = http.get(base + f"/jobs?projectId={project_id}&limit=1", headers=hdrs)
        response = await d
        total = (await response.json())["data"]["total"]
        return {"projectId": project_id, "wall": wall, "latencies": latencies,
                "failures": failures, "created": created, "listedTotal": total,
                "started": started}
    finally:
        await pool.closeCachedConnections()


def _deferred(coroutine: Any) -> Any:
    from twisted.internet.defer import Deferred
    return Deferred.fromCoroutine(coroutine)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Create one project and N jobs on a running Scheduler0 node and report "
                    "jobs/s, batch latency and healthcheck latency under the load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9091", help="the node's base URL")
    parser.add_argument("--api-key", help="API key of a credential with the write scope")
    parser.add_argument("--api-secret", help="its API secret")
    parser.add_argument("--config", help="node config file; a credential is created with "
                                         "`python -m scheduler0.cli create credential`")
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs to create")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per POST")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--probe-interval", type=float, default=0.02,
                        help="seconds between healthcheck probes")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--project-name", default="bench", help="project name prefix")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--start-node", action="store_true",
                        help="start a fresh node (temp dir, free ports, RateLimitPerMinute 0) "
                             "and stop it at the end; --url and --config are then its own")
    args = parser.parse_args(argv)
    if not args.start_node and not args.config and not (args.api_key and args.api_secret):
        parser.error("give --api-key and --api-secret, --config to create a credential, "
                     "or --start-node")
    if args.jobs < 1 or args.batch < 1 or args.concurrency < 1:
        parser.error("--jobs, --batch and --concurrency must be >= 1")
    return args


def check_node(url: str) -> None:
    import urllib.request
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/v1/healthcheck", timeout=5) as r:
            r.read()
    except OSError as e:
        raise SystemExit(f"no Scheduler0 node answers at {url}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.start_node:
        return run(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from seed_harness import Node

    node = Node(extra="RateLimitPerMinute: 0\n")
    try:
        args.url, args.config = node.url, node.config
        return run(args)
    finally:
        node.stop()


def run(args: argparse.Namespace) -> int:
    check_node(args.url)
    if args.config:
        credential = create_credential(args.config)
        key, secret = credential["apiKey"], credential["apiSecret"]
    else:
        key, secret = args.api_key, args.api_secret
    headers = {"x-api-key": key, "x-secret-key": secret}

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    receiver, sender = context.Pipe(duplex=False)
    prober = context.Process(target=probe, args=(args.url, args.probe_interval, stop, sender),
                             daemon=True)
    prober.start()
    time.sleep(0.3)  # let the probe connect and take a few idle samples

    from twisted.internet import task

    outcome: dict[str, Any] = {}

    async def run(reactor: Any) -> None:
        outcome.update(await load(reactor, args, headers))

    try:
        task.react(lambda reactor: _deferred(run(reactor)), [])
    except SystemExit as e:
        if e.code not in (0, None):
            stop.set()
            raise
    finally:
        stop.set()
    probe_samples, probe_errors, probe_error_count, probe_started, _ = receiver.recv()
    prober.join(10)

    # healthcheck samples taken while batches were in flight
    load_start = outcome["started"] - probe_started
    load_end = load_start + outcome["wall"]
    during = [lat for at, lat in probe_samples if load_start <= at <= load_end]
    idle = [lat for at, lat in probe_samples if at < load_start]
    batch_lat = outcome["latencies"]
    report = {
        "url": args.url,
        "jobs": args.jobs,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "created": outcome["created"],
        "listedTotal": outcome["listedTotal"],
        "failures": outcome["failures"][:20],
        "failureCount": len(outcome["failures"]),
        "wallSeconds": round(outcome["wall"], 3),
        "jobsPerSecond": round(outcome["created"] / outcome["wall"], 1),
        "batchLatencyMs": {"median": ms(percentile(batch_lat, 50)),
                           "p99": ms(percentile(batch_lat, 99)),
                           "max": ms(max(batch_lat) if batch_lat else None),
                           "count": len(batch_lat)},
        "healthcheckMs": {"samples": len(during), "median": ms(percentile(during, 50)),
                          "p99": ms(percentile(during, 99)),
                          "worst": ms(max(during) if during else None),
                          "over100ms": sum(1 for lat in during if lat > 0.1),
                          "idleMedian": ms(percentile(idle, 50)),
                          "errors": probe_error_count, "errorSamples": probe_errors},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        b, h = report["batchLatencyMs"], report["healthcheckMs"]
        print(f"created {report['created']}/{args.jobs} jobs (node lists {report['listedTotal']}) "
              f"in {report['wallSeconds']} s: {report['jobsPerSecond']} jobs/s "
              f"(batch {args.batch}, concurrency {args.concurrency})")
        print(f"batch latency ms: median {b['median']}, p99 {b['p99']}, max {b['max']} "
              f"({b['count']} batches)")
        print(f"healthcheck ms during load: median {h['median']}, p99 {h['p99']}, worst "
              f"{h['worst']}, {h['over100ms']} of {h['samples']} over 100 ms "
              f"(idle median {h['idleMedian']}); probe errors {h['errors']}")
        for failure in report["failures"]:
            print("FAILED", failure)
    ok = report["created"] == args.jobs and report["listedTotal"] >= args.jobs
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
