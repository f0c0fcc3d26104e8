"""Simulator objectives from benchmarks (:mod:`core.hpo.benchmarks`).

Two ways to use a benchmark's fidelity:

* **Learning curves** (default): every trial trains to the full fidelity and reports the value at each lower
  fidelity level on the way (``Report(step, value, elapsed=runtime to that level)``), so Optuna pruners can stop
  it early. The reports are produced lazily: a pruned trial's later levels are never evaluated.
* **Fidelity as a parameter** (``fidelity_param="epochs"``): the sampler picks the fidelity; the evaluation
  carries a checkpoint key so that, with ``simulate(..., checkpoints=True)``, a configuration resumed at a higher
  fidelity is charged only the extra runtime.

Multi-objective benchmarks report nothing (Optuna's pruners are single-objective).

Example:
    >>> import optuna
    >>> from core.hpo.benchmarks import MFBranin
    >>> from core.hpo.simulator import simulate
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
    ...                             pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    >>> result = simulate(study, benchmark_objective(MFBranin()), n_workers=4, n_trials=30)
    >>> states = {t.state for t in result.trials}
    >>> states <= {"COMPLETE", "PRUNED"}, "PRUNED" in states
    (True, True)
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from core.hpo.benchmarks.base import Benchmark, suggest
from core.hpo.simulator.records import Evaluation, Report
from core.hpo.simulator.study import Objective

if TYPE_CHECKING:
    import optuna


def benchmark_objective(
    benchmark: Benchmark,
    report_fidelities: Sequence[Any] | None = None,
    fidelity_param: str | None = None,
) -> Objective:
    """An objective for :func:`~core.hpo.simulator.simulate` that suggests the benchmark's parameters.

    Args:
        benchmark: Any :class:`~core.hpo.benchmarks.Benchmark`.
        report_fidelities: Levels at which intermediate values are reported (default: every level of the
            benchmark below the full one). The step of a report is the fidelity when it is an integer, else its
            position (1, 2, ...).
        fidelity_param: Name of a parameter through which the sampler chooses the fidelity (then no reports).
    """
    full = benchmark.fidelities[-1]
    levels = list(report_fidelities) if report_fidelities is not None else list(benchmark.fidelities[:-1])
    levels = [f for f in levels if f < full]
    multi_objective = len(benchmark.directions) > 1
    space = benchmark.search_space
    fidelities = list(benchmark.fidelities)

    def with_reports(trial: optuna.Trial) -> Generator[Report, None, Evaluation]:
        params = {name: suggest(trial, name, dist) for name, dist in space.items()}
        if not multi_objective:
            for position, fidelity in enumerate(levels, start=1):
                result = benchmark.evaluate(params, fidelity)
                step = int(fidelity) if float(fidelity).is_integer() else position
                yield Report(step=step, value=result.values[0], elapsed=result.runtime)
        result = benchmark.evaluate(params, full)
        return Evaluation(values=result.values, runtime=result.runtime, constraints=result.constraints)

    def at_fidelity(trial: optuna.Trial) -> Evaluation:
        params = {name: suggest(trial, name, dist) for name, dist in space.items()}
        assert fidelity_param is not None
        if all(isinstance(f, int) for f in fidelities):
            fidelity: Any = trial.suggest_int(fidelity_param, int(fidelities[0]), int(fidelities[-1]))
        else:
            fidelity = trial.suggest_categorical(fidelity_param, fidelities)
        result = benchmark.evaluate(params, fidelity)
        return Evaluation(
            values=result.values,
            runtime=result.runtime,
            constraints=result.constraints,
            checkpoint_key=tuple(sorted(params.items())),
            fidelity=float(fidelity),
        )

    return at_fidelity if fidelity_param is not None else with_reports


__all__ = ["benchmark_objective"]
