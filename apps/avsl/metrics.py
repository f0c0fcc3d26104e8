"""Localization metrics of the literature (LVS, EZ-VSL), on numpy arrays.

- cIoU of a binary prediction ``P`` against the sounding-object mask ``G``: ``Σ(P∧G) / (ΣG + Σ(P∧¬G))``;
  ``ciou_success`` is the share of scenes with cIoU ≥ 0.5 and ``auc`` the area under the success-rate curve
  over cIoU thresholds 0, 0.05, …, 1 (trapezoid rule);
- ``silent_false_positive_area``: on scenes whose objects are all silent, the share of pixels predicted sounding;
- ``two_source_ari``: on two-source scenes, the adjusted Rand index between the per-pixel labels "background /
  source of class k" predicted (argmax of the class maps where the map passes the threshold) and true;
- ``class_accuracy``: of the sounding objects detected (half their pixels predicted), the share whose class
  (the class map with the most mass on the object) is right.

Example:
    >>> labels = np.zeros((8, 8), np.uint8); labels[2:4, 2:4] = 1; labels[5:7, 5:7] = 2
    >>> maps = np.zeros((4, 8, 8)); maps[1, 2:4, 2:4] = 0.9
    >>> m = scene_metrics(maps, labels, np.array([1, 1]), np.array([True, False]))
    >>> m["ciou"], m["detected"], m["correct"]
    (1.0, 1, 1)
    >>> summarize([m])["ciou_success"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from apps.avsl.geometry import direction_to_vector, pixel_vectors

Array = np.ndarray[Any, Any]
CIOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def ciou(prediction: Array, truth: Array) -> float:
    """``Σ(P∧G) / (ΣG + Σ(P∧¬G))`` of boolean maps (1 when both are empty).

    >>> ciou(np.array([True, True, False]), np.array([True, False, False]))
    0.5
    """
    p, g = np.asarray(prediction, bool), np.asarray(truth, bool)
    denominator = g.sum() + (p & ~g).sum()
    return float((p & g).sum() / denominator) if denominator else 1.0


def success_auc(cious: Sequence[float]) -> tuple[float, float]:
    """Success rate at cIoU ≥ 0.5 and the AUC of the success curve over thresholds 0..1.

    >>> success_auc([1.0, 0.0])
    (0.5, 0.5125)
    """
    values = np.asarray(cious, dtype=np.float64)
    if not values.size:
        return float("nan"), float("nan")
    curve = [(values >= t).mean() for t in CIOU_THRESHOLDS]
    return float((values >= 0.5).mean()), float(np.trapezoid(curve, CIOU_THRESHOLDS))


def scene_metrics(maps: Array, labels: Array, cls: Array, sounding: Array, threshold: float = 0.5) -> dict[str, Any]:
    """One scene's figures from its class maps ``(K, H, W)`` in [0, 1] and its ground truth.

    Args:
        maps: Per-class maps; the scene's map is their maximum.
        labels: ``(H, W)``: 0 background, ``i + 1`` object ``i``.
        cls, sounding: Per object (padding with ``cls < 0`` is ignored).
        threshold: Map value counted as sounding.
    """
    maps = np.asarray(maps)
    labels = np.asarray(labels)
    objects = [i for i in range(len(cls)) if int(cls[i]) >= 0]
    sounding_ids = [i for i in objects if bool(sounding[i])]
    truth = np.isin(labels, [i + 1 for i in sounding_ids])
    best = maps.max(0)
    prediction = best >= threshold
    out: dict[str, Any] = {
        "n_sounding": len(sounding_ids),
        "ciou": ciou(prediction, truth),
        "positive_area": float(prediction.mean()),
        "detected": 0,
        "correct": 0,
    }
    for i in sounding_ids:
        pixels = labels == i + 1
        if pixels.any() and prediction[pixels].mean() >= 0.5:
            out["detected"] += 1
            out["correct"] += int(int(maps[:, pixels].sum(1).argmax()) == int(cls[i]))
    if len(sounding_ids) == 2:
        from sklearn.metrics import adjusted_rand_score

        predicted = np.where(prediction, 1 + maps.argmax(0), 0)
        true = np.zeros_like(labels, dtype=np.int64)
        for i in sounding_ids:
            true[labels == i + 1] = 1 + int(cls[i])
        out["ari"] = float(adjusted_rand_score(true.ravel(), predicted.ravel()))
    return out


def summarize(per_scene: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The split's figures from :func:`scene_metrics` of each scene."""
    localized = [m["ciou"] for m in per_scene if m["n_sounding"] > 0]
    success, auc = success_auc(localized)
    silent = [m["positive_area"] for m in per_scene if m["n_sounding"] == 0]
    ari = [m["ari"] for m in per_scene if "ari" in m]
    detected = sum(m["detected"] for m in per_scene)
    n_sources = sum(m["n_sounding"] for m in per_scene)
    return {
        "ciou_success": success,
        "auc": auc,
        "silent_false_positive_area": float(np.mean(silent)) if silent else float("nan"),
        "two_source_ari": float(np.mean(ari)) if ari else float("nan"),
        "class_accuracy": sum(m["correct"] for m in per_scene) / detected if detected else float("nan"),
        "detection_rate": detected / n_sources if n_sources else float("nan"),
        "n_scenes": float(len(per_scene)),
        "n_localized": float(len(localized)),
        "n_silent": float(len(silent)),
    }


def center_prior_map(h: int, w: int, area: float) -> Array:
    """The centre-prior baseline: a cap around the image centre (azimuth 0, elevation 0) covering ``area`` of the
    frame's pixels (the mean sounding area of the training split).

    >>> round(float(center_prior_map(32, 64, 0.1).mean()), 2)
    0.1
    """
    closeness = pixel_vectors(h, w) @ direction_to_vector(0.0, 0.0).astype(np.float32)
    cut = np.quantile(closeness, 1.0 - area)
    result: Array = (closeness >= cut).astype(np.float32)
    return result


def bootstrap_interval(values: Sequence[float], seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the mean of ``values`` (per-scene indicators or paired differences).

    >>> bootstrap_interval([1.0] * 10)
    (1.0, 1.0)
    """
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (n, len(data)))].mean(1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


__all__ = ["bootstrap_interval", "center_prior_map", "ciou", "scene_metrics", "success_auc", "summarize"]
