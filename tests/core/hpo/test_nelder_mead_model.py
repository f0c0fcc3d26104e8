"""Idle workers' quadratic-model points: the minimizer of a least-squares quadratic around the best vertex.

Checked against the closed form (a convex quadratic's minimizer), refused where a fit gives nothing to use (a
saddle, too few points, a point already handed out), and compared end to end with the sampler without it on
simulated asynchronous workers at equal budget.
"""

from __future__ import annotations

import heapq

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from core.hpo.samplers import NelderMeadSampler
from core.hpo.samplers.nelder_mead import ATTR, _Run
from core.hpo.samplers.space import UnitBox

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(dim: int) -> dict[str, FloatDistribution]:
    return {f"x{i}": FloatDistribution(-5.0, 5.0) for i in range(dim)}


def run_with(values: list[float], points: np.ndarray, best: np.ndarray) -> tuple[NelderMeadSampler, _Run]:
    sampler = NelderMeadSampler(space(points.shape[1]), seed=0)
    run = sampler._make_run(UnitBox(space(points.shape[1])))
    run.planner.simplex = np.vstack([best, best + 0.05 * np.eye(points.shape[1])])
    run.log.evaluated = {n: (p, v) for n, (p, v) in enumerate(zip(points, values, strict=True))}
    return sampler, run


def test_a_convex_quadratic_gives_its_minimizer() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    hessian = a @ a.T + 0.5 * np.eye(3)
    centre = np.array([0.42, 0.55, 0.47])
    points = rng.uniform(0.3, 0.7, size=(40, 3))
    values = [float((p - centre) @ hessian @ (p - centre) + 3.0) for p in points]
    best = points[int(np.argmin(values))]
    sampler, run = run_with(values, points, best)
    model = sampler._model_point(run)
    assert model is not None
    np.testing.assert_allclose(model, centre, atol=1e-9)


def test_no_point_from_a_saddle_too_few_points_or_a_point_already_handed_out() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(0.3, 0.7, size=(20, 2))
    saddle = [float((p[0] - 0.5) ** 2 - (p[1] - 0.5) ** 2) for p in points]
    sampler, run = run_with(saddle, points, points[0])
    assert sampler._model_point(run) is None
    bowl = [float(((p - 0.5) ** 2).sum()) for p in points]
    sampler, run = run_with(bowl[:6], points[:6], points[0])  # a quadratic in 2-D has 6 coefficients
    assert sampler._model_point(run) is None
    sampler, run = run_with(bowl, points, points[int(np.argmin(bowl))])
    model = sampler._model_point(run)
    assert model is not None
    run.log.roles[99] = {"role": "local", "x": model, "model": True}
    assert sampler._model_point(run) is None  # the same data give the same point: not handed out twice


def simulate(sampler: NelderMeadSampler, dim: int, workers: int, budget: int) -> optuna.Study:
    """Asynchronous workers in one thread: random durations, results told in finish order."""
    study = optuna.create_study(sampler=sampler)
    durations = np.random.default_rng(0).uniform(0.5, 1.5, size=budget)
    scales = 10.0 ** np.linspace(0, 3, dim)  # an ill-conditioned ellipsoid
    running: list[tuple[float, int, optuna.trial.Trial, float]] = []
    clock, asked, told = 0.0, 0, 0
    while told < budget:
        while len(running) < workers and asked < budget:
            trial = study.ask()
            x = np.array([trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(dim)])
            heapq.heappush(running, (clock + durations[asked], asked, trial, float((scales * (x - 1.3) ** 2).sum())))
            asked += 1
        clock, _, trial, value = heapq.heappop(running)
        study.tell(trial, value)
        told += 1
    return study


def test_model_points_keep_four_workers_close_to_one() -> None:
    dim, budget = 3, 150
    serial = simulate(NelderMeadSampler(space(dim), seed=0), dim, 1, budget).best_value
    with_model = simulate(NelderMeadSampler(space(dim), seed=0), dim, 4, budget)
    without = simulate(NelderMeadSampler(space(dim), seed=0, model=False), dim, 4, budget).best_value
    roles = [t.system_attrs[ATTR] for t in with_model.trials]
    assert any(r.get("model") for r in roles)
    assert with_model.best_value < 1e-3 * without, (with_model.best_value, without)
    assert with_model.best_value <= 10 * serial + 1e-12, (with_model.best_value, serial)
