"""Overlays of localization maps on frames, saved as PNG for a person to look at.

Example:
    >>> import tempfile, os
    >>> frame = np.zeros((3, 8, 16), np.uint8)
    >>> heat = np.zeros((8, 16)); heat[2:4, 2:4] = 1.0
    >>> path = save_overlay(os.path.join(tempfile.mkdtemp(), "o.png"), frame, heat, [0])
    >>> path.stat().st_size > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def overlay_image(frame: Any, heat: Any, alpha: float = 0.6) -> Array:
    """The frame ``(H, W, 3)`` or ``(3, H, W)`` uint8 with ``heat`` ``(H, W)`` in [0, 1] blended in as red-yellow."""
    image = np.asarray(frame)
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)[..., None]
    colour = np.concatenate([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255.0
    blended = image.astype(np.float32) * (1 - alpha * heat) + colour * alpha * heat
    result: Array = np.clip(blended, 0, 255).astype(np.uint8)
    return result


def save_overlay(
    path: str | Path, frame: Any, heat: Any, classes: Sequence[int] | None = None, names: Sequence[str] | None = None
) -> Path:
    """Write the overlay as a PNG (atomically); the predicted classes go into the PNG's text metadata."""
    from PIL import Image, PngImagePlugin

    from apps.avsl.sounds import CLASSES
    from core.files import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    labels = names or CLASSES
    if classes is not None:
        info.add_text("classes", ", ".join(labels[int(c)] for c in classes))
    with atomic_path(path) as temporary:
        Image.fromarray(overlay_image(frame, heat)).save(temporary, format="PNG", pnginfo=info)
    return path


__all__ = ["overlay_image", "save_overlay"]
