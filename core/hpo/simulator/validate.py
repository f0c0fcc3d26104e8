"""Validate mode: run the same study for real, with P threads sleeping the runtimes scaled down, and compare.

Each thread is a worker: it asks the study, sleeps until each intermediate report's time (reporting and asking
the pruner then), sleeps until the end and tells the result. A trial's clock starts when its worker became free,
so the real run, like the simulation, charges nothing for the sampler; asks, reports, prune decisions and tells are
atomic under one lock, like the simulator's events. When event times are further apart than the sleep jitter,
the real order of results must be the simulated one.

Example:
    >>> import optuna
    >>> from core.hpo.simulator import Evaluation
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> def objective(trial):
    ...     return Evaluation(values=0.0, runtime=[30.0, 10.0, 50.0, 20.0, 40.0][trial.number])
    >>> report = validate(optuna.create_study, objective, n_workers=2, n_trials=5, time_scale=1e-3)
    >>> report.real.order, report.same_order
    ([1, 0, 3, 2, 4], True)
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.hpo.simulator.records import Evaluation, Report, SimulationResult, TrialRecord
from core.hpo.simulator.study import Objective, simulate, store_attrs

if TYPE_CHECKING:
    import optuna


@dataclass
class ValidationReport:
    """The simulated and the real run, and how well they agree (times in simulated seconds)."""

    simulated: SimulationResult
    real: SimulationResult
    order_agreement: float
    same_order: bool
    same_states: bool
    max_time_error: float
    resolution: float  # the smallest gap between two distinct simulated event times

    def summary(self) -> str:
        return (
            f"order agreement {self.order_agreement:.1%} ({'same order' if self.same_order else 'orders differ'}), "
            f"states {'agree' if self.same_states else 'differ'}, max end-time error {self.max_time_error:.4g} s "
            f"(closest simulated events {self.resolution:.4g} s apart)"
        )


def run_threaded(
    study: optuna.Study,
    objective: Objective,
    n_workers: int,
    n_trials: int,
    time_scale: float = 1e-3,
) -> SimulationResult:
    """Run ``study`` for real with ``n_workers`` threads sleeping ``runtime * time_scale``; times are unscaled."""
    import optuna

    lock = threading.Lock()
    records: list[TrialRecord] = []
    order: list[int] = []
    asked = [0]
    errors: list[BaseException] = []
    origin = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - origin

    def sleep_until(real: float) -> None:
        delay = real - clock()
        if delay > 0:
            time.sleep(delay)

    def work(worker: int) -> None:
        free = 0.0
        while True:
            with lock:
                if asked[0] >= n_trials or errors:
                    return
                asked[0] += 1
                trial = study.ask()
                record = TrialRecord(trial.number, worker, asked=free / time_scale, start=free / time_scale)
                records.append(record)
                output = objective(trial)
                steps, final = _milestones(output)
                item = _next(steps, final)
            while True:
                elapsed = item.elapsed if isinstance(item, Report) else item.runtime
                sleep_until(free + elapsed * time_scale)
                with lock:
                    now = clock()
                    if isinstance(item, Report):
                        trial.report(item.value, item.step)
                        record.reports.append((item.step, item.value, now / time_scale))
                        if not trial.should_prune():
                            item = _next(steps, final)
                            continue
                        frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    else:
                        store_attrs(trial, item)
                        values = item.value_tuple()
                        frozen = study.tell(trial, values[0] if len(values) == 1 else list(values))
                    record.end = now / time_scale
                    record.state = frozen.state.name
                    record.values = tuple(frozen.values) if frozen.values is not None else None
                    record.params = dict(trial.params)
                    order.append(trial.number)
                    free = now
                    break

    def guarded(worker: int) -> None:
        try:
            work(worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in range(n_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    records.sort(key=lambda r: r.number)
    return SimulationResult(
        trials=records,
        order=order,
        n_workers=n_workers,
        directions=[d.name.lower() for d in study.directions],
        end_time=max((r.end for r in records), default=0.0),
        wall_seconds=clock(),
    )


def validate(
    make_study: Callable[[], optuna.Study],
    objective: Objective,
    n_workers: int,
    n_trials: int,
    time_scale: float = 1e-3,
) -> ValidationReport:
    """Simulate a fresh study from ``make_study``, run another one for real in threads, and compare."""
    simulated = simulate(make_study(), objective, n_workers, n_trials, record_in_study=False)
    real = run_threaded(make_study(), objective, n_workers, n_trials, time_scale)
    return compare(simulated, real)


def compare(simulated: SimulationResult, real: SimulationResult) -> ValidationReport:
    """How far a real run's order, states and end times are from the simulated ones.

    Trials are matched by their position in their own study (trial number minus the first number). Results the
    simulation delivers at the same instant may arrive in any order in a real run, so orders are compared as
    sequences of simulated end times (ties are interchangeable).
    """
    sim_by, sim_order = _relative(simulated)
    real_by, real_order = _relative(real)
    shared = sorted(set(sim_by) & set(real_by))
    sim_keys = [sim_by[k].end for k in sim_order]
    real_keys = [sim_by[k].end if k in sim_by else math.nan for k in real_order]
    times = sorted({t.end for t in simulated.trials} | {at for t in simulated.trials for _, _, at in t.reports})
    return ValidationReport(
        simulated=simulated,
        real=real,
        order_agreement=sum(a == b for a, b in zip(sim_keys, real_keys, strict=False))
        / max(len(sim_keys), len(real_keys), 1),
        same_order=sim_keys == real_keys,
        same_states=len(sim_by) == len(real_by) and all(sim_by[k].state == real_by[k].state for k in shared),
        max_time_error=max((abs(sim_by[k].end - real_by[k].end) for k in shared), default=0.0),
        resolution=min((b - a for a, b in itertools.pairwise(times)), default=math.inf),
    )


def _relative(result: SimulationResult) -> tuple[dict[int, TrialRecord], list[int]]:
    first = min((t.number for t in result.trials), default=0)
    return {t.number - first: t for t in result.trials}, [n - first for n in result.order]


def _milestones(output: Evaluation | Generator[Report, None, Evaluation]) -> tuple[Iterator[Report], Evaluation | None]:
    if isinstance(output, Evaluation):
        return iter(output.reports), output
    return output, None


def _next(steps: Iterator[Report], final: Evaluation | None) -> Report | Evaluation:
    try:
        return next(steps)
    except StopIteration as stop:
        result = final if final is not None else stop.value
        assert isinstance(result, Evaluation)
        return result


__all__ = ["ValidationReport", "compare", "run_threaded", "validate"]
