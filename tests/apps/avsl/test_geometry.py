"""360° geometry: pixel ↔ direction ↔ vector round trips, cube map and perspective views (py360convert)."""

from __future__ import annotations

import numpy as np

from apps.avsl.geometry import (
    angular_distance,
    direction_to_pixel,
    direction_to_vector,
    from_cubemap,
    pixel_to_direction,
    pixel_vectors,
    to_cubemap,
    to_perspective,
    vector_to_direction,
)
from apps.avsl.scene import SceneConfig, SceneObject, object_mask


def test_pixel_direction_round_trip() -> None:
    rng = np.random.default_rng(0)
    azimuth, elevation = rng.uniform(-180, 180, 500), rng.uniform(-89, 89, 500)
    x, y = direction_to_pixel(azimuth, elevation, 128, 256)
    assert (x > -0.5).all() and (x < 255.5).all() and (y > -0.5).all() and (y < 127.5).all()
    back_az, back_el = pixel_to_direction(x, y, 128, 256)
    np.testing.assert_allclose(back_az, azimuth, atol=1e-9)
    np.testing.assert_allclose(back_el, elevation, atol=1e-9)


def test_vector_direction_round_trip_and_frame() -> None:
    rng = np.random.default_rng(1)
    azimuth, elevation = rng.uniform(-180, 180, 500), rng.uniform(-89, 89, 500)
    vectors = direction_to_vector(azimuth, elevation)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-12)
    back_az, back_el = vector_to_direction(vectors * 3.0)
    np.testing.assert_allclose(back_az, azimuth, atol=1e-9)
    np.testing.assert_allclose(back_el, elevation, atol=1e-9)
    # x right, y up, z forward; the image centre looks forward
    np.testing.assert_allclose(direction_to_vector(0, 0), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(pixel_vectors(64, 128)[31:33, 63:65].mean((0, 1)), [0, 0, 1], atol=0.02)


def test_cubemap_round_trip_keeps_a_smooth_image_and_directions() -> None:
    vectors = pixel_vectors(64, 128)
    image = (127.5 + 120 * vectors).astype(np.float32)  # smooth: about 5.9 grey levels per pixel of arc
    back = from_cubemap(to_cubemap(image, 48), 64, 128)
    error = np.abs(back - image)
    assert error.mean() < 0.35 * 5.9 and np.quantile(error, 0.99) < 1.0 * 5.9, (error.mean(), error.max())
    # an object's direction survives the trip within a pixel (1.41° at 256 px; py360convert's e2c and c2e
    # sample pixel centres and grid end points, a sub-pixel shift of about 0.5°), wherever it is
    vectors = pixel_vectors(128, 256)
    for azimuth, elevation in [(0.0, 0.0), (100.0, 30.0), (-150.0, -40.0), (175.0, 10.0)]:
        obj = SceneObject(cls=0, azimuth=azimuth, elevation=elevation, radius=20.0, sounding=True)
        mask = object_mask(obj, "disk", 128, 256).astype(np.float32)
        trip = from_cubemap(to_cubemap(mask[..., None], 96), 128, 256)[..., 0]
        before = (vectors * mask[..., None]).sum((0, 1))
        after = (vectors * trip[..., None]).sum((0, 1))
        shift = angular_distance(after / np.linalg.norm(after), before / np.linalg.norm(before))
        assert shift < 360.0 / 256, (azimuth, elevation, shift)


def test_a_rendered_object_is_centred_in_its_perspective_view() -> None:
    obj = SceneObject(cls=0, azimuth=-120.0, elevation=25.0, radius=15.0, sounding=True)
    mask = object_mask(obj, "disk", 128, 256).astype(np.float32)
    view = to_perspective(mask[..., None], 90.0, obj.azimuth, obj.elevation, (64, 64))[..., 0]
    ys, xs = np.nonzero(view > 0.5)
    assert abs(xs.mean() - 31.5) < 1.0 and abs(ys.mean() - 31.5) < 1.0
    # a disk of angular radius r is a disk of radius f·tan(r) in the pinhole view (f = 32 px at 90°)
    radius = np.sqrt((view > 0.5).sum() / np.pi)
    assert abs(radius - 32 * np.tan(np.deg2rad(15.0))) < 1.0
    # and its pixels in the frame all lie within r of its direction
    inside = pixel_vectors(128, 256)[mask > 0]
    assert angular_distance(inside, direction_to_vector(obj.azimuth, obj.elevation)).max() <= 15.0


def test_objects_wrap_across_the_seam() -> None:
    obj = SceneObject(cls=0, azimuth=179.0, elevation=0.0, radius=15.0, sounding=True)
    mask = object_mask(obj, "disk", 64, 128)
    assert mask[:, :5].any() and mask[:, -5:].any()
    assert SceneConfig().width == 2 * SceneConfig().height
