"""One real training run of the digits example, shared by the tests that inspect a finished run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from core.config import load_config, package_dir

torch.set_num_threads(1)  # tiny models: threads only contend on a shared machine

DIGITS = package_dir("core.train.config") / "digits.yaml"
QUIET = ["trainer.enable_progress_bar=false"]


def digits_config(overrides: Sequence[str] = ()) -> object:
    return load_config(DIGITS, [*QUIET, *overrides])


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train fit`` of core/train/config/digits.yaml as shipped (20 epochs, top 3 kept), with a report file."""
    from core.train import fit

    run = tmp_path_factory.mktemp("digits") / "run"
    cfg = load_config(DIGITS, [*QUIET, f"callbacks.metric.report_path={run / 'report.jsonl'}"])
    result = fit(cfg, run_dir=run)
    assert result.run_dir == run
    return run
