#!/usr/bin/env python
"""
Two code trees under the same API load, in alternating windows: is one slower?

``mixed_load.py`` run once per tree, one after the other, swings +-15 % from run to run on
a small shared machine (the machine's speed drifts over minutes), so a 5 % difference
needs dozens of pairs. Here both nodes run at once, each with its own receiver and
``--jobs`` jobs ``@every 1s`` firing all the time, and the ``--clients`` API clients (one
keep-alive connection to each node, each from its own source address) send the
``--mix`` of ``mixed_load.py`` to one node for ``--window`` seconds, then to the other:
``--pairs`` pairs of windows, in the order AB BA AB ... so a steady drift cancels.

Per window, the requests answered in it after its first ``--settle`` seconds (the
clients' requests to the other node finish then) give the node's rate, and its process
times over the same seconds its CPU per request: user and system, the reactor thread's
and the other threads' (the writer), and its threads' context switches. A node at about
107 % CPU is held by the interpreter lock, and then its rate is the inverse of what a
request costs it. Reported, for each side: the medians over its windows, the CPU of
the node while the other one has the load (its jobs firing), the requests answered, and
the slots of its jobs delivered, missed and their lateness over the whole run; and the
ratio B/A of each pair's rates with its median. One run of 20 pairs of the same tree
on both sides gave medians within 1.3 % (rate) and 0.2 % (CPU per request).

Usage (from the repository root; the other tree a checkout of another commit, e.g.
``git worktree add /tmp/base 38db0a6``):

    python bench/alternating_load.py --other /tmp/base [--pairs 20] [--window 6]
        [--settle 1] [--mix writes] [--clients 200] [--jobs 200] [--json]

Side A is this tree, side B the other. Exit status 0, or 2 on a setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mixed_load import MIXES, ApiClient, analyze, request_for, set_up  # noqa: E402
from seed_harness import REPO, Node, Receiver, code_version, log, machine  # noqa: E402


class Side:
    """One node with its receiver, its fired jobs and the load's own project and jobs."""

    def __init__(self, name: str, repo: str) -> None:
        self.name, self.repo = name, repo
        self.code = code_version(repo)
        self.node = Node(extra="RateLimitPerMinute: 0\n", repo=repo)
        self.receiver: Receiver | None = None
        self.jobs: list[int] = []
        self.windows: list[dict[str, float]] = []
        self.answered = 0  # requests answered over the whole run (2xx)
        self.idle_cpu: list[float] = []  # CPU seconds a second in the other side's windows

    def set_up(self, jobs: int) -> None:
        self.receiver = Receiver(0)
        (self.key, self.secret, self.project_id, self.load_project, self.jobs,
         self.load_jobs) = set_up(self.node, self.receiver, jobs, repo=self.repo)

    def request_for(self, kind: str, serial: int) -> tuple[str, str, bytes]:
        return request_for(kind, self.project_id, self.load_project, self.load_jobs, serial)

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        self.node.stop()


async def alternate(sides: list[Side], clients: int, pairs: int, window: float,
                    settle: float, mix: str) -> list[str]:
    """Drive the load; fill each side's C{windows}; return a few error samples."""
    kinds = [k for k, _ in MIXES[mix]]
    weights = [w for _, w in MIXES[mix]]
    state: dict[str, Any] = {"target": 0, "done": False}
    answered: list[tuple[int, float]] = []  # (side index, time answered)
    errors: list[str] = []
    serial = iter(range(10**9))

    async def one_client(index: int) -> None:
        source = f"127.0.{(index + 2) // 250}.{(index + 2) % 250 + 1}"
        connections = [ApiClient("127.0.0.1", side.node.port, source,
                                 {"x-api-key": side.key, "x-secret-key": side.secret,
                                  "Content-Type": "application/json"}) for side in sides]
        while not state["done"]:
            target = state["target"]
            side = sides[target]
            kind = random.choices(kinds, weights)[0]
            method, path, body = side.request_for(kind, next(serial))
            try:
                status, content = await asyncio.wait_for(
                    connections[target].request(method, path, body), timeout=60)
            except (OSError, ConnectionError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError, ValueError, IndexError) as e:
                errors.append(f"{side.name} {kind}: {type(e).__name__} {e}")
                connections[target].close()
                await asyncio.sleep(0.1)
                continue
            if status >= 300:
                errors.append(f"{side.name} {kind}: {status} {content[:200]!r}")
                continue
            answered.append((target, time.monotonic()))
            side.answered += 1
            if kind == "create_job":
                side.load_jobs.append(json.loads(content)["data"]["id"])
        for connection in connections:
            connection.close()

    async def controller() -> None:
        order = []
        for i in range(pairs):
            order += [0, 1] if i % 2 == 0 else [1, 0]
        for target in order:
            state["target"] = target
            side = sides[target]
            await asyncio.sleep(settle)
            start, seen = time.monotonic(), len(answered)
            before = [process_times(s.node.pid) for s in sides]
            await asyncio.sleep(window - settle)
            end, after = time.monotonic(), [process_times(s.node.pid) for s in sides]
            count = sum(1 for s, t in answered[seen:] if s == target and start <= t < end)
            spent = {k: (after[target][k] - before[target][k]) / count if count else None
                     for k in after[target]}
            idle = sides[1 - target]
            idle.idle_cpu.append((after[1 - target]["cpu"] - before[1 - target]["cpu"])
                                 / (end - start))
            side.windows.append({"requests_per_s": count / (end - start),
                                 "cpu_percent": 100 * (after[target]["cpu"]
                                                       - before[target]["cpu"]) / (end - start),
                                 "cpu_ms_per_request": _ms(spent["cpu"]),
                                 "user_ms_per_request": _ms(spent["user"]),
                                 "system_ms_per_request": _ms(spent["system"]),
                                 "switches_per_request": spent["switches"],
                                 "reactor_ms_per_request": _ms(spent["reactor"]),
                                 "other_threads_ms_per_request": _ms(spent["other_threads"])})
        state["done"] = True

    await asyncio.gather(controller(), *(one_client(i) for i in range(clients)))
    return errors


