"""The refine rule: the loss's curvature from training studies, the order the refine steps take, and the pooled
refine's Jacobian model and search."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from core.bridge.refine import CURVATURE_FLOOR, fit_jacobian, loss_curvature, pooled_search, refine_points

BOUNDS = {"steep": (0.0, 2.0), "flat": (10.0, 20.0)}


def _study(seed: int, steep: float, flat: float, n: int = 20) -> list[tuple[float, dict[str, float]]]:
    """Trials of a loss steep·z_steep² + flat·z_flat² (z: share of the range from a random optimum) plus noise."""
    rng = random.Random(seed)
    best = {k: rng.uniform(0.3, 0.7) for k in BOUNDS}
    trials = []
    for _ in range(n):
        z = {k: rng.uniform(0, 1) for k in BOUNDS}
        value = steep * (z["steep"] - best["steep"]) ** 2 + flat * (z["flat"] - best["flat"]) ** 2
        params = {k: low + z[k] * (high - low) for k, (low, high) in BOUNDS.items()}
        trials.append((value + rng.gauss(0, 0.01), params))
    return trials


def test_curvature_is_recovered_per_squared_range_from_noisy_studies() -> None:
    curvature = loss_curvature([_study(s, steep=0.5, flat=0.05) for s in range(9)], BOUNDS)
    assert curvature["steep"] == pytest.approx(0.5, rel=0.15)
    assert curvature["flat"] == pytest.approx(0.05, abs=0.03)


def test_a_concave_fit_is_floored_and_too_few_trials_mean_no_preference() -> None:
    concave = [(-((p["steep"] - 1.0) ** 2), p) for _, p in _study(0, 1, 1)]
    assert loss_curvature([concave], BOUNDS)["steep"] == CURVATURE_FLOOR
    assert loss_curvature([_study(0, 1, 1, n=4)], BOUNDS) == {"steep": 1.0, "flat": 1.0}


def test_curvature_sends_the_steps_to_the_parameter_the_loss_reacts_to() -> None:
    predicted = {"steep": 1.0, "flat": 15.0}
    std = [0.2, 2.5]  # 10% and 25% of the ranges: the flat parameter is the less certain one
    bounds = list(BOUNDS.values())
    by_uncertainty = refine_points(predicted, std, bounds, 2)
    assert [p["flat"] for p in by_uncertainty] == [17.5, 12.5]
    by_curvature = refine_points(predicted, std, bounds, 2, curvature=[0.5, 0.05])  # 0.5·0.1² > 0.05·0.25²
    assert [p["steep"] for p in by_curvature] == [1.2, 0.8] and all(p["flat"] == 15.0 for p in by_curvature)
    assert refine_points(predicted, std, bounds, 2, curvature=[0.05, 0.5]) == by_uncertainty


def test_evaluate_orders_the_refine_runs_by_the_training_studies_curvature(tmp_path: Path) -> None:
    from core.bridge.pipeline import training_curvature
    from core.bridge.workspace import Workspace
    from core.config import load_config, package_dir

    overrides = [
        f"workspace={tmp_path / 'ws'}", "scenarios.n_train=6", "scenarios.n_test=1", "models.cheap.n_trials=10",
        "models.expensive.n_trials=12", "fit.models=[ridge]", "evaluate.refine=2", "evaluate.refine_full_at=1e-6",
        "evaluate.refine_order=curvature", "evaluate.direct_reference=false", "models.cheap.n_max_jobs=1",
        "models.expensive.n_max_jobs=1",
    ]  # fmt: skip
    cfg = load_config(package_dir("core.bridge.config") / "examples" / "analytic.yaml", overrides)
    lines: list[str] = []
    from core.bridge.pipeline import run

    workspace = run(cfg, log=lines.append, progress=False)
    assert any("refine order by curvature" in line for line in lines)
    curvature = training_curvature(cfg, Workspace(workspace.root), ["theta0", "theta1"])
    assert all(c > 0 for c in curvature)
    (request,) = workspace.root.glob("studies/test-*/refine/request.json")
    points = json.loads(request.read_text())["enqueue"]
    predicted = json.loads(request.read_text())["from"]
    with workspace.evaluation.open() as handle:
        (row,) = list(csv.DictReader(handle))
    std = [float(row[f"pred_std.{n}"]) for n in predicted]
    assert points == refine_points(predicted, std, [(-2.0, 2.0), (-2.0, 2.0)], 2, curvature)


def test_fit_jacobian_recovers_the_weights_from_noisy_runs_whatever_each_scenarios_offset() -> None:
    """J = F W per scenario, runs around each target with seed noise and an offset of the scenario's own (what its
    residuals are at its target): the fit reads only how the residuals move, and gets W back."""
    rng = np.random.default_rng(0)
    weights = np.array([[0.8, 0.0], [0.1, -0.5], [0.0, 0.3]])
    samples = []
    for _ in range(12):
        features = rng.uniform(0.0, 1.0, (40, 3))
        z = rng.uniform(0.3, 0.7, (8, 2))
        offset = rng.normal(0.0, 1.0, 40)
        samples.append((features, z, z @ (features @ weights).T + offset + rng.normal(0.0, 0.01, (8, 40))))
    assert fit_jacobian(samples) == pytest.approx(weights, abs=0.02)
    assert fit_jacobian([(samples[0][0], samples[0][1][:1], samples[0][2][:1])]) is None  # one run: nothing moves


def test_pooled_search_averages_the_noise_of_independent_replicates() -> None:
    """Each replicate's residuals carry noise of their own: the point after 5 pooled runs is nearer the optimum
    than the one a single run puts, on average over many draws (the noise variance divided by about the runs)."""
    rng = np.random.default_rng(1)
    jacobian = rng.normal(0.0, 1.0, (30, 2))
    optimum = np.array([0.4, 0.6])
    errors: dict[int, list[float]] = {1: [], 5: []}
    for _ in range(60):
        for budget in errors:

            def evaluate(point: dict[str, float], k: int) -> tuple[float, list[float]]:
                r = jacobian @ (np.array([point["a"], point["b"]]) - optimum) + rng.normal(0.0, 0.3, 30)
                return float(r @ r), r.tolist()

            runs, point = pooled_search(evaluate, {"a": 0.5, "b": 0.5}, [(0.0, 1.0)] * 2, budget, jacobian, 0.4, 0.4)
            assert len(runs) == budget
            errors[budget].append(float(np.linalg.norm([point["a"] - 0.4, point["b"] - 0.6])))
    assert np.mean(errors[5]) < 0.6 * np.mean(errors[1])


def test_pooled_search_skips_a_failed_run_and_keeps_the_start_when_every_run_failed() -> None:
    jacobian = np.eye(2)
    calls = []

    def failing(point: dict[str, float], k: int) -> tuple[float, list[float] | None]:
        calls.append(k)
        return math.inf, None

    runs, point = pooled_search(failing, {"a": 0.2, "b": 0.9}, [(0.0, 1.0)] * 2, 3, jacobian, 0.4)
    assert calls == [0, 1, 2] and point == {"a": 0.2, "b": 0.9}
    assert all(loss == math.inf and residuals is None for _, loss, residuals in runs)


def test_the_guard_keeps_the_pooled_points_where_the_linear_model_holds() -> None:
    """The model's Jacobian says a moves the first residual a little; beyond a = 0.6 it moves it five times as
    much. Unguarded, the pooled points leap to where the model puts the minimum and back; with the guard a run
    whose loss rises above 1.5 × the best is left out and the moves shrink around the best run."""
    model = np.array([[0.2, 0.0], [0.0, 1.0]])

    def true_residuals(a: float, b: float) -> np.ndarray:
        return np.array([0.2 * (a - 0.9) + 5.0 * max(a - 0.6, 0.0), b - 0.5])

    def evaluate(point: dict[str, float], k: int) -> tuple[float, list[float]]:
        r = true_residuals(point["a"], point["b"])
        return float(r @ r), r.tolist()

    start, bounds = {"a": 0.5, "b": 0.5}, [(0.0, 1.0)] * 2
    free_runs, free = pooled_search(evaluate, start, bounds, 5, model, 0.4, 0.4)
    guarded_runs, guarded = pooled_search(evaluate, start, bounds, 5, model, 0.4, 0.4, guard=1.5)
    assert free_runs[1][0]["a"] == pytest.approx(0.9) == guarded_runs[1][0]["a"]  # the same first leap
    assert max(p["a"] for p, _, _ in guarded_runs[2:]) <= 0.7 + 1e-9  # then within half of it from the best
    best = min(guarded_runs, key=lambda run: run[1])[0]
    assert abs(guarded["a"] - best["a"]) <= 0.05 + 1e-9  # the result too: three runs left out, 0.4 / 2 / 2 / 2
    optimum = 3.18 / 5.2  # where the true first residual is 0
    assert abs(guarded["a"] - optimum) < 0.05 < abs(free["a"] - optimum)
    assert pooled_search(evaluate, start, bounds, 1, model, 0.4, 0.4, guard=1.5)[1] == free_runs[1][0]
