"""``make-data``: write the splits of a data config, a summary and a few example wav files.

Example:
    >>> import tempfile
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"out_dir": tempfile.mkdtemp(), "examples": 1, "num_workers": 1,
    ...                         "splits": {"test": {"n_clips": 4, "seed": 2, "questions_per_clip": 1.0}}})
    >>> summary = make_data(cfg)
    >>> summary["test"]["clips"], sorted(p.name for p in (Path(cfg.out_dir) / "examples").iterdir())
    (4, ['examples.json', 'test-0000.wav'])
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from apps.audioqa.scenes import SceneConfig, SplitSpec, render_scene, scenes_and_questions, write_split, write_wav
from core.config import as_dict
from core.errors import ConfigError
from core.files import write_atomic

log = logging.getLogger(__name__)


def scene_config(node: Any) -> SceneConfig:
    """A :class:`~apps.audioqa.scenes.SceneConfig` from a config node (missing keys keep their defaults)."""
    values = as_dict(node, where="scene") if node is not None else {}
    known = set(SceneConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown scene key(s) {sorted(unknown)}", where="scene", hint=f"known: {sorted(known)}")
    for key in ("event_length", "snr_db"):
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
    return SceneConfig(**values)


def make_data(cfg: DictConfig) -> dict[str, Any]:
    """Write ``<out_dir>/<split>.h5`` for every split, ``summary.json`` and ``examples/`` (see ``data.yaml``)."""
    out = Path(str(cfg.out_dir))
    out.mkdir(parents=True, exist_ok=True)
    scene = scene_config(cfg.get("scene"))
    splits = cfg.get("splits")
    if not splits:
        raise ConfigError("no splits to write", where="splits", hint="e.g. splits.train={n_clips: 100, seed: 0}")
    summary: dict[str, Any] = {}
    for name, node in splits.items():
        spec = SplitSpec(str(name), int(node.n_clips), int(node.seed))
        if spec.n_clips < 1:
            raise ConfigError("a split needs at least one clip", where=f"splits.{name}.n_clips")
        log.info("writing split %s: %d clips", name, spec.n_clips)
        summary[str(name)] = write_split(
            out / f"{name}.h5",
            spec,
            scene,
            questions_per_clip=float(node.get("questions_per_clip", 1.0)),
            store_audio=bool(cfg.get("store_audio", False)),
            num_workers=int(cfg.get("num_workers", 1)),
            overwrite=bool(cfg.get("overwrite", False)),
        )
    summary["scene"] = asdict(scene)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    n_examples = int(cfg.get("examples", 0))
    if n_examples:
        name = "test" if "test" in splits else str(next(iter(splits)))
        node = splits[name]
        spec = SplitSpec(name, min(n_examples, int(node.n_clips)), int(node.seed))
        scenes, questions = scenes_and_questions(
            SplitSpec(name, int(node.n_clips), spec.seed), scene, float(node.get("questions_per_clip", 1.0))
        )
        folder = out / "examples"
        folder.mkdir(exist_ok=True)
        listing = []
        for s, qs in list(zip(scenes, questions, strict=True))[: spec.n_clips]:
            wav = folder / f"{name}-{s.index:04d}.wav"
            write_wav(wav, render_scene(s, spec.seed))
            listing.append(
                {"wav": wav.name, "events": [asdict(e) for e in s.events], "questions": [asdict(q) for q in qs]}
            )
        write_atomic(folder / "examples.json", json.dumps(listing, indent=2) + "\n")
    return summary


__all__ = ["make_data", "scene_config"]
