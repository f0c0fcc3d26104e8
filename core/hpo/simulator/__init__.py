"""core.hpo.simulator: zero-wait simulation of asynchronous multi-fidelity HPO (see README.md).

Example:
    >>> import optuna
    >>> from core.hpo.benchmarks import MFHartmann
    >>> from core.hpo.simulator import benchmark_objective, simulate
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1),
    ...                             pruner=optuna.pruners.SuccessiveHalvingPruner())
    >>> result = simulate(study, benchmark_objective(MFHartmann(dim=3)), n_workers=8, n_trials=40)
    >>> len(result.order), sum(t.state == "RUNNING" for t in study.trials)
    (40, 0)
"""

from core.hpo.simulator.engine import Driver, Schedule, run_events
from core.hpo.simulator.objectives import benchmark_objective
from core.hpo.simulator.records import Evaluation, Report, SimulationResult, TrialRecord
from core.hpo.simulator.study import Objective, SamplerCost, Simulator, simulate

__all__ = [
    "Driver",
    "Evaluation",
    "Objective",
    "Report",
    "SamplerCost",
    "Schedule",
    "SimulationResult",
    "Simulator",
    "TrialRecord",
    "benchmark_objective",
    "run_events",
    "simulate",
]
