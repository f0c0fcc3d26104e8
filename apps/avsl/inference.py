"""Inference with a trained run: the localization map, and each detected sounding object's class and direction.

Example:
    >>> from apps.avsl.model import AVSLNet
    >>> from apps.avsl.task import AVSLTask
    >>> localizer = Localizer(AVSLTask(AVSLNet(grid=(4, 8))).eval())
    >>> result = localizer(np.zeros((32, 64, 3), np.uint8), np.zeros((4, 5120), np.float32))
    >>> result.map.shape, result.class_maps.shape
    ((32, 64), (4, 32, 64))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.avsl.geometry import pixel_vectors, vector_to_direction
from apps.avsl.sounds import CLASSES

Array = np.ndarray[Any, Any]


@dataclass
class Detection:
    """A sounding object: its class, direction (degrees) and score (mean map value over its pixels)."""

    cls: int
    name: str
    azimuth: float
    elevation: float
    score: float
    area: float  # share of the frame


@dataclass
class Localization:
    map: Array  # (H, W) float32 in [0, 1]
    class_maps: Array  # (K, H, W)
    presence: Array  # (K,)
    detections: list[Detection] = field(default_factory=list)


def detections_of(class_maps: Array, presence: Array, threshold: float = 0.5) -> list[Detection]:
    """One detection per class that is present and wins some pixels above ``threshold``; its direction is the
    map-weighted mean of those pixels' unit vectors.

    >>> maps = np.zeros((2, 8, 16), np.float32); maps[1, 3:5, 11:13] = 0.9
    >>> d = detections_of(maps, np.array([0.1, 0.9]))[0]
    >>> d.name, round(d.azimuth), round(d.elevation)
    ('chirp', 90, 0)
    """
    k, h, w = class_maps.shape
    winner = class_maps.argmax(0)
    best = class_maps.max(0)
    vectors = pixel_vectors(h, w)
    found: list[Detection] = []
    for c in range(k):
        mask = (winner == c) & (best >= threshold)
        if presence[c] < 0.5 or not mask.any():
            continue
        weights = class_maps[c] * mask
        azimuth, elevation = vector_to_direction((vectors * weights[..., None]).sum((0, 1)))
        name = CLASSES[c] if c < len(CLASSES) else str(c)
        found.append(
            Detection(c, name, float(azimuth), float(elevation), float(class_maps[c][mask].mean()), float(mask.mean()))
        )
    return found


class Localizer:
    """Run a trained :class:`~apps.avsl.task.AVSLTask` on one frame and its audio window.

    Args:
        task: The task (``core.train.load_run(run_dir)``), in eval mode.
        threshold: Map value counted as sounding.
    """

    def __init__(self, task: Any, threshold: float = 0.5) -> None:
        self.task = task
        self.threshold = threshold

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", threshold: float = 0.5) -> Localizer:
        """Load a training run directory's checkpoint (``best``, ``last``, a file name or a path)."""
        from core.train import load_run

        return cls(load_run(run_dir, checkpoint), threshold)

    def __call__(self, frame: Array, audio: Array) -> Localization:
        """``frame`` ``(H, W, 3)`` uint8, ``audio`` ``(channels, samples)`` float32."""
        image = torch.as_tensor(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
        signal = torch.as_tensor(np.ascontiguousarray(audio, dtype=np.float32))[None]
        with torch.inference_mode():
            outputs = self.task(image, signal)
            class_maps = self.task.model.probabilities(outputs, tuple(image.shape[-2:]))[0].numpy()
            presence = torch.sigmoid(outputs["presence"][0]).numpy()
        return Localization(
            class_maps.max(0), class_maps, presence, detections_of(class_maps, presence, self.threshold)
        )


__all__ = ["Detection", "Localization", "Localizer", "detections_of"]
