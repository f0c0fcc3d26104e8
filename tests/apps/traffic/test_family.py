"""The scenario family for the bridge: distinct scenarios, cached observations, objectives callable from context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.traffic.family import TrafficFamily
from core.errors import ConfigError

pytestmark = pytest.mark.sumo

SMALL = {
    "network": {"size": 3, "length": 150.0},
    "demand": {"vehicles_per_hour": [900, 1300], "n_routes": 8, "duration": 1200, "peak_time": [0.3, 0.7]},
    "detectors": {"count": 5},
}


def test_family_yields_distinct_train_and_test_scenarios_with_observations(tmp_path: Path) -> None:
    from core.bridge.scenario import Scenario

    family = TrafficFamily(n_train=2, n_test=1, seed=3, workdir=tmp_path, progress=False, **SMALL)  # type: ignore[arg-type]
    scenarios = family.scenarios()
    assert [(s.name, s.split) for s in scenarios] == [
        ("train-000", "train"),
        ("train-001", "train"),
        ("test-000", "test"),
    ]
    assert len({s.seed for s in scenarios}) == 3
    thetas = [s.context["traffic"]["theta_star"] for s in scenarios]
    assert len({json.dumps(t, sort_keys=True) for t in thetas}) == 3
    demands = [s.context["traffic"]["demand"]["vehicles_per_hour"] for s in scenarios]
    assert all(900 <= d <= 1300 for d in demands) and len(set(demands)) == 3  # differ in more than the seed
    for s in scenarios:
        again = Scenario.from_dict(json.loads(s.to_json()))  # travels to trial processes as JSON
        assert again.context["observed"]["counts"] == s.context["observed"]["counts"]
        assert len(s.context["observed"]["detectors"]) == 5
        features = s.context["features"]  # Y's summary statistics, an input of h with fit.feature_inputs
        assert set(features) == {"mean_count", "mean_speed", "mean_occupancy", "mean_queue", "slow_share"}
        assert features["mean_count"] > 0 and 0 <= features["slow_share"] <= 1
    # observations are cached: the same family again reads them back, identical
    cached = TrafficFamily(n_train=2, n_test=1, seed=3, workdir=tmp_path, progress=False, **SMALL).scenarios()  # type: ignore[arg-type]
    assert [s.context["observed"] for s in cached] == [s.context["observed"] for s in scenarios]
    assert len(list(tmp_path.glob("*/observed-*.json"))) == 3
    # a training scenario was simulated at its θ*: a known target (fit.targets: known), with what its run took
    for s, again in zip(scenarios, cached, strict=True):
        if s.split == "train":
            assert s.context["known_params"] == s.context["traffic"]["theta_star"]
            assert s.context["observation_wall_s"] > 0
            assert again.context["observation_wall_s"] == s.context["observation_wall_s"]  # read back from the cache
        else:
            assert "known_params" not in s.context and "observation_wall_s" not in s.context  # θ* stays hidden


def test_objectives_take_a_bridge_scenario_and_parameters(tmp_path: Path) -> None:
    from apps.traffic.objective import cheap, evaluate_sumo, expensive, mesoscopic

    (scenario,) = TrafficFamily(n_train=1, n_test=0, seed=1, workdir=tmp_path, progress=False, **SMALL).scenarios()  # type: ignore[arg-type]
    theta_star = scenario.context["traffic"]["theta_star"]
    at_star = expensive(scenario, theta_star)
    figures = {"count_rmse", "speed_rmse", "geh_share", "occupancy_rmse", "queue_rmse", "teleports", "collisions"}
    assert figures | {"residuals"} == set(at_star["user_attrs"])  # "flagged" only on a run with collisions or
    # mass teleports; residuals: the loss per observed cell (5 detectors × 4 intervals × 4 kinds at most)
    assert 0 < len(at_star["user_attrs"]["residuals"]) <= 5 * 4 * 4
    moved = expensive(scenario, {**theta_star, "speed_factor": theta_star["speed_factor"] - 0.12})
    assert 0 < at_star["value"] < moved["value"]
    fit = evaluate_sumo(scenario, theta_star)
    assert at_star["value"] == fit.loss and at_star["user_attrs"]["count_rmse"] == fit.count_rmse
    assert evaluate_sumo(scenario, theta_star, seed=scenario.context["traffic"]["observation_seed"]).loss < 1e-4
    assert 0 < mesoscopic(scenario, theta_star)["value"] < 2
    assert 0 < cheap(scenario, {"demand": 1.0, "free_speed": 0.9, "saturation_flow": 1800})["value"] < 2
    # the built files may be gone (another node, a cleaned disk): a trial rebuilds them
    for folder in tmp_path.iterdir():
        if folder.is_dir():
            (folder / "built.json").unlink()
    assert expensive(scenario, theta_star) == at_star


def test_bad_family_ranges_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside"):
        TrafficFamily(n_train=1, n_test=0, theta={"tau": [5.0, 6.0]}, workdir=tmp_path).specs()
    with pytest.raises(ConfigError, match=r"\[low, high\]"):
        TrafficFamily(n_train=1, n_test=0, theta={"tau": [1.0, 1.5, 2.0]}, workdir=tmp_path).specs()
    with pytest.raises(ConfigError, match="unknown traffic parameter"):
        TrafficFamily(n_train=1, n_test=0, theta={"gamma": [1.0, 2.0]}, workdir=tmp_path).specs()
    with pytest.raises(ConfigError, match=r"tau=0\.\d+ outside \[1\.0"):  # tau starts at the step length
        TrafficFamily(n_train=3, n_test=0, theta={"tau": [0.5, 0.9]}, workdir=tmp_path).specs()


def test_random_networks_differ_per_scenario(tmp_path: Path) -> None:
    family = TrafficFamily(n_train=2, n_test=1, network={"kind": "random", "size": 3}, workdir=tmp_path)
    assert len({spec.network.seed for *_, spec in family.specs()}) == 3


def test_first_test_index_keeps_the_held_out_set_when_the_training_set_changes(tmp_path: Path) -> None:
    def specs(n_train: int, first_test_index: int | None) -> dict[str, tuple[int, dict[str, object]]]:
        family = TrafficFamily(n_train=n_train, n_test=2, first_test_index=first_test_index, workdir=tmp_path)
        return {name: (seed, spec.to_dict()) for name, _, seed, spec in family.specs()}

    drawn = specs(5, None)  # held-out scenarios right after the training ones: members 5 and 6
    fewer, more = specs(3, 5), specs(5, 5)
    assert more == drawn
    assert {n: v for n, v in fewer.items() if n.startswith("test")} == {
        n: v for n, v in drawn.items() if n.startswith("test")
    }
    assert {n: v for n, v in fewer.items() if n.startswith("train")} == {
        n: v for n, v in drawn.items() if n in ("train-000", "train-001", "train-002")
    }
    assert specs(3, None)["test-000"] != drawn["test-000"]  # without it, a smaller training set moves them
    with pytest.raises(ConfigError, match="inside the 5 training"):
        specs(5, 4)


def test_observation_days_average_their_own_runs_and_count_as_offline_runs(tmp_path: Path) -> None:
    """Y over several days is the mean of one run per day, each on its own seed, cached apart from one day's Y;
    the training pair's offline cost counts every day; a one-day Y keeps the cache name it always had."""
    import hashlib

    from apps.traffic.scenario import build, observation_seeds
    from apps.traffic.simulator import mean_series, simulate

    one, three = (
        TrafficFamily(n_train=1, n_test=0, seed=5, workdir=tmp_path, progress=False, observation_days=d, **SMALL)  # type: ignore[arg-type]
        for d in (1, 3)
    )
    (single,), (averaged,) = one.scenarios(), three.scenarios()
    spec = three.specs()[0][3]
    assert spec.observation_days == 3 and len(set(observation_seeds(spec))) == 3
    built = build(spec, tmp_path)
    days = [simulate(built, spec, spec.theta_star, seed) for seed in observation_seeds(spec)]
    assert averaged.context["observed"] == mean_series(days).to_dict()
    assert single.context["observed"] == days[0].to_dict()  # day one is the one-day Y
    assert averaged.context["observed"]["counts"] != single.context["observed"]["counts"]
    assert (averaged.context["observation_runs"], single.context["observation_runs"]) == (3, 1)
    tag = json.dumps([dict(sorted(spec.theta_star.items())), spec.observation_seed], sort_keys=True)
    assert (built.folder / f"observed-{hashlib.sha1(tag.encode()).hexdigest()[:12]}.json").is_file()
    assert len(list(built.folder.glob("observed-*.json"))) == 2
    with pytest.raises(ConfigError, match="observation_days"):
        TrafficFamily(n_train=1, n_test=0, workdir=tmp_path, observation_days=0).specs()
