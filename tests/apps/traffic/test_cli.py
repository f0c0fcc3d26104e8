"""``kakehashi traffic scenario | calibrate`` end to end on a tiny scenario, resumable, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main

pytestmark = pytest.mark.sumo

TINY = [
    "network.size=3", "network.length=150", "scenario.demand.vehicles_per_hour=1200", "scenario.demand.n_routes=8",
    "scenario.demand.duration=1200", "scenario.detectors.count=5",
]  # fmt: skip
CALIBRATE = "apps/traffic/config/calibrate.yaml"


def _tiny(tmp_path: Path) -> list[str]:
    return [*(f"scenario.{o}" if o.startswith("network") else o for o in TINY),
            f"workdir={tmp_path / 'scenarios'}", f"run_dir={tmp_path / 'run'}"]  # fmt: skip


def test_scenario_builds_observes_and_reports_the_noise_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["traffic", "scenario", "apps/traffic/config/scenario.yaml", *_tiny(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "noise floor" in out and "observations Y" in out
    floor = json.loads((tmp_path / "run" / "noise_floor.json").read_text())
    assert floor["count_rmse"] > 0 and 0 <= floor["geh_share"] <= 1
    assert (tmp_path / "run" / "merged_config.yaml").is_file()
    assert len(json.loads((tmp_path / "run" / "observed.json").read_text())["detectors"]) == 5


def test_calibrate_runs_trials_on_the_hpo_runner_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["traffic", "calibrate", CALIBRATE, *_tiny(tmp_path), "n_jobs=2", "sampler.n_startup_trials=4"]
    assert main([*args, "n_trials=4"]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["n_complete"] == 4 and set(result["best_params"]) == {"demand_scale", "speed_factor", "tau"}
    assert result["noise_floor"]["count_rmse"] > 0 and set(result["parameter_error"]) == set(result["best_params"])
    assert (tmp_path / "run" / "calibration.png").stat().st_size > 1000
    assert main([*args, "n_trials=6"]) == 0  # resumes: 2 more trials, not 6
    again = json.loads((tmp_path / "run" / "result.json").read_text())
    assert again["n_complete"] == 6 and again["best_loss"] <= result["best_loss"]
    # the study is the HPO runner's: its SQLite storage, with each trial's fit as user attributes
    import optuna

    study = optuna.load_study(study_name="traffic-expensive", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    best = study.best_trial
    assert len(study.trials) == 6 and best.value == again["best_loss"]
    assert {k: best.user_attrs[k] for k in ("count_rmse", "speed_rmse", "geh_share")} == {
        k: again["best_fit"][k] for k in ("count_rmse", "speed_rmse", "geh_share")
    }
    assert (tmp_path / "run" / "hpo" / "trials.csv").is_file()
    assert "calibration of" in capsys.readouterr().out


def test_calibrate_the_cheap_model(tmp_path: Path) -> None:
    assert main(["traffic", "calibrate", CALIBRATE, *_tiny(tmp_path), "model=cheap", "n_trials=12", "n_jobs=1"]) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["n_complete"] == 12 and set(result["best_params"]) == {"demand", "free_speed", "saturation_flow"}
    assert result["convergence"][-1] <= result["convergence"][0]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+spaces.expensive.gamma=[0,1]", "unknown expensive parameter 'gamma'"),
        ("scenario.network.kind=hexagon", "unknown network kind"),
        ("model=quantum", "unknown model 'quantum'"),
        ("params=[1]", "must be a mapping, not a list (params)"),
        ("spaces.expensive.tau=[2,1]", "empty range [2.0, 1.0] (params.tau)"),
    ],
)
def test_mistakes_are_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    assert main(["traffic", "calibrate", CALIBRATE, *_tiny(tmp_path), override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "run").exists()  # a refused config leaves no run directory behind
