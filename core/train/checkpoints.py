"""The checkpoints of a run directory: which is last, which are best (as ``ModelCheckpoint`` recorded them), and
averaging the N best into one.

``kakehashi train fit`` keeps checkpoints in ``<run dir>/checkpoints``. Every checkpoint Lightning writes carries
the ``ModelCheckpoint`` callback's state, including ``best_k_models`` (path → score) and ``best_model_path``; the
newest checkpoint therefore knows the current top k. Nothing here parses scores out of file names.

Example (after ``kakehashi train fit core/train/config/digits.yaml --run-dir runs/digits``)::

    >>> merge_top_k("runs/digits", 3)                                  # doctest: +SKIP
    PosixPath('runs/digits/checkpoints/merged-top3.ckpt')
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import UserError
from core.files import atomic_path

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


@dataclass(frozen=True)
class TopK:
    """One ``ModelCheckpoint``'s record: its monitor and mode, and its kept checkpoints, best first."""

    monitor: str | None
    mode: str
    best: list[tuple[Path, float]]
    best_model_path: Path | None


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def load_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """A checkpoint of our own runs, on the CPU (memory-mapped: reading the metadata of a big one is cheap)."""
    loaded: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=False, mmap=mmap)
    return loaded


def latest_checkpoint(run_dir: str | Path) -> Path:
    """``last.ckpt`` if the run saved one, else the checkpoint with the highest global step (merged ones aside)."""
    folder = checkpoint_dir(run_dir)
    if (folder / LAST).is_file():
        return folder / LAST
    candidates = []
    for path in sorted(folder.glob("*.ckpt")):
        state = load_checkpoint(path)
        if "merged_from" not in state:
            candidates.append((int(state.get("global_step", 0)), int(state.get("epoch", 0)), path))
    if not candidates:
        raise UserError("no checkpoint in the run directory", where=str(folder), hint="train first, or check the path")
    return max(candidates)[2]


def top_k_records(run_dir: str | Path) -> list[TopK]:
    """Every ``ModelCheckpoint``'s top-k record, from the newest checkpoint of the run."""
    folder = checkpoint_dir(run_dir)
    state = load_checkpoint(latest_checkpoint(run_dir))
    records = []
    for key, callback_state in state.get("callbacks", {}).items():
        if not str(key).startswith("ModelCheckpoint"):
            continue
        settings = _state_key_settings(str(key))
        mode = str(settings.get("mode", "min"))
        scores = [
            (_locate(path, folder), float(score)) for path, score in callback_state.get("best_k_models", {}).items()
        ]
        scores.sort(key=lambda item: item[1], reverse=mode == "max")
        best_path = callback_state.get("best_model_path")
        records.append(
            TopK(callback_state.get("monitor"), mode, scores, _locate(best_path, folder) if best_path else None)
        )
    return records


def monitored_record(run_dir: str | Path, monitor: str | None = None) -> TopK:
    """The record of the ``ModelCheckpoint`` that monitors ``monitor`` (the only monitoring one if ``None``)."""
    records = [r for r in top_k_records(run_dir) if r.monitor is not None]
    if monitor is not None:
        records = [r for r in records if r.monitor == monitor]
    if len(records) == 1:
        return records[0]
    known = ", ".join(sorted({str(r.monitor) for r in top_k_records(run_dir) if r.monitor})) or "none"
    if not records:
        raise UserError(
            f"no ModelCheckpoint monitoring {monitor or 'a metric'} in this run",
            where=str(checkpoint_dir(run_dir)),
            hint=f"monitored: {known}; set callbacks.checkpoint.monitor when training",
        )
    raise UserError(
        "several ModelCheckpoints monitor metrics", where=str(run_dir), hint=f"choose one with --monitor ({known})"
    )


