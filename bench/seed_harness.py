#!/usr/bin/env python
"""
The seed's "Example Usage In Node Server" harness, in Python.

One project, N jobs ``@every 1m`` (timezone America/New_York, ``data`` a JSON string as in the
seed) created in POSTs of ``--batch`` (1,000) one after the other, and a receiver that counts
the callbacks per job id. Unlike the seed it also measures:

* jobs created per second (N / wall time from the first batch sent to the last answer read),
  and the same rate over the batches answered before the first jobs fall due (``SPEC``'s
  period after the first batch was sent): past it, creation shares the node with firing, so
  a node that creates more slowly also overlaps more of it;
* for each of M whole minutes after the last job was created, the min and max hits per job,
  the misses and the duplicates. Windows are aligned to each job's own phase: job j fires at
  ``floor(dateCreated_j) + k*60 s``; window w is ``[T0 + 60w, T0 + 60(w+1))`` where T0 is the
  moment the last batch was answered, so every job has exactly one expected occurrence in each
  window. Hits are attributed by their ``scheduledTime`` field, not by when they arrived.
  A miss is an expected occurrence with no hit; a duplicate is an ``executionId`` received more
  than once (each extra copy counts); an off-phase hit is one whose ``scheduledTime`` is not
  on the job's phase;
* lateness of each hit (receive time - ``scheduledTime``): p50/p99/max;
* the node's RSS (``VmRSS`` of ``/proc/<pid>/status``) idle before the jobs are created,
  after they are created and at the end; RSS per job = (end - idle) / N. Also the node's CPU
  use during the measured minutes.

The receiver runs in a separate process (this same script with ``--receiver``), so its CPU
does not share a reactor with the client; on a 2-core machine it still shares the cores with
the node.

Usage:

    # start a fresh node (temp dir, free ports, default settings) and run the seed's load
    PYTHONPATH=/work/main /work/venv/bin/python bench/seed_harness.py --start-node \\
        --jobs 50000 --minutes 3 [--json]

    # against a running node (its pid is needed for RSS; its --config for a credential)
    python bench/seed_harness.py --url http://127.0.0.1:9091 --node-pid 1234 \\
        --config /path/scheduler0.yml        # or --api-key K --api-secret S

Only the standard library and Twisted (receiver) are used. Exit status 0 when every target
was met (min = max = 1 in every window, no miss, no duplicate, p99 lateness <= 1 s, at most
2 KiB RSS per job), 1 when a target was missed, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

SPEC = "@every 1m"
TIMEZONE = "America/New_York"
PERIOD = 60
#: targets of the product contract (PRODUCT.md section 8 and the brief)
TARGET_P99 = 1.0
TARGET_RSS_PER_JOB = 2048
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# small helpers


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (p in 0..100); None for none."""
    if not values:
        return None
    rank = max(1, math.ceil(len(values) * p / 100))
    return values[min(rank, len(values)) - 1]


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def rss_bytes(pid: int | None) -> int | None:
    """VmRSS of a process, in bytes."""
    return _status_field(pid, "VmRSS")


def hwm_bytes(pid: int | None) -> int | None:
    """VmHWM (peak RSS) of a process, in bytes."""
    return _status_field(pid, "VmHWM")


