"""
Services that run only while a condition holds, in a cluster: the execution services
while the node owns jobs, and the leader's duties while it leads.

Every node of a cluster holds the replicated jobs, but each job must fire on one node
only. L{LeadershipGate} is a service whose children run only while its condition holds:
it polls it every L{POLL_INTERVAL} seconds (and when Raft's state changes) and starts them
as a group, in order, when it starts holding, and stops them in reverse order when it no
longer does; L{LeadershipGate.restart} stops and starts them again when what they run on
changed (the jobs the node owns). Starting is starting after a restart: the scheduler
plans from the replicated store (what was missed follows each job's misfire policy) and
the recovery re-sends what the delivery outbox lists, with the same execution ids.

Two gates are used (see C{node.py}): the execution services (executor, scheduler,
recovery) run while the node owns jobs (L{scheduler0.consensus.ownership.OwnerCheck}); the
leader's duties (assigning the jobs, retention) while it is the Raft leader and has caught
up (L{LeaderCheck}). A single node (C{Replicas: []}) has no gate: its services are
children of the node itself, started and stopped exactly as before.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: Seconds between two looks at who leads
POLL_INTERVAL = 0.2

LEADER = "leader"
FOLLOWER = "follower"


def _nothing() -> None:
    pass


def _index(status: dict[str, Any], key: str) -> int:
    try:
        return int(status.get(key, 0))
    except (TypeError, ValueError):
        return 0


class LeaderCheck:
    """
    Whether this node is the Raft leader I{and} has applied every entry its log held when
    it became leader (the new term's first entry included): only then does the store hold
    everything the old leader committed (its last execution records and outbox rows), so
    planning from it neither repeats nor misses a slot.

    @param commands: the command log (C{leader()}, C{status()}).
    @param node_id: this node's C{NodeId}, as C{leader()} names it.
    """

    def __init__(self, commands: Any, node_id: str) -> None:
        self._commands = commands
        self._node_id = node_id
        self._catch_up_to: int | None = None

    def __call__(self) -> bool:
        leader = self._commands.leader()
        if leader is None or leader[1] != self._node_id:
            self._catch_up_to = None
            return False
        status = self._commands.status()
        if self._catch_up_to is None:
            self._catch_up_to = _index(status, "last_log_index")
        return _index(status, "applied_index") >= self._catch_up_to


class LeadershipGate(MultiService):
    """
    Runs its children only while C{leading()} says so; they start in the order they were
    added and stop in reverse, each after the previous one (the scheduler stops starting
    occurrences before the executor drains what is in flight).

    @param clock: C{IReactorTime} for the poll.
    @param leading: whether this node should execute now (a L{LeaderCheck}).
    @param before_start: called just before the children start (the supervisor takes the
        cluster's stored halt or restart).
    @param after_stop: called once the children stopped (the scheduler forgets its plans).
    @param losing: called when this node stops leading, before the children stop (the
        executor forgets what waits instead of recording it); not when the node stops.
    """

    def __init__(self, clock: Any, leading: Callable[[], bool],
                 interval: float = POLL_INTERVAL,
                 before_start: Callable[[], None] = _nothing,
                 after_stop: Callable[[], None] = _nothing,
                 losing: Callable[[], None] = _nothing,
                 started: str = "this node is the Raft leader: it executes the jobs from now on",
                 stopped: str = ("this node is no longer the Raft leader: it starts no "
                                 "occurrence from now on (callbacks in flight may finish)")
                 ) -> None:
        super().__init__()
        self._started, self._stopped = started, stopped
        self._leading = leading
        self._before_start = before_start
        self._after_stop = after_stop
        self._losing = losing
        self._interval = interval
        self._loop = LoopingCall(self.poll)
        self._loop.clock = clock
        #: whether the children run (or are starting): this node executes jobs
        self.executing = False
        self._stopping: Deferred | None = None  # the children's stop, while under way

    @property
    def role(self) -> str:
        return LEADER if self.executing else FOLLOWER

    def startService(self) -> None:
        # not MultiService's: the children start when this node leads, not now
        Service.startService(self)
        self.poll()
        self._loop.start(self._interval, now=False)

    def stopService(self) -> Deferred:
        Service.stopService(self)
        if self._loop.running:
            self._loop.stop()
        if self.executing:
            return self._stop_children()
        if self._stopping is not None:
            return self._when_stopped()
        return succeed(None)

    def poll(self) -> None:
        """Start or stop the children if leadership changed (not while they stop)."""
        if self._stopping is not None or not self.running:
            return
        try:
            leading = self._leading()
        except Exception:
            log.failure("cannot tell whether this node leads; it keeps its role")
            return
        if leading and not self.executing:
            self._start_children()
        elif not leading and self.executing:
            try:
                self._losing()
            except Exception:
                log.failure("preparing to stand down failed")
            self._stop_children()

    def restart(self) -> None:
        """
        What the children run on changed under them (the jobs this node owns): if they run,
        stop them (as when standing down) and start them again at once if they still should,
        so that they plan and recover from the store as at a start.
        """
        if not self.executing or not self.running:
            self.poll()
            return
        try:
            self._losing()
        except Exception:
            log.failure("preparing to stand down failed")
        stopping = self._stop_children(restarting=True)
        stopping.addCallback(lambda _: self.poll())

    def _start_children(self) -> None:
        self.executing = True
        log.info(self._started, role=LEADER)
        try:
            self._before_start()
            for child in self:
                child.startService()
        except Exception:
            log.failure("starting the execution services failed")

    def _stop_children(self, restarting: bool = False) -> Deferred:
        self.executing = False
        if not restarting:
            log.info(self._stopped, role=FOLLOWER)

        async def stop_all() -> None:
            for child in reversed(list(self)):
                if not child.running:
                    continue
                try:
                    await maybeDeferred(child.stopService)
                except Exception:
                    log.failure("stopping {name} failed", name=child.name)
            try:
                self._after_stop()
            except Exception:
                log.failure("cleaning up after the execution services stopped failed")

        stopping = ensureDeferred(stop_all())
        if stopping.called:
            return stopping
        self._stopping = stopping

        def stopped(result: Any) -> Any:
            self._stopping = None
            return result

        stopping.addBoth(stopped)
        return self._when_stopped()

    def _when_stopped(self) -> Deferred:
        """A Deferred that fires once the stop under way is over."""
        assert self._stopping is not None
        done: Deferred = Deferred()

        def fire(result: Any) -> Any:
            done.callback(None)
            return result

        self._stopping.addBoth(fire)
        return done


class ClusterRole:
    """
    What a cluster node says about its part in executing jobs (the supervisor's state and
    the scheduler health): its Raft role, whether it executes, and if not, why.

    @param leader: the command log's C{leader()}: C{(address, node id)} or None.
    @param api_addresses: each node's API address by node id (from C{Replicas}), so a
        follower can say where to send what only the leader does.
    """

    def __init__(self, gate: LeadershipGate, leader: Callable[[], tuple[str, str] | None],
                 node_id: str, api_addresses: dict[str, str] | None = None,
                 owned: Callable[[], int] = lambda: 0) -> None:
        self._gate = gate
        self._leader = leader
        self._node_id = node_id
        self._api_addresses = dict(api_addresses or {})
        self._owned = owned

    @property
    def executing(self) -> bool:
        return self._gate.executing

    @property
    def role(self) -> str:
        """This node's Raft role (C{leader} or C{follower}); whether it executes jobs is
        L{executing}: with two or more nodes the followers do, the leader does not."""
        leader = self._leader()
        return LEADER if leader is not None and leader[1] == self._node_id else FOLLOWER

    def standby_reason(self) -> str:
        """Why this node does not execute now."""
        leader = self._leader()
        if leader is None:
            return ("the cluster has no leader now (a Raft election is running, or too few "
                    "nodes are reachable): this node executes nothing until it hears from one")
        address, node_id = leader
        if node_id == self._node_id:
            return ("this node is the Raft leader: it assigns the jobs to the other nodes and "
                    "executes none while another node is alive")
        if self._owned():
            return ("this node owns jobs but is catching up with the leader's log (or has "
                    "not heard from the leader lately); it executes them once it has")
        api = self._api_addresses.get(node_id)
        where = f"API {api}, Raft {address}" if api else address
        return (f"this node owns no jobs now: the leader, node {node_id or '?'} ({where}), "
                "assigns them to the live nodes")


__all__ = ["FOLLOWER", "LEADER", "POLL_INTERVAL", "ClusterRole", "LeaderCheck",
           "LeadershipGate"]
