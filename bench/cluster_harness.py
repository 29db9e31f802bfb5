#!/usr/bin/env python
"""
A three-node Scheduler0 cluster under the seed's load: job creation through Raft, and the
seed workload with the leader killed.

The script starts its own cluster (three C{twistd scheduler0} nodes in temp dirs on free
127.0.0.1 ports, listing each other in C{Replicas}, sharing C{SecretKey}/C{AuthUsername}/
C{AuthPassword}, C{RateLimitPerMinute: 0}) and, for the seed workload, its own receiver
process, and stops them at the end. Two measurements (C{--measure}, both by default):

* C{create}: one project, then N jobs (C{@every 1m}, the seed's payload) in POSTs of
  C{--batch} (1,000), batch i sent to node i mod 3 (round robin over ALL nodes, so two thirds
  are proposed by followers; C{--send-to followers} or C{leader} to compare),
  C{--concurrency} batches in flight. Reported: jobs/s over the
  wall time (first batch sent to last answer read; target >= 20,000 jobs/s), batch latency
  per answering role (leader or follower), the worst C{GET /api/v1/healthcheck} latency of a
  probe polling the leader every 20 ms during the load, each node's CPU during the load, and
  how long after the last answer every node lists all N jobs. A fresh cluster per run
  (C{--runs}, default 3); the median is reported.
* C{seed}: the seed workload of C{bench/seed_harness.py} (whose receiver, windows and
  analysis this script imports): N jobs (default 50,000) C{@every 1m} created as above with
  the receiver as callback, then M whole minutes (default 3) counted per job at the receiver:
  min/max hits per job per minute, misses, duplicates, lateness. With
  C{--kill-leader-at-minute K} (default 2; 0 for none) the leader (found through
  C{GET /api/v1/healthcheck}) gets SIGKILL during minute K (minute 1 is the first window):
  halfway through the callbacks it sends (the jobs fire with the phases they were created
  at, so each minute's slots come in a burst as long as the creation took), or
  C{--kill-offset} seconds into the minute. Reported: how long until the two others agree
  on a new leader, and until a write answers 201 again, and what leader (and term) each
  node names, each time that changes. Because several nodes may send the same slot, every
  slot (job, scheduledTime) received more than once is counted per minute, and so is
  whether its copies share the C{executionId} (a re-send of the same occurrence) or not.

Usage, from the repository root:

    .venv/bin/python bench/cluster_harness.py --measure create --jobs 50000 --runs 3
    .venv/bin/python bench/cluster_harness.py --measure seed --jobs 50000 --minutes 3 \\
        --kill-leader-at-minute 2
    # where the leader's reactor time goes (cProfile of each node's main thread, written on
    # a clean stop; the profiler slows the nodes, so its runs are not the reported figure)
    .venv/bin/python bench/cluster_harness.py --measure create --runs 1 --profile-dir /tmp/prof

C{--json} prints one JSON object instead of the text report. Exit status 0 when every target
was met (creation >= 20,000 jobs/s; seed: no miss, no slot twice outside the minute of the
kill, copies share their C{executionId}, p99 lateness <= 1 s, a new leader within 3 s),
1 when one was missed, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seed_harness as seed  # noqa: E402  (bench/ is not a package)
from create_jobs import probe  # noqa: E402

TARGET_JOBS_PER_S = 20_000
TARGET_ELECTION_S = 3.0
SECRETS = {"SecretKey": "cluster harness shared secret key",
           "AuthUsername": "bench", "AuthPassword": "cluster harness shared password"}
log = seed.log


# --------------------------------------------------------------------------------------------
# the cluster


class Cluster:
    """Nodes that list each other in C{Replicas} and share the cluster secrets; each is a
    L{seed_harness.Node} (temp dir, free ports, source tree on C{PYTHONPATH})."""

    def __init__(self, size: int = 3, keep: bool = False,
                 profile_dir: str | None = None) -> None:
        ports = [(seed.free_port(), seed.free_port()) for _ in range(size)]
        replicas = [{"Address": f"http://127.0.0.1:{port}", "RaftAddress": f"127.0.0.1:{raft}",
                     "NodeId": n} for n, (port, raft) in enumerate(ports, start=1)]
        self.nodes: list[seed.Node] = []
        self.ids: dict[str, seed.Node] = {}
        try:
            for n, (port, raft) in enumerate(ports, start=1):
                extra = (f"NodeId: {n}\nReplicas: {json.dumps(replicas)}\n"
                         "RateLimitPerMinute: 0\n"
                         + "".join(f"{k}: {json.dumps(v)}\n" for k, v in SECRETS.items()))
                profile = ([f"--profile={os.path.join(profile_dir, f'node{n}.pstats')}",
                            "--profiler=cprofile", "--savestats"] if profile_dir else [])
                node = seed.Node(keep=keep, extra=extra, port=port, raft_port=raft, wait=False,
                                 twistd_args=profile)
                self.nodes.append(node)
                self.ids[str(n)] = node
            for node in self.nodes:
                node.wait_ready()
        except BaseException:
            self.stop()
            raise

    def name(self, node: seed.Node) -> str:
        return next(n for n, candidate in self.ids.items() if candidate is node)

    def alive(self) -> list[seed.Node]:
        return [node for node in self.nodes if node.proc.poll() is None]

    def health(self, node: seed.Node) -> dict[str, Any] | None:
        """The node's healthcheck C{data}, or None when it does not answer within 2 s."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=2)
            try:
                conn.request("GET", "/api/v1/healthcheck")
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            return json.loads(body)["data"] if response.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            return None

    def agreed_leader(self) -> seed.Node | None:
        """The live node every live node names as leader, or None while they do not agree."""
        named = set()
        for node in self.alive():
            answer = self.health(node)
            if answer is None:
                return None
            named.add(answer.get("leaderId"))
        if len(named) != 1:
            return None
        leader = self.ids.get(str(named.pop()))
        return leader if leader is not None and leader.proc.poll() is None else None

    def wait_leader(self, timeout: float = 30) -> seed.Node:
        deadline = time.time() + timeout
        while True:
            leader = self.agreed_leader()
            if leader is not None:
                return leader
            if time.time() > deadline:
                raise SystemExit(f"no common leader within {timeout} s; logs: "
                                 + ", ".join(node.log_path for node in self.nodes))
            time.sleep(0.1)

    def kill(self, node: seed.Node) -> None:
        node.proc.kill()  # SIGKILL
        node.proc.wait()

    def log_problems(self) -> dict[str, int]:
        return {n: node.log_problems() for n, node in self.ids.items()}

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def credential_headers(node: seed.Node) -> dict[str, str]:
    key, secret = seed.create_credential(node.config)
    return {"x-api-key": key, "x-secret-key": secret, "Content-Type": "application/json"}


