"""The training config under 2-process DDP (gloo) through core.train, and a tiny study of `kakehashi hpo optimize`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.train import load_run
from tests.apps.avsl.conftest import TINY_OVERRIDES, TRAIN, subprocess_env

_OUTSIDE = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS")


@pytest.mark.slow
def test_two_process_ddp_with_gloo(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    env = {k: v for k, v in subprocess_env().items() if k not in _OUTSIDE and not k.startswith("OMPI_")}
    command = [
        sys.executable,
        "-m",
        "core.cli",
        "avsl",
        "train",
        str(TRAIN),
        f"data_dir={tiny_data}",
        *TINY_OVERRIDES,
        "trainer.max_epochs=1",
        "datamodule.limit=16",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "--run-dir",
        str(run),
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "distributed_backend=gloo" in output and output.count("Initializing distributed: GLOBAL_RANK") == 2
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "history").exists()
    assert load_run(run, "last") is not None
    assert not (tmp_path / "runs").exists()  # the second rank used the first rank's run directory


@pytest.mark.slow
def test_a_tiny_study_over_avsl_train(tiny_data: Path, tmp_path: Path) -> None:
    from core.hpo import optimize

    config = TRAIN.with_name("hpo.yaml")
    overrides = [
        "n_trials=2",
        "params.epochs=1",
        f"params.data_dir={tiny_data}",
        "params.limit=8",
        "params.grid_h=4",
        "params.grid_w=8",
        "plots=false",
    ]
    result = optimize(config, overrides, run_dir=tmp_path / "study", progress=False)
    assert result.n_complete == 2
    for trial in result.study.trials:
        run = Path(trial.user_attrs.get("trial_dir", "")) if "trial_dir" in trial.user_attrs else None
        assert trial.value is not None and 0.0 <= trial.value <= 1.0
        if run is not None:
            assert json.loads((run / "metric.json").read_text())["value"] == pytest.approx(trial.value)
