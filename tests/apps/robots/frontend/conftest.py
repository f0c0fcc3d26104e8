"""Tiny simulated splits and a tiny trained run shared by the front-end tests (a few seconds to build)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyroomacoustics")

from apps.robots.frontend.simulate import ArraySpec, SplitSpec, write_split  # noqa: E402

TRAIN_YAML = "apps/robots/frontend/config/train.yaml"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("frontend-data")
    common = {"duration": 1.5, "rt60": (0.2, 0.3), "snr_db": (5.0, 10.0)}
    train = SplitSpec(n=6, seed=10, n_speakers=(1, 2), keep_clean=False, **common)  # type: ignore[arg-type]
    evaluation = SplitSpec(n=3, seed=11, n_speakers=(1, 1), keep_clean=True, **common)  # type: ignore[arg-type]
    return {
        "train": Path(write_split(str(folder / "train.h5"), train, ArraySpec())),
        "eval": Path(write_split(str(folder / "eval.h5"), evaluation, ArraySpec())),
    }


def tiny_overrides(train: Path, val: Path) -> list[str]:
    return [
        f"datamodule.train={train}",
        f"datamodule.val={val}",
        "datamodule.batch_size=3",
        "datamodule.crop_seconds=1.0",
        "task.model.hidden=16",
        "trainer.max_epochs=1",
        "trainer.max_time=null",
        "trainer.enable_progress_bar=false",
        "callbacks.progress=null",
    ]


@pytest.fixture(scope="session")
def tiny_run(tiny_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.train import fit

    run_dir = tmp_path_factory.mktemp("frontend-run")
    fit(TRAIN_YAML, tiny_overrides(tiny_data["train"], tiny_data["eval"]), run_dir=run_dir)
    return run_dir
