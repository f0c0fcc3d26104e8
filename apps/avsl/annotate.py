"""Semi-automatic annotation: a teacher labels a large unlabelled split, a reviewer checks a sample, the accepted
labels train the next model.

One round (:func:`annotate_round`, ``kakehashi avsl annotate CFG``):

1. **Label**, sharded as an array job through core.jobs (``local`` or a scheduler): element ``k`` runs
   ``python -m apps.avsl.annotate label ...`` over its share of the scenes (``core.jobs.split_tasks``) and writes
   ``shards/shard-<k>.h5`` with core.data's ``HDF5Writer``. A shard file that exists is done: rerunning the round
   redoes only missing shards (resumable).
2. **Merge** the shards into ``pseudo.h5`` (core.data's ``HDF5Writer`` again, one group per scene).
3. **Select**: pseudo-labels whose confidence passes the threshold are candidates. The teacher's own labels are
   the map thresholded at ``map_threshold`` per class (each predicted class one object; the benchmark passes the
   teacher's threshold chosen on the validation split); the confidence is the least certain of the presence
   decisions and of the mean map value inside each predicted object.
4. **Review** a random sample of the candidates, **separately for each number of predicted sources** (0, 1, 2,
   3: the confidence of a scene with more objects is a minimum over more terms, so one shared threshold keeps
   mostly the silent and one-source scenes, and the next round learns little it did not know): each is saved as
   an overlay PNG (frame, predicted map, classes) for a person; here a scripted reviewer that reads the hidden
   ground truth accepts or rejects it. Rejected ones are dropped; if more than ``max_reject`` of a stratum's
   sample is rejected, that stratum's threshold rises by ``threshold_step`` and its remaining candidates are
   reviewed again.
5. **Write** ``accepted.h5`` (labels of the accepted scenes: the ``pseudo`` file of the next training round) and
   ``report.json``: counts (also by number of sources), the thresholds, precision and recall against the hidden
   ground truth, ``label_multiplier``: video frames of the accepted scenes (``n_accepted_frames``, every frame of
   an accepted clip) per hand-labelled video frame (``n_hand_frames``, given by the caller).

Example:
    >>> teacher_labels(np.zeros((4, 8, 8)), np.zeros(4))[2]          # nothing predicted, confidently
    1.0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError

logger = logging.getLogger(__name__)
Array = np.ndarray[Any, Any]


def teacher_labels(maps: Array, presence: Array, threshold: float = 0.5) -> tuple[Array, Array, float]:
    """Label map ``(H, W)`` uint8 (object ``i + 1`` of class ``classes[i]``), the classes, and the confidence.

    Args:
        maps: Per-class maps ``(K, H, W)`` in [0, 1] (presence already multiplied in).
        presence: Per-class presence probabilities ``(K,)``.
        threshold: Map value that counts as sounding.
    """
    maps = np.asarray(maps)
    presence = np.asarray(presence, dtype=np.float64)
    winner = maps.argmax(0)
    sounding = maps.max(0) >= threshold
    labels = np.zeros(maps.shape[1:], dtype=np.uint8)
    classes: list[int] = []
    certainty = [float(np.abs(2 * p - 1)) for p in presence]  # 1: sure either way; 0: a coin toss
    for k in np.argsort(-presence):
        mask = sounding & (winner == k)
        if presence[k] < 0.5 or not mask.any():
            continue
        classes.append(int(k))
        labels[mask] = len(classes)
        certainty.append(float(maps[k][mask].mean()) * 2 - 1)
    confidence = float(max(0.0, min(certainty))) if certainty else 0.0
    return labels, np.array(classes, dtype=np.int64), confidence


def label_correct(labels: Array, classes: Array, truth: Array, cls: Array, sounding: Array) -> bool:
    """Whether a pseudo-label is right: the same set of sounding classes, and cIoU ≥ 0.5 of the sounding area
    (for a scene without sounding objects: nothing predicted)."""
    from apps.avsl.metrics import ciou

    true_ids = [i for i in range(len(cls)) if int(cls[i]) >= 0 and bool(sounding[i])]
    if sorted(int(cls[i]) for i in true_ids) != sorted(int(c) for c in classes):
        return False
    if not true_ids:
        return not bool((labels > 0).any())
    return ciou(labels > 0, np.isin(truth, [i + 1 for i in true_ids])) >= 0.5


def label_shard(
    teacher: str | Path, scenes: str | Path, out_dir: str | Path, n_shards: int, shard: int, map_threshold: float = 0.5
) -> Path:
    """Label shard ``shard`` of ``n_shards`` of a scene file with the teacher run; write ``shard-<k>.h5``."""
    import torch

    from apps.avsl.data import AVSLDataset
    from core.data import HDF5Writer
    from core.train import load_run

    torch.set_num_threads(int(os.environ.get("AVSL_THREADS", "1")))
    out = Path(out_dir) / f"shard-{shard:04d}.h5"
    if out.is_file():
        logger.info("shard %d already labelled: %s", shard, out)
        return out
    dataset = AVSLDataset(scenes)
    names = dataset.sources[0].names
    bounds = np.linspace(0, len(dataset), n_shards + 1).astype(int)
    items = list(range(bounds[shard], bounds[shard + 1]))
    task = load_run(teacher)

    def make(item: int) -> tuple[str, dict[str, Any]]:
        sample = dataset[item]
        with torch.inference_mode():
            outputs = task(sample["image"][None], sample["audio"][None])
            maps = task.model.probabilities(outputs, tuple(sample["image"].shape[-2:]))[0].numpy()
            presence = torch.sigmoid(outputs["presence"][0]).numpy()
        labels, classes, confidence = teacher_labels(maps, presence, map_threshold)
        scene = dataset.items[item][1]
        return names[scene], {
            "labels": labels,
            "cls": classes,
            "sounding": np.ones(len(classes), dtype=np.bool_),
            "confidence": np.float32(confidence),
            "presence": presence.astype(np.float32),
        }

    HDF5Writer(out, chunk_size=256, compression="gzip").write(items, make_sample=make)
    return out


class _CopyGroup:
    """Picklable ``(file, group) -> (group, sample)`` for merging shard files with ``HDF5Writer``."""

    def __call__(self, item: tuple[str, str]) -> tuple[str, dict[str, Any]]:
        from core.data.hdf5 import open_hdf5, read_group

        path, name = item
        with open_hdf5(path) as f:
            return name, read_group(f[name])


def merge_shards(shards: list[Path], out: Path) -> Path:
    """Merge shard files (one group per scene) into one file with core.data's ``HDF5Writer``."""
    from core.data import HDF5Writer, RawHDF5Dataset

    items = [(str(path), name) for path in shards for name in RawHDF5Dataset(path).group_names]
    return HDF5Writer(out, chunk_size=512, compression="gzip", overwrite=True).write(items, make_sample=_CopyGroup())


