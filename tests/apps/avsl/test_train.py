"""Training through core.train: a short run lowers the loss; eval, infer, merge and resume work on its run
directory; user mistakes are one `error:` line with exit 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from apps.avsl.data import AVSLDataset
from apps.avsl.inference import Localizer
from core.train import fit, load_run
from tests.apps.avsl.conftest import TINY_OVERRIDES, TRAIN, subprocess_env


def _fixed_batch_loss(task: torch.nn.Module, path: Path) -> float:
    dataset = AVSLDataset(path, limit=16)
    batch = {k: torch.stack([dataset[i][k] for i in range(len(dataset))]) for k in dataset[0]}
    task.eval()
    with torch.inference_mode():
        return float(task.losses(task(batch["image"], batch["audio"]), batch)["loss"])


def test_a_short_run_lowers_the_loss(tiny_run: Path, tiny_data: Path) -> None:
    from core.config import instantiate
    from core.train import load_run_config

    trained = load_run(tiny_run)
    torch.manual_seed(0)
    untrained = instantiate(load_run_config(tiny_run).task)  # the same config, fresh weights
    before = _fixed_batch_loss(untrained, tiny_data / "train.h5")
    after = _fixed_batch_loss(trained, tiny_data / "train.h5")
    assert after < 0.85 * before, (before, after)
    with (tiny_run / "logs" / "version_0" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/loss")]
    assert len(rows) == 3 and float(rows[-1]["val/loss"]) < float(rows[0]["val/loss"])
    for name in ("merged_config.yaml", "provenance.json", "metric.json", "checkpoints/last.ckpt"):
        assert (tiny_run / name).is_file(), name


def test_resume_continues_the_run(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [f"data_dir={tiny_data}", "datamodule.limit=8", *TINY_OVERRIDES]
    fit(TRAIN, [*overrides, "trainer.max_epochs=1"], run_dir=run)
    result = fit(TRAIN, [*overrides, "trainer.max_epochs=2"], run_dir=run, resume="last")
    assert torch.load(result.last_checkpoint, weights_only=False)["epoch"] == 1
    assert (run / "history" / "0" / "merged_config.yaml").is_file()


def _kakehashi(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "core.cli", "avsl", *args]
    return subprocess.run(command, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=580)


def test_eval_infer_and_bad_input_on_the_command_line(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    done = _kakehashi("eval", str(tiny_run), "--limit", "8", "--overlays", "2", "--merge-top-k", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tiny_run / "results" / "avsl-eval-merged-top1.json").read_text())
    for key in ("ciou_success", "auc", "ciou_success_center_prior", "ciou_success_shuffled_audio"):
        assert 0.0 <= result["figures"][key] <= 1.0
    assert len(list((tiny_run / "overlays").glob("*.png"))) == 2

    out = tmp_path / "infer"
    done = _kakehashi(
        "infer", str(tiny_run), str(tiny_data / "test.h5"), "--out", str(out), "--indices", "0", "3", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.load(out / "map-00003.npy").shape == (32, 64)
    assert [r["index"] for r in json.loads((out / "detections.json").read_text())] == [0, 3]

    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"\x89HDF not really")
    for args, fragment in [
        (("infer", str(tiny_run), str(bogus), "--out", str(out)), "not a scene file"),
        (("eval", str(tiny_run), "--ckpt", "missing.ckpt"), "missing.ckpt"),
        (("eval", str(tmp_path / "no-run")), "not a run directory"),
        (("train", str(TRAIN), "trainer.max_epoch=1"), "max_epoch"),
        (("make-data", str(TRAIN.with_name("data.yaml")), "scene.heigth=32"), "heigth"),
    ]:
        done = _kakehashi(*args, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), (args, done.stderr[-2000:])
        assert fragment in lines[0] and "Traceback" not in done.stderr


def test_localizer_gives_directions_of_what_it_detects(tiny_run: Path, tiny_data: Path) -> None:
    localizer = Localizer.from_run(tiny_run)
    sample = AVSLDataset(tiny_data / "test.h5")[0]
    result = localizer(sample["image"].permute(1, 2, 0).numpy(), sample["audio"].numpy())
    assert result.map.shape == (32, 64) and 0.0 <= result.map.min() <= result.map.max() <= 1.0
    for detection in result.detections:
        assert -180.0 <= detection.azimuth <= 180.0 and -90.0 <= detection.elevation <= 90.0