def _status_field(pid: int | None, field: str) -> int | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def rfc3339(seconds: float) -> str:
    text = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def code_version(repo: str = REPO) -> str:
    """HEAD of the repository and whether scheduler0/ differs from it (read-only git)."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "scheduler0",
                                "twisted"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' + uncommitted changes in scheduler0/' if dirty else ''}" if head else "?"


def machine() -> dict[str, Any]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": sys.version.split()[0]}


# --------------------------------------------------------------------------------------------
# the receiver (its own process: this script with --receiver)


def run_receiver(port: int) -> None:
    """Serve POST /callback (any path) and the control endpoints GET /stats and GET /dump.

    Each POST is answered 200 at once; its body is parsed a moment later (after the answer
    has been written). Kept per hit: job id, executionId, scheduledTime (text) and the time
    the POST was received (when its whole body had arrived); per POST, the node that sent it
    (its C{X-Scheduler0-Node} header, None without one), so a cluster's share per node shows.
    C{GET /nodes?after=&before=} counts the hits received in that span per sending node."""
    from twisted.internet import reactor
    from twisted.web import resource, server

    posts: list[tuple[float, int, bool, bool]] = []  # (received, items, chunk hdr, signature)
    ids: list[Any] = []
    execs: list[str] = []
    scheds: list[str] = []
    recv_index: list[int] = []  # per hit: index into posts
    post_nodes: list[str | None] = []  # per POST: its X-Scheduler0-Node header
    per_sched: dict[str, int] = {}
    pending: list[tuple[float, bytes, bool, bool, str | None]] = []
    errors: list[str] = []
    state = {"scheduled": None}

    def drain() -> None:
        state["scheduled"] = None
        while pending:
            received, body, chunk, signed, sender = pending.pop(0)
            try:
                items = json.loads(body)
            except ValueError as e:
                errors.append(f"bad JSON: {e}")
                continue
            if not isinstance(items, list):
                items = [items]
            index = len(posts)
            posts.append((received, len(items), chunk, signed))
            post_nodes.append(sender)
            for item in items:
                ids.append(item.get("id"))
                execs.append(item.get("executionId"))
                sched = item.get("scheduledTime")
                scheds.append(sched)
                recv_index.append(index)
                per_sched[sched] = per_sched.get(sched, 0) + 1

    parsed_sched: dict[str, float] = {}

    def sched_seconds(text: str) -> float:
        value = parsed_sched.get(text)
        if value is None:
            try:
                value = parse_rfc3339(text)
            except (TypeError, ValueError):
                value = float("nan")
            parsed_sched[text] = value
        return value

    class Root(resource.Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            received = time.time()
            pending.append((received, request.content.read(),
                            request.getHeader("x-payload-chunk-id") is not None,
                            request.getHeader("x-scheduler0-signature") is not None,
                            request.getHeader("x-scheduler0-node")))
            if state["scheduled"] is None:
                # 1 ms: the reactor writes the answer before the body is parsed
                state["scheduled"] = reactor.callLater(0.001, drain)
            request.setResponseCode(200)
            request.setHeader(b"content-type", b"text/plain")
            return b""

        def render_GET(self, request: Any) -> bytes:
            drain()
            args = parse_qs(urlsplit(request.uri.decode()).query)
            path = request.path.decode()
            request.setHeader(b"content-type", b"application/json")
            if path == "/stats":
                before = float(args.get("before", ["inf"])[0])
                after = float(args.get("after", ["-inf"])[0])
                within = sum(count for text, count in per_sched.items()
                             if after <= sched_seconds(text) < before)
                return json.dumps({"posts": len(posts), "hits": len(ids), "within": within,
                                   "errors": len(errors)}).encode()
            if path == "/nodes":
                before = float(args.get("before", ["inf"])[0])
                after = float(args.get("after", ["-inf"])[0])
                by_node: dict[str, int] = {}
                for (received, items, _, _), sender in zip(posts, post_nodes):
                    if after <= received < before:
                        name = "none" if sender is None else sender
                        by_node[name] = by_node.get(name, 0) + items
                return json.dumps(by_node).encode()
            if path == "/dump":
                target = args["path"][0]
                with open(target, "w") as f:
                    json.dump({"posts": posts, "ids": ids, "execs": execs, "scheds": scheds,
                               "recv_index": recv_index, "post_nodes": post_nodes,
                               "errors": errors[:20],
                               "error_count": len(errors)}, f)
                return b'{"ok": true}'
            request.setResponseCode(404)
            return b"{}"

    site = server.Site(Root())
    site.displayTracebacks = False
    site.noisy = False
    listening = reactor.listenTCP(port, site, interface="127.0.0.1", backlog=1024)
    print(f"listening {listening.getHost().port}", flush=True)
    reactor.run()


class Receiver:
    """A receiver subprocess and its control endpoints."""

    def __init__(self, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--receiver", "--receiver-port",
             str(port)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            raise SystemExit(f"receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.callback_url = f"http://127.0.0.1:{self.port}/callback"

    def _get(self, path: str, timeout: float = 300) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def stats(self, after: float = float("-inf"), before: float = float("inf")) -> dict[str, Any]:
        return self._get(f"/stats?after={after}&before={before}")

    def nodes(self, after: float = float("-inf"),
              before: float = float("inf")) -> dict[str, int]:
        """Hits received in [after, before) per sending node (C{X-Scheduler0-Node})."""
        return self._get(f"/nodes?after={after}&before={before}")

    def dump(self) -> dict[str, Any]:
        fd, path = tempfile.mkstemp(prefix="receiver-", suffix=".json")
        os.close(fd)
        try:
            self._get(f"/dump?path={path}")
            with open(path) as f:
                return json.load(f)
        finally:
            os.unlink(path)

    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------------------
# waiting for the measured minutes, and the analysis (shared with peer_apscheduler.py)


def wait_and_watch(receiver: Receiver, t0: float, minutes: int, expected_per_window: int,
                   pid: int | None, grace: float) -> dict[str, Any]:
    """Sleep through the M windows (logging progress, sampling RSS), then wait until every
    expected hit of the windows has arrived or C{grace} seconds have passed."""
    end = t0 + minutes * PERIOD
    peak = rss_bytes(pid) or 0
    next_log = t0 + PERIOD
    while time.time() < end:
        time.sleep(min(5.0, max(0.0, end - time.time())))
        peak = max(peak, rss_bytes(pid) or 0)
        if time.time() >= next_log:
            s = receiver.stats(t0, end)
            log(f"minute {round((time.time() - t0) / PERIOD)}: {s['within']} hits in the "
                f"windows so far, RSS {(rss_bytes(pid) or 0) / 2**20:.1f} MiB, load {loadavg()}")
            next_log += PERIOD
    want = expected_per_window * minutes
    deadline = time.time() + grace
    while True:
        s = receiver.stats(t0, end)
        if s["within"] >= want or time.time() >= deadline:
            break
        time.sleep(1.0)
        peak = max(peak, rss_bytes(pid) or 0)
    return {"flush_wait_s": round(time.time() - end, 1), "rss_peak_sampled": peak}


def analyze(dump: dict[str, Any], bases: dict[Any, float], t0: float,
            minutes: int) -> dict[str, Any]:
    """Per-window min/max hits per job, misses, duplicates, off-phase hits, lateness.

    @param bases: job id -> phase origin (fires at base + k*60 s, k >= 1).
    """
    index = {job_id: i for i, job_id in enumerate(bases)}
    base_list = list(bases.values())
    n = len(base_list)
    end = t0 + minutes * PERIOD
    counts = [bytearray(n) for _ in range(minutes)]
    posts = dump["posts"]
    parsed: dict[str, float] = {}
    seen: dict[str, int] = {}
    lateness: list[float] = []
    unknown = off_phase = before = after = duplicates = 0
    post_first: dict[int, float] = {}  # POST index -> earliest scheduledTime in it
    for job_id, exec_id, sched_text, post in zip(dump["ids"], dump["execs"], dump["scheds"],
                                                 dump["recv_index"]):
        if exec_id in seen:
            seen[exec_id] += 1
            duplicates += 1
        else:
            seen[exec_id] = 1
        sched = parsed.get(sched_text)
        if sched is None:
            try:
                sched = parse_rfc3339(sched_text)
            except (TypeError, ValueError, AttributeError):
                sched = float("nan")
            parsed[sched_text] = sched
        i = index.get(job_id)
        if i is None:
            unknown += 1
            continue
        if not (t0 <= sched < end):
            if sched < t0:
                before += 1
            else:
                after += 1
            continue
        phase = (sched - base_list[i]) % PERIOD
        if min(phase, PERIOD - phase) > 0.0005:
            off_phase += 1
            continue
        w = int((sched - t0) // PERIOD)
        c = counts[w]
        if c[i] < 255:
            c[i] += 1
        lateness.append(posts[post][0] - sched)
        first = post_first.get(post)
        if first is None or sched < first:
            post_first[post] = sched
    windows = []
    for w, c in enumerate(counts):
        windows.append({
            "window": w,
            "start": rfc3339(t0 + w * PERIOD),
            "hits": sum(c),
            "min": min(c) if n else None,
            "max": max(c) if n else None,
            "misses": c.count(0),
            "jobs_hit_more_than_once": n - c.count(0) - c.count(1),
        })
    lateness.sort()
    # per POST (in the windows): items, and lateness of its earliest occurrence
    post_lateness = [[posts[i][1], round(posts[i][0] - first, 3)]
                     for i, first in sorted(post_first.items())]
    return {
        "post_lateness_first_200": post_lateness[:200],
        "windows": windows,
        "misses": sum(w["misses"] for w in windows),
        "duplicates": duplicates,
        "off_phase_hits": off_phase,
        "unknown_job_hits": unknown,
        "hits_before_windows": before,
        "hits_after_windows": after,
        "hits_total": len(dump["ids"]),
        "posts": len(posts),
        "posts_without_chunk_header": sum(1 for p in posts if not p[2]),
        "posts_without_signature": sum(1 for p in posts if not p[3]),
        "receiver_errors": dump.get("error_count", 0),
        "lateness_s": {
            "count": len(lateness),
            "p50": _r(percentile(lateness, 50)),
            "p99": _r(percentile(lateness, 99)),
            "max": _r(lateness[-1] if lateness else None),
            "min": _r(lateness[0] if lateness else None),
            "over_1s": len(lateness) - _count_le(lateness, 1.0),
        },
    }


def _count_le(ordered: list[float], limit: float) -> int:
    import bisect

    return bisect.bisect_right(ordered, limit)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def verdict(result: dict[str, Any]) -> dict[str, bool]:
    windows = result["windows"]
    rss = result.get("rss", {}).get("per_job_bytes")
    p99 = result["lateness_s"]["p99"]
    return {
        "exactly_once_per_minute": bool(windows) and all(
            w["min"] == 1 and w["max"] == 1 for w in windows)
        and result["misses"] == 0 and result["duplicates"] == 0,
        "p99_lateness_le_1s": p99 is not None and p99 <= TARGET_P99,
        "rss_per_job_le_2KiB": rss is not None and rss <= TARGET_RSS_PER_JOB,
    }


def text_report(result: dict[str, Any]) -> str:
    mib = lambda b: "?" if b is None else f"{b / 2**20:.1f} MiB"  # noqa: E731
    lines = [
        f"{result['system']}: {result['jobs']:,} jobs '{SPEC}', {result['minutes']} minute "
        f"windows, batch {result['batch']}",
        f"machine: nproc {result['machine']['nproc']}, {result['machine']['cpu']}, "
        f"Python {result['machine']['python']}; "
        + (f"code {result['code']}; " if result.get("code") else "")
        + f"load avg start {result['load_start']}, "
        f"end {result['load_end']}",
        f"jobs created: {result['created']:,} in {result['create_wall_s']:.2f} s = "
        f"{result['jobs_per_s']:,.0f} jobs/s ({result.get('jobs_per_s_before_due') or 0:,.0f} "
        f"jobs/s before the first fell due)",
    ]
    for w in result["windows"]:
        lines.append(f"  window {w['window']} (from {w['start']}): hits {w['hits']:,}, "
                     f"min {w['min']}, max {w['max']}, misses {w['misses']:,}")
    lat = result["lateness_s"]
    lines += [
        f"misses {result['misses']:,}, duplicates {result['duplicates']:,}, off-phase "
        f"{result['off_phase_hits']:,}, hits outside the windows {result['hits_before_windows']:,}"
        f" before / {result['hits_after_windows']:,} after, unknown ids "
        f"{result['unknown_job_hits']:,}",
        f"lateness (s) over {lat['count']:,} hits: p50 {lat['p50']}, p99 {lat['p99']}, "
        f"max {lat['max']}, over 1 s: {lat['over_1s']:,}",
        f"callback POSTs: {result['posts']:,} (without chunk header "
        f"{result['posts_without_chunk_header']}, without signature "
        f"{result['posts_without_signature']}); waited {result['flush_wait_s']} s after the "
        f"last window for stragglers",
    ]
    rss = result.get("rss", {})
    lines.append(
        f"RSS ({result.get('rss_of', 'node')}): idle {mib(rss.get('idle'))}, after create "
        f"{mib(rss.get('after_create'))}, end {mib(rss.get('end'))}, peak sampled "
        f"{mib(rss.get('peak_sampled'))}, VmHWM {mib(rss.get('hwm'))}; per job "
        f"{rss.get('per_job_bytes')} bytes")
    if result.get("cpu_percent_during_windows") is not None:
        lines.append(f"CPU of {result.get('rss_of', 'node')} during the windows: "
                     f"{result['cpu_percent_during_windows']}% of one core; receiver "
                     f"{result.get('receiver_cpu_percent')}%")
    for key, ok in result["verdict"].items():
        lines.append(f"target {key}: {'MET' if ok else 'MISSED'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the node and the client


class Node:
    """A fresh node in a temp dir on free ports (twistd -n, source tree on PYTHONPATH)."""

    def __init__(self, keep: bool = False, extra: str = "", port: int | None = None,
                 raft_port: int | None = None, wait: bool = True,
                 twistd_args: Iterable[str] = (), repo: str = REPO) -> None:
        """@param extra: more YAML lines for the node's config (e.g. C{RateLimitPerMinute: 0}).
        @param port, raft_port: given when other nodes must know them (a cluster's Replicas).
        @param wait: False to start several nodes at once, then L{wait_ready} each.
        @param twistd_args: options of twistd itself (e.g. C{--profile=FILE}).
        @param repo: the source tree the node runs (another checkout, to compare two)."""
        self.dir = tempfile.mkdtemp(prefix="s0-seed-")
        self.keep = keep
        self.port = port or free_port()
        raft = raft_port or free_port()
        self.config = os.path.join(self.dir, "scheduler0.yml")
        with open(self.config, "w") as f:
            f.write(f"Port: {self.port}\nRaftAddress: 127.0.0.1:{raft}\n"
                    f"DataDir: {self.dir}/data\n{extra}")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        env = dict(os.environ, PYTHONPATH=repo)
        self.log_path = os.path.join(self.dir, "node.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [twistd, "-n", "--pidfile=", *twistd_args, "scheduler0", "--config", self.config],
            cwd=self.dir, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the node answers its healthcheck (60 s at most)."""
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the node exited ({self.proc.returncode}); see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/healthcheck")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"the node did not answer in 60 s; see {self.log_path}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_problems(self) -> int:
        count = 0
        with open(self.log_path, "rb") as f:
            for line in f:
                if b"Traceback" in line or b"Unhandled" in line or b"[error]" in line.lower():
                    count += 1
        return count

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def create_credential(config: str, repo: str = REPO) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "scheduler0.cli", "create", "credential", "--config", config],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=repo),
        cwd=os.path.dirname(os.path.abspath(config)))
    if done.returncode != 0:
        raise SystemExit(f"create credential failed ({done.returncode}): "
                         f"{done.stdout}{done.stderr}")
    data = json.loads(done.stdout)
    return data["apiKey"], data["apiSecret"]


