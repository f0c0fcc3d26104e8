"""Optuna's own sampler test cases (``optuna.testing.pytest_samplers``), run with :class:`NelderMeadSampler`.

Which of Optuna's test-case classes apply, and why:

- ``BasicSamplerTestCase`` (every distribution, conditional parameters, NaN values, fixed parameters, a single
  categorical, dynamic ranges): applies; all run.
- ``RelativeSamplerTestCase`` (``sample_relative`` called directly on a fresh trial, numeric, categorical and
  mixed spaces; ``n_jobs`` 1 and 2): applies; all run. A trial that never went through ``before_trial`` gets
  every parameter from the sub-sampler.
- ``SingleOnlySamplerTestCase`` (a multi-objective study raises ``ValueError``): applies; our error is a
  ``UserError`` and a ``ValueError``.
- ``MultiObjectiveSamplerTestCase``: not applicable. Nelder–Mead orders vertices by one value; the sampler
  refuses a study with several directions (the case above checks that refusal).

Below them, the defect Optuna's cases found: an objective with no numeric parameter (none at all, categorical
only, or ``low == high``) must run on the sub-sampler, finish every trial, and never stall.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import optuna
import pytest
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
from optuna.trial import TrialState

from core.hpo.samplers import NelderMeadSampler
from core.hpo.samplers.nelder_mead import ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _WithNelderMead:
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: NelderMeadSampler(seed=0)


class TestBasic(_WithNelderMead, BasicSamplerTestCase):
    pass


class TestRelative(_WithNelderMead, RelativeSamplerTestCase):
    pass


class TestSingleOnly(_WithNelderMead, SingleOnlySamplerTestCase):
    pass


@pytest.mark.parametrize(
    "objective",
    [
        lambda t: 1.0,
        lambda t: float(t.suggest_categorical("c", [1, 2, 3])),
        lambda t: t.suggest_float("x", 2.0, 2.0) + t.suggest_int("n", 4, 4),
        lambda t: t.suggest_float("x", 2.0, 2.0) * len(t.suggest_categorical("s", ["a", "bb"])),
    ],
    ids=["no-parameter", "categorical-only", "low-equals-high", "fixed-and-categorical"],
)
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_objective_without_numeric_parameter_runs_on_the_sub_sampler(
    objective: Callable[[optuna.trial.Trial], float], n_jobs: int
) -> None:
    study = optuna.create_study(sampler=NelderMeadSampler(seed=3))
    start = time.perf_counter()
    study.optimize(objective, n_trials=30, n_jobs=n_jobs)
    assert time.perf_counter() - start < 10  # no ask waits for a trial left without a role
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 30
    assert all(ATTR in t.system_attrs and "key" not in t.system_attrs[ATTR] for t in study.trials)
    if "c" in study.trials[0].params:
        assert {t.params["c"] for t in study.trials} == {1, 2, 3}  # sampled, not stuck on one choice


def test_a_numeric_parameter_appearing_later_starts_the_simplex() -> None:
    def objective(t: optuna.trial.Trial) -> float:
        if t.number < 5:
            return float(t.suggest_categorical("c", [0, 1]))
        return (t.suggest_float("x", -3, 3) - 1) ** 2

    study = optuna.create_study(sampler=NelderMeadSampler(seed=0))
    study.optimize(objective, n_trials=80)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert any("key" in t.system_attrs[ATTR] for t in study.trials)
    assert study.best_value < 1e-6
