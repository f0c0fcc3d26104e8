"""The refine rule: the loss's curvature from training studies, and the order the refine steps take."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from core.bridge.refine import CURVATURE_FLOOR, loss_curvature, refine_points

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
