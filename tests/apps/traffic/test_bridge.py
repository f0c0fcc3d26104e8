"""A tiny real model bridge over SUMO (core.bridge's pipeline through ``kakehashi traffic bridge``), and the
command form of a trial."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main

pytestmark = pytest.mark.sumo

DEMO = "apps/traffic/config/demo.yaml"
TINY = [
    "scenarios.n_train=4", "scenarios.n_test=1", "scenarios.network.size=3", "scenarios.network.length=150",
    "scenarios.demand.vehicles_per_hour=[900,1300]", "scenarios.demand.n_routes=8", "scenarios.demand.duration=1200",
    "scenarios.detectors.count=5", "+scenarios.progress=false",
    "models.cheap.n_trials=10", "models.expensive.n_trials=4", "models.expensive.sampler.n_startup_trials=4",
    "evaluate.refine=1", "fit.models=[ridge]",
]  # fmt: skip


def test_traffic_bridge_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from apps.traffic.objective import discrepancy, unpack_scenario
    from apps.traffic.simulator import simulate
    from core.bridge.scenario import Scenario

    workspace = tmp_path / "bridge"
    assert main(["traffic", "bridge", DEMO, *TINY, f"workspace={workspace}"]) == 0
    out = capsys.readouterr().out
    assert "traffic bridge: 1 held-out" in out and f"report: {workspace / 'report' / 'report.md'}" in out

    with (workspace / "evaluation.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    for column in ("bridge.count_rmse", "direct.count_rmse", "refine.count_rmse", "bridge.geh_share"):
        assert float(row[column]) >= 0, column
    assert int(float(row["direct_expensive_runs"])) == 4
    # independent check of the plumbing: SUMO at the predicted θ, scored here, is the bridge's column
    scenario = Scenario.load(workspace / "scenarios" / f"{row['scenario']}.json")
    spec, built, observed = unpack_scenario(scenario)
    predicted = {k.removeprefix("pred."): float(v) for k, v in row.items() if k.startswith("pred.")}
    assert set(predicted) == {"demand_scale", "speed_factor", "tau"}
    fit = discrepancy(observed, simulate(built, spec, predicted, spec.calibration_seed))
    assert fit.count_rmse == pytest.approx(float(row["bridge.count_rmse"]), rel=1e-9)
    assert float(row["refine.count_rmse"]) <= float(row["bridge.count_rmse"]) or float(row["refine_value"]) <= float(
        row["bridge_value"]
    )

    figures = json.loads((workspace / "report" / "traffic.json").read_text())
    assert figures["n_test_scenarios"] == 1
    assert figures["count_rmse_bridge"] == pytest.approx(float(row["bridge.count_rmse"]))
    assert figures["rmse_ratio_bridge_vs_direct"] == pytest.approx(
        float(row["bridge.count_rmse"]) / float(row["direct.count_rmse"])
    )
    assert figures["count_rmse_noise_floor"] > 0 and figures["speedup_wall"] > 0
    assert (workspace / "report" / "traffic_counts.png").stat().st_size > 1000
    assert (workspace / "report" / "quality_vs_cost.png").is_file()

    # a second run resumes: every stage is skipped, the figures are read back
    assert main(["traffic", "bridge", DEMO, *TINY, f"workspace={workspace}"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_trial_command_matches_the_objective(tmp_path: Path) -> None:
    from apps.traffic.family import TrafficFamily
    from apps.traffic.objective import cheap, expensive

    family = TrafficFamily(
        n_train=1, n_test=0, seed=5, workdir=tmp_path, progress=False, network={"size": 3, "length": 150.0},
        demand={"vehicles_per_hour": 1000, "n_routes": 6, "duration": 900}, detectors={"count": 4},
    )  # fmt: skip
    (scenario,) = family.scenarios()
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(scenario.to_json())
    theta = {"demand_scale": 0.9, "speed_factor": 1.05, "tau": 1.4}
    out = tmp_path / "result.json"
    argv = [sys.executable, "-m", "apps.traffic.trial", str(scenario_file), "--out", str(out)]
    subprocess.run([*argv, *(f"{k}={v}" for k, v in theta.items())], check=True, capture_output=True)
    assert json.loads(out.read_text()) == expensive(scenario, theta)
    # without name=value arguments it reads the runner's KAKEHASHI_PARAMS
    xi = {"demand": 1.1, "free_speed": 0.9, "saturation_flow": 1500.0}
    env = {"KAKEHASHI_PARAMS": json.dumps(xi), "PATH": "/usr/bin:/bin"}
    subprocess.run([*argv, "--model", "cheap"], check=True, capture_output=True, env=env)
    assert json.loads(out.read_text()) == cheap(scenario, xi)
    bad = subprocess.run([*argv, "tau"], capture_output=True, text=True)
    assert bad.returncode == 2 and "name=value" in bad.stderr.splitlines()[-1]
