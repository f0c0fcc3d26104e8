"""The figures of a trained run on a held-out split, beside the baselines that could win without sound.

- the model (``ciou_success``, ``auc``, ``silent_false_positive_area``, ``two_source_ari``, ``class_accuracy``);
- the same model with each scene's audio taken from another scene (``ciou_success_shuffled_audio``);
- a centre prior: a cap at the image centre covering the training split's mean sounding area
  (``ciou_success_center_prior``).

Per-scene cIoU values come back too, so that two models can be compared on the same scenes (paired intervals).

Example:
    >>> evaluate_run("runs/avsl", "data/avsl/test.h5")                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.avsl.data import AVSLDataset
from apps.avsl.metrics import bootstrap_interval, center_prior_map, scene_metrics, summarize

logger = logging.getLogger(__name__)


def predict_maps(task: Any, dataset: AVSLDataset, batch_size: int = 16) -> list[tuple[np.ndarray, Any]]:
    """Class maps ``(K, H, W)`` and the sample of every item of ``dataset``."""
    out = []
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        for batch in loader:
            maps = task.predict_maps(batch["image"], batch["audio"]).numpy()
            for i in range(maps.shape[0]):
                out.append((maps[i], {key: value[i] for key, value in batch.items()}))
    return out


def _scene(maps: np.ndarray, sample: dict[str, Any], threshold: float) -> dict[str, Any]:
    return scene_metrics(maps, sample["labels"].numpy(), sample["cls"].numpy(), sample["sounding"].numpy(), threshold)


def choose_threshold(
    run_dir: str | Path,
    scenes: str | Path,
    checkpoint: str = "best",
    candidates: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98),
    limit: int | None = None,
) -> tuple[float, dict[float, float]]:
    """The map threshold with the best cIoU success on a **validation** split (never the test split), and the
    success of every candidate."""
    from core.train import load_run

    task = load_run(run_dir, checkpoint)
    model = predict_maps(task, AVSLDataset(scenes, limit=limit))
    success = {t: summarize([_scene(maps, sample, t) for maps, sample in model])["ciou_success"] for t in candidates}
    return max(success, key=lambda t: (success[t], -abs(t - 0.5))), success


def mean_sounding_area(path: str | Path, limit: int = 200) -> float:
    """Mean share of the frame covered by sounding objects over the first ``limit`` scenes of a split."""
    dataset = AVSLDataset(path, limit=limit)
    areas = []
    for i in range(len(dataset)):
        scene = dataset.scene(i)
        ids = [j + 1 for j in range(len(scene["cls"])) if scene["cls"][j] >= 0 and scene["sounding"][j]]
        if ids:
            areas.append(float(np.isin(scene["labels"], ids).mean()))
    return float(np.mean(areas)) if areas else 0.0


def evaluate_run(
    run_dir: str | Path,
    scenes: str | Path,
    checkpoint: str = "best",
    train_split: str | Path | None = None,
    threshold: float = 0.5,
    limit: int | None = None,
    overlays: str | Path | None = None,
    n_overlays: int = 8,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a run (see the module docstring); returns ``{"figures": {...}, "per_scene": {...}}``.

    Args:
        run_dir: A training run (``kakehashi avsl train``).
        scenes: The held-out scene file.
        checkpoint: ``best``, ``last``, ``merged-top3.ckpt`` (``kakehashi train merge``) or a path.
        train_split: Where the centre prior's area comes from (default: the run's ``datamodule.train``).
        overlays: Write PNG overlays of the first ``n_overlays`` scenes here.
    """
    from core.train import load_run, load_run_config

    task = load_run(run_dir, checkpoint)
    say = progress or (lambda _: None)
    say("model")
    model = predict_maps(task, AVSLDataset(scenes, limit=limit))
    per_model = [_scene(maps, sample, threshold) for maps, sample in model]
    say("shuffled audio")
    shuffled = predict_maps(task, AVSLDataset(scenes, limit=limit, shuffle_audio_seed=0))
    per_shuffled = [_scene(maps, sample, threshold) for maps, sample in shuffled]
    if train_split is None:
        train = load_run_config(run_dir).datamodule.get("train")
        train_split = train if isinstance(train, str) else next(iter(train))
    area = mean_sounding_area(train_split)
    h, w = model[0][0].shape[-2:]
    prior = center_prior_map(h, w, area)
    per_prior = [_scene(prior[None], sample, threshold) for _, sample in model]

    figures = summarize(per_model)
    figures["ciou_success_shuffled_audio"] = summarize(per_shuffled)["ciou_success"]
    figures["auc_shuffled_audio"] = summarize(per_shuffled)["auc"]
    figures["ciou_success_center_prior"] = summarize(per_prior)["ciou_success"]
    figures["auc_center_prior"] = summarize(per_prior)["auc"]
    success = [float(m["ciou"] >= 0.5) for m in per_model if m["n_sounding"] > 0]
    low, high = bootstrap_interval(success)
    figures["ciou_success_ci95_low"], figures["ciou_success_ci95_high"] = low, high
    paired = [
        float(a["ciou"] >= 0.5) - float(b["ciou"] >= 0.5)
        for a, b in zip(per_model, per_shuffled, strict=True)
        if a["n_sounding"] > 0
    ]
    low, high = bootstrap_interval(paired)
    figures["shuffled_gap_ci95_low"], figures["shuffled_gap_ci95_high"] = low, high
    figures["prior_area"] = area
    figures["threshold"] = threshold
    if overlays is not None:
        from apps.avsl.overlay import save_overlay

        for i, (maps, sample) in enumerate(model[:n_overlays]):
            present = [int(k) for k in np.nonzero(maps.reshape(maps.shape[0], -1).max(1) >= threshold)[0]]
            save_overlay(Path(overlays) / f"scene-{i:04d}.png", sample["image"].numpy(), maps.max(0), present)
    return {
        "figures": figures,
        "per_scene": {
            "ciou": [m["ciou"] for m in per_model],
            "n_sounding": [m["n_sounding"] for m in per_model],
            "ciou_shuffled_audio": [m["ciou"] for m in per_shuffled],
        },
    }


__all__ = ["choose_threshold", "evaluate_run", "mean_sounding_area", "predict_maps"]
