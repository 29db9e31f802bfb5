"""
Which node executes which job, in a cluster (issue 13).

Jobs are spread over the nodes by bucket: a job's bucket is its id modulo L{BUCKETS}, and
the replicated L{Assignment} names each bucket's owner. Only commands change it (a
C{cluster.assign} the leader proposes, applied in log order everywhere), so every node
agrees on who owns what; its version grows by one per change and a proposal made from an
older version is refused, so two leaders cannot interleave their moves.

With two or more live nodes the leader owns nothing (it coordinates); alone, it owns
everything. L{rebalance} moves as few buckets as possible and keeps the shares within one
bucket of each other (256 buckets: one bucket over the mean is under 10 % above it for up
to 25 executing nodes). Job ids are dense, so the jobs follow the buckets' spread.

The leader's L{Rebalancer} looks every half second at which members are alive (connected,
or silent for less than C{RaftTransportTimeout}) and proposes the assignment they need.
Each node's L{Ownership} follows the applied assignment and tells its execution gate
which buckets it owns.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..domain.assignment import JOB_BUCKETS, Assignment
from ..state.commands import issue
from ..state.kinds import CLUSTER_ASSIGN
from ..state.payloads import AssignJobs

log = Logger()

#: how many parts the jobs are cut into (a job's bucket: its id modulo this)
BUCKETS = JOB_BUCKETS

#: seconds between two looks of the leader at whether the assignment fits the live nodes
REBALANCE_INTERVAL = 0.5

#: seconds a new cluster's leader waits for every member before the first assignment: one
#: given to the first follower heard from and moved half a second later made both send the
#: slot due in between (seen in CI)
FIRST_ASSIGNMENT_WAIT = 2.0


def bucket_of(job_id: int) -> int:
    return job_id % BUCKETS


def rebalance(current: Sequence[int] | None, executors: Iterable[int]) -> tuple[int, ...]:
    """
    The owners that spread the buckets evenly over C{executors}, moving as few as possible
    from C{current}: each keeps what it has up to its quota (the larger quotas go to
    those holding most), and the buckets of nodes that no longer execute, or over a quota,
    go to those under theirs.
    """
    nodes = sorted(set(executors))
    if not nodes:
        return (0,) * BUCKETS
    owners = list(current) if current is not None else [0] * BUCKETS
    held: dict[int, list[int]] = {node: [] for node in nodes}
    free: list[int] = []
    for bucket, owner in enumerate(owners):
        (held[owner] if owner in held else free).append(bucket)
    base, extra = divmod(BUCKETS, len(nodes))
    by_holding = sorted(nodes, key=lambda node: (-len(held[node]), node))
    quota = {node: base + (1 if rank < extra else 0) for rank, node in enumerate(by_holding)}
    for node in nodes:
        have, keep = held[node], quota[node]
        if len(have) > keep:
            # keep buckets spread over its range (every other one, say), not its first
            # ones, so that the jobs it hands over are spread over the ids too
            kept = {have[i * len(have) // keep] for i in range(keep)}
            free.extend(b for b in have if b not in kept)
            held[node] = [b for b in have if b in kept]
    # each free bucket to the node furthest under its quota: a new assignment alternates
    # (consecutive job ids go to different nodes, so even a few jobs are spread)
    for bucket in sorted(free):
        node = max(nodes, key=lambda n: (quota[n] - len(held[n]), -n))
        held[node].append(bucket)
        owners[bucket] = node
    return tuple(owners)


class Ownership:
    """
    This node's view of the assignment: which jobs it executes.

    On a single node (no cluster) it owns every job. In a cluster it owns the jobs of the
    buckets the applied assignment gives it, none before the first assignment.

    @param load: reads the stored assignment (at start, and after the state was replaced).
    """

    def __init__(self, node_id: int, clustered: bool,
                 load: Callable[[], Assignment | None]) -> None:
        self._node_id = node_id
        self._clustered = clustered
        self._load = load
        self.assignment: Assignment | None = None
        self._mine: frozenset[int] = frozenset()
        self._watchers: list[Callable[[], None]] = []
        self.reload()

    @property
    def buckets(self) -> frozenset[int]:
        """The buckets this node owns now."""
        return self._mine

    def owns(self, job_id: int) -> bool:
        if not self._clustered:
            return True
        return (job_id % BUCKETS) in self._mine

    def executing(self) -> bool:
        """Whether this node owns any job (its execution services should run)."""
        return not self._clustered or bool(self._mine)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} whenever the buckets this node owns change."""
        self._watchers.append(callback)

    def reload(self) -> None:
        self._adopt(self._load() if self._clustered else None)

    def observe(self, command: Any, result: dict) -> None:
        """Command log observer: an applied assignment is adopted at once."""
        if command.kind == CLUSTER_ASSIGN and result.get("ok"):
            payload = command.payload
            current = self.assignment
            # a proposal Raft carried twice (proposed again after a timeout) is applied
            # once, but its second copy is observed too, with the stored result: never
            # go back to an older assignment
            if current is None or payload.revision > current.version:
                self._adopt(Assignment(payload.revision, payload.owners))

    def _adopt(self, assignment: Assignment | None) -> None:
        self.assignment = assignment
        mine = (assignment.buckets_of(self._node_id) if assignment is not None
                else frozenset())
        if mine == self._mine:
            return
        gained, lost = len(mine - self._mine), len(self._mine - mine)
        self._mine = mine
        if self._clustered:
            log.info("this node now owns {count} of {total} job buckets ({gained} gained, "
                     "{lost} lost; assignment version {version})", count=len(mine),
                     total=BUCKETS, gained=gained, lost=lost,
                     version=assignment.version if assignment else 0)
        for watcher in list(self._watchers):
            try:
                watcher()
            except Exception:
                log.failure("a watcher of the job ownership failed")


