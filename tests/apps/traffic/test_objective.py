"""The discrepancy d(Y, f(θ)) against its formulas, and θ's identifiability from Y on the default scenario."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from apps.traffic.objective import discrepancy, geh
from apps.traffic.simulator import DetectorSeries


def _series(counts: np.ndarray, speeds: np.ndarray) -> DetectorSeries:
    return DetectorSeries([f"d{i}" for i in range(counts.shape[0])], 300.0, counts, speeds)


def test_discrepancy_matches_the_formulas() -> None:
    rng = np.random.default_rng(0)
    c_obs, c_sim = rng.poisson(15, (5, 12)).astype(float), rng.poisson(15, (5, 12)).astype(float)
    s_obs, s_sim = rng.uniform(8, 13, (5, 12)), rng.uniform(8, 13, (5, 12))
    s_obs[0, 0] = np.nan  # nothing observed there: not scored
    s_sim[1, 1] = np.nan  # observed traffic, none simulated: scored as speed 0
    fit = discrepancy(_series(c_obs, s_obs), _series(c_sim, s_sim))
    cells = [(i, j) for i in range(5) for j in range(12)]
    count_rmse = math.sqrt(sum((c_obs[i, j] - c_sim[i, j]) ** 2 for i, j in cells) / len(cells))
    scored = [(i, j) for i, j in cells if (i, j) != (0, 0)]
    speed_rmse = math.sqrt(
        sum((s_obs[i, j] - (0.0 if (i, j) == (1, 1) else s_sim[i, j])) ** 2 for i, j in scored) / len(scored)
    )
    gehs = [
        math.sqrt(2 * (12 * c_sim[i, j] - 12 * c_obs[i, j]) ** 2 / (12 * c_sim[i, j] + 12 * c_obs[i, j]))
        for i, j in cells
    ]
    assert fit.count_rmse == pytest.approx(count_rmse)
    assert fit.speed_rmse == pytest.approx(speed_rmse)
    assert fit.geh_share == pytest.approx(sum(g < 5 for g in gehs) / len(gehs))
    assert fit.loss == pytest.approx(count_rmse / c_obs.mean() + speed_rmse / np.nanmean(s_obs))
    same = discrepancy(_series(c_obs, s_obs), _series(c_obs, s_obs))
    assert (same.loss, same.count_rmse, same.speed_rmse, same.geh_share) == (0.0, 0.0, 0.0, 1.0)


def test_geh_of_textbook_values() -> None:
    assert geh(np.array([1200.0]), np.array([1000.0]))[0] == pytest.approx(math.sqrt(2 * 200**2 / 2200))
    assert geh(np.array([0.0]), np.array([0.0]))[0] == 0.0


def test_mismatched_series_are_refused() -> None:
    a = _series(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="differ"):
        discrepancy(a, _series(np.ones((3, 3)), np.ones((3, 3))))


@pytest.mark.sumo
@pytest.mark.slow
def test_theta_star_is_identifiable_beyond_seed_noise(tmp_path: Path) -> None:
    """On the default scenario, θ* with fresh seeds scores clearly below θ moved along each parameter."""
    from apps.traffic.scenario import TrafficScenario, build
    from apps.traffic.simulator import simulate

    spec = TrafficScenario()
    built = build(spec, tmp_path)
    observed = simulate(built, spec, spec.theta_star, spec.observation_seed)
    at_star = [discrepancy(observed, simulate(built, spec, spec.theta_star, seed)).loss for seed in (2, 3)]
    moved = {}
    for name, step in (("demand_scale", 0.2), ("speed_factor", -0.1), ("tau", 0.6)):
        theta = {**spec.theta_star, name: spec.theta_star[name] + step}
        moved[name] = discrepancy(observed, simulate(built, spec, theta, 2)).loss
    noise = abs(at_star[0] - at_star[1])
    for name, loss in moved.items():
        assert loss > max(at_star) + max(2 * noise, 0.02), (name, loss, at_star)
