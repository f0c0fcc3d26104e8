"""Shared fixtures: a small arena, a few recorded demonstrations and one short training run (module scope)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.robots.imitation.env import EnvConfig

CONFIG = Path(__file__).resolve().parents[4] / "apps" / "robots" / "imitation" / "config" / "imitation.yaml"
SMALL = ["env.max_steps=60", "env.n_boxes=3"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def small_env() -> EnvConfig:
    return EnvConfig(n_robots=3, n_boxes=3, max_steps=60)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three round-0 demonstrations and a 15-epoch MoE run on them."""
    from apps.robots.imitation.pipeline import record, train
    from core.config import load_config

    folder = tmp_path_factory.mktemp("imitation")
    demos = folder / "demos.h5"
    record(load_config(CONFIG, [*SMALL, "record.episodes=3", f"record.out={demos}"]))
    run = folder / "run"
    train(
        CONFIG,
        [
            *SMALL,
            f"datamodule.paths=['{demos}']",
            "datamodule.window=20",
            "trainer.max_epochs=15",
            "trainer.enable_progress_bar=false",
        ],
        run_dir=run,
    )
    return {"demos": demos, "run": run, "folder": folder}
