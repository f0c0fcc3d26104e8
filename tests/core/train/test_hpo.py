"""HPO over `train fit` is a config: the study's values are what SaveMetric wrote for each training run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from core.config import package_dir


def _optimize() -> object:
    try:
        from core.hpo import optimize
    except ImportError as exc:
        pytest.skip(f"core.hpo does not provide optimize yet ({exc})")
    return optimize


def test_a_study_over_train_fit(tmp_path: Path) -> None:
    optimize = _optimize()
    config = package_dir("core.train.config") / "digits_hpo.yaml"
    result = optimize(  # type: ignore[operator]
        config, ["n_trials=2", "n_max_jobs=1", "params.epochs=3", "plots=false"], run_dir=tmp_path, progress=False
    )
    trials = result.study.trials
    assert result.n_complete == 2 and len(trials) == 2
    configs = [(yaml.safe_load(p.read_text()), p.parent) for p in tmp_path.rglob("merged_config.yaml")]
    trained = {float(c["task"]["optimizer"]["lr"]): run for c, run in configs if "task" in c}  # not the study's
    assert len(trained) == 2, "each trial trained in its own run directory"
    for trial in trials:
        run = trained[trial.params["lr"]]  # the command passes repr(lr), which reads back exactly
        with (run / "logs" / "version_0" / "metrics.csv").open() as f:
            logged = [(int(r["epoch"]), float(r["val/acc"])) for r in csv.DictReader(f) if r["val/acc"]]
        assert trial.value == pytest.approx(max(v for _, v in logged))  # SaveMetric mode: max
        assert trial.intermediate_values == pytest.approx(dict(logged))  # the report file fed the pruner
