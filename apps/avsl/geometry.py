"""360° geometry: equirectangular pixels ↔ directions, perspective and cube-map views, the microphone array.

Conventions are py360convert's (whose functions do the resampling): azimuth ``u`` in [-180°, 180°) grows to the
right of the image, elevation ``v`` in [-90°, 90°] grows upwards; pixel ``(x, y)`` has its centre at
``(x + 0.5, y + 0.5)``; the unit vector of ``(u, v)`` is ``(cos v sin u, sin v, cos v cos u)`` (x right, y up,
z forward). The microphone positions and the rendered sound sources use the same frame.

Example:
    >>> x, y = direction_to_pixel(90.0, 0.0, h=64, w=128)
    >>> float(x), float(y)
    (95.5, 31.5)
    >>> [round(float(a), 6) + 0.0 for a in pixel_to_direction(x, y, h=64, w=128)]
    [90.0, 0.0]
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from py360convert.utils import InterpolationMode

Array = np.ndarray[Any, Any]


def direction_to_pixel(azimuth: Any, elevation: Any, h: int, w: int) -> tuple[Array, Array]:
    """Pixel coordinates ``(x, y)`` (continuous, centre of pixel ``i`` at ``i``) of directions in degrees.

    >>> [float(c) for c in direction_to_pixel(-180.0, 90.0, 4, 8)]
    [-0.5, -0.5]
    """
    from py360convert.utils import uv2coor

    u = np.deg2rad(np.asarray(azimuth, dtype=np.float64))
    v = np.deg2rad(np.asarray(elevation, dtype=np.float64))
    x, y = uv2coor(u, v, h, w)
    return np.asarray(x), np.asarray(y)


def pixel_to_direction(x: Any, y: Any, h: int, w: int) -> tuple[Array, Array]:
    """Azimuth and elevation in degrees of pixel coordinates (the inverse of :func:`direction_to_pixel`).

    >>> [float(a) for a in pixel_to_direction(0.0, 0.0, 2, 4)]
    [-135.0, 45.0]
    """
    from py360convert.utils import coor2uv

    coor = np.stack(np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64)), axis=-1)
    uv = coor2uv(coor, h, w)
    return np.rad2deg(uv[..., 0]), np.rad2deg(uv[..., 1])


def direction_to_vector(azimuth: Any, elevation: Any) -> Array:
    """Unit vectors ``(..., 3)`` of directions in degrees.

    >>> direction_to_vector(0.0, 90.0).round(6).tolist()
    [0.0, 1.0, 0.0]
    """
    from py360convert.utils import uv2unitxyz

    u = np.deg2rad(np.asarray(azimuth, dtype=np.float64))
    v = np.deg2rad(np.asarray(elevation, dtype=np.float64))
    uv = np.stack(np.broadcast_arrays(u, v), axis=-1)
    return np.asarray(uv2unitxyz(uv))


def vector_to_direction(vectors: Any) -> tuple[Array, Array]:
    """Azimuth and elevation in degrees of vectors ``(..., 3)`` (any length).

    >>> [float(a) for a in vector_to_direction([1.0, 0.0, 0.0])]
    [90.0, 0.0]
    """
    from py360convert.utils import xyz2uv

    u, v = xyz2uv(np.asarray(vectors, dtype=np.float64))
    return np.rad2deg(u[..., 0]), np.rad2deg(v[..., 0])


@lru_cache(maxsize=16)
def pixel_vectors(h: int, w: int) -> Array:
    """Unit vectors ``(h, w, 3)`` of the pixel centres of an ``h × w`` equirectangular image (read-only).

    >>> pixel_vectors(2, 4).shape
    (2, 4, 3)
    """
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    azimuth, elevation = pixel_to_direction(xs, ys, h, w)
    out = direction_to_vector(azimuth, elevation).astype(np.float32)
    out.setflags(write=False)
    return out


def angular_distance(a: Any, b: Any) -> Array:
    """Great-circle angle in degrees between unit vectors ``a`` and ``b`` (broadcast over ``...``).

    >>> float(angular_distance(direction_to_vector(0, 0), direction_to_vector(90, 0)))
    90.0
    """
    dot: Array = np.clip(np.sum(np.asarray(a) * np.asarray(b), axis=-1), -1.0, 1.0)
    return np.rad2deg(np.arccos(dot))


def to_perspective(
    image: Array,
    fov_deg: float,
    azimuth: float,
    elevation: float,
    size: tuple[int, int],
    mode: InterpolationMode = "bilinear",
) -> Array:
    """A pinhole view ``size = (h, w)`` of an equirectangular image looking at ``(azimuth, elevation)``.

    >>> to_perspective(np.zeros((32, 64, 3), np.uint8), 60.0, 0.0, 0.0, (16, 16)).shape
    (16, 16, 3)
    """
    import py360convert

    return np.asarray(py360convert.e2p(image, fov_deg, azimuth, elevation, size, mode=mode))


def to_cubemap(image: Array, face_w: int, mode: InterpolationMode = "bilinear") -> Array:
    """The six cube faces of an equirectangular image, side by side (``face_w × 6·face_w``, py360convert's
    ``horizon`` layout: front, right, back, left, up, down).

    >>> to_cubemap(np.zeros((32, 64, 3), np.uint8), 16).shape
    (16, 96, 3)
    """
    import py360convert

    return np.asarray(py360convert.e2c(image, face_w=face_w, mode=mode, cube_format="horizon"))


def from_cubemap(cubemap: Array, h: int, w: int, mode: InterpolationMode = "bilinear") -> Array:
    """The equirectangular image ``(h, w, ...)`` of a ``horizon`` cube map (the inverse of :func:`to_cubemap`).

    >>> from_cubemap(np.zeros((16, 96, 3), np.uint8), 32, 64).shape
    (32, 64, 3)
    """
    import py360convert

    return np.asarray(py360convert.c2e(cubemap, h, w, mode=mode, cube_format="horizon"))


def tetrahedral_array(radius: float = 0.05) -> Array:
    """Positions ``(4, 3)`` in metres of a tetrahedral microphone array (an Ambisonic-style capsule layout).

    >>> np.linalg.norm(tetrahedral_array(0.05), axis=1).round(6).tolist()
    [0.05, 0.05, 0.05, 0.05]
    """
    corners = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
    return radius * corners / math.sqrt(3.0)


__all__ = [
    "angular_distance",
    "direction_to_pixel",
    "direction_to_vector",
    "from_cubemap",
    "pixel_to_direction",
    "pixel_vectors",
    "tetrahedral_array",
    "to_cubemap",
    "to_perspective",
    "vector_to_direction",
]
