"""An independent, deliberately naive re-implementation of the simulator's rule, for tests.

No heap: the clock jumps to the smallest pending event found by scanning every worker; events at one instant are
handled one at a time, smallest job first, re-scanning after each; asks at an instant come after all its events.
Instances are plain lists, so the reference knows nothing of Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Instance:
    """Job ``j`` has milestones at ``elapsed[j]`` (non-decreasing) and ends at its last one; asks cost ``cost[j]``."""

    n_workers: int
    elapsed: list[list[float]]
    cost: list[float]
    max_jobs: int | None
    budget: float | None


@dataclass
class Outcome:
    order: list[int] = field(default_factory=list)
    worker: dict[int, int] = field(default_factory=dict)
    asked: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)
    cut: list[int] = field(default_factory=list)


def reference(instance: Instance) -> Outcome:
    out = Outcome()
    limit = instance.max_jobs if instance.max_jobs is not None else len(instance.elapsed)
    budget = instance.budget if instance.budget is not None else math.inf
    # per worker: None (idle) or [job, phase, milestone index]; phase "sampling" or "running"
    slots: list[list[object] | None] = [None] * instance.n_workers
    free_since: list[tuple[float, int, int]] = [(0.0, -1, w) for w in range(instance.n_workers)]  # FIFO keys
    sampler_busy = False
    now = 0.0
    next_job = 0

    def event_time(slot: list[object]) -> float:
        job, phase, index = slot
        assert isinstance(job, int) and isinstance(index, int)
        if phase == "sampling":
            return out.asked[job] + instance.cost[job]
        return out.started[job] + instance.elapsed[job][index]

    while True:
        pending = [(event_time(s), s[0], w) for w, s in enumerate(slots) if s is not None]
        due = [p for p in pending if p[0] <= now]
        if due:
            _, job, w = min(due, key=lambda p: (p[0], p[1]))
            slot = slots[w]
            assert slot is not None
            if slot[1] == "sampling":
                sampler_busy = False
                out.started[job] = now
                slot[1] = "running"
                continue
            index = slot[2]
            assert isinstance(index, int)
            if index + 1 < len(instance.elapsed[job]):
                slot[2] = index + 1
                continue
            out.ended[job] = now
            out.order.append(job)
            slots[w] = None
            free_since.append((now, job, w))
            continue
        idle = [key for key in free_since if slots[key[2]] is None]
        if idle and not sampler_busy and next_job < limit and now < budget:
            key = idle[0]  # FIFO: the list is kept in the order workers became free
            free_since.remove(key)
            w, job = key[2], next_job
            next_job += 1
            out.worker[job] = w
            out.asked[job] = now
            if instance.cost[job] > 0:
                sampler_busy = True
                slots[w] = [job, "sampling", 0]
            else:
                out.started[job] = now
                slots[w] = [job, "running", 0]
            continue
        if not pending:
            break
        upcoming = min(p[0] for p in pending)
        if upcoming > budget:
            now = budget
            for _, job, _w in sorted(pending, key=lambda p: p[1]):
                out.ended[job] = budget
                out.started.setdefault(job, budget)
                out.cut.append(job)
            break
        now = upcoming
    return out
