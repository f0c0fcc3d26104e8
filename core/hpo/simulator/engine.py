"""The event engine: P workers on a simulated clock, a heap of events, no Optuna.

The rule it implements is the one a real asynchronous run with ``n_workers`` workers follows:

* A free worker asks the sampler for a job. The sampler is one resource: asks are served one at a time, in the
  order the workers became free (at time 0: worker 0, 1, ...); an ask that costs ``c`` simulated seconds makes
  the job start ``c`` after the ask began (``c = 0`` by default).
* A job is a sequence of *milestones* (intermediate reports, then the end), each at a simulated time
  ``start + elapsed``. At a milestone the driver decides whether the job goes on (the next milestone) or is
  over (finished, pruned or failed); an ended job frees its worker at that very time.
* Events at equal simulated times are handled in job order (the order of the asks); asks at a time ``t`` come
  after every event at ``t``, so a sampler asked at ``t`` has seen every result that arrived by ``t``.
* The run stops asking after ``max_jobs`` asks, or at ``time_budget``: events after the budget never happen, and
  jobs still running then are *cut* at the budget.

The driver (:class:`Driver`) owns what a job does: the Optuna layer in :mod:`core.hpo.simulator.study` asks a
study, reports intermediate values and tells results; tests and benchmarks drive the engine with plain lists.

Example:
    >>> class Fixed:
    ...     def __init__(self, runtimes):
    ...         self.runtimes = runtimes
    ...     def start(self, job, worker, now):
    ...         return 0.0, self.runtimes[job]
    ...     def reach(self, job, now):
    ...         return None
    ...     def cut(self, job, now):
    ...         pass
    >>> schedule = run_events(Fixed([3.0, 1.0, 1.0, 5.0]), n_workers=2, max_jobs=4)
    >>> schedule.order, schedule.worker, schedule.ended
    ([1, 2, 0, 3], [0, 1, 1, 1], [3.0, 1.0, 2.0, 7.0])
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


class Driver(Protocol):
    """What the engine calls; times are simulated seconds."""

    def start(self, job: int, worker: int, now: float) -> tuple[float, float] | None:
        """Ask for job ``job`` (0, 1, ...) on ``worker`` at ``now``.

        Returns ``(sampler_cost, first_elapsed)``: the job starts ``sampler_cost`` after ``now`` and reaches its
        first milestone ``first_elapsed`` after its start; or ``None`` to stop asking.
        """
        ...

    def reach(self, job: int, now: float) -> float | None:
        """Job ``job`` reached its pending milestone at ``now``.

        Returns the next milestone's elapsed time since the job's start (not before the previous one), or ``None``
        when the job is over (its worker is free at ``now``).
        """
        ...

    def cut(self, job: int, now: float) -> None:
        """The time budget ``now`` ended while job ``job`` was running (or waiting for its sample)."""
        ...


@dataclass
class Schedule:
    """What happened, per job (indexed by job number): worker, ask, start and end times, and the end order.

    ``started`` is the time the sample was ready (``asked`` + sampler cost); ``ended`` is the budget for cut jobs.
    """

    worker: list[int] = field(default_factory=list)
    asked: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    ended: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    cut: list[int] = field(default_factory=list)
    now: float = 0.0


def run_events(
    driver: Driver,
    n_workers: int,
    max_jobs: int | None = None,
    time_budget: float | None = None,
    schedule: Schedule | None = None,
) -> Schedule:
    """Run the simulation to its end and return the :class:`Schedule`.

    At least one of ``max_jobs`` and ``time_budget`` must be given. ``schedule``, when given, is filled in place,
    so a caller can read ``schedule.now`` (the simulated clock) from inside the driver.
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    if max_jobs is None and time_budget is None:
        raise ValueError("give max_jobs, time_budget or both: otherwise the run never ends")
    limit = max_jobs if max_jobs is not None else math.inf
    budget = time_budget if time_budget is not None else math.inf
    out = schedule if schedule is not None else Schedule()
    worker_of, asked, started, ended, order = out.worker, out.asked, out.started, out.ended, out.order
    heap: list[tuple[float, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    waiting: deque[int] = deque(range(n_workers))
    sampling: dict[int, float] = {}  # job -> first elapsed, for jobs whose sample is not ready yet
    sampler_idle = True
    n_asked = 0
    now = 0.0
    start, reach = driver.start, driver.reach
    while True:
        if waiting and sampler_idle and n_asked < limit and now < budget and (not heap or heap[0][0] > now):
            worker = waiting.popleft()
            got = start(n_asked, worker, now)
            if got is None:
                waiting.appendleft(worker)
                limit = n_asked
                continue
            cost, first = got
            job = n_asked
            n_asked += 1
            worker_of.append(worker)
            asked.append(now)
            ended.append(math.nan)
            if cost > 0.0:
                sampler_idle = False
                sampling[job] = first
                started.append(math.nan)
                push(heap, (now + cost, job))
            else:
                started.append(now)
                push(heap, (now + first, job))
            continue
        if not heap or heap[0][0] > budget:
            break
        now, job = pop(heap)
        out.now = now
        if sampling and job in sampling:
            sampler_idle = True
            started[job] = now
            push(heap, (now + sampling.pop(job), job))
            continue
        elapsed = reach(job, now)
        if elapsed is None:
            ended[job] = now
            order.append(job)
            waiting.append(worker_of[job])
        else:
            push(heap, (started[job] + elapsed, job))
    if heap:
        out.now = now = budget
        for _, job in sorted(heap, key=lambda event: event[1]):
            driver.cut(job, now)
            ended[job] = now
            if job in sampling:
                started[job] = now
            out.cut.append(job)
    return out


__all__ = ["Driver", "Schedule", "run_events"]