def _number(status: dict[str, Any], key: str) -> float:
    try:
        return float(status.get(key, 0))
    except (TypeError, ValueError):
        return 0.0


class OwnerCheck:
    """
    Whether this node should execute its jobs now (what its execution gate polls): it
    owns some, I{and} it has caught up with a leader once since it started (a node that
    restarts must not execute the buckets its stale store gives it before it learns where
    they went), I{and} it has heard from a leader within C{timeout} (the leader moves the
    jobs of a node it has not heard from for that long: a partitioned node stops too).

    @param commands: the Raft log (C{leader()}, C{status()}, C{leader_commit_index()}).
    """

    def __init__(self, commands: Any, ownership: Ownership, timeout: float) -> None:
        self._commands = commands
        self._ownership = ownership
        self._timeout = timeout
        self._synced = False
        self._catch_up_to: float | None = None

    def __call__(self) -> bool:
        if not self._ownership.executing():
            return False
        status = self._commands.status()
        if not self._synced:
            # the commit index is the leader's only once this node has heard from it (a
            # restarted node reports what its own journal held until then)
            if self._commands.leader() is None or \
                    _silence_ms(status.get("last_contact")) == math.inf:
                return False
            if self._catch_up_to is None:
                # the leader's, not this node's own: that one is capped by what its log
                # holds, and a restarted node's log may not have the leader's last entries
                # yet (CI saw it plan from an assignment two versions old)
                known = self._commands.leader_commit_index()
                if known is None:
                    return False
                self._catch_up_to = known
            if _number(status, "applied_index") < self._catch_up_to:
                return False
            self._synced = True
            if not self._ownership.executing():  # what it caught up with moved its jobs
                return False
        if status.get("state") != "Leader" and \
                _silence_ms(status.get("last_contact")) > self._timeout * 1000:
            return False
        return True


def _silence_ms(text: Any) -> float:
    """The healthcheck's C{last_contact} ("250ms", "0", "never") in milliseconds."""
    try:
        return float(str(text).removesuffix("ms"))
    except ValueError:
        return math.inf


