"""The event engine against the naive reference on 1,000 random instances (ties, sampler costs, budgets)."""

from __future__ import annotations

import math
import random

import pytest

from core.hpo.simulator.engine import Schedule, run_events
from tests.core.hpo.simulator.reference import Instance, reference


class ListDriver:
    """Drives the engine from an :class:`Instance`: fixed milestones, fixed ask costs."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.index: dict[int, int] = {}
        self.cut_jobs: list[int] = []

    def start(self, job: int, worker: int, now: float) -> tuple[float, float] | None:
        if job >= len(self.instance.elapsed):
            return None
        self.index[job] = 0
        return self.instance.cost[job], self.instance.elapsed[job][0]

    def reach(self, job: int, now: float) -> float | None:
        self.index[job] += 1
        milestones = self.instance.elapsed[job]
        return milestones[self.index[job]] if self.index[job] < len(milestones) else None

    def cut(self, job: int, now: float) -> None:
        self.cut_jobs.append(job)


def random_instance(rng: random.Random) -> Instance:
    n_workers = min(256, int(math.exp(rng.uniform(0.0, math.log(257)))))
    n_jobs = rng.randint(1, min(300, 2 * n_workers + 20))
    integer = rng.random() < 0.6  # integer times: ties everywhere
    with_cost = rng.random() < 0.3
    elapsed = []
    for _ in range(n_jobs):
        steps = rng.randint(1, 4)
        if integer:
            gaps = [float(rng.randint(0, 6)) for _ in range(steps)]
        else:
            gaps = [rng.expovariate(1.0) * rng.choice([0.01, 1.0, 100.0]) for _ in range(steps)]
        times, total = [], 0.0
        for gap in gaps:
            total += gap
            times.append(total)
        elapsed.append(times)
    cost = [float(rng.randint(0, 2)) if integer else rng.expovariate(10.0) for _ in range(n_jobs)]
    if not with_cost:
        cost = [0.0] * n_jobs
    budget = None
    max_jobs: int | None = n_jobs
    roll = rng.random()
    if roll < 0.25:
        horizon = sum(e[-1] + c for e, c in zip(elapsed, cost, strict=True)) / n_workers
        budget = float(rng.randint(0, max(1, int(horizon)))) if integer else rng.uniform(0.0, horizon)
    elif roll < 0.35:
        max_jobs = rng.randint(0, n_jobs)
    if budget is not None and rng.random() < 0.5:
        max_jobs = None  # the budget alone ends the run (the driver refuses after the list)
    return Instance(n_workers, elapsed, cost, max_jobs, budget)


def test_engine_matches_the_naive_reference_on_1000_random_instances() -> None:
    rng = random.Random(20240605)
    n_ties = 0
    for case in range(1000):
        instance = random_instance(rng)
        if instance.max_jobs is None and instance.budget is None:
            instance.max_jobs = len(instance.elapsed)
        driver = ListDriver(instance)
        got = run_events(driver, instance.n_workers, instance.max_jobs, instance.budget)
        want = reference(instance)
        assert got.order == want.order, f"case {case}"
        assert got.cut == want.cut == driver.cut_jobs, f"case {case}"
        n_jobs = len(got.worker)
        assert n_jobs == len(want.worker), f"case {case}"
        assert got.worker == [want.worker[j] for j in range(n_jobs)], f"case {case}"
        for j in range(n_jobs):
            assert got.asked[j] == pytest.approx(want.asked[j], abs=1e-9), f"case {case} job {j}"
            assert got.started[j] == pytest.approx(want.started[j], abs=1e-9), f"case {case} job {j}"
            assert got.ended[j] == pytest.approx(want.ended[j], abs=1e-9), f"case {case} job {j}"
        ends = [got.ended[j] for j in got.order]
        n_ties += len(ends) - len(set(ends))
        assert ends == sorted(ends)  # results reach the sampler in simulated finish order
    assert n_ties > 1000  # the instances did exercise ties


def test_schedule_is_filled_in_place_and_clock_is_readable_from_the_driver() -> None:
    seen: list[float] = []
    schedule = Schedule()

    class Clocked(ListDriver):
        def reach(self, job: int, now: float) -> float | None:
            seen.append(schedule.now)
            return super().reach(job, now)

    instance = Instance(2, [[1.0, 2.0], [3.0]], [0.0, 0.0], 2, None)
    run_events(Clocked(instance), 2, 2, schedule=schedule)
    assert seen == [1.0, 2.0, 3.0] and schedule.order == [0, 1]


def test_engine_refuses_a_run_without_an_end() -> None:
    with pytest.raises(ValueError, match="never ends"):
        run_events(ListDriver(Instance(1, [[1.0]], [0.0], None, None)), 1)
    with pytest.raises(ValueError, match="n_workers"):
        run_events(ListDriver(Instance(1, [[1.0]], [0.0], 1, None)), 0, 1)