def resolve_checkpoint(run_dir: str | Path, which: str | Path = "best") -> Path:
    """``best`` (the monitored best, else the latest), ``last``, or a path (absolute, or in the checkpoint folder)."""
    folder = checkpoint_dir(run_dir)
    if str(which) == "last":
        return latest_checkpoint(run_dir)
    if str(which) == "best":
        monitored = [r for r in top_k_records(run_dir) if r.monitor is not None and r.best_model_path]
        if len(monitored) > 1:
            shown = ", ".join(str(r.monitor) for r in monitored)
            raise UserError(
                "several ModelCheckpoints monitor metrics", where=str(run_dir), hint=f"give a checkpoint path ({shown})"
            )
        if monitored and monitored[0].best_model_path and monitored[0].best_model_path.is_file():
            return monitored[0].best_model_path
        return latest_checkpoint(run_dir)
    for candidate in (Path(which), folder / str(which)):
        if candidate.is_file():
            return candidate
    available = ", ".join(p.name for p in sorted(folder.glob("*.ckpt"))) or "none"
    raise UserError(
        f"checkpoint {str(which)!r} not found", where=str(folder), hint=f"best, last or one of: {available}"
    )


def merge_top_k(run_dir: str | Path, top_k: int, monitor: str | None = None, output: str | Path | None = None) -> Path:
    """Average the weights of the ``top_k`` best checkpoints of a run; return the merged checkpoint's path.

    The merged file is a full Lightning checkpoint (the best one's, with averaged ``state_dict``, no optimizer
    state and a ``merged_from`` list), so ``kakehashi train validate RUN --ckpt merged-topN.ckpt`` and
    :func:`~core.train.run.load_run` read it. Floating-point tensors are averaged; integer buffers (counters) are
    the best checkpoint's.

    Raises:
        UserError: If fewer than ``top_k`` checkpoints were kept, or their tensors do not match.
    """
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    record = monitored_record(run_dir, monitor)
    if len(record.best) < top_k:
        raise UserError(
            f"{top_k} checkpoints asked but ModelCheckpoint(monitor={record.monitor}) kept {len(record.best)}",
            where=str(checkpoint_dir(run_dir)),
            hint="ask fewer, or train with a larger callbacks.checkpoint.save_top_k",
        )
    chosen = record.best[:top_k]
    missing = [str(path) for path, _ in chosen if not path.is_file()]
    if missing:
        raise UserError(f"recorded checkpoint missing: {missing[0]}", where=str(checkpoint_dir(run_dir)))
    merged = load_checkpoint(chosen[0][0], mmap=False)
    average = {key: _float64(value) for key, value in merged["state_dict"].items()}
    for path, _ in chosen[1:]:
        state = load_checkpoint(path)["state_dict"]
        if set(state) != set(average):
            raise UserError("checkpoints hold different tensors", where=str(path), hint="they are not of one model")
        for key, value in state.items():
            if tuple(value.shape) != tuple(average[key].shape):
                raise UserError(f"tensor {key} differs in shape", where=str(path))
            if value.is_floating_point():
                average[key] += value.to(torch.float64)
    merged["state_dict"] = {
        key: (average[key] / top_k).to(value.dtype) if value.is_floating_point() else value
        for key, value in merged["state_dict"].items()
    }
    for stale in ("optimizer_states", "lr_schedulers"):
        merged.pop(stale, None)
    merged["merged_from"] = [{"path": str(path), "score": score, "monitor": record.monitor} for path, score in chosen]
    target = Path(output) if output else checkpoint_dir(run_dir) / f"merged-top{top_k}.ckpt"
    with atomic_path(target) as temporary:
        torch.save(merged, temporary)
    return target


def _float64(value: torch.Tensor) -> torch.Tensor:
    return value.to(torch.float64) if value.is_floating_point() else value


def _locate(recorded: str | Path, folder: Path) -> Path:
    """A recorded path, or the file of that name in the run's checkpoint folder if the run was moved."""
    path = Path(recorded)
    if path.is_file() or not (folder / path.name).is_file():
        return path
    return folder / path.name


def _state_key_settings(key: str) -> dict[str, Any]:
    """``ModelCheckpoint{'monitor': 'val/acc', 'mode': 'max', ...}`` → the dict."""
    try:
        settings = ast.literal_eval(key[len("ModelCheckpoint") :])
    except (ValueError, SyntaxError):
        return {}
    return settings if isinstance(settings, dict) else {}


__all__ = [
    "TopK",
    "checkpoint_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "merge_top_k",
    "monitored_record",
    "resolve_checkpoint",
    "top_k_records",
]
