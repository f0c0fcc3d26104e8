"""Exact data augmentation from the symmetries of the microphone array: the scene turned about the vertical axis
(or mirrored in a vertical plane) so that the microphones land on each other.

A turn of the scene by ``c`` degrees of azimuth is a roll of the equirectangular frame (exact when ``c`` is a
whole number of pixels), and a mirror ``u → c − u`` a horizontal flip and a roll; the audio of the turned scene is
the audio of the original one with its channels permuted, **if** the same map carries the array onto itself: a
source in direction ``R d`` reaches microphone ``i`` as a source in direction ``d`` reaches the microphone at
``Rᵀ m_i``. The tetrahedral array (:func:`apps.avsl.geometry.tetrahedral_array`) has four such maps that keep
the frame's rows: the identity, the half turn, and two mirrors. Each sample of a small hand-labelled split can so
be shown in four exact versions (frame, mask and audio consistent), not four guesses.

Example:
    >>> from apps.avsl.geometry import tetrahedral_array
    >>> [(s.mirror, s.degrees, s.channels) for s in array_symmetries(tetrahedral_array(), width=64)]
    [(False, 0, (0, 1, 2, 3)), (False, 180, (2, 3, 0, 1)), (True, 90, (0, 3, 2, 1)), (True, 270, (2, 1, 0, 3))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Symmetry:
    """Azimuth map ``u → ±u + degrees`` (``mirror``: the minus sign) and the audio's channel order under it."""

    mirror: bool
    degrees: int
    channels: tuple[int, ...]

    def matrix(self) -> Array:
        """The map on unit vectors ``(cos v sin u, sin v, cos v cos u)`` (x right, y up, z forward)."""
        c, s = np.cos(np.deg2rad(self.degrees)), np.sin(np.deg2rad(self.degrees))
        if self.mirror:  # x' = sin(c − u) cos v, z' = cos(c − u) cos v
            return np.array([[-c, 0.0, s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # u' = u + c

    def pixels(self, image: Array, width_axis: int = -1) -> Array:
        """The equirectangular array (frame or label map) of the mapped scene."""
        width = image.shape[width_axis]
        out = np.flip(image, axis=width_axis) if self.mirror else image
        return np.roll(out, self.degrees * width // 360, axis=width_axis)


def array_symmetries(mics: Array, width: int, atol: float = 1e-9) -> list[Symmetry]:
    """The azimuth turns and mirrors (by multiples of 90°, whole pixels at ``width``) that carry the array
    ``mics`` ``(M, 3)`` onto itself, each with the channel order that makes the audio match."""
    mics = np.asarray(mics, dtype=np.float64)
    found = []
    for mirror in (False, True):
        for degrees in (0, 90, 180, 270):
            if (degrees * width) % 360:
                continue
            candidate = Symmetry(mirror, degrees, ())
            moved = mics @ candidate.matrix()  # row i: Rᵀ m_i
            match = np.linalg.norm(moved[:, None, :] - mics[None, :, :], axis=-1) < atol * max(1.0, abs(mics).max())
            if (match.sum(1) == 1).all() and (match.sum(0) == 1).all():
                found.append(Symmetry(mirror, degrees, tuple(int(j) for j in match.argmax(1))))
    return found


__all__ = ["Symmetry", "array_symmetries"]