def process_times(pid: int) -> dict[str, float]:
    """CPU seconds of a process (user, system, both) and its threads' context switches
    (voluntary and not): more wake-ups per request cost CPU the profile does not show."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    user, system = int(fields[11]) / ticks, int(fields[12]) / ticks
    switches, main = 0, 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        switches += int(line.split()[1])
            if task == str(pid):
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    thread = f.read().rsplit(")", 1)[1].split()
                main = (int(thread[11]) + int(thread[12])) / ticks
        except OSError:
            continue  # a thread that ended
    return {"user": user, "system": system, "cpu": user + system, "switches": switches,
            "reactor": main, "other_threads": user + system - main}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    sides: list[Side] = []
    try:
        for name, repo in (("A", REPO), ("B", os.path.abspath(args.other))):
            sides.append(Side(name, repo))
            sides[-1].set_up(args.jobs)
        log(f"A {sides[0].code} on port {sides[0].node.port}, B {sides[1].code} on port "
            f"{sides[1].node.port}; {args.jobs} jobs @every 1s each; warming up 5 s")
        time.sleep(5)
        start = time.time()
        log(f"{args.clients} clients, {args.pairs} pairs of {args.window} s windows")
        errors = asyncio.run(alternate(sides, args.clients, args.pairs, args.window,
                                       args.settle, args.mix))
        end = time.time()
        time.sleep(args.grace)
        a, b = (side.windows for side in sides)
        ratios = [y["requests_per_s"] / x["requests_per_s"] for x, y in zip(a, b)
                  if x["requests_per_s"]]
        result: dict[str, Any] = {
            "machine": machine(), "clients": args.clients, "jobs": args.jobs,
            "mix": args.mix, "pairs": args.pairs, "window": args.window,
            "settle": args.settle, "errors": len(errors), "error_samples": errors[:5],
            "ratio_b_over_a": {"median": _r(statistics.median(ratios)) if ratios else None,
                               "pairs": [_r(x) for x in ratios]},
        }
        for side in sides:
            assert side.receiver is not None
            rates = [w["requests_per_s"] for w in side.windows]
            result[side.name] = {
                "code": side.code, "repo": side.repo, "requests": side.answered,
                "requests_per_s_median": _r(statistics.median(rates)),
                "idle_cpu_percent_median": _r(100 * statistics.median(side.idle_cpu)),
                **{f"{key}_median": _median(side.windows, key) for key in (
                    "cpu_percent", "cpu_ms_per_request", "user_ms_per_request",
                    "system_ms_per_request", "switches_per_request", "reactor_ms_per_request",
                    "other_threads_ms_per_request")},
                "scheduler": analyze(side.receiver.dump(), side.jobs, start, end),
            }
        return result
    finally:
        for side in sides:
            side.stop()


def _r(value: float) -> float:
    return round(value, 3)


def _median(windows: list[dict[str, Any]], key: str) -> float | None:
    values = [w[key] for w in windows if w[key] is not None]
    return _r(statistics.median(values)) if values else None


def text_report(r: dict[str, Any]) -> str:
    lines = [f"{r['mix']}: {r['clients']} clients, {r['pairs']} pairs of {r['window']} s "
             f"windows on {r['machine']}"]
    for name in ("A", "B"):
        s = r[name]
        sched = s["scheduler"]
        lines.append(
            f"{name} {s['code']} ({s['repo']}): median {s['requests_per_s_median']} "
            f"requests/s, {s['cpu_ms_per_request_median']} ms CPU per request (reactor "
            f"{s['reactor_ms_per_request_median']}, other threads "
            f"{s['other_threads_ms_per_request_median']}); slots "
            f"{sched['slots']}, delivered {sched['delivered']}, missed {sched['missed']}, "
            f"lateness p99 {sched['lateness_ms']['p99']} ms")
    lines.append(f"B/A per pair {r['ratio_b_over_a']['pairs']}; median "
                 f"{r['ratio_b_over_a']['median']}; errors {r['errors']} "
                 f"{r['error_samples']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", required=True, help="the other source tree (side B)")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--mix", choices=sorted(MIXES), default="writes")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--grace", type=float, default=5.0,
                        help="seconds to wait after the load for late callbacks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.other, "scheduler0")):
        print(f"{args.other}: not a source tree (no scheduler0/)", file=sys.stderr)
        return 2
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else text_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
