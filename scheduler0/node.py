"""
A node: the service tree that C{twistd scheduler0} runs.

Children start in the order they are added and stop in reverse, one after the other:
the HTTP site stops taking requests first, then the scheduler stops starting occurrences,
the executor stops, the command log drains, and the database is closed last. In a cluster
the execution services (executor, scheduler, recovery) run only while the node owns jobs
(the replicated assignment, L{scheduler0.consensus.ownership}), inside a L{LeadershipGate}
at their place in that order; the leader's duties (assigning the jobs, retention) run in a
second gate, only on the leader.

L{build_node} returns a L{Node}: the tree and its parts. In-process tests build their nodes
through it too, swapping only the clock, the callback client, the writer and the memory
reader, so they exercise the daemon's wiring.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import attrs

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from .api.app import Api, ApiSettings, Operations
from .api.auth import Authenticator
from .api.admission import AdmissionResource
from .api.site import DrainingHTTPService, SiteLimits, make_site
from .config import Config
from .consensus.applier import CommandApplier, ThreadWriter, Writer
from .consensus.leadership import ClusterRole, LeaderCheck, LeadershipGate
from .consensus.ownership import Liveness, OwnerCheck, Ownership, Rebalancer
from .consensus.local import LocalCommandLog
from .consensus.raft import raft_command_log
from .consensus.membership_wiring import cluster_membership
from .execution.breaker import Breakers
from .execution.callback_client import CallbackClient
from .execution.connections import AnswerCheckingEndpointFactory, CallbackHTTP
from .execution.executor import Executor, ExecutorSettings
from .execution.network_policy import NetworkPolicy, PolicyEndpointFactory
from .execution.recorder import ExecutionRecorder
from .execution.recovery import RecoveryService
from .execution.requests import RequestObserver
from .execution.retention import RetentionService
from .node_secrets import NodeSecrets
from .secrets_at_rest import SigningSecretBox
from .api.rate_limit import RateLimiter
from .operability.health import HealthReport
from .operability.heap import HeapService
from .operability.metrics import Metrics, outcome_observer, record_observer
from .operability.repairs import Repairs
from .operability.supervisor import MemoryGuardService, Supervisor, resident_memory_bytes
from .schedule.service import SchedulerService
from .schedule.spec import FireTimeCache
from .store.service import StoreService
from .timestamps import format_time, from_seconds

log = Logger()

#: jobs a cluster node plans per reactor turn when it becomes leader (about 0.1 s of work
#: here: Raft must tick well within its 0.4 s election timeout)
PLAN_BUDGET = 2000


class SequentialMultiService(MultiService):
    """A MultiService whose children stop in reverse order, each after the previous one."""

    def stopService(self) -> Deferred:
        self.running = 0
        children = list(self)[::-1]

        async def stop_all() -> None:
            for child in children:
                try:
                    await maybeDeferred(child.stopService)
                except Exception:
                    log.failure("stopping {name} failed", name=getattr(child, "name", child))

        return ensureDeferred(stop_all())


class CallbackPoolService(Service):
    """Owns the callback connection pool so it is closed when the node stops."""

    def __init__(self, pool: HTTPConnectionPool) -> None:
        self.pool = pool

    def stopService(self) -> Deferred:
        Service.stopService(self)
        return self.pool.closeCachedConnections()


def http_endpoint(config: Config) -> str:
    """The strports description of the API listener."""
    interface = config.host.replace(":", "\\:")
    if config.protocol == "https":
        return (f"ssl:port={config.port}:interface={interface}:"
                f"privateKey={config.tls_key_file}:certKey={config.tls_cert_file}")
    return f"tcp:port={config.port}:interface={interface}"


def callback_client(reactor: Any, config: Config, policy: NetworkPolicy) -> tuple[Any, Any]:
    """
    The callback client, with its own bounded pool, connecting through the network
    policy: its C{post} reuses pooled connections (an answer that ends its connection,
    HTTP/1.0 without keep-alive say, is never pooled: L{AnswerCheckingEndpointFactory}),
    its C{post_fresh} opens a new one (to re-send a request whose pooled connection the
    receiver had closed). No cookie jar and no redirects (L{CallbackClient}): nothing one
    receiver answers reaches another request. The connection wrapper also keeps each
    connection's factory from logging its start and stop. Returns it and the pool.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = config.callback_concurrency_per_target
    pool.cachedConnectionTimeout = 120
    pool.retryAutomatically = False
    endpoints = AnswerCheckingEndpointFactory(PolicyEndpointFactory(
        reactor, policy, connect_timeout=min(config.job_execution_timeout, 10)))
    pooled = CallbackClient(Agent.usingEndpointFactory(reactor, endpoints, pool=pool))
    fresh = CallbackClient(Agent.usingEndpointFactory(
        reactor, endpoints, pool=HTTPConnectionPool(reactor, persistent=False)))
    return CallbackHTTP(pooled, fresh), pool


