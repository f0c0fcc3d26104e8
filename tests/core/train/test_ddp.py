"""The shipped digits config under two-process DDP on CPU (gloo): started by Lightning, and by mpirun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.train import load_run
from tests.core.train.conftest import DIGITS
from tests.core.train.test_run import _accuracy

# the shipped config, 8 epochs instead of 20 to keep the suite quick
DDP = ["trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=8", "trainer.enable_progress_bar=false"]
_OUTSIDE_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTSIDE_VARIABLES and not k.startswith("OMPI_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _check_run(run: Path, output: str, cwd: Path) -> None:
    assert "Starting with 2 processes" in output and "distributed_backend=gloo" in output
    # one group of two: a launcher that was not understood makes each rank start its own pair (four lines)
    assert output.count("Initializing distributed: GLOBAL_RANK") == 2 and "MEMBER: 2/2" in output
    assert json.loads((run / "metric.json").read_text())["value"] > 0.9
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (run / "history").exists()  # only rank 0 wrote the config and provenance, once
    assert not (cwd / "runs").exists()  # rank 1 used rank 0's run directory too
    assert _accuracy(load_run(run)) >= 0.9


def test_two_processes_started_by_lightning(tmp_path: Path) -> None:
    run = tmp_path / "run"
    command = [sys.executable, "-m", "core.cli", "train", "fit", str(DIGITS), *DDP, "--run-dir", str(run)]
    done = subprocess.run(command, cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=400)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    _check_run(run, output, tmp_path)


@pytest.mark.mpi
def test_two_ranks_started_by_mpirun(tmp_path: Path) -> None:
    """OpenMPIEnvironment (no mpi4py): ranks, address and port from mpirun's variables."""
    if shutil.which("mpirun") is None:
        pytest.skip("OpenMPI's mpirun is not installed (Debian: openmpi-bin)")
    run = tmp_path / "run"
    env = {**_environment(), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    command = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none"]
    command += [sys.executable, "-m", "core.cli", "train", "fit", str(DIGITS), *DDP, "--run-dir", str(run)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    _check_run(run, output, tmp_path)
