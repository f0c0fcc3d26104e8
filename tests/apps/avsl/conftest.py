"""Shared fixtures: tiny 32×64 scene splits and one short training run on them (the tests' model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps.avsl.scene import SceneConfig, write_split

TINY = SceneConfig(height=32, width=64, radius=(20.0, 28.0), min_separation=60.0)
TRAIN = Path(__file__).parents[3] / "apps" / "avsl" / "config" / "train.yaml"
# the tiny frames have an 8 × 16 embedding grid; the audio's direction grid is 4 × 8
TINY_OVERRIDES = [
    "task.model.grid=[4,8]",
    "task.model.width=16",
    "trainer.enable_progress_bar=false",
    "callbacks.budget.minutes=60",
    "datamodule.batch_size=8",
    "datamodule.cache_bytes=64000000",
]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("avsl-data")
    for name, seed, n in [("train", 1, 48), ("val", 2, 16), ("test", 3, 16), ("hand", 4, 8), ("unlabelled", 5, 12)]:
        write_split(folder / f"{name}.h5", TINY, seed, n)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from core.train import fit

    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("avsl-run") / "run"
    fit(TRAIN, [f"data_dir={tiny_data}", "trainer.max_epochs=3", *TINY_OVERRIDES], run_dir=run)
    return run


def subprocess_env() -> dict[str, str]:
    """This environment with one thread per process and the checkout on the path."""
    root = str(Path(__file__).parents[3])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