def _review_stratum(
    records: list[dict[str, Any]],
    threshold: float,
    step: float,
    fraction: float,
    min_review: int,
    max_reject: float,
    rng: np.random.Generator,
    reviewed: dict[str, bool],
    review: Any,
) -> float:
    """Review a sample of the records above ``threshold``; raise it by ``step`` while more than ``max_reject`` of
    a sample is rejected (the rest above it is sampled again). Returns the threshold the stratum settles at."""
    while True:
        candidates = [r for r in records if r["confidence"] >= threshold and reviewed.get(r["name"], True)]
        unreviewed = [r for r in candidates if r["name"] not in reviewed]
        n_sample = min(len(unreviewed), max(min_review, round(fraction * len(candidates))))
        sample = [unreviewed[int(j)] for j in rng.choice(len(unreviewed), n_sample, replace=False)] if n_sample else []
        rejected = sum(not review(r) for r in sample)
        if not sample or rejected <= max_reject * len(sample) or threshold >= 1.0:
            return threshold
        logger.info("threshold %.2f: %d of %d reviewed rejected; raising it", threshold, rejected, len(sample))
        threshold = min(1.0, threshold + step)


@dataclass
class RoundResult:
    report: dict[str, Any]
    accepted_path: Path
    overlays: list[Path]


