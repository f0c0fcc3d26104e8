"""A tiny make-data split set and tiny SED / QA runs, shared by the tests that need trained runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.config import load_config, package_dir

torch.set_num_threads(1)  # tiny models: threads only contend on a shared machine

CONFIG = package_dir("apps.audioqa.config")
QUIET = ["trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from apps.audioqa.data import make_data

    out = tmp_path_factory.mktemp("audioqa") / "data"
    cfg = load_config(
        CONFIG / "data.yaml",
        [
            f"out_dir={out}",
            "splits.train.n_clips=40",
            "splits.val.n_clips=12",
            "splits.test.n_clips=12",
            "num_workers=1",
            "examples=1",
        ],
    )
    make_data(cfg)
    return out


@pytest.fixture(scope="session")
def tiny_sed(tiny_data: Path) -> Path:
    from core.train import fit

    run = tiny_data.parent / "sed"
    cfg = load_config(
        CONFIG / "sed.yaml",
        [*QUIET, f"data_dir={tiny_data}", "trainer.max_epochs=4", "datamodule.batch_size=8",
         "task.model.d_model=32", "task.model.dim_feedforward=64", "task.optimizer.lr=3e-3"],
    )  # fmt: skip
    fit(cfg, run_dir=run)
    return run


@pytest.fixture(scope="session")
def tiny_qa(tiny_data: Path, tiny_sed: Path) -> Path:
    from core.train import fit

    run = tiny_data.parent / "qa"
    cfg = load_config(
        CONFIG / "qa.yaml",
        [*QUIET, f"data_dir={tiny_data}", f"sed_run={tiny_sed}", "trainer.max_epochs=4", "task.d_model=32",
         "task.n_layers=1", "task.dim_feedforward=64", "datamodule.batch_size=16", "task.optimizer.lr=3e-3"],
    )  # fmt: skip
    fit(cfg, run_dir=run)
    return run