class Liveness:
    """
    Which members the leader counts as alive: those that answered it within C{timeout}
    (C{RaftTransportTimeout}). The leader hears from every follower many times a second
    (heartbeats); a node whose process is stopped keeps its connection open, so its last
    answer, not its connection, tells. A node not heard from since this leader started
    looking counts as alive for C{timeout} only if it owns jobs now (a leader that just
    took over keeps the owners it has not connected to yet, but gives nothing to a node
    that owned nothing, such as the previous leader).

    @param peers: the Raft log's C{peers()}: by Raft address, C{{"connected": bool,
        "lastResponse": seconds since it last answered, or None}}.
    """

    def __init__(self, clock: Any, peers: Callable[[], dict[str, dict[str, Any]]],
                 timeout: float) -> None:
        self._clock = clock
        self._peers = peers
        self._timeout = timeout
        self._seen: dict[str, float] = {}
        self._since: float | None = None

    def reset(self) -> None:
        """Forget what was seen (this node stopped leading)."""
        self._seen.clear()
        self._since = None

    def alive(self, addresses: Iterable[str], owning: Iterable[str] = ()) -> set[str]:
        now = self._clock.seconds()
        if self._since is None:
            self._since = now
        peers = self._peers()
        owning = set(owning)
        alive = set()
        for address in addresses:
            peer = peers.get(address, {})
            if peer.get("connected"):
                age = peer.get("lastResponse")
                heard = now - (age if isinstance(age, (int, float)) else 0.0)
                self._seen[address] = heard
            last = self._seen.get(address, self._since if address in owning else None)
            if last is not None and now - last < self._timeout:
                alive.add(address)
        return alive


class Rebalancer(Service):
    """
    On the leader (inside its leader-only gate): keeps the assignment fitted to the live
    members, one proposal at a time.

    @param members: the replicated member list (objects with C{node_id}, C{raft_address}).
    @param ownership: this node's L{Ownership} (the assignment as applied here).
    @param node_id: this node (the leader): it executes only when no other member is alive.
    """

    def __init__(self, clock: Any, commands: Any, members: Callable[[], list[Any]],
                 ownership: Ownership, liveness: Liveness, node_id: int,
                 interval: float = REBALANCE_INTERVAL) -> None:
        self._clock = clock
        self._commands = commands
        self._members = members
        self._ownership = ownership
        self._liveness = liveness
        self._node_id = node_id
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._interval = interval
        self._proposing = False
        self._started_at = 0.0

    def startService(self) -> None:
        Service.startService(self)
        self._liveness.reset()
        self._started_at = self._clock.seconds()
        self._loop.start(self._interval, now=True)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()
        self._liveness.reset()

    def executors(self) -> list[int] | None:
        """The nodes that should own jobs now: the live members but this one, or this
        one alone; None while a new cluster waits for its members (no assignment yet, not
        every member alive, for at most L{FIRST_ASSIGNMENT_WAIT} seconds)."""
        others = {m.raft_address: m.node_id for m in self._members()
                  if m.node_id != self._node_id}
        current = self._ownership.assignment
        owning = current.nodes() if current is not None else frozenset()
        alive = self._liveness.alive(
            others, owning=[address for address, node in others.items() if node in owning])
        if current is None and len(alive) < len(others) and \
                self._clock.seconds() - self._started_at < FIRST_ASSIGNMENT_WAIT:
            return None
        nodes = sorted(node for address, node in others.items() if address in alive)
        return nodes or [self._node_id]

    def check(self) -> None:
        if self._proposing:
            return
        current = self._ownership.assignment
        executors = self.executors()
        if executors is None:
            return
        owners = rebalance(current.owners if current else None, executors)
        if current is not None and owners == current.owners:
            return
        version = (current.version if current else 0) + 1
        moved = sum(1 for b in range(BUCKETS)
                    if current is None or current.owners[b] != owners[b])
        log.info("reassigning {moved} job buckets (assignment version {version}): "
                 "{shares}", moved=moved, version=version,
                 shares=", ".join(f"node {n}: {c}" for n, c in
                                  sorted(Assignment(version, owners).shares().items())))
        self._proposing = True
        d = self._commands.submit(issue(AssignJobs(revision=version, owners=owners),
                                        self._clock.seconds()))

        def done(result: Any) -> None:
            self._proposing = False
            if isinstance(result, dict) and not result.get("ok"):
                log.info("the job assignment was not stored ({error}); looking again",
                         error=result.get("error"))

        def failed(failure: Any) -> None:
            self._proposing = False
            log.info("proposing the job assignment failed ({error}); looking again",
                     error=failure.getErrorMessage())

        d.addCallbacks(done, failed)


__all__ = ["BUCKETS", "Assignment", "Liveness", "OwnerCheck", "Ownership", "Rebalancer",
           "bucket_of", "rebalance"]