def annotate_round(
    teacher: str | Path,
    scenes: str | Path,
    out_dir: str | Path,
    n_hand_frames: int,
    n_shards: int = 2,
    backend: str = "local",
    backend_config: str | None = None,
    threshold: float = 0.5,
    threshold_step: float = 0.1,
    map_threshold: float = 0.5,
    review_fraction: float = 0.05,
    min_review: int = 10,
    max_reject: float = 0.1,
    seed: int = 0,
    n_overlays: int = 16,
    timeout: float | None = None,
) -> RoundResult:
    """One annotation round (see the module docstring). Returns the report and where the accepted labels are."""
    from apps.avsl.data import AVSLDataset, SceneArrays
    from apps.avsl.overlay import save_overlay
    from core.data import RawHDF5Dataset
    from core.files import write_atomic
    from core.jobs import JobSpec, JobState, get_backend

    out = Path(out_dir)
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = [shard_dir / f"shard-{k:04d}.h5" for k in range(n_shards)]
    if not all(path.is_file() for path in shards):
        command = [sys.executable, "-m", "apps.avsl.annotate", "label", str(teacher), str(scenes), str(shard_dir)]
        command += ["--n-shards", str(n_shards), "--map-threshold", str(map_threshold)]
        path_env = os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))
        spec = JobSpec(
            command,
            name="avsl-annotate",
            log_path=out / "logs" / "label.log",
            n_tasks=n_shards,
            env={"PYTHONPATH": path_env, "OMP_NUM_THREADS": "1"},
        )
        runner = get_backend(backend, backend_config)
        handle = runner.submit(spec)
        status = runner.wait([handle], timeout=timeout)[0]
        if status.state != JobState.COMPLETED:
            logs = ", ".join(str(p) for p in handle.log_paths)
            raise UserError(f"labelling job {status.state.value}", where=handle.job_id, hint=f"see {logs}")
    merged = merge_shards(shards, out / "pseudo.h5")

    pseudo = RawHDF5Dataset(merged)
    truth = SceneArrays(scenes)
    index_of = {name: i for i, name in enumerate(truth.names)}
    records: list[dict[str, Any]] = []
    for i, name in enumerate(pseudo.group_names):
        group = pseudo.read_raw(i)
        scene = truth[index_of[name]]
        correct = label_correct(group["labels"], group["cls"], scene["labels"], scene["cls"], scene["sounding"])
        confidence, n_sources = float(group["confidence"]), len(group["cls"])
        records.append({"name": name, "confidence": confidence, "correct": correct, "n_sources": n_sources})

    rng = np.random.default_rng(seed)
    reviewed: dict[str, bool] = {}
    overlays: list[Path] = []
    dataset = AVSLDataset(scenes)

    def review(record: dict[str, Any]) -> bool:
        """The scripted reviewer: looks at the overlay, answers from the hidden ground truth."""
        reviewed[record["name"]] = bool(record["correct"])
        if len(overlays) < n_overlays:
            item = index_of[record["name"]]
            group = pseudo.read_raw(pseudo.group_names.index(record["name"]))
            path = out / "review" / f"{record['name']}-{'accept' if record['correct'] else 'reject'}.png"
            overlays.append(save_overlay(path, dataset[item]["image"], group["labels"] > 0, group["cls"]))
        return bool(record["correct"])

    thresholds = {}
    for n_sources in sorted({r["n_sources"] for r in records}):
        stratum = [r for r in records if r["n_sources"] == n_sources]
        thresholds[n_sources] = _review_stratum(
            stratum, threshold, threshold_step, review_fraction, min_review, max_reject, rng, reviewed, review
        )
    accepted = [r for r in records if r["confidence"] >= thresholds[r["n_sources"]] and reviewed.get(r["name"], True)]
    n_correct = sum(r["correct"] for r in records)
    true_positive = sum(r["correct"] for r in accepted)
    accepted_path = out / "accepted.h5"
    from core.data import HDF5Writer

    names = {r["name"] for r in accepted}
    keep = [(str(merged), n) for n in pseudo.group_names if n in names]
    HDF5Writer(accepted_path, chunk_size=512, compression="gzip", overwrite=True).write(keep, make_sample=_CopyGroup())
    n_frames = int(truth.config.get("n_frames", 1))
    report = {
        "n_unlabelled": len(records),
        "n_accepted": len(accepted),
        "n_reviewed": len(reviewed),
        "n_rejected_in_review": sum(not ok for ok in reviewed.values()),
        "thresholds": {str(k): v for k, v in thresholds.items()},
        "n_accepted_by_sources": {str(k): sum(r["n_sources"] == k for r in accepted) for k in thresholds},
        "map_threshold": map_threshold,
        "pseudo_label_precision": true_positive / len(accepted) if accepted else float("nan"),
        "pseudo_label_recall": true_positive / n_correct if n_correct else float("nan"),
        "teacher_label_accuracy": n_correct / len(records) if records else float("nan"),
        "n_accepted_frames": len(accepted) * n_frames,
        "n_hand_frames": n_hand_frames,
        "label_multiplier": len(accepted) * n_frames / max(1, n_hand_frames),
        "accepted": str(accepted_path),
    }
    write_atomic(out / "report.json", json.dumps(report, indent=1) + "\n")
    return RoundResult(report, accepted_path, overlays)


def _main(argv: list[str] | None = None) -> int:
    """``python -m apps.avsl.annotate label TEACHER SCENES OUT_DIR --n-shards N``: one array element's share."""
    from core.jobs import split_tasks

    parser = argparse.ArgumentParser(prog="python -m apps.avsl.annotate")
    verbs = parser.add_subparsers(dest="verb", required=True)
    label = verbs.add_parser("label")
    label.add_argument("teacher")
    label.add_argument("scenes")
    label.add_argument("out_dir")
    label.add_argument("--n-shards", type=int, required=True)
    label.add_argument("--map-threshold", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for shard in split_tasks(list(range(args.n_shards))):
        path = label_shard(args.teacher, args.scenes, args.out_dir, args.n_shards, shard, args.map_threshold)
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = ["RoundResult", "annotate_round", "label_correct", "label_shard", "merge_shards", "teacher_labels"]