def create_project(node: seed.Node, headers: dict[str, str]) -> Any:
    client = seed.Client(node.url, headers["x-api-key"], headers["x-secret-key"])
    status, answer = client.post("/projects", json.dumps(
        {"name": f"cluster harness {os.getpid()}-{time.time():.3f}",
         "description": "bench/cluster_harness.py"}).encode())
    client.conn.close()
    if status != 201:
        raise SystemExit(f"create project: {status} {answer}")
    return answer["data"]["id"]


def cpu_of(cluster: Cluster) -> dict[str, float | None]:
    return {n: seed.cpu_seconds(node.pid) if node.proc.poll() is None else None
            for n, node in cluster.ids.items()}


def cpu_percent(before: dict[str, float | None], after: dict[str, float | None],
                seconds: float) -> dict[str, float | None]:
    return {n: (round(100 * (after[n] - before[n]) / seconds, 1)
                if before[n] is not None and after.get(n) is not None and seconds else None)
            for n in before}


# --------------------------------------------------------------------------------------------
# the load: batches round robin over the nodes


def post_batches(nodes: Sequence[seed.Node], headers: dict[str, str], bodies: Sequence[bytes],
                 concurrency: int, timeout: float = 120) -> dict[str, Any]:
    """POST every body to C{/api/v1/jobs}, body i to node i mod len(nodes), C{concurrency}
    at a time (threads, one keep-alive connection per thread and node).

    @return: wall time, per batch (index, node position, status, latency), the created jobs
        (C{(id, dateCreated)}) and failures."""
    local = threading.local()

    def connection(port: int) -> http.client.HTTPConnection:
        conns = getattr(local, "conns", None)
        if conns is None:
            conns = local.conns = {}
        if port not in conns:
            conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        return conns[port]

    def one(index: int) -> tuple[int, int, int | None, float, Any]:
        position = index % len(nodes)
        port = nodes[position].port
        t0 = time.monotonic()
        try:
            conn = connection(port)
            conn.request("POST", "/api/v1/jobs", body=bodies[index], headers=headers)
            response = conn.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as e:
            local.conns.pop(port).close()
            return index, position, None, time.monotonic() - t0, f"{type(e).__name__}: {e}"
        latency = time.monotonic() - t0
        try:
            answer = json.loads(content)
        except ValueError:
            answer = content[:300]
        return index, position, response.status, latency, answer

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(one, range(len(bodies))))
    wall = time.monotonic() - started
    created: list[tuple[Any, str]] = []
    failures: list[str] = []
    batches = []
    for index, position, status, latency, answer in outcomes:
        batches.append((index, position, status, latency))
        if status == 201 and isinstance(answer, dict) and isinstance(answer.get("data"), list):
            created.extend((job["id"], job["dateCreated"]) for job in answer["data"])
        else:
            failures.append(f"batch {index} on node position {position}: {status} "
                            f"{str(answer)[:200]}")
    return {"started": started, "wall": wall, "batches": batches, "created": created,
            "failures": failures}


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    ms = lambda s: None if s is None else round(s * 1000, 1)  # noqa: E731
    return {"count": len(ordered), "median": ms(seed.percentile(ordered, 50)),
            "p99": ms(seed.percentile(ordered, 99)), "max": ms(ordered[-1] if ordered else None)}