@attrs.frozen
class Node:
    """
    One node's parts, as L{build_node} wired them: the daemon runs C{service}; in-process
    tests start it too and reach a part here instead of rebuilding the wiring by hand.
    """

    #: the service tree twistd runs; its children start in order and stop in reverse
    service: SequentialMultiService
    store: StoreService
    commands: Any  # ICommandLog
    breakers: Breakers
    recorder: ExecutionRecorder
    executor: Executor
    scheduler: SchedulerService
    recovery: RecoveryService
    supervisor: Supervisor
    guard: MemoryGuardService
    repairs: Repairs
    operations: Operations
    metrics: Metrics
    api: Api
    #: what the HTTP listener serves (served only when built with C{listen=True})
    site: Any
    #: which jobs this node executes (all of them on a single node)
    ownership: Ownership
    #: the observer delivering run-now, retries and reruns, resetting breakers
    requests: Any = None


def build_node(config: Config, node_secrets: NodeSecrets, reactor: Any = None, *,
               clock: Any = None, http: Any = None, writer: Writer | None = None,
               read_memory: Callable[[], int] | None = None, rng: random.Random | None = None,
               listen: bool = True) -> Node:
    """
    Assemble a single node's service tree from validated config.

    The daemon passes only its reactor; the rest defaults to what the daemon uses.
    In-process tests swap what must not touch the real world, and nothing else:

    @param reactor: connects callbacks, listens, and hands the writer thread's results
        back; only needed for the defaults of C{http}, C{writer} and C{listen}.
    @param clock: every timer (an C{IReactorTime}; a C{task.Clock} in tests); the reactor.
    @param http: the callback client (C{post}/C{post_fresh}); by default
        L{callback_client}'s, pooled and going through the callback network policy.
    @param writer: where the command log's sqlite work runs; L{ThreadWriter} on the
        reactor (L{InlineWriter} in tests: applied before C{submit} returns).
    @param read_memory: the memory guard's reader of the process's size in bytes.
    @param rng: jitter of retries and breakers (seeded in tests).
    @param listen: serve the API on C{Host}:C{Port}; tests render C{api.resource()}.
    """
    clock = reactor if clock is None else clock
    assert clock is not None, "build_node needs a reactor or a clock"
    assert reactor is not None or (http is not None and writer is not None and not listen), \
        "the default callback client, writer thread and listener need the reactor"
    writer = ThreadWriter(reactor) if writer is None else writer
    node = SequentialMultiService()

    def add(service: Any, name: str) -> Any:
        service.setName(name)
        service.setServiceParent(node)
        return service

    # signing secrets are sealed in the database with a key derived from SecretKey; opening
    # the store seals an earlier version's plaintext ones and proves the key opens the rest
    signing_box = SigningSecretBox(node_secrets.secret_key)
    store = StoreService(config.data_dir, signing_box=signing_box)
    store.open()
    add(store, "store")

    def reader():  # type: ignore[no-untyped-def]
        assert store.reader is not None, "the store is not open"
        return store.reader

    def schedule_reader():  # type: ignore[no-untyped-def]
        assert store.schedule_reader is not None, "the store is not open"
        return store.schedule_reader

    # a Replicas list: Raft (PySyncObj) with the other nodes; else a one-node Raft cluster
    commands = add(raft_command_log(config, node_secrets.secret_key, store.path, reactor)
                   or LocalCommandLog(store.path, clock, node_id=config.node_id,
                                      address=config.advertised_raft_address(),
                                      applier=CommandApplier(store.path, clock, writer,
                                                             store_index=False)),
                   "commands")

    policy = NetworkPolicy(config.callback_allow_networks, config.callback_deny_networks,
                           config.callback_network_policy)
    if http is None:
        http, pool = callback_client(reactor, config, policy)
        add(CallbackPoolService(pool), "callback-pool")
    rng = random.Random() if rng is None else rng
    fire_times = FireTimeCache()
    breakers = Breakers(clock, rng, on_change=lambda breaker, old, new:
                        executor.on_breaker_change(breaker, old, new))
    metrics = Metrics()
    recorder = ExecutionRecorder(clock, commands, observe=record_observer(metrics),
                                 observe_outcome=outcome_observer(metrics))

    # a single node executes always: its execution services are the node's own children.
    # In a cluster only the Raft leader executes: they run inside a gate that starts them
    # (planning from the replicated store, re-sending the outbox) when this node becomes
    # leader and stops them when it no longer is (consensus/leadership.py)
    #
    # Which jobs: the replicated assignment of job buckets (consensus/ownership.py), which
    # the leader keeps fitted to the live nodes. With two or more the leader owns none.
    ownership = Ownership(config.node_id, clustered=bool(config.replicas),
                          load=lambda: schedule_reader().job_assignment())
    execution, gate, leader_gate, role, scheduling = add, None, None, None, {}
    leader_duty = add
    if config.replicas:
        commands.add_observer(ownership.observe)
        commands.add_replaced_observer(ownership.reload)
        gate = add(LeadershipGate(
            clock, OwnerCheck(commands, ownership, config.raft_transport_timeout),
            before_start=lambda: supervisor.adopt(schedule_reader().supervisor()),
            after_stop=lambda: scheduler.reload(),
            losing=lambda: executor.stand_down(),
            started="this node owns jobs: it executes them from now on",
            stopped="this node owns no jobs now: it starts no occurrence from now on "
                    "(callbacks in flight may finish)"), "execution")
        # its share changed: stop and start again, planning and recovering from the store
        ownership.watch(gate.restart)
        leader_gate = add(LeadershipGate(
            clock, LeaderCheck(commands, str(config.node_id)),
            started="this node is the Raft leader: it assigns the jobs and runs the "
                    "cluster's housekeeping",
            stopped="this node is no longer the Raft leader"), "leader-duties")
        role = ClusterRole(gate, commands.leader, str(config.node_id),
                           {str(r.node_id): r.address for r in config.replicas},
                           owned=lambda: len(ownership.buckets))
        # Raft's own state changes make them look at once (they also poll)
        commands.add_state_observer(gate.poll)
        commands.add_state_observer(leader_gate.poll)
        # a node that does not execute plans nothing
        scheduling["owns"] = lambda job_id: gate.executing and ownership.owns(job_id)
        # a new owner plans the store a slice per turn, so Raft keeps ticking meanwhile
        scheduling["plan_budget"] = PLAN_BUDGET

        def execution(service: Any, name: str) -> Any:
            service.setName(name)
            service.setServiceParent(gate)
            return service

        def leader_duty(service: Any, name: str) -> Any:
            service.setName(name)
            service.setServiceParent(leader_gate)
            return service
    executor = Executor(
        clock=clock, http=http,
        recorder=recorder,
        breakers=breakers,
        secrets_for=lambda project_id: schedule_reader().signing_secrets(
            project_id, format_time(from_seconds(clock.seconds()))),
        is_live=lambda job_id: scheduler.knows(job_id),
        settings=ExecutorSettings(
            timeout=config.job_execution_timeout, retry_delay=config.job_execution_retry_delay,
            retry_max=config.job_execution_retry_max,
            max_payload_bytes=int(config.http_executor_payload_max_size_mb * 1_000_000),
            per_target=config.callback_concurrency_per_target,
            max_in_flight=config.max_workers, max_queue=config.max_queue,
            node_id=config.node_id),
        rng=rng,
    )
    executor.observe_first_attempts = metrics.observe_first_attempts
    execution(executor, "executor")

    owns = scheduling.get("owns", lambda job_id: True)
    scheduler = SchedulerService(
        clock=clock,
        load=lambda: (schedule_reader().all_jobs(), schedule_reader().last_scheduled_times()),
        job_records=lambda ids: reader().jobs_by_ids(ids),
        dispatch=executor.submit,
        fire_times=fire_times,
        **scheduling,
    )
    commands.add_observer(scheduler.observe)
    # a Raft snapshot installed under the node: plan again from what the store now holds
    commands.add_replaced_observer(scheduler.reload)
    execution(scheduler, "scheduler")
    recovery = execution(RecoveryService(
        clock, lambda: schedule_reader().unfinished_executions(), lambda: scheduler.plans,
        executor, outbox=lambda: schedule_reader().deliveries(),
        planned=scheduler.when_planned, owns=owns,
        finishes_its_own=lambda node_id: node_id != config.node_id
        and ownership.assignment is not None and node_id in ownership.assignment.nodes()),
        "recovery")
    # run-now, dead-letter retries, reruns and breaker resets are commands any node takes:
    # every node observes them, the job's owner delivers (execution/requests.py)
    requests = RequestObserver(owns, lambda: scheduler.plans,
                               lambda job_id: reader().job(job_id), executor, recovery,
                               breakers)
    commands.add_observer(requests.observe)
    # housekeeping that writes runs once per cluster: on the leader
    leader_duty(RetentionService(clock, commands, config.execution_retention_days,
                                 config.execution_retention_per_job,
                                 last_job_id=lambda: reader().sequence("jobs")), "retention")

    add(HeapService(clock, jobs=lambda: len(scheduler.plans),
                    busy=lambda seconds: (scheduler.busy_within(seconds) or executor.in_flight > 0
                                          or executor.queued() > 0)), "heap")

    supervisor = Supervisor(scheduler, executor, commands=commands, clock=clock, role=role)
    if role is not None:
        commands.add_observer(supervisor.observe)  # a halt stored through another node
    # before any service starts: a stored operator halt holds the scheduler and the
    # executor from the first moment, so nothing is dispatched at start
    supervisor.restore(schedule_reader().supervisor())
    guard = add(MemoryGuardService(clock, supervisor, config.max_memory,
                                   read=read_memory or resident_memory_bytes), "memory-guard")

    def operations_reader():  # type: ignore[no-untyped-def]
        assert store.operations_reader is not None, "the store is not open"
        return store.operations_reader

    repairs = Repairs(clock, scheduler, executor, recorder, commands, operations_reader,
                      lambda execution_id: reader().execution(execution_id),
                      hanging_after=config.job_execution_timeout
                      * (config.job_execution_retry_max + 1),
                      node_id=config.node_id, role=role,
                      propose=lambda payload: ensureDeferred(api.facade.commit(payload)),
                      jobs=lambda job_id: reader().job(job_id))
    operations = Operations(
        health=HealthReport(clock, scheduler, executor, operations_reader,
                            enabled=lambda: not supervisor.halted and (
                                gate is None or gate.executing), role=role),
        supervisor=supervisor,
        repairs=repairs,
        metrics=metrics,
    )
    metrics.bind(scheduler, executor,
                 dead_letters=lambda: operations_reader().dead_letter_count(),
                 raft_state=commands.status)
    api = Api(
        reader=reader,
        commands=commands,
        clock=clock,
        authenticator=Authenticator(reader, node_secrets.auth_username,
                                    node_secrets.auth_password),
        settings=ApiSettings(node_id=config.node_id,
                             default_misfire_grace=config.misfire_grace_seconds,
                             apply_timeout=config.raft_apply_timeout,
                             url_policy=policy.check_url,
                             signing_box=signing_box, metrics_auth=config.metrics_auth),
        scheduler=scheduler,
        operations=operations,
    )
    api.fire_times = fire_times
    api.cluster = cluster_membership(config, node_secrets, commands, clock, reactor, store.path)
    api.ownership = ownership
    if config.replicas:
        leader_duty(Rebalancer(clock, commands, api.cluster.members, ownership,
                               Liveness(clock, commands.peers, config.raft_transport_timeout),
                               config.node_id), "rebalancer")
    # requests are rendered a bounded slice per reactor turn, so the scheduler's timers and
    # the writer's results are never stuck behind a saturated API
    site = make_site(AdmissionResource(api.resource(), clock),
                     int(config.max_request_body_mb * 1024 * 1024),
                     limiter=RateLimiter(config.rate_limit_per_minute, clock), metrics=metrics,
                     limits=SiteLimits.from_config(config), clock=clock)
    if listen:
        add(DrainingHTTPService(serverFromString(reactor, http_endpoint(config)), site, clock),
            "http")
    return Node(service=node, store=store, commands=commands, breakers=breakers,
                recorder=recorder, executor=executor, scheduler=scheduler, recovery=recovery,
                supervisor=supervisor, guard=guard, repairs=repairs, operations=operations,
                metrics=metrics, api=api, site=site, ownership=ownership, requests=requests)
