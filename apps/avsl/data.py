"""Scenes read back from HDF5 (core.data's ``VideoStore``, cached by ``CachedDataset``) as training samples.

:class:`SceneArrays` decodes one scene group (mp4 bytes → frames, raw audio, label map, object table), optionally
with its labels replaced by those of a pseudo-label file (:mod:`apps.avsl.annotate`). :class:`AVSLDataset` turns
scenes into ``(frame, audio window)`` samples, one per frame; :func:`avsl_datamodule` is the ``datamodule`` of
the training configs.

A sample is a dict of tensors: ``image`` ``(3, H, W)`` uint8, ``audio`` ``(M, N)`` float32, ``labels`` ``(H, W)``
int64 (0 background, ``i + 1`` object ``i``), ``cls`` ``(MAX_OBJECTS,)`` int64 (-1: no object), ``sounding``
``(MAX_OBJECTS,)`` bool, ``all_objects`` bool (the labels mark every object, silent ones too: true for generated
scenes; false for pseudo-labels, which mark only the sounding objects the teacher found), ``index`` (the scene's
position in its file).

Example:
    >>> import tempfile, os
    >>> from apps.avsl.scene import SceneConfig, write_split
    >>> path = write_split(os.path.join(tempfile.mkdtemp(), "s.h5"), SceneConfig(height=32, width=64), seed=3, n=2)
    >>> sample = AVSLDataset(path)[1]
    >>> tuple(sample["image"].shape), tuple(sample["audio"].shape), int(sample["index"])
    ((3, 32, 64), (4, 5120), 1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from core.errors import UserError

MAX_OBJECTS = 6
Array = np.ndarray[Any, Any]


class Scene(TypedDict):
    """One scene as :class:`SceneArrays` gives it: ``frames`` ``(T, H, W, 3)`` uint8, ``audio`` ``(M, samples)``
    float32, ``labels`` ``(H, W)`` uint8, ``cls`` and ``sounding`` padded to ``MAX_OBJECTS``, ``all_objects`` and
    ``index`` as in a sample (see the module docstring)."""

    frames: Array
    audio: Array
    labels: Array
    cls: Array
    sounding: Array
    all_objects: np.bool_
    index: np.int64


def read_scene_config(path: str | Path) -> dict[str, Any]:
    """The generator settings stored next to a scene file (``<path>.scene.json``)."""
    meta = Path(str(path) + ".scene.json")
    if not Path(path).is_file():
        raise UserError("scene file not found", where=str(path), hint="write it with `kakehashi avsl make-data CFG`")
    if not meta.is_file():
        raise UserError(
            "not a scene file: no .scene.json next to it",
            where=str(path),
            hint="write it with `kakehashi avsl make-data`",
        )
    data: dict[str, Any] = json.loads(meta.read_text())["scene"]
    return data


class SceneArrays:
    """Scene ``i`` of an HDF5 scene file as numpy arrays (picklable; opens the file lazily in each process).

    Args:
        path: The scene file.
        pseudo: Optional pseudo-label file whose groups (same names) hold ``labels``, ``cls``, ``sounding``
            that replace the scene's own (:mod:`apps.avsl.annotate` writes them).
        names: Optional subset of group names (in this order); default: every scene of the file (or every
            scene of the pseudo-label file).
    """

    def __init__(self, path: str | Path, pseudo: str | Path | None = None, names: Sequence[str] | None = None) -> None:
        from core.data import RawHDF5Dataset, VideoStore

        self.path = Path(path)
        self.config = read_scene_config(path)
        self.pseudo = RawHDF5Dataset(pseudo) if pseudo is not None else None
        if names is None and self.pseudo is not None:
            names = list(self.pseudo.group_names)
        self.store = VideoStore(self.path, groups=list(names) if names is not None else None)
        try:
            self.names = list(self.store.group_names)
        except OSError as exc:
            raise UserError(
                f"not a scene file: {exc}", where=str(path), hint="write it with `kakehashi avsl make-data`"
            ) from None
        self._pseudo_index = {n: i for i, n in enumerate(self.pseudo.group_names)} if self.pseudo else {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Scene:
        raw = self.store.read_raw(index)
        if "labels" not in raw or "objects" not in raw:
            raise UserError("not a scene: no labels/objects", where=f"{self.path}, sample {index}")
        frames = self.store.read(index)
        audio, _ = self.store.read_audio(index)
        labels, cls, sounding = raw["labels"], raw["objects"]["cls"], raw["objects"]["sounding"]
        if self.pseudo is not None:
            group = self.pseudo.read_raw(self._pseudo_index[self.names[index]])
            labels, cls, sounding = group["labels"], group["cls"], group["sounding"]
        padded_cls = np.full(MAX_OBJECTS, -1, dtype=np.int64)
        padded_sounding = np.zeros(MAX_OBJECTS, dtype=np.bool_)
        padded_cls[: len(cls)] = cls
        padded_sounding[: len(sounding)] = sounding
        return {
            "frames": np.ascontiguousarray(frames),
            "audio": np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T),
            "labels": np.asarray(labels, dtype=np.uint8),
            "cls": padded_cls,
            "sounding": padded_sounding,
            "all_objects": np.bool_(self.pseudo is None),
            "index": np.int64(index),
        }


class AVSLDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Samples ``(frame t of scene i, its audio window)`` of one or more scene files, optionally cached in RAM.

    Args:
        paths: A scene file or a list of them (concatenated).
        pseudo: For each path, a pseudo-label file or ``None`` (see :class:`SceneArrays`).
        cache_bytes: Cache decoded scenes in one shared-memory segment of at most this size (0: no cache).
        limit: Use only the first ``limit`` scenes of each file (quick runs).
        shuffle_audio_seed: If set, each sample gets the audio of another scene (a fixed derangement): the
            baseline that shows whether a model uses sound.
        augment: Show each sample as one of the array's exact symmetries, drawn at random (frame, labels and
            audio channels mapped together; :mod:`apps.avsl.augment`).
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        pseudo: Sequence[str | Path | None] | None = None,
        cache_bytes: int = 0,
        limit: int | None = None,
        shuffle_audio_seed: int | None = None,
        augment: bool = False,
    ) -> None:
        from apps.avsl.augment import array_symmetries
        from apps.avsl.geometry import tetrahedral_array
        from core.data import CachedDataset

        path_list = [paths] if isinstance(paths, str | Path) else list(paths)
        pseudo_list = list(pseudo) if pseudo is not None else [None] * len(path_list)
        if len(pseudo_list) != len(path_list):
            raise UserError("give one pseudo-label file (or null) per scene file", where="datamodule.pseudo")
        self.sources: list[Any] = []
        self.items: list[tuple[int, int, int]] = []
        for k, (path, labels) in enumerate(zip(path_list, pseudo_list, strict=True)):
            arrays = SceneArrays(path, labels)
            n_scenes = len(arrays) if limit is None else min(limit, len(arrays))
            n_frames = int(arrays.config.get("n_frames", 1))
            self.sources.append(CachedDataset(arrays, max_bytes=cache_bytes) if cache_bytes else arrays)
            self.items += [(k, i, t) for i in range(n_scenes) for t in range(n_frames)]
        config = SceneArrays(path_list[0]).config
        self.window = round(config["window"] * config["sample_rate"])
        self.hop = round(config["sample_rate"] / config["fps"])
        mics = tetrahedral_array(config["mic_radius"])
        self.symmetries = array_symmetries(mics, int(config["width"])) if augment else []
        self.audio_of = list(range(len(self.items)))
        if shuffle_audio_seed is not None and len(self.items) > 1:
            rng = np.random.default_rng(shuffle_audio_seed)
            order = rng.permutation(len(self.items))
            self.audio_of = [0] * len(self.items)
            for a, b in zip(order, np.roll(order, 1), strict=True):  # a cycle: nobody keeps their own audio
                self.audio_of[int(a)] = int(b)

    def __len__(self) -> int:
        return len(self.items)

    def scene(self, item: int) -> dict[str, Any]:
        k, i, _ = self.items[item]
        scene: dict[str, Any] = self.sources[k][i]
        return scene

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        _, _, t = self.items[item]
        scene = self.scene(item)
        _, _, t_audio = self.items[self.audio_of[item]]
        audio_scene = scene if self.audio_of[item] == item else self.scene(self.audio_of[item])
        start = t_audio * self.hop
        frame = np.asarray(scene["frames"])[t]
        audio = np.asarray(audio_scene["audio"])[:, start : start + self.window]
        labels = np.asarray(scene["labels"])
        if self.symmetries:
            symmetry = self.symmetries[int(torch.randint(len(self.symmetries), ()))]
            frame, labels = symmetry.pixels(frame, width_axis=1), symmetry.pixels(labels)
            audio = audio[list(symmetry.channels)]
        return {
            "image": torch.as_tensor(np.ascontiguousarray(frame)).permute(2, 0, 1).contiguous(),
            "audio": torch.as_tensor(np.ascontiguousarray(audio)),
            "labels": torch.as_tensor(labels.astype(np.int64)),
            "cls": torch.as_tensor(np.asarray(scene["cls"])),
            "sounding": torch.as_tensor(np.asarray(scene["sounding"])),
            "all_objects": torch.as_tensor(bool(scene["all_objects"])),
            "index": torch.as_tensor(np.int64(item)),
        }


def _as_paths(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | Path):
        return [str(value)]
    return [str(v) for v in value]


def avsl_datamodule(
    train: Any = None,
    val: Any = None,
    test: Any = None,
    predict: Any = None,
    pseudo: Any = None,
    batch_size: int = 16,
    num_workers: int = 0,
    cache_bytes: int = 1 << 30,
    limit: int | None = None,
    shuffle_audio: bool = False,
    augment: bool = False,
) -> Any:
    """The training configs' ``datamodule``: a :class:`core.data.DataModule` over scene files.

    Args:
        train, val, test, predict: A scene file or a list of files for each stage (``null`` to leave one out).
        pseudo: Pseudo-label files for the ``train`` list (same length; ``null`` entries for hand-labelled files).
        batch_size, num_workers: The loaders.
        cache_bytes: RAM cache per training and validation file (decoded scenes, shared by the loader workers).
        limit: Use the first ``limit`` scenes of each file.
        shuffle_audio: Every sample gets another scene's audio (the baseline that shows a model uses sound).
        augment: Training samples shown as random exact symmetries of the array (:mod:`apps.avsl.augment`).
    """
    from core.data import DataModule

    def make(value: Any, labels: Any = None, cached: bool = True, augmented: bool = False) -> Any:
        paths = _as_paths(value)
        if not paths:
            return None
        seed = 0 if shuffle_audio else None
        cache = cache_bytes if cached else 0
        return AVSLDataset(paths, labels, cache, limit, shuffle_audio_seed=seed, augment=augmented)

    return DataModule(
        train=make(train, list(pseudo) if pseudo is not None else None, augmented=augment),
        val=make(val),
        test=make(test, cached=False),
        predict=make(predict, cached=False),
        batch_size=batch_size,
        num_workers=num_workers,
    )


__all__ = ["MAX_OBJECTS", "AVSLDataset", "SceneArrays", "avsl_datamodule", "read_scene_config"]
