"""
What an operator asks a cluster to deliver or reset, acted on by the node it concerns.

Run-now, a dead-letter retry and a hanging execution's rerun are C{execution.request}
commands (L{scheduler0.state.payloads.RequestDeliveries}); a breaker reset is a
C{breaker.reset} command. Any node proposes them; every node applies them and observes
them here, in log order, in the reactor. A request is delivered by the node that owns the
job (C{owns(job_id)}), with the execution id the proposer chose; the others do nothing. A
breaker reset is acted on by every node, because each keeps its own breakers.

Applying a request wrote a 'scheduled' record per occurrence, so whatever this observer
does not deliver (the executor is not running, the node is still recovering, it stops
before sending) the recovery of the owner resumes from the store with the same id.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

from ..schedule.occurrence import host_of
from ..schedule.plan import JobPlan
from ..state import kinds as K
from ..state.commands import Command
from ..state.payloads import RUN_NOW, RequestDeliveries, ResetBreaker
from .recovery import occurrence_again

log = Logger()

ENDPOINT, HOST = "endpoint", "host"


def reset_breakers(breakers: Any, scope: str, key: str) -> str:
    """
    Close this node's breaker of an endpoint, or of a host and all of its endpoints; the
    state that now decides the instance (a host breaker still open holds an endpoint).
    """
    if scope == HOST:
        for breaker in breakers.of_host(key):
            breaker.reset()
        host = breakers.find(key)
        if host is not None:
            host.reset()
        return "closed"
    own = breakers.find(key)
    if own is not None:
        own.reset()
    host = breakers.find(host_of(key))
    return host.state.value if host is not None else "closed"


class RequestObserver:
    """
    A command-log observer delivering the requests of the jobs this node owns.

    @param owns: whether this node delivers a job's occurrences (what the scheduler is
        given as C{owns}: today "this node executes").
    @param plans: the scheduler's plans (what an occurrence is built from).
    @param job: reads a job from the store, for one not planned yet (a run asked for just
        after it was created).
    @param executor: delivers (C{submit}) and is C{running} only where this node executes.
    @param recovery: the recovery service: until it has resumed the store's unfinished
        records (C{recovered}), it delivers the requests it finds there itself
        (C{resumed}: the execution ids and attempts it did, not to be sent twice).
    @param breakers: this node's breakers.
    """

    def __init__(self, owns: Callable[[int], bool], plans: Callable[[], dict[int, Any]],
                 job: Callable[[int], Any], executor: Any, recovery: Any,
                 breakers: Any) -> None:
        self.owns = owns
        self._plans = plans
        self._job = job
        self._executor = executor
        self._recovery = recovery
        self._breakers = breakers

    def observe(self, command: Command, result: dict) -> None:
        if not result.get("ok"):
            return
        if command.kind == K.EXECUTION_REQUEST:
            self._deliver(command.payload, result.get("requested", ()))
        elif command.kind == K.BREAKER_RESET:
            reset: ResetBreaker = command.payload
            state = reset_breakers(self._breakers, reset.scope, reset.key)
            log.info("breaker of {scope} {key} reset by an operator: {state} on this node",
                     scope=reset.scope, key=reset.key, state=state)

    def _deliver(self, request: RequestDeliveries, requested: Any) -> None:
        if not self._executor.running or not self._recovery.recovered:
            return  # not executing, or recovery has yet to read the store: it resumes them
        wanted = set(requested)
        plans = self._plans()
        resumed = self._recovery.resumed
        occurrences, unplanned = [], set()
        for eid, job_id, scheduled, attempts, _ in request.occurrences:
            # what recovery resumed is this very attempt; a later request of the same
            # execution (a retry of what that attempt did) is another
            if eid not in wanted or (eid, attempts + 1) in resumed or not self.owns(job_id):
                continue
            plan = plans.get(job_id)
            if plan is None:
                job = self._job(job_id)  # created a moment ago, not planned yet
                if job is None:
                    continue
                plan = JobPlan(job, 0)
                unplanned.add(job_id)
            occurrences.append(occurrence_again(eid, scheduled, plan, attempts + 1))
        if not occurrences:
            return
        run_now = request.reason == RUN_NOW

        def live(job_id: int) -> bool:
            """A run-now is not sent for a job paused meanwhile; a retry or rerun is (an
            operator asked for it); neither for a job deleted meanwhile."""
            plan = self._plans().get(job_id)
            if plan is None:
                return job_id in unplanned
            return not (run_now and plan.paused)

        self._executor.submit(occurrences, live=live)
