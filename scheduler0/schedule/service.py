"""
The scheduler: a heap of next-fire times driven from the reactor.

Each job has a L{JobPlan} holding what is needed to compute its next fire (parsed spec,
zone, anchor) and its callback payload; the heap holds C{(fire time, generation, job id)}.
A single timer (C{callLater}) waits for the earliest entry; when it fires, every due entry
is popped, turned into an L{Occurrence} for the executor, and the job's following fire is
pushed back: O(log n) per occurrence. Cron next-fire times are shared between jobs through
a L{FireTimeCache}.

Updating or deleting a job bumps its generation instead of searching the heap; stale entries
are skipped when popped and the heap is rebuilt when they pile up.

The plan of a job is L{scheduler0.schedule.plan.JobPlan} and the skip accounting is
L{scheduler0.schedule.skips}; the heap, its timer and the misfire rules stay together in this
module (about 520 lines) because they share the heap's invariants: a fire is pushed
exactly when a plan's C{next_fire} is set.

Missed occurrences (node down, scheduler halted, reactor stalled more than
L{MISFIRE_TOLERANCE}) follow the job's C{misfirePolicy}: C{skip}; C{fire_once}: the latest
missed occurrence runs once if it is at most C{misfireGraceSeconds} late; C{fire_all}: every
missed occurrence runs (at most L{MAX_CATCH_UP} per job and planning). Whatever a policy
does not run is I{skipped}: counted in L{skipped} by reason (C{late}: the scheduler ran
behind; C{downtime}: the node was down or halted) for the metrics and the health snapshot,
and logged at most once per L{scheduler0.schedule.skips.SKIP_LOG_INTERVAL}.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ..domain import Job
from ..state import commands as C
from ..state.commands import Command
from ..timestamps import parse_time
from .occurrence import Occurrence, execution_id
from .plan import JobPlan
from .skips import SkippedOccurrences
from .spec import FireTimeCache

log = Logger()
UTC = timezone.utc

#: Most new jobs planned in one reactor turn.
CREATE_BUDGET = 500
#: An occurrence later than this when it is planned counts as missed.
MISFIRE_TOLERANCE = 1.0
#: Most catch-up occurrences one job gets from one planning (fire_all).
MAX_CATCH_UP = 1000
#: A timer that fires at most this much after the earliest due time is kept as it is:
#: re-arming it for a float rounding of the same instant would only push it back.
ARM_SLACK = 0.001
#: Most occurrences handled in one reactor turn; the rest follow at once, so a burst of
#: due jobs never holds the reactor for long.
TICK_BUDGET = 5000


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@attrs.define
class _Loading:
    """A pass over the store planning every job, a budget per reactor turn."""

    rows: Iterator[Job]
    last: dict[int, str]  # each job's last scheduled time
    #: jobs a write changed or deleted since the pass began: their stored row is stale
    touched: set[int] = attrs.Factory(set)
    due: int = 0  # missed occurrences dispatched so far
    call: Any = None  # the next turn's DelayedCall


class SchedulerService(Service):
    """
    @param clock: C{IReactorTime}.
    @param jobs: returns every job record and each job's last scheduled time at start-up
        (C{(records, {job id: RFC 3339 time})}); and C{job_records(ids)} for new jobs.
    @param dispatch: receives each round of due occurrences (the executor).
    @param owns: whether this node executes a job (all jobs on a single node).
    @param plan_budget: jobs planned per reactor turn when planning the whole store (None:
        all in one go, as a node starting alone may). A cluster node that becomes leader
        must keep ticking Raft: planning 50,000 jobs in one turn took 3 s here, past the
        election timeout, and leadership flapped.
    """

    def __init__(self, clock: Any, load: Callable[[], tuple[Iterable[Job], dict[int, str]]],
                 job_records: Callable[[list[int]], list[Job]],
                 dispatch: Callable[[list[Occurrence]], None],
                 fire_times: FireTimeCache | None = None,
                 owns: Callable[[int], bool] = lambda job_id: True,
                 plan_budget: int | None = None) -> None:
        self._clock = clock
        self._load = load
        self._job_records = job_records
        self._dispatch = dispatch
        self._fire_times = fire_times or FireTimeCache()
        self._owns = owns
        self._generations = itertools.count(1)
        self.plans: dict[int, JobPlan] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._timer: Any = None
        #: when a turn ran out of TICK_BUDGET: the instant whose due entries are being worked off
        self._backlog: float | None = None
        self.halted = False
        self._creating: deque[Job] = deque()
        self._planning: Any = None
        self._plan_budget = plan_budget
        #: the pass over the store under way: its rows, last scheduled times, next turn
        self._loading: _Loading | None = None
        self._planned_waiters: list[Deferred] = []
        self._skips = SkippedOccurrences(clock, running=lambda: bool(self.running))

    # -- lifecycle ----------------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._plan_all()

    def reload(self) -> None:
        """
        The state was replaced under the scheduler (a snapshot installed, or a node that
        caught up from scratch): forget every plan and plan again from the store, as at
        start; what was missed since each job's last recorded occurrence follows its
        misfire policy.
        """
        self._stop_turns()
        self._creating.clear()
        self.plans.clear()
        self._heap.clear()
        if self.running:
            self._plan_all()

    def when_planned(self) -> Deferred:
        """Fires once every job of the store is planned (at once if that is so now): what
        recovery waits for before it looks up the plans of what it re-sends."""
        if self._loading is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._planned_waiters.append(d)
        return d

    def _plan_all(self) -> None:
        """Plan every job the store has (that this node owns), catching up on downtime:
        L{plan_budget} jobs per reactor turn, or all at once."""
        records, last = self._load()
        self._loading = _Loading(iter(records), last)
        self._plan_loaded()

    def _plan_loaded(self) -> None:
        loading = self._loading
        if loading is None:
            return
        loading.call = None
        now = self._clock.seconds()
        due: list[Occurrence] = []
        budget = self._plan_budget
        taken = 0
        for job in (itertools.islice(loading.rows, budget) if budget else loading.rows):
            taken += 1
            if not self._owns(job.id) or job.id in loading.touched:
                continue  # a write applied since the pass began planned it from newer data
            last = loading.last
            try:
                plan = self._new_plan(job)
                stamp = last.get(job.id)
                plan.last_scheduled = parse_time(stamp).timestamp() if stamp else None
                if self.halted:
                    # halted before the start (an operator's halt kept across a restart):
                    # nothing is dispatched; resume() applies the misfire policy to
                    # everything missed since the last occurrence, the downtime included
                    self._plan(plan, plan.last_scheduled, now, catch_up=False,
                               tolerance=math.inf)
                    continue
                due.extend(self._plan(plan, plan.last_scheduled, now, catch_up=True,
                                      tolerance=0, reason="downtime"))
            except Exception:
                self._unplannable(job.id)
        loading.due += len(due)
        if due:
            self._dispatch(due)
        self._arm()
        if budget and taken == budget:  # maybe more: the next turn goes on
            loading.call = self._clock.callLater(0, self._plan_loaded)
            return
        self._loading = None
        log.info("scheduler planned {jobs} jobs; {due} missed occurrences to catch up",
                 jobs=len(self.plans), due=loading.due)
        waiters, self._planned_waiters = self._planned_waiters, []
        for d in waiters:
            if not d.called:  # a waiter cancelled meanwhile (recovery stopped)
                d.callback(None)

    def _stop_loading(self) -> None:
        loading, self._loading = self._loading, None
        if loading is not None and loading.call is not None and loading.call.active():
            loading.call.cancel()

    def stopService(self) -> None:
        Service.stopService(self)
        self._stop_turns()
        self._skips.flush()

    def _stop_turns(self) -> None:
        """Nothing more on later reactor turns: the due timer, planning new jobs, the pass
        over the store."""
        self._cancel_timer()
        self._backlog = None
        if self._planning is not None and self._planning.active():
            self._planning.cancel()
        self._planning = None
        self._stop_loading()

    def halt(self) -> None:
        """Stop starting occurrences until L{resume}; plans are kept."""
        self.halted = True
        self._cancel_timer()
        self._backlog = None

    def resume(self) -> None:
        """Start again; occurrences missed while halted follow each job's misfire policy."""
        self.halted = False
        now = self._clock.seconds()
        due: list[Occurrence] = []
        for plan in list(self.plans.values()):
            if plan.next_fire is not None and plan.next_fire < now:
                due.extend(self._plan(plan, plan.next_fire - 1e-6, now, catch_up=True,
                                      tolerance=0, reason="downtime"))
        if due:
            self._dispatch(due)
        self._arm()

    # -- what other parts ask -----------------------------------------------------------

    def next_fire(self, job_id: int) -> float | None:
        plan = self.plans.get(job_id)
        return plan.next_fire if plan is not None else None

    def knows(self, job_id: int) -> bool:
        plan = self.plans.get(job_id)
        return plan is not None and not plan.paused

    def pending(self) -> int:
        """Jobs with a future occurrence."""
        return sum(1 for p in self.plans.values() if p.next_fire is not None)

    def busy_within(self, seconds: float) -> bool:
        """Whether an occurrence may be due within C{seconds}, or new jobs wait to be
        planned (cheap: looks at the heap's top only, stale entries included)."""
        if self._creating or self._backlog is not None:
            return True
        return bool(self._heap) and self._heap[0][0] <= self._clock.seconds() + seconds

    def due_within(self, seconds: float) -> int:
        horizon = self._clock.seconds() + seconds
        return sum(1 for p in self.plans.values()
                   if p.next_fire is not None and p.next_fire <= horizon)

    def run_now(self, job_id: int) -> Occurrence | None:
        """One extra occurrence of a job, now; None if the job is unknown here."""
        plan = self.plans.get(job_id)
        if plan is None:
            return None
        scheduled = round(max(self._clock.seconds(), plan.last_extra + 0.001), 3)
        if scheduled == int(scheduled):
            # a whole second could be a slot of the job: keep the execution ids apart
            scheduled = round(scheduled + 0.001, 3)
        # two runs asked for within the same millisecond get their own execution ids
        plan.last_extra = scheduled
        occurrence = self._occurrence(plan, scheduled)
        self._dispatch([occurrence])
        return occurrence

    # -- command log observer -----------------------------------------------------------

    def observe(self, command: Command, result: dict) -> None:
        """Follow job writes as they are applied, so a change takes effect at once."""
        if not result.get("ok"):
            return
        if self._loading is not None and command.kind in (C.JOB_UPDATE, C.JOB_DELETE):
            # the pass over the store under way read this job before the write
            self._loading.touched.add(command.payload.id)
        if command.kind == C.JOB_CREATE:
            stamp = command.issued_at
            self._creating.extend(
                Job(job_id, fields, stamp, stamp)
                for job_id, fields in enumerate(command.payload.jobs, result["first_id"])
                if self._owns(job_id))
            self._plan_created()
        elif command.kind == C.JOB_UPDATE:
            self._replan(command.payload.id)
        elif command.kind == C.JOB_DELETE:
            self.plans.pop(command.payload.id, None)

    def _plan_created(self) -> None:
        """
        Plan new jobs from the applied command itself, L{CREATE_BUDGET} per reactor turn:
        a batch of 10,000 jobs never holds the reactor for long, and each job is planned
        milliseconds after it is stored, well before its first due time.
        """
        if self._planning is not None and self._planning.active():
            self._planning.cancel()
        self._planning = None
        now = self._clock.seconds()
        for _ in range(min(CREATE_BUDGET, len(self._creating))):
            job = self._creating.popleft()
            self.plans.pop(job.id, None)
            try:
                self._plan(self._new_plan(job), None, now, catch_up=False)
            except Exception:
                self._unplannable(job.id)
        if self._creating:
            self._planning = self._clock.callLater(0, self._plan_created)
        self._arm()

    def _replan(self, job_id: int) -> None:
        old = self.plans.pop(job_id, None)
        records = self._job_records([job_id]) if self._owns(job_id) else []
        if not records:
            return
        try:
            plan = self._new_plan(records[0])
        except Exception:
            self._unplannable(job_id)
            return
        if old is not None:
            plan.last_scheduled, plan.last_extra = old.last_scheduled, old.last_extra
        # a changed job continues from now: no catch-up for the time before the change, and
        # no second run of an occurrence that already fired in this very instant
        base = self._clock.seconds() - 1e-6
        if plan.last_scheduled is not None:
            base = max(base, plan.last_scheduled)
        try:
            self._plan(plan, base, self._clock.seconds(), catch_up=False)
        except Exception:
            self._unplannable(job_id)
        self._arm()

    # -- planning -----------------------------------------------------------------------

    def _new_plan(self, job: Job) -> JobPlan:
        plan = JobPlan(job, next(self._generations))
        self.plans[plan.job_id] = plan
        return plan

    def _next(self, plan: JobPlan, after: float) -> float | None:
        if plan.every is not None:
            # anchor + k * interval, k >= 1, the same rule as EverySchedule.next_after
            base, step = plan.every
            return float(base + max(1, int((after - base) // step) + 1) * step)
        fire = self._fire_times.next_fire(plan.schedule, plan.zone, _dt(after), plan.anchor,
                                          plan.start, plan.end)
        return _ts(fire)

    def _plan(self, plan: JobPlan, base: float | None, now: float,
              catch_up: bool, tolerance: float = MISFIRE_TOLERANCE,
              reason: str = "late") -> list[Occurrence]:
        """
        Set the plan's next fire after C{base} (its last occurrence; None = its anchor) and
        push it. Occurrences more than C{tolerance} late are missed: with C{catch_up} they
        are returned per the misfire policy, else skipped. After a restart or a halt the
        tolerance is 0: an occurrence due while the node was down or halted was missed,
        however little before now it was due. With C{catch_up}, what the policy does not
        run is counted as skipped for C{reason}.
        """
        missed: list[float] = []
        plan.next_fire = None
        if plan.paused:
            return []
        after = base if base is not None else plan.anchor.timestamp()
        fire = self._next(plan, after)
        late = now - tolerance
        if fire is not None and fire < late:
            if catch_up:
                first_missed = fire
            if catch_up and plan.policy == "fire_all":
                while fire is not None and fire < late and len(missed) < MAX_CATCH_UP:
                    missed.append(fire)
                    fire = self._next(plan, fire)
            elif catch_up and plan.policy == "fire_once":
                window = max(after, now - plan.grace - tolerance)
                hint = plan.schedule.interval_hint()
                if hint and (now - window) / hint > MAX_CATCH_UP:
                    window = now - MAX_CATCH_UP * hint
                candidate = self._next(plan, window)
                latest = None
                while candidate is not None and candidate < late:
                    latest = candidate
                    candidate = self._next(plan, candidate)
                if latest is not None and now - latest <= plan.grace + tolerance:
                    missed.append(latest)
            if fire is not None and fire < late:
                fire = self._next(plan, late)
            if catch_up:
                self._count_skipped(plan, first_missed, late, len(missed), reason)
        plan.next_fire = fire
        if fire is not None:
            heapq.heappush(self._heap, (fire, plan.generation, plan.job_id))
            if len(self._heap) > 2 * len(self.plans) + 1024:
                self._compact()
        if missed:
            plan.last_scheduled = missed[-1]
        return [self._occurrence(plan, when) for when in missed]

    def _unplannable(self, job_id: int) -> None:
        """A job whose next fire cannot be computed (a bug, or a record this release cannot
        read) is left unscheduled and logged; it must not stop every other job."""
        log.failure("job {job_id} cannot be scheduled; it will not run until it is updated",
                    job_id=job_id)
        plan = self.plans.get(job_id)
        if plan is not None:
            plan.next_fire = None

    def _count_skipped(self, plan: JobPlan, first: float, late: float, ran: int,
                       reason: str) -> None:
        """Count the slots in [C{first}, C{late}) that the policy did not run (C{ran} of them
        did): exact for C{@every}; for cron specs estimated from the spec's mean interval,
        since walking every missed slot after a long downtime would stall the start."""
        step = plan.every[1] if plan.every is not None else plan.schedule.interval_hint()
        slots = max(1, math.ceil((late - first) / step)) if step else 1
        self._skips.count(reason, max(0, slots - ran))

    @property
    def skipped(self) -> dict[str, int]:
        """Occurrences skipped by misfire policies, by reason ("late" or "downtime")."""
        return self._skips.counts

    @property
    def last_skipped_at(self) -> float | None:
        return self._skips.last_at

    def _occurrence(self, plan: JobPlan, scheduled: float) -> Occurrence:
        return Occurrence(
            execution_id=execution_id(plan.job_id, scheduled), job_id=plan.job_id,
            project_id=plan.project_id, scheduled=scheduled, callback_url=plan.callback_url,
            target=plan.target, payload=plan.payload,
        )

    def _compact(self) -> None:
        self._heap = [(p.next_fire, p.generation, p.job_id) for p in self.plans.values()
                      if p.next_fire is not None]
        heapq.heapify(self._heap)

    # -- the timer ----------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm(self) -> None:
        if self.halted or not self.running:
            return
        while self._heap and not self._valid(self._heap[0]):
            heapq.heappop(self._heap)
        if not self._heap:
            self._cancel_timer()
            return
        now = self._clock.seconds()
        when = self._heap[0][0]
        if self._timer is not None and self._timer.active():
            # keep a timer that fires in time; never push a due one back behind new work
            if self._timer.getTime() <= max(when, now) + ARM_SLACK:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(max(0.0, when - now), self._tick)

    def _valid(self, entry: tuple[float, int, int]) -> bool:
        plan = self.plans.get(entry[2])
        return plan is not None and plan.generation == entry[1] and plan.next_fire == entry[0]

    def _tick(self) -> None:
        self._timer = None
        if self.halted:
            return
        now = self._clock.seconds()
        # An entry more than MISFIRE_TOLERANCE late was missed (the reactor stalled) and
        # follows the misfire policy like the ones after it; entries that were already due
        # when an earlier turn ran out of TICK_BUDGET are a backlog, not misfires.
        late = now - MISFIRE_TOLERANCE
        if self._backlog is not None:
            late = min(late, self._backlog - MISFIRE_TOLERANCE)
        due: list[Occurrence] = []
        # self._heap, not a local alias: _plan may replace it when it compacts
        while self._heap and self._heap[0][0] <= now and len(due) < TICK_BUDGET:
            entry = heapq.heappop(self._heap)
            if not self._valid(entry):
                continue
            plan = self.plans[entry[2]]
            fire = entry[0]
            try:
                if fire < late:
                    due.extend(self._plan(plan, fire - 1e-6, now, catch_up=True))
                    continue
                due.append(self._occurrence(plan, fire))
                plan.last_scheduled = fire
                due.extend(self._plan(plan, fire, now, catch_up=True))
            except Exception:
                self._unplannable(plan.job_id)
        if due:
            self._dispatch(due)
        if self._heap and self._heap[0][0] <= now:
            if self._backlog is None:
                self._backlog = now
            self._timer = self._clock.callLater(0, self._tick)
        else:
            self._backlog = None
            self._arm()
