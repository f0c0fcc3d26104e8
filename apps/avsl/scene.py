"""Procedural 360° audio-visual scenes: equirectangular frames, multichannel audio, pixel masks.

A scene holds 0–3 **sounding objects** (distinct sound classes, see :mod:`apps.avsl.sounds`) and 1–2 **silent
distractors**, at least one of which looks exactly like a sounding object (same shape, colour and size), so only
the sound's direction tells which one sounds. Objects are drawn on the sphere (a shape in the tangent plane at the
object's direction, projected into the equirectangular frame), so they bend near the poles as real 360° footage
does. The audio is rendered with pyroomacoustics (free field) for a tetrahedral microphone array at the camera's
centre, each source at ``source_distance`` metres in its object's direction, plus sensor noise.

A sample (what :func:`make_scene` returns and :func:`write_split` stores, one HDF5 group per scene):

- ``video``: the frames ``(n_frames, H, W, 3)`` as mp4 bytes (core.data's ``clip_sample``); ``audio/default``:
  the microphone signals ``(samples, channels)`` float32 (stored raw);
- ``labels`` ``(H, W)`` uint8: 0 background, ``i + 1`` object ``i`` (sounding or not);
- ``objects/{cls, azimuth, elevation, radius, sounding}``: per object; ``mics``: the array's positions.

The same ``(seed, index)`` gives the same bytes. Splits differ by seed.

Example:
    >>> config = SceneConfig(height=32, width=64)
    >>> scene = make_scene(config, seed=1, index=0)
    >>> scene["frames"].shape, scene["audio"].shape, scene["labels"].shape
    ((1, 32, 64, 3), (5120, 4), (32, 64))
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from apps.avsl.geometry import angular_distance, direction_to_vector, pixel_vectors, tetrahedral_array
from apps.avsl.sounds import CLASSES, LOOKS, synthesize
from core.errors import ConfigError

Array = np.ndarray[Any, Any]
logger = logging.getLogger(__name__)
SPEED_OF_SOUND = 343.0


@dataclass(frozen=True)
class SceneConfig:
    """What the generator draws. Angles in degrees; ``(low, high)`` pairs are inclusive ranges."""

    height: int = 128
    width: int = 256
    n_frames: int = 1
    fps: float = 8.0
    sample_rate: int = 16000
    window: float = 0.32  # seconds of audio per frame
    mic_radius: float = 0.05
    source_distance: float = 2.0
    snr_db: float = 20.0
    n_sounding: tuple[int, int] = (1, 3)
    p_silent_only: float = 0.15  # share of scenes whose objects are all silent
    n_distractors: tuple[int, int] = (1, 2)
    radius: tuple[float, float] = (13.0, 18.0)
    elevation: tuple[float, float] = (-35.0, 35.0)
    min_separation: float = 50.0
    classes: tuple[str, ...] = CLASSES
    crf: int = 18

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "scene") -> SceneConfig:
        """A config from a mapping (YAML); unknown keys are a :class:`~core.errors.ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown scene key(s) {unknown}", where=where, hint=f"known: {', '.join(sorted(known))}")
        converted: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        config = cls(**converted)
        for name in config.classes:
            if name not in LOOKS:
                raise ConfigError(f"unknown sound class {name!r}", where=f"{where}.classes", hint=f"known: {CLASSES}")
        if config.height % 8 or config.width != 2 * config.height:
            raise ConfigError("width must be 2 × height, height a multiple of 8", where=f"{where}.height")
        return config

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def n_samples(self) -> int:
        """Audio samples of a whole clip (one window per frame, frames ``1/fps`` apart)."""
        return round((self.window + (self.n_frames - 1) / self.fps) * self.sample_rate)

    @property
    def window_samples(self) -> int:
        return round(self.window * self.sample_rate)


@dataclass
class SceneObject:
    cls: int
    azimuth: float
    elevation: float
    radius: float
    sounding: bool
    color: tuple[int, int, int] = field(default=(0, 0, 0))
    spin: float = 0.0


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of the split with ``seed`` (independent of every other scene)."""
    return np.random.default_rng([int(seed), int(index)])


def draw_objects(config: SceneConfig, rng: np.random.Generator) -> list[SceneObject]:
    """The scene's objects: sounding ones first (distinct classes), then the silent distractors."""
    n_classes = len(config.classes)
    silent_only = rng.random() < config.p_silent_only
    n_sounding = 0 if silent_only else int(rng.integers(config.n_sounding[0], config.n_sounding[1] + 1))
    n_sounding = min(n_sounding, n_classes)
    n_distractors = int(rng.integers(config.n_distractors[0], config.n_distractors[1] + 1))
    sounding_classes = [int(c) for c in rng.permutation(n_classes)[:n_sounding]]
    objects: list[SceneObject] = []
    twin: SceneObject | None = None
    for c in sounding_classes:
        objects.append(SceneObject(c, 0.0, 0.0, float(rng.uniform(*config.radius)), True, _jitter(c, config, rng)))
    for k in range(n_distractors):
        if k == 0 and objects:  # the look-alike: identical to a sounding object
            twin = objects[int(rng.integers(len(objects)))]
            objects.append(SceneObject(twin.cls, 0.0, 0.0, twin.radius, False, twin.color))
        else:
            c = int(rng.integers(n_classes))
            objects.append(SceneObject(c, 0.0, 0.0, float(rng.uniform(*config.radius)), False, _jitter(c, config, rng)))
    placed: list[Array] = []
    for obj in objects:
        for _ in range(1000):
            azimuth = float(rng.uniform(-180.0, 180.0))
            elevation = float(rng.uniform(*config.elevation))
            vector = direction_to_vector(azimuth, elevation)
            if all(angular_distance(vector, other) >= config.min_separation for other in placed):
                break
        else:
            raise ConfigError("cannot place the objects this far apart", where="scene.min_separation")
        obj.azimuth, obj.elevation, obj.spin = azimuth, elevation, float(rng.uniform(0, 2 * np.pi))
        placed.append(vector)
    if twin is not None:  # the look-alike keeps its twin's pose too
        objects[n_sounding].spin = twin.spin
    return objects


def _jitter(c: int, config: SceneConfig, rng: np.random.Generator) -> tuple[int, int, int]:
    base = np.array(LOOKS[config.classes[c]].color, dtype=np.float64)
    color = np.clip(base + rng.uniform(-20, 20, 3), 0, 255)
    return (int(color[0]), int(color[1]), int(color[2]))


def object_mask(obj: SceneObject, shape_name: str, h: int, w: int) -> Array:
    """Boolean ``(h, w)`` mask of an object: its shape in the tangent plane at its direction (gnomonic)."""
    pixels = pixel_vectors(h, w).astype(np.float64)
    centre = direction_to_vector(obj.azimuth, obj.elevation)
    up = np.array([0.0, 1.0, 0.0])
    east = np.cross(up, centre)
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    c, s = np.cos(obj.spin), np.sin(obj.spin)
    e1, e2 = c * east + s * north, -s * east + c * north
    depth = pixels @ centre
    front = depth > 0.1
    a = np.where(front, (pixels @ e1) / np.maximum(depth, 1e-6), 1e9)
    b = np.where(front, (pixels @ e2) / np.maximum(depth, 1e-6), 1e9)
    r = np.tan(np.deg2rad(obj.radius))
    if shape_name == "disk":
        inside = a**2 + b**2 <= r**2
    elif shape_name == "square":
        inside = np.maximum(np.abs(a), np.abs(b)) <= 0.85 * r
    elif shape_name == "diamond":
        inside = np.abs(a) + np.abs(b) <= 1.1 * r
    elif shape_name == "triangle":
        inside = (b >= -0.55 * r) & (b <= r - 1.6 * np.abs(a))
    else:
        raise ValueError(f"unknown shape {shape_name!r}")
    result: Array = inside & front
    return result


def render_frames(config: SceneConfig, objects: list[SceneObject], rng: np.random.Generator) -> tuple[Array, Array]:
    """The frames ``(n_frames, H, W, 3)`` uint8 and the label map ``(H, W)`` uint8."""
    h, w = config.height, config.width
    pixels = pixel_vectors(h, w).astype(np.float64)
    background = np.full((h, w, 3), 110.0) + rng.uniform(-30, 30, 3)
    for _ in range(3):  # smooth colour blobs on the sphere, so the background is not flat
        direction = direction_to_vector(rng.uniform(-180, 180), rng.uniform(-60, 60))
        weight = np.exp(4.0 * (pixels @ direction - 1.0))
        background += weight[..., None] * rng.uniform(-50, 50, 3)
    texture = rng.normal(0.0, 8.0, (h, w, 1))
    image = background + texture
    labels = np.zeros((h, w), dtype=np.uint8)
    for i, obj in enumerate(objects):
        look = LOOKS[config.classes[obj.cls]]
        mask = object_mask(obj, look.shape, h, w)
        colour = np.array(obj.color, dtype=np.float64)
        if look.stripes:
            shade = 0.75 + 0.25 * np.sign(np.sin(np.arange(w) * 2 * np.pi / 6.0))[None, :, None]
            image = np.where(mask[..., None], colour * shade, image)
        else:
            image = np.where(mask[..., None], colour, image)
        labels[mask] = i + 1
    frames = np.stack([image + rng.normal(0.0, 3.0, image.shape) for _ in range(config.n_frames)])
    return np.clip(frames, 0, 255).astype(np.uint8), labels


def render_audio(config: SceneConfig, objects: list[SceneObject], rng: np.random.Generator) -> Array:
    """Microphone signals ``(samples, channels)`` float32: each sounding object's class signal from its direction."""
    import pyroomacoustics as pra

    mics = tetrahedral_array(config.mic_radius)
    n = config.n_samples
    out = np.zeros((len(mics), n), dtype=np.float64)
    sounding = [o for o in objects if o.sounding]
    if sounding:
        centre = np.array([0.0, 0.0, 0.0])
        room = pra.AnechoicRoom(dim=3, fs=config.sample_rate)
        room.add_microphone_array(pra.MicrophoneArray((mics + centre).T, config.sample_rate))
        for obj in sounding:
            signal = synthesize(config.classes[obj.cls], n, config.sample_rate, rng)
            gain = 10 ** (rng.uniform(-3.0, 3.0) / 20.0)
            position = centre + config.source_distance * direction_to_vector(obj.azimuth, obj.elevation)
            room.add_source(position, signal=gain * signal)
        room.simulate()
        delay = round(config.source_distance / SPEED_OF_SOUND * config.sample_rate)
        delay += pra.constants.get("frac_delay_length") // 2
        recorded = room.mic_array.signals[:, delay : delay + n]
        out[:, : recorded.shape[1]] = recorded
        out /= max(float(np.abs(out).max()), 1e-9) / 0.5
        signal_power = float(np.mean(out**2))
    else:
        signal_power = 0.5**2 / 4  # silent scenes: the same noise floor as an average scene
    noise = rng.standard_normal(out.shape) * np.sqrt(signal_power / 10 ** (config.snr_db / 10.0))
    result: Array = (out + noise).T.astype(np.float32)
    return result


def make_scene(config: SceneConfig, seed: int, index: int) -> dict[str, Any]:
    """Scene ``index`` of the split ``seed``: ``frames``, ``audio``, ``labels``, ``objects`` (a list)."""
    rng = scene_rng(seed, index)
    objects = draw_objects(config, rng)
    frames, labels = render_frames(config, objects, rng)
    audio = render_audio(config, objects, rng)
    return {"frames": frames, "audio": audio, "labels": labels, "objects": objects}


def scene_sample(config: SceneConfig, seed: int, index: int) -> tuple[str, dict[str, Any]]:
    """The HDF5 group ``(name, sample)`` of a scene, for :class:`~core.data.HDF5Writer`."""
    from core.data import clip_sample

    scene = make_scene(config, seed, index)
    objects = scene["objects"]
    sample = clip_sample(
        scene["frames"],
        fps=config.fps,
        audio=scene["audio"],
        sample_rate=config.sample_rate,
        audio_format="array",
        crf=config.crf,
    )
    sample["labels"] = scene["labels"]
    sample["objects"] = {
        "cls": np.array([o.cls for o in objects], dtype=np.int64),
        "azimuth": np.array([o.azimuth for o in objects], dtype=np.float32),
        "elevation": np.array([o.elevation for o in objects], dtype=np.float32),
        "radius": np.array([o.radius for o in objects], dtype=np.float32),
        "sounding": np.array([o.sounding for o in objects], dtype=np.bool_),
    }
    sample["mics"] = tetrahedral_array(config.mic_radius).astype(np.float32)
    return f"{seed:06d}-{index:07d}", sample


class _SceneMaker:
    """Picklable ``index -> (name, sample)`` for the writer's worker processes."""

    def __init__(self, config: SceneConfig, seed: int) -> None:
        self.config, self.seed = config, seed

    def __call__(self, index: int) -> tuple[str, dict[str, Any]]:
        return scene_sample(self.config, self.seed, index)


def write_split(
    path: str | Path,
    config: SceneConfig,
    seed: int,
    n: int,
    num_workers: int = 1,
    chunk_size: int = 32,
    overwrite: bool = False,
    indices: Iterable[int] | None = None,
) -> Path:
    """Write ``n`` scenes of the split ``seed`` to ``path`` with core.data's resumable, parallel ``HDF5Writer``.

    The scene config is stored next to the file (``<path>.scene.json``), so readers know its geometry.
    """
    import json

    from core.data import HDF5Writer
    from core.files import write_atomic

    path = Path(path)
    items = list(indices) if indices is not None else list(range(n))
    writer = HDF5Writer(path, num_workers=num_workers, chunk_size=chunk_size, compression="gzip", overwrite=overwrite)
    writer.write(items, make_sample=_SceneMaker(config, seed))
    write_atomic(
        path.with_name(path.name + ".scene.json"),
        json.dumps({"seed": seed, "n": len(items), "scene": config.to_dict()}, indent=1) + "\n",
    )
    return path


def extend_split(path: str | Path, config: SceneConfig, seed: int, n: int, num_workers: int = 1) -> Path:
    """Grow a split written by :func:`write_split` to ``n`` scenes: only the missing scenes are generated.

    The new scenes ``(seed, old_n … n − 1)`` are written (resumably) to ``<path>.more-<old_n>-<n>``, then the
    file is copied, the new groups appended to the copy and the copy renamed over ``path``: a crash leaves either
    the old split or the grown one. Scenes are the same as those of a split written at size ``n`` at once.
    """
    import json
    import os
    import shutil

    from core.data.hdf5 import open_hdf5
    from core.errors import UserError
    from core.files import write_atomic

    path = Path(path)
    meta_path = path.with_name(path.name + ".scene.json")
    meta = json.loads(meta_path.read_text())
    if int(meta["seed"]) != seed or meta["scene"] != config.to_dict():
        raise UserError(
            "the split exists with another seed or scene config", where=str(path), hint="delete it to start over"
        )
    old_n = int(meta["n"])
    if n <= old_n:
        return path
    more = write_split(
        path.with_name(f"{path.name}.more-{old_n}-{n}"), config, seed, n - old_n, num_workers, indices=range(old_n, n)
    )
    names_path = path.with_name(path.name + ".json")
    names = json.loads(names_path.read_text())[:old_n] + json.loads(more.with_name(more.name + ".json").read_text())
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(path, tmp)
        with open_hdf5(tmp, "a") as out, open_hdf5(more) as src:
            for name in src:
                if name not in out:
                    src.copy(src[name], out, name=name)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_atomic(names_path, json.dumps(names))
    write_atomic(meta_path, json.dumps({**meta, "n": n}, indent=1) + "\n")
    for leftover in (more, more.with_name(more.name + ".json"), more.with_name(more.name + ".scene.json")):
        leftover.unlink(missing_ok=True)
    return path


def fingerprint(path: str | Path) -> str:
    """A short hash of a file's bytes (tests compare splits written twice)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


__all__ = [
    "SceneConfig",
    "SceneObject",
    "draw_objects",
    "extend_split",
    "fingerprint",
    "make_scene",
    "object_mask",
    "render_audio",
    "render_frames",
    "scene_rng",
    "scene_sample",
    "write_split",
]
