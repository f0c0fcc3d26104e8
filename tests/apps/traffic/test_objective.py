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
    rms_count = math.sqrt(float(np.mean(c_obs**2)))
    rms_speed = math.sqrt(float(np.nanmean(s_obs**2)))
    assert fit.loss == pytest.approx((count_rmse / rms_count + speed_rmse / rms_speed) / 2)  # no occupancy, queue
    same = discrepancy(_series(c_obs, s_obs), _series(c_obs, s_obs))
    assert (same.loss, same.count_rmse, same.speed_rmse, same.geh_share) == (0.0, 0.0, 0.0, 1.0)


def test_occupancy_and_queue_terms_are_weighted_relative_errors() -> None:
    from apps.traffic.objective import SCALE_FLOORS, TERM_WEIGHTS

    rng = np.random.default_rng(1)
    counts, speeds = rng.poisson(20, (3, 4)).astype(float), rng.uniform(8, 12, (3, 4))
    occupancy, queue = rng.uniform(2, 10, (3, 4)), np.full((3, 4), 3.0)  # queues shorter than the 7.5 m floor
    observed = DetectorSeries(["a", "b", "c"], 300.0, counts, speeds, occupancy, queue)
    simulated = DetectorSeries(["a", "b", "c"], 300.0, counts + 2, speeds, occupancy * 1.5, queue + 6.0)
    fit = discrepancy(observed, simulated)
    relative = {
        "count": 2.0 / math.sqrt(float(np.mean(counts**2))),
        "speed": 0.0,
        "occupancy": math.sqrt(float(np.mean((0.5 * occupancy) ** 2))) / math.sqrt(float(np.mean(occupancy**2))),
        "queue": 6.0 / SCALE_FLOORS["queue"],
    }
    expected = sum(TERM_WEIGHTS[k] * v for k, v in relative.items()) / sum(TERM_WEIGHTS.values())
    assert fit.loss == pytest.approx(expected)
    assert fit.occupancy_rmse == pytest.approx(math.sqrt(float(np.mean((0.5 * occupancy) ** 2))))
    assert fit.queue_rmse == pytest.approx(6.0)
    # the residuals are the loss cell by cell: one per observed cell of each kind, squares summing to the terms'
    residuals = np.array(fit.residuals)
    assert residuals.shape == (4 * 12,)
    squared = sum((TERM_WEIGHTS[k] * v) ** 2 for k, v in relative.items()) / sum(TERM_WEIGHTS.values()) ** 2
    assert float(residuals @ residuals) == pytest.approx(squared, rel=1e-4)


def test_cell_features_are_the_residuals_units_of_each_observed_cell() -> None:
    """Per residual cell, its kind's two columns hold observed × factor and the factor: what the residual is when
    the simulation measures 0 there (negated) and when it measures one unit more; the congestion columns are the
    same times the cell's observed occupancy (a share); the other kinds' columns are 0."""
    from apps.traffic.objective import cell_features, residuals

    rng = np.random.default_rng(2)
    counts, speeds = rng.poisson(20, (3, 4)).astype(float), rng.uniform(8, 12, (3, 4)).round(4)
    occupancy, queue = rng.uniform(2, 30, (3, 4)).round(4), rng.uniform(0, 40, (3, 4)).round(4)  # as Y is stored
    speeds[0, 1] = np.nan  # no vehicle observed there: no speed cell
    observed = DetectorSeries(["a", "b", "c"], 300.0, counts, speeds, occupancy, queue)
    features = np.array(cell_features({"observed": observed.to_dict()}))
    zero = DetectorSeries(["a", "b", "c"], 300.0, counts * 0, np.nan_to_num(speeds) * 0, occupancy * 0, queue * 0)
    plus = DetectorSeries(["a", "b", "c"], 300.0, counts + 1, np.nan_to_num(speeds) + 1, occupancy + 1, queue + 1)
    assert features.shape == (12 + 11 + 12 + 12, 16)
    kind = np.repeat([0, 1, 2, 3], [12, 11, 12, 12])
    value = features[np.arange(len(kind)), 2 * kind]
    factor = features[np.arange(len(kind)), 2 * kind + 1]
    assert value == pytest.approx(-np.array(residuals(observed, zero)), abs=2e-6)
    assert factor == pytest.approx(np.array(residuals(observed, plus)), abs=2e-6)
    state = np.concatenate([occupancy.ravel()[[i for i in range(12) if i != 1]] if k == 1 else occupancy.ravel()
                            for k in range(4)]) / 100.0  # fmt: skip
    assert features[np.arange(len(kind)), 8 + 2 * kind] == pytest.approx(value * state)
    assert np.count_nonzero(features, axis=1).max() == 4


def test_a_replicate_runs_on_a_seed_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """``context.replicate`` k ≥ 1 (the bridge's pooled refine) moves SUMO to an independent seed; 0 or none keeps
    the calibration seed; an explicit seed wins."""
    import apps.traffic.objective as objective
    import apps.traffic.simulator as simulator

    seeds: list[int] = []
    observed = _series(np.ones((1, 2)), np.ones((1, 2)))
    spec = type("Spec", (), {"calibration_seed": 12})()
    monkeypatch.setattr(objective, "unpack_scenario", lambda scenario: (spec, None, observed))
    monkeypatch.setattr(simulator, "simulate", lambda built, spec, params, seed, **_: seeds.append(seed) or observed)
    for context, seed in (({}, None), ({"replicate": 0}, None), ({"replicate": 3}, None), ({"replicate": 3}, 5)):
        objective.evaluate_sumo(context, {}, seed=seed)
    assert seeds == [12, 12, 12 + objective.REPLICATE_SEED_OFFSET + 3, 5]


def test_geh_of_textbook_values() -> None:
    assert geh(np.array([1200.0]), np.array([1000.0]))[0] == pytest.approx(math.sqrt(2 * 200**2 / 2200))
    assert geh(np.array([0.0]), np.array([0.0]))[0] == 0.0


def test_mismatched_series_are_refused() -> None:
    a = _series(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="differ"):
        discrepancy(a, _series(np.ones((3, 3)), np.ones((3, 3))))


@pytest.mark.sumo
def test_theta_star_is_identifiable_beyond_seed_noise(tmp_path: Path) -> None:
    """On a small grid, the loss at θ* moved by a quarter of each range rises well above the seed noise."""
    from apps.traffic.identify import landscape
    from apps.traffic.scenario import DemandSpec, DetectorSpec, NetworkSpec, TrafficScenario

    spec = TrafficScenario(
        network=NetworkSpec(size=3, length=150.0),
        demand=DemandSpec(vehicles_per_hour=1000.0, n_routes=10, duration=900.0),
        detectors=DetectorSpec(count=8, interval=300.0),
        theta_star={"demand_scale": 1.0, "speed_factor": 1.0, "tau": 1.4},
    )
    space = {"demand_scale": [0.6, 1.4], "speed_factor": [0.8, 1.2], "tau": [1.0, 2.0]}
    table = landscape(spec, space, workdir=tmp_path, seeds=(11, 12, 13), steps=(-0.25, 0.25))
    assert table.noise > 0 and table.flagged_runs == 0
    z = {(r.parameter, r.step): r.z for r in table.rows}
    assert all(value >= 2 for key, value in z.items() if key != ("tau", -0.25)), z
    assert table.identifiable(0.25) == {"demand_scale": True, "speed_factor": True, "tau": z[("tau", -0.25)] >= 2}