class Client:
    """The seed's axios instance: one keep-alive connection, requests one at a time."""

    def __init__(self, url: str, key: str, secret: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        self.headers = {"x-api-key": key, "x-secret-key": secret,
                        "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        self.conn.request("POST", "/api/v1" + path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        content = response.read()
        try:
            return response.status, json.loads(content)
        except ValueError:
            return response.status, content[:300]


def job_batches(project_id: Any, jobs: int, batch: int, callback_url: str) -> Iterable[bytes]:
    for start in range(0, jobs, batch):
        yield json.dumps([
            {"spec": SPEC, "projectId": project_id, "executionType": "http",
             "data": json.dumps({"jobId": n}), "timezone": TIMEZONE, "callbackUrl": callback_url}
            for n in range(start, min(start + batch, jobs))
        ]).encode()


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = loadavg()
    log(f"load average at start: {load_start}")
    # the seed's client sends one batch after another: past 500 batches (500,000 jobs) the
    # default per-client RateLimitPerMinute would refuse some, so the started node has none
    node = Node(keep=args.keep, extra="RateLimitPerMinute: 0\n") if args.start_node else None
    receiver = None
    try:
        url = node.url if node else args.url
        pid = node.pid if node else args.node_pid
        config = node.config if node else args.config
        if args.api_key and args.api_secret:
            key, secret = args.api_key, args.api_secret
        elif config:
            key, secret = create_credential(config)
        else:
            raise SystemExit("give --api-key/--api-secret, --config or --start-node")
        receiver = Receiver(args.receiver_port or 0)
        log(f"node {url} (pid {pid}), receiver {receiver.callback_url} "
            f"(pid {receiver.pid()})")
        client = Client(url, key, secret)
        status, answer = client.post("/projects", json.dumps(
            {"name": f"sample project {os.getpid()}-{time.time():.0f}",
             "description": "my calendar project"}).encode())
        if status != 201:
            raise SystemExit(f"create project: {status} {answer}")
        project_id = answer["data"]["id"]
        time.sleep(1.0)
        rss_idle = rss_bytes(pid)

        bases: dict[Any, float] = {}
        bodies = list(job_batches(project_id, args.jobs, args.batch, receiver.callback_url))
        failures = 0
        started = time.time()
        first_due = started + PERIOD
        before_due = (0, 0.0)  # jobs created and the time taken before the first fell due
        for body in bodies:
            status, answer = client.post("/jobs", body)
            answered = time.time()
            if status != 201 or not isinstance(answer, dict):
                failures += 1
                log(f"batch failed: {status} {str(answer)[:300]}")
                continue
            for job in answer["data"]:
                bases[job["id"]] = float(math.floor(parse_rfc3339(job["dateCreated"])))
            if answered < first_due:
                before_due = (len(bases), answered - started)
            if len(bases) % 100_000 == 0:
                log(f"created {len(bases):,} jobs in {answered - started:.1f} s")
        t0 = time.time()
        create_wall = t0 - started
        log(f"created {len(bases):,} jobs in {create_wall:.2f} s; measuring "
            f"{args.minutes} minutes")
        rss_after_create = rss_bytes(pid)
        cpu0 = cpu_seconds(pid)
        rcpu0 = cpu_seconds(receiver.pid())
        watched = wait_and_watch(receiver, t0, args.minutes, len(bases), pid, args.grace)
        cpu1 = cpu_seconds(pid)
        rcpu1 = cpu_seconds(receiver.pid())
        rss_end = rss_bytes(pid)
        hwm = hwm_bytes(pid)
        window_span = time.time() - t0
        dump = receiver.dump()
        result = analyze(dump, bases, t0, args.minutes)
        result.update({
            "system": "Scheduler0 (seed harness)", "code": code_version(),
            "jobs": args.jobs, "created": len(bases), "failed_batches": failures,
            "minutes": args.minutes, "batch": args.batch, "machine": machine(),
            "create_wall_s": round(create_wall, 3),
            "jobs_per_s": round(len(bases) / create_wall, 1) if create_wall else None,
            "jobs_per_s_before_due": (round(before_due[0] / before_due[1], 1)
                                      if before_due[1] else None),
            "t0": rfc3339(t0), "load_start": load_start, "load_end": loadavg(),
            "rss_of": f"node pid {pid}",
            "rss": {"idle": rss_idle, "after_create": rss_after_create, "end": rss_end,
                    "peak_sampled": watched["rss_peak_sampled"], "hwm": hwm,
                    "per_job_bytes": (round((rss_end - rss_idle) / len(bases))
                                      if rss_end and rss_idle and bases else None),
                    "per_job_bytes_after_create": (
                        round((rss_after_create - rss_idle) / len(bases))
                        if rss_after_create and rss_idle and bases else None)},
            "cpu_percent_during_windows": (round(100 * (cpu1 - cpu0) / window_span, 1)
                                           if cpu0 is not None and cpu1 is not None else None),
            "receiver_cpu_percent": (round(100 * (rcpu1 - rcpu0) / window_span, 1)
                                     if rcpu0 is not None and rcpu1 is not None else None),
            "flush_wait_s": watched["flush_wait_s"],
            "node_log_problem_lines": node.log_problems() if node else None,
            "node_dir": node.dir if node and args.keep else None,
        })
        result["verdict"] = verdict(result)
        log(f"load average at end: {result['load_end']}")
        return result
    finally:
        if receiver is not None:
            receiver.stop()
        if node is not None:
            node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--receiver-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--url", help="base URL of a running node, e.g. http://127.0.0.1:9091")
    parser.add_argument("--node-pid", type=int, help="pid of that node (for RSS and CPU)")
    parser.add_argument("--config", help="that node's YAML, to create a credential by the CLI")
    parser.add_argument("--start-node", action="store_true",
                        help="start a fresh node (temp dir, free ports) and stop it at the end")
    parser.add_argument("--keep", action="store_true", help="keep the started node's temp dir")
    parser.add_argument("--api-key")
    parser.add_argument("--api-secret")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds to wait after the last window for late hits (default 30)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        run_receiver(args.receiver_port)
        return 0
    if not args.start_node and not args.url:
        parser.error("give --url of a running node or --start-node")
    result = run(args)
    print(json.dumps(result, indent=1) if args.json else text_report(result))
    return 0 if all(result["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
