#!/usr/bin/env python
"""
CPU per command through a single node's command log, in-process on the real reactor.

Proposes N small commands (``project.create``) through ``LocalCommandLog`` (since issue 12
item 14 a one-node Raft cluster) with its writer thread, ``--in-flight`` at a time (100), and
reports per command the process's CPU time, the reactor thread's alone (what the API's
requests compete with) and the wall time, log, applier and sqlite included. Compare two
checkouts in alternation: it measures what the log path costs, not the API. A saturated API
submits a few writes per reactor turn: ``--in-flight 4`` is closer to it than 100.

Usage, from the repository root:

    python bench/command_log_cost.py --commands 20000 --runs 3 [--in-flight 100] --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

AT = "2026-11-26T16:00:00.000Z"


def one_run(count: int, in_flight: int = 100) -> dict[str, float]:
    """In a child process: a fresh store and log, N commands; CPU and wall µs a command."""
    from twisted.internet import defer, reactor

    from scheduler0.consensus.local import LocalCommandLog
    from scheduler0.state import commands as C
    from scheduler0.state.commands import Command
    from scheduler0.store.service import StoreService

    data_dir = tempfile.mkdtemp(prefix="s0-logcost-")
    store = StoreService(data_dir)
    store.startService()
    log = LocalCommandLog(store.path, reactor)
    found: dict[str, float] = {}

    @defer.inlineCallbacks
    def run():  # type: ignore[no-untyped-def]
        try:
            yield log.startService()
            commands = [Command(f"p{i}", C.PROJECT_CREATE, AT, {"project": {
                "id": i, "name": f"p{i}", "description": "d" * 50, "signing_secret": "s"}})
                for i in range(count)]
            cpu, wall = time.process_time(), time.perf_counter()
            reactor_cpu = time.thread_time()
            for start in range(0, count, in_flight):
                results = yield defer.gatherResults(
                    [log.submit(c) for c in commands[start:start + in_flight]])
                assert all(r["ok"] for r in results), results
            found["reactor_cpu_us"] = (time.thread_time() - reactor_cpu) / count * 1e6
            found["cpu_us"] = (time.process_time() - cpu) / count * 1e6
            found["wall_us"] = (time.perf_counter() - wall) / count * 1e6
            yield log.stopService()
        finally:
            store.stopService()
            shutil.rmtree(data_dir, ignore_errors=True)
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=100,
                        help="commands submitted together, answered before the next ones")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.commands, args.in_flight)))
        return 0
    runs = []
    for _ in range(args.runs):  # a fresh process each: no warm caches between runs
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                              "--commands", str(args.commands),
                              "--in-flight", str(args.in_flight)],
                             check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    report = {"commands": args.commands, "in_flight": args.in_flight, "runs": runs,
              "cpu_us_median": round(statistics.median(r["cpu_us"] for r in runs), 1),
              "reactor_cpu_us_median": round(
                  statistics.median(r["reactor_cpu_us"] for r in runs), 1),
              "wall_us_median": round(statistics.median(r["wall_us"] for r in runs), 1)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.commands} commands, {args.in_flight} in flight, {args.runs} runs: CPU "
              f"{report['cpu_us_median']} µs a command ({report['reactor_cpu_us_median']} µs in "
              f"the reactor thread), wall {report['wall_us_median']} µs (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