def wait_listed(cluster: Cluster, headers: dict[str, str], project_id: Any, want: int,
                timeout: float = 120) -> dict[str, float | None]:
    """Seconds until each node lists C{want} jobs of the project (None past the timeout)."""
    started = time.time()
    done: dict[str, float | None] = {}
    while len(done) < len(cluster.ids) and time.time() - started < timeout:
        for n, node in cluster.ids.items():
            if n in done or node.proc.poll() is not None:
                continue
            try:
                conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
                conn.request("GET", f"/api/v1/jobs?projectId={project_id}&limit=1",
                             headers=headers)
                total = json.loads(conn.getresponse().read())["data"]["total"]
                conn.close()
            except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
                continue
            if total >= want:
                done[n] = round(time.time() - started, 2)
        time.sleep(0.1)
    return {n: done.get(n) for n in cluster.ids}


class LeaderProbe:
    """C{create_jobs.probe} in its own process: the leader's healthcheck every 20 ms."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.results, sender = context.Pipe(duplex=False)
        self.process = context.Process(target=probe, args=(url, interval, self.stop_event,
                                                           sender), daemon=True)
        self.process.start()
        time.sleep(0.3)  # connected, a few idle samples

    def during(self, started: float, wall: float) -> dict[str, Any]:
        """Stop; the samples taken between C{started} (monotonic) and C{started + wall}."""
        self.stop_event.set()
        samples, _, error_count, probe_started, _ = self.results.recv()
        self.process.join(10)
        begin = started - probe_started
        during = [latency for at, latency in samples if begin <= at <= begin + wall]
        summary = latency_summary(during)
        summary["over100ms"] = sum(1 for latency in during if latency > 0.1)
        summary["errors"] = error_count
        return summary


IDLE_LEAVES = ("doPoll", "wait (threading.py", "_wait_for_tstate_lock", "get (queue.py",
               "select (selectors.py", "poll (selectors.py")


class Sampler:
    """C{py-spy record} of every node while the load runs (C{--py-spy PATH}): where each
    thread's time goes, idle (waiting in epoll or for work) or busy, and in what."""

    def __init__(self, py_spy: str, cluster: Cluster, directory: str) -> None:
        self.cluster = cluster
        self.paths = {n: os.path.join(directory, f"node{n}.py-spy.txt") for n in cluster.ids}
        self.procs = [subprocess.Popen(
            [py_spy, "record", "--pid", str(node.pid), "--threads", "--idle", "--rate", "200",
             "--format", "raw", "--output", self.paths[n], "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for n, node in cluster.ids.items()]
        time.sleep(1.0)  # attached

    def stop(self, top: int = 12) -> dict[str, Any]:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return {n: summarize_stacks(path, top) for n, path in self.paths.items()}


def summarize_stacks(path: str, top: int) -> dict[str, Any]:
    """Per thread: samples, the idle share, and the functions busy samples were in
    (inclusive, scheduler0/pysyncobj/sqlite/json frames) and ended in (self)."""
    threads: dict[str, dict[str, Any]] = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        head, _, frames_text = stack.partition(";")
        name = head.split(": ", 1)[-1]
        entry = threads.setdefault(name, {"samples": 0, "idle": 0, "inclusive": {}, "self": {}})
        entry["samples"] += count
        frames = frames_text.split(";")
        if any(frames[-1].startswith(leaf) or leaf in frames[-1] for leaf in IDLE_LEAVES):
            entry["idle"] += count
            continue
        entry["self"][frames[-1]] = entry["self"].get(frames[-1], 0) + count
        for frame in set(frames):
            if any(key in frame for key in ("scheduler0/", "pysyncobj/", "sqlite", "json/")):
                entry["inclusive"][frame] = entry["inclusive"].get(frame, 0) + count
    summary = {}
    for name, entry in sorted(threads.items(), key=lambda kv: -kv[1]["samples"]):
        busy = entry["samples"] - entry["idle"]
        summary[name] = {
            "samples": entry["samples"], "busy_percent": round(100 * busy / entry["samples"], 1),
            "busy_in": [[frame, round(100 * c / max(busy, 1), 1)] for frame, c in sorted(
                entry["inclusive"].items(), key=lambda kv: -kv[1])[:top]],
            "busy_self": [[frame, round(100 * c / max(busy, 1), 1)] for frame, c in sorted(
                entry["self"].items(), key=lambda kv: -kv[1])[:top]],
        }
    return summary


# --------------------------------------------------------------------------------------------
# measurement 1: job creation through Raft


def measure_create(args: argparse.Namespace, run: int) -> dict[str, Any]:
    profile_dir = None
    if args.profile_dir and not args.py_spy:
        profile_dir = os.path.join(os.path.abspath(args.profile_dir), f"run{run}")
        os.makedirs(profile_dir, exist_ok=True)
    cluster = Cluster(args.nodes, keep=args.keep, profile_dir=profile_dir)
    try:
        leader = cluster.wait_leader()
        headers = credential_headers(leader)
        project_id = create_project(leader, headers)
        bodies = list(seed.job_batches(project_id, args.jobs, args.batch,
                                       "http://127.0.0.1:3000/callback"))
        sampler = None
        if args.py_spy:
            directory = os.path.join(os.path.abspath(args.profile_dir or "."), f"run{run}")
            os.makedirs(directory, exist_ok=True)
            sampler = Sampler(args.py_spy, cluster, directory)
        leader_probe = LeaderProbe(leader.url)
        cpu0, own0 = cpu_of(cluster), os.times()
        targets = [node for node in cluster.nodes
                   if args.send_to == "all" or (node is leader) == (args.send_to == "leader")]
        load = post_batches(targets, headers, bodies, args.concurrency)
        cpu1, own1 = cpu_of(cluster), os.times()
        stacks = sampler.stop() if sampler is not None else None
        health = leader_probe.during(load["started"], load["wall"])
        listed = wait_listed(cluster, headers, project_id, len(load["created"]))
        by_role: dict[str, list[float]] = {"leader": [], "follower": []}
        for _, position, status, latency in load["batches"]:
            by_role["leader" if targets[position] is leader else "follower"].append(latency)
        created = len(load["created"])
        result = {
            "run": run, "leader": cluster.name(leader), "sentTo": args.send_to,
            "created": created,
            "failedBatches": len(load["failures"]), "failures": load["failures"][:10],
            "wallSeconds": round(load["wall"], 3),
            "jobsPerSecond": round(created / load["wall"], 1),
            "batchLatencyMs": {role: latency_summary(values) for role, values in by_role.items()},
            "leaderHealthcheckMs": health,
            "cpuPercentDuringLoad": cpu_percent(cpu0, cpu1, load["wall"]),
            "clientCpuPercent": round(100 * ((own1.user + own1.system)
                                             - (own0.user + own0.system)) / load["wall"], 1),
            "secondsUntilListedOnEachNode": listed,
            "nodeLogProblemLines": cluster.log_problems(),
        }
        if stacks is not None:
            result["pySpy"] = stacks
        log(f"create run {run}: {result['jobsPerSecond']:,.0f} jobs/s, worst leader "
            f"healthcheck {health['max']} ms, CPU {result['cpuPercentDuringLoad']} "
            f"(leader {result['leader']}), listed everywhere after {listed}")
        return result
    finally:
        cluster.stop()


# --------------------------------------------------------------------------------------------
# measurement 2: the seed workload with the leader killed


class LeaderKiller(threading.Thread):
    """At C{at} (epoch seconds): SIGKILL the agreed leader, then time the election of a new
    one and the first write answered 201 again (a project created on a survivor)."""

    def __init__(self, cluster: Cluster, at: float, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.at, self.headers = cluster, at, headers
        self.result: dict[str, Any] = {}

    def run(self) -> None:
        time.sleep(max(0.0, self.at - time.time()))
        leader = self.cluster.agreed_leader() or self.cluster.wait_leader(10)
        killed = time.time()
        self.cluster.kill(leader)
        self.result = {"killed": self.cluster.name(leader), "killed_at": seed.rfc3339(killed)}
        log(f"killed the leader, node {self.result['killed']} (pid {leader.pid})")
        elected = None
        while time.time() - killed < 60:
            new = self.cluster.agreed_leader()
            if new is not None:
                elected = new
                self.result["new_leader"] = self.cluster.name(new)
                self.result["new_leader_after_s"] = round(time.time() - killed, 2)
                break
            time.sleep(0.05)
        survivors = self.cluster.alive()
        writer = next((n for n in survivors if n is not elected), survivors[0])
        attempts = 0
        while time.time() - killed < 60:
            attempts += 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", writer.port, timeout=5)
                conn.request("POST", "/api/v1/projects", headers=self.headers, body=json.dumps(
                    {"name": f"after the kill {time.time():.3f}"}).encode())
                status = conn.getresponse().status
                conn.close()
            except (OSError, http.client.HTTPException):
                status = None
            if status == 201:
                self.result["write_201_after_s"] = round(time.time() - killed, 2)
                self.result["write_attempts"] = attempts
                self.result["write_on"] = self.cluster.name(writer)
                break
            time.sleep(0.05)
        log(f"after the kill: {self.result}")


class LeaderWatch(threading.Thread):
    """Every half second, which leader (and term) each live node names; kept when the views
    change, so an election nobody caused (a node starved of CPU misses heartbeats) shows."""

    def __init__(self, cluster: Cluster, origin: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.origin = cluster, origin
        self.changes: list[dict[str, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        last = None
        while not self.stopping.is_set():
            views = {}
            for n, node in self.cluster.ids.items():
                if node.proc.poll() is not None:
                    views[n] = "dead"
                    continue
                answer = self.cluster.health(node)
                views[n] = ("no answer" if answer is None else
                            f"leader {answer.get('leaderId') or '-'} term "
                            f"{answer.get('raftStats', {}).get('term')}")
            if views != last:
                self.changes.append({"at_s": round(time.time() - self.origin, 1), **views})
                last = views
            self.stopping.wait(0.5)

    def stop(self) -> list[dict[str, Any]]:
        self.stopping.set()
        self.join(10)
        return self.changes


def slot_copies(dump: dict[str, Any], bases: dict[Any, float], t0: float,
                minutes: int) -> list[dict[str, Any]]:
    """Per window: slots (job, scheduledTime) received more than once, the extra copies, how
    many of those carry an executionId already seen for the slot (a re-send of the same
    occurrence) or a new one, and the lateness of the window's hits."""
    end = t0 + minutes * seed.PERIOD
    slots: dict[tuple[Any, str], list[str]] = {}
    lateness: list[list[float]] = [[] for _ in range(minutes)]
    parsed: dict[str, float] = {}
    posts = dump["posts"]
    for job_id, exec_id, sched_text, post in zip(dump["ids"], dump["execs"], dump["scheds"],
                                                 dump["recv_index"]):
        if job_id not in bases:
            continue
        sched = parsed.get(sched_text)
        if sched is None:
            try:
                sched = seed.parse_rfc3339(sched_text)
            except (TypeError, ValueError, AttributeError):
                sched = float("nan")
            parsed[sched_text] = sched
        if not (t0 <= sched < end):
            continue
        slots.setdefault((job_id, sched_text), []).append(exec_id)
        lateness[int((sched - t0) // seed.PERIOD)].append(posts[post][0] - sched)
    windows = [{"window": w, "slots_more_than_once": 0, "extra_copies": 0,
                "extra_copies_same_execution_id": 0, "extra_copies_new_execution_id": 0,
                "max_copies": 0} for w in range(minutes)]
    for (_, sched_text), execs in slots.items():
        w = windows[int((parsed[sched_text] - t0) // seed.PERIOD)]
        w["max_copies"] = max(w["max_copies"], len(execs))
        if len(execs) > 1:
            distinct = len(set(execs))
            w["slots_more_than_once"] += 1
            w["extra_copies"] += len(execs) - 1
            w["extra_copies_new_execution_id"] += distinct - 1
            w["extra_copies_same_execution_id"] += len(execs) - distinct
    for w, values in zip(windows, lateness):
        values.sort()
        w["lateness_s"] = {"p50": seed._r(seed.percentile(values, 50)),
                           "p99": seed._r(seed.percentile(values, 99)),
                           "max": seed._r(values[-1] if values else None)}
    return windows


def settle(receiver: seed.Receiver, grace: float) -> None:
    """Until no hit arrived for 5 s (late re-sends), or C{grace} seconds."""
    deadline = time.time() + grace
    last = receiver.stats()["hits"]
    quiet_since = time.time()
    while time.time() < deadline and time.time() - quiet_since < 5:
        time.sleep(1.0)
        hits = receiver.stats()["hits"]
        if hits != last:
            last, quiet_since = hits, time.time()


def measure_seed(args: argparse.Namespace) -> dict[str, Any]:
    load_start = seed.loadavg()
    cluster = Cluster(args.nodes, keep=args.keep)
    receiver = None
    try:
        leader = cluster.wait_leader()
        headers = credential_headers(leader)
        receiver = seed.Receiver()
        project_id = create_project(leader, headers)
        time.sleep(1.0)
        rss_idle = {n: seed.rss_bytes(node.pid) for n, node in cluster.ids.items()}
        bodies = list(seed.job_batches(project_id, args.jobs, args.batch,
                                       receiver.callback_url))
        load = post_batches(cluster.nodes, headers, bodies, args.concurrency)
        t0 = time.time()
        for failure in load["failures"][:5]:
            log(failure)
        bases = {job_id: float(math.floor(seed.parse_rfc3339(created)))
                 for job_id, created in load["created"]}
        log(f"created {len(bases):,} jobs in {load['wall']:.2f} s over {len(cluster.nodes)} "
            f"nodes (leader {cluster.name(leader)}); measuring {args.minutes} minutes")
        rss_after_create = {n: seed.rss_bytes(node.pid) for n, node in cluster.ids.items()}
        watch = LeaderWatch(cluster, t0)
        watch.start()
        killer = None
        if args.kill_leader_at_minute:
            if args.kill_offset is None:
                # the middle of that minute's burst: job j fires at floor(dateCreated_j) + 60 k,
                # so window K-1 sends its slots in the last create_wall seconds before its end
                at = t0 + args.kill_leader_at_minute * seed.PERIOD - max(load["wall"] / 2, 0.5)
            else:
                at = t0 + (args.kill_leader_at_minute - 1) * seed.PERIOD + args.kill_offset
            killer = LeaderKiller(cluster, at, headers)
            killer.start()
        cpu0 = cpu_of(cluster)
        rcpu0 = seed.cpu_seconds(receiver.pid())
        watched = seed.wait_and_watch(receiver, t0, args.minutes, len(bases), leader.pid,
                                      args.grace)
        settle(receiver, args.grace)
        span = time.time() - t0
        cpu1 = cpu_of(cluster)
        rcpu1 = seed.cpu_seconds(receiver.pid())
        if killer is not None:
            killer.join(60)
        leader_changes = watch.stop()
        # RSS per job of the node that leads at the end (it executes), else of any live one
        watched_node = cluster.agreed_leader() or cluster.alive()[0]
        watched_name = cluster.name(watched_node)
        rss_end, idle = seed.rss_bytes(watched_node.pid), rss_idle[watched_name]
        dump = receiver.dump()
        result = seed.analyze(dump, bases, t0, args.minutes)
        result.pop("post_lateness_first_200", None)
        copies = slot_copies(dump, bases, t0, args.minutes)
        for window, extra in zip(result["windows"], copies):
            window.update({k: v for k, v in extra.items() if k != "window"})
        result.update({
            "system": f"Scheduler0, {len(cluster.nodes)}-node cluster (cluster harness)",
            "code": seed.code_version(), "jobs": args.jobs, "created": len(bases),
            "failed_batches": len(load["failures"]), "minutes": args.minutes,
            "batch": args.batch, "concurrency": args.concurrency, "machine": seed.machine(),
            "create_wall_s": round(load["wall"], 3),
            "jobs_per_s": round(len(bases) / load["wall"], 1) if load["wall"] else None,
            "t0": seed.rfc3339(t0), "load_start": load_start, "load_end": seed.loadavg(),
            "leader_at_start": cluster.name(leader),
            "kill": killer.result if killer is not None else None,
            "leader_changes": leader_changes,
            "rss_of": f"node {watched_name} pid {watched_node.pid} (the leader at the end)",
            "rss": {"idle": idle, "after_create": rss_after_create[watched_name],
                    "end": rss_end, "hwm": seed.hwm_bytes(watched_node.pid),
                    "per_job_bytes": (round((rss_end - idle) / len(bases))
                                      if rss_end and idle and bases else None),
                    "idle_per_node": rss_idle, "after_create_per_node": rss_after_create},
            "cpu_percent_per_node": cpu_percent(cpu0, cpu1, span),
            "cpu_percent_during_windows": cpu_percent(cpu0, cpu1, span).get(watched_name),
            "receiver_cpu_percent": (round(100 * (rcpu1 - rcpu0) / span, 1)
                                     if rcpu0 is not None and rcpu1 is not None else None),
            "flush_wait_s": watched["flush_wait_s"],
            "node_log_problem_lines": cluster.log_problems(),
        })
        result["verdict"] = seed_verdict(result, args.kill_leader_at_minute)
        return result
    finally:
        if receiver is not None:
            receiver.stop()
        cluster.stop()


def seed_verdict(result: dict[str, Any], kill_minute: int) -> dict[str, bool]:
    windows = result["windows"]
    kill = result.get("kill") or {}
    p99 = result["lateness_s"]["p99"]
    verdict = {
        "no_missed_slot": bool(windows) and result["misses"] == 0,
        "each_slot_once_outside_the_kill_minute": bool(windows) and all(
            w["max"] == 1 for w in windows if w["window"] != kill_minute - 1),
        "copies_share_the_execution_id": all(
            w["extra_copies_new_execution_id"] == 0 for w in windows),
        "p99_lateness_le_1s": p99 is not None and p99 <= seed.TARGET_P99,
    }
    if kill_minute:
        after = kill.get("new_leader_after_s")
        verdict["new_leader_within_3s"] = after is not None and after <= TARGET_ELECTION_S
    return verdict


def seed_text(result: dict[str, Any]) -> str:
    lines = [seed.text_report(result)]
    for w in result["windows"]:
        lines.append(
            f"  window {w['window']}: slots sent more than once {w['slots_more_than_once']:,} "
            f"(at most {w['max_copies']} copies; extra copies {w['extra_copies']:,}, of which "
            f"same executionId {w['extra_copies_same_execution_id']:,}, new executionId "
            f"{w['extra_copies_new_execution_id']:,}); lateness p50 {w['lateness_s']['p50']}, "
            f"p99 {w['lateness_s']['p99']}, max {w['lateness_s']['max']}")
    lines.append(f"leader at start: node {result['leader_at_start']}; kill: {result['kill']}")
    lines.append("what each node named as leader, when it changed (seconds from the first "
                 "window):")
    lines.extend(f"  {change}" for change in result["leader_changes"])
    lines.append(f"CPU per node during the windows (% of one core): "
                 f"{result['cpu_percent_per_node']}")
    lines.append(f"node log problem lines: {result['node_log_problem_lines']}")
    return "\n".join(lines)


def create_text(summary: dict[str, Any]) -> str:
    lines = []
    for r in summary["runs"]:
        lat = r["batchLatencyMs"]
        lines.append(
            f"run {r['run']}: {r['created']:,} jobs in {r['wallSeconds']} s = "
            f"{r['jobsPerSecond']:,.0f} jobs/s (leader node {r['leader']}); batch ms leader "
            f"median {lat['leader']['median']} max {lat['leader']['max']}, followers median "
            f"{lat['follower']['median']} max {lat['follower']['max']}; leader healthcheck ms "
            f"median {r['leaderHealthcheckMs']['median']} worst {r['leaderHealthcheckMs']['max']}"
            f"; CPU % {r['cpuPercentDuringLoad']}, client {r['clientCpuPercent']}; listed on "
            f"every node after {r['secondsUntilListedOnEachNode']} s; failed batches "
            f"{r['failedBatches']}")
    lines.append(f"median {summary['medianJobsPerSecond']:,.0f} jobs/s over {len(summary['runs'])}"
                 f" runs (target {TARGET_JOBS_PER_S:,}): "
                 f"{'MET' if summary['targetMet'] else 'MISSED'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", default="create,seed",
                        help="create, seed or both (comma-separated; default both)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    parser.add_argument("--runs", type=int, default=3, help="creation runs (a fresh cluster each)")
    parser.add_argument("--send-to", choices=("all", "followers", "leader"), default="all",
                        help="creation: which nodes the batches go to, round robin (default all)")
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--kill-leader-at-minute", type=int, default=2,
                        help="SIGKILL the leader during this minute (1 = first window; 0 = never)")
    parser.add_argument("--kill-offset", type=float, default=None,
                        help="seconds into that minute (default: halfway through the burst of "
                             "callbacks the minute ends with, the jobs' phases)")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds to wait after the last window for late hits")
    parser.add_argument("--profile-dir", help="cProfile each node (creation runs) into DIR "
                        "(with --py-spy: where its records go, without cProfile)")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="the py-spy binary: sample every thread of every node during each "
                             "creation load and summarize where the time goes (in the JSON)")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' temp dirs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    measures = {m.strip() for m in args.measure.split(",") if m.strip()}
    if not measures or measures - {"create", "seed"}:
        parser.error("--measure takes create, seed or create,seed")
    if args.kill_leader_at_minute < 0 or args.kill_leader_at_minute > args.minutes:
        parser.error("--kill-leader-at-minute must be 0 or one of the measured minutes")
    if args.nodes < 3 and args.kill_leader_at_minute and "seed" in measures:
        parser.error("killing the leader needs at least 3 nodes (a majority must survive)")

    report: dict[str, Any] = {"machine": seed.machine(), "code": seed.code_version(),
                              "date": seed.rfc3339(time.time()), "nodes": args.nodes,
                              "jobs": args.jobs, "batch": args.batch,
                              "concurrency": args.concurrency}
    ok = True
    try:
        if "create" in measures:
            runs = [measure_create(args, run) for run in range(1, args.runs + 1)]
            median = statistics.median(r["jobsPerSecond"] for r in runs)
            report["create"] = {"runs": runs, "medianJobsPerSecond": median,
                                "targetMet": median >= TARGET_JOBS_PER_S}
            ok = ok and report["create"]["targetMet"] and all(
                r["created"] == args.jobs for r in runs)
        if "seed" in measures:
            report["seed"] = measure_seed(args)
            ok = ok and all(report["seed"]["verdict"].values())
    except SystemExit as e:
        print(f"cluster harness: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"machine: {report['machine']}; code {report['code']}; {report['date']}")
        if "create" in report:
            print(create_text(report["create"]))
        if "seed" in report:
            print(seed_text(report["seed"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
