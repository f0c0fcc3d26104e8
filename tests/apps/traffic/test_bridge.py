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
    "scenarios.n_train=4", "scenarios.n_test=2", "scenarios.demand.vehicles_per_hour=[800,1100]",
    "scenarios.demand.duration=600", "scenarios.detectors.count=5", "+scenarios.progress=false",
    "models.cheap.n_trials=10", "models.expensive.n_trials=4", "models.expensive.sampler.n_startup_trials=4",
    "evaluate.refine=2", "fit.models=[ridge]", "score.fresh_seeds=2", "evaluate.direct_gauss_newton=4",
]  # fmt: skip


def test_traffic_bridge_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.traffic.objective import discrepancy, unpack_scenario
    from apps.traffic.scoring import BASELINES
    from apps.traffic.simulator import simulate
    from core.bridge.scenario import Scenario

    workspace = tmp_path / "bridge"
    assert main(["traffic", "bridge", DEMO, *TINY, f"workspace={workspace}"]) == 0
    out = capsys.readouterr().out
    assert "2 held-out scenarios" in out and "noise floor" in out and "pay off" in out
    figures = json.loads((workspace / "report" / "traffic.json").read_text())
    assert figures["n_test_scenarios"] == 2 and figures["n_fresh_seeds"] == 2
    # known targets (the default): no training calibration; the offline cost is the 4 runs that simulated the
    # training observations and, with the grid's pooled refine, its 8 Jacobian runs per training scenario; the
    # table says so
    assert figures["fit_targets"] == "known" and figures["offline_sumo_runs"] == 4 + 4 * 8
    assert 0 < figures["offline_wall_s"] < 600
    from apps.traffic.bridge import table_rows

    offline = (
        "offline: SUMO runs (the runs that simulated the training observations and the refine's Jacobian runs (32))"
    )
    assert (offline, "36") in table_rows(figures)
    assert figures["best_baseline"] in BASELINES
    assert figures["bridge_minus_best_baseline_ci_low"] <= figures["bridge_minus_best_baseline_ci_high"]
    assert 0 < figures["refine_over_direct_loss_ci_low"] <= figures["refine_over_direct_loss_ci_high"]
    assert "the same, 95% interval over the held-out scenarios" in out
    # the second reference: Gauss–Newton rounds from the centre, 4 SUMO runs, scored on the same fresh seeds
    assert figures["sumo_runs_per_new_scenario_direct_gauss_newton"] == 4 and "direct Gauss–Newton" in out
    assert figures["loss_direct_gauss_newton"] > 0

    with (workspace / "evaluation.csv").open() as handle:
        rows = {r["scenario"]: r for r in csv.DictReader(handle)}
    name = sorted(rows)[0]
    scores = json.loads((workspace / "report" / "scores" / f"{name}.json").read_text())
    scenario = Scenario.load(workspace / "scenarios" / f"{name}.json")
    spec, built, observed = unpack_scenario(scenario)
    # fresh seeds: neither the observations' nor the calibration's
    assert not {spec.observation_seed, spec.calibration_seed} & set(scores["seeds"])
    # independent check of the plumbing: SUMO at the predicted θ on the fresh seeds, scored here
    predicted = {k.removeprefix("pred."): float(v) for k, v in rows[name].items() if k.startswith("pred.")}
    assert scores["theta"]["bridge"] == pytest.approx(predicted)
    here = [discrepancy(observed, simulate(built, spec, predicted, seed)).loss for seed in scores["seeds"]]
    assert scores["methods"]["bridge"]["loss"] == pytest.approx(sum(here) / len(here), rel=1e-9)
    # the noise floor is θ* itself, on the same seeds, and its parameter error is 0
    assert scores["theta"]["theta_star"] == pytest.approx(dict(spec.theta_star))
    assert scores["methods"]["theta_star"]["param_error"] == 0.0
    for image in ("traffic_loss.png", "traffic_theta.png", "quality_vs_cost.png"):
        assert (workspace / "report" / image).stat().st_size > 1000, image

    # one storage holds every study of the bridge, by scenario and role
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(workspace / "studies.journal")))
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    assert {f"{name}/cheap", f"{name}/expensive", f"{name}/bridge", "train-003/cheap"} <= names
    assert {f"{name}/refine-1", f"{name}/refine-2", "train-003/jacobian"} <= names  # the pooled refine's runs
    assert "train-003/expensive" not in names
    with (workspace / "pairs.csv").open() as handle:
        train = [r for r in csv.DictReader(handle) if r["split"] == "train"]
    for r in train:  # h's targets: the θ* each training scenario was simulated with
        star = Scenario.load(workspace / "scenarios" / f"{r['scenario']}.json").context["traffic"]["theta_star"]
        assert {n: float(r[f"theta.{n}"]) for n in star} == pytest.approx(star)

    # a second run resumes: every stage is skipped, the figures are read back
    assert main(["traffic", "bridge", DEMO, *TINY, f"workspace={workspace}"]) == 0
    assert "skipped" in capsys.readouterr().err

    # h refitted (another anchor, calibrated targets: each training scenario's 4-run study, its best run): the check
    # runs move to the new predictions, and scoring simulates only θ that changed (θ* and direct HPO's are read
    # back from the cached scores)
    import apps.traffic.simulator as simulator
    from apps.traffic.bridge import run_bridge
    from core.config import load_config

    simulated: list[dict[str, float]] = []
    original = simulator.simulate

    def counting(built, spec, theta, seed, **kwargs):  # type: ignore[no-untyped-def]
        simulated.append(dict(theta))
        return original(built, spec, theta, seed, **kwargs)

    calibrated = ["fit.targets=calibrated", "fit.target_top_k=1", "evaluate.refine_order=curvature"]
    cfg = load_config(DEMO, [*TINY, f"workspace={workspace}", "fit.prior=none", *calibrated])
    monkeypatch.setattr(simulator, "simulate", counting)
    figures = run_bridge(cfg, log=lambda _: None, progress=False, redo_from="prepare")
    with (workspace / "evaluation.csv").open() as handle:
        row = {r["scenario"]: r for r in csv.DictReader(handle)}[name]
    rescored = json.loads((workspace / "report" / "scores" / f"{name}.json").read_text())
    predicted = {k.removeprefix("pred."): float(v) for k, v in row.items() if k.startswith("pred.")}
    assert rescored["theta"]["bridge"] == pytest.approx(predicted)
    assert rescored["methods"]["theta_star"] == scores["methods"]["theta_star"]
    assert dict(spec.theta_star) not in simulated and rescored["theta"]["direct"] not in simulated
    assert json.loads((workspace / "model" / "card.json").read_text())["prior"] is None
    assert figures["n_test_scenarios"] == 2
    assert figures["fit_targets"] == "calibrated" and figures["offline_sumo_runs"] == 16 + 32  # 4 studies of 4 runs

    # refine_order: curvature reads the training studies, which known targets never run: one error line
    from core.errors import ConfigError

    cfg = load_config(DEMO, [*TINY, f"workspace={workspace}", "evaluate.refine_order=curvature"])
    with pytest.raises(ConfigError, match="there are none"):
        run_bridge(cfg, log=lambda _: None, progress=False, redo_from="prepare")


def test_a_search_space_with_tau_below_the_step_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["traffic", "bridge", DEMO, *TINY, f"workspace={tmp_path}", "models.expensive.params.tau=[0.5,2.0]"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "below SUMO's step length" in err[0] and "models.expensive.params.tau" in err[0]


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
