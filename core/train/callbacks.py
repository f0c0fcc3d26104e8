"""Callbacks every project rewrites: the metric for the HPO runner, partial pretrained loading, unused parameters.

- :class:`SaveMetric` writes the final or best value of a logged metric as ``{"value": v}`` (the result protocol
  of ``kakehashi hpo optimize``) and appends ``{"step": epoch, "value": v}`` lines to a report file for pruners,
  so HPO over ``kakehashi train fit`` is a config: ``callbacks.metric.path={out_file}``.
- :class:`LoadPretrained` loads weights from a checkpoint, a state dict or a run directory with a regex key map,
  skipping keys whose shapes differ, and reports what was loaded, missing, unexpected and skipped.
- :class:`LastCheckpoint` keeps ``last.ckpt`` current for ``--resume``.
- :class:`PrintUnusedParams` lists trainable parameters that got no gradient in the first backward pass.

Example:
    >>> import torch
    >>> source = {"encoder.weight": torch.ones(2, 2), "encoder.bias": torch.ones(3)}
    >>> target = torch.nn.Sequential()
    >>> target.add_module("backbone", torch.nn.Linear(2, 2))
    >>> report = load_pretrained(target, source, key_map={r"^encoder\\.": "backbone."})
    >>> report.loaded, report.shape_skipped
    (['backbone.weight'], [('backbone.bias', (3,), (2,))])
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from core.errors import UserError
from core.files import write_atomic


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt`` current: overwritten after every epoch (or every N epochs / steps).

    Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when it also saves a top-k
    checkpoint, so after the monitored metric stops improving, a resume would lose the epochs since. This one
    is what ``--resume`` reads. It has its own state key, so it lives beside the top-k ``ModelCheckpoint``.

    Args:
        dirpath: Folder (default: ``<run dir>/checkpoints``, filled in by ``train fit``).
        every_n_epochs, every_n_train_steps: How often to save (default: every epoch).
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            save_last=False,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
            # at the end of each training epoch, not only after validation: with check_val_every_n_epoch > 1 a
            # run shorter than the validation interval would otherwise leave no checkpoint to resume from
            save_on_train_epoch_end=True,
        )


class SaveMetric(Callback):
    """Write a logged metric for the HPO runner when training ends; report each validation's value while it runs.

    Args:
        monitor: The logged metric, e.g. ``val/acc``.
        mode: ``max`` or ``min``: the best value over validations; ``last``: the final value.
        path: Where ``{"value": v, "user_attrs": {...}}`` goes (default ``<run dir>/metric.json``).
        report_path: If given, each validation appends ``{"step": epoch, "value": v}`` to it (a pruner's input).
    """

    def __init__(
        self,
        monitor: str,
        mode: Literal["max", "min", "last"] = "last",
        path: str | Path | None = None,
        report_path: str | Path | None = None,
    ) -> None:
        if mode not in ("max", "min", "last"):
            raise UserError(f"SaveMetric mode must be max, min or last, got {mode!r}", where="callbacks")
        self.monitor = monitor
        self.mode = mode
        self.path = Path(path) if path else None
        self.report_path = Path(report_path) if report_path else None
        self.value: float | None = None
        self.epoch: int | None = None
        self.seen: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metric = trainer.callback_metrics.get(self.monitor)
        if metric is None:
            return
        value, epoch = float(metric), int(trainer.current_epoch)
        self.seen.append((epoch, value))
        if self._better(value):
            self.value, self.epoch = value, epoch
        if self.report_path is not None and trainer.is_global_zero:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            with self.report_path.open("a", encoding="utf-8") as report:
                report.write(json.dumps({"step": epoch, "value": value}) + "\n")

    def on_fit_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if self.value is None:
            logged = ", ".join(sorted(trainer.callback_metrics)) or "none"
            raise UserError(
                f"SaveMetric: the metric {self.monitor!r} was never logged in a validation",
                where="callbacks",
                hint=f"metrics logged: {logged}",
            )
        path = self.path or Path(trainer.default_root_dir) / "metric.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        result = {"value": self.value, "user_attrs": {"monitor": self.monitor, "epoch": self.epoch}}
        write_atomic(path, json.dumps(result) + "\n")

    def _better(self, value: float) -> bool:
        if self.mode == "last" or self.value is None or math.isnan(self.value):
            return True
        return value > self.value if self.mode == "max" else value < self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "epoch": self.epoch, "seen": self.seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.value, self.epoch = state_dict["value"], state_dict["epoch"]
        self.seen = [(int(epoch), float(value)) for epoch, value in state_dict["seen"]]


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, by target key."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the module, not in the (mapped) source
    unexpected: list[str] = field(default_factory=list)  # in the (mapped) source, not in the module
    shape_skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, src, dst

    def summary(self, limit: int = 5) -> str:
        """A few lines for the log."""

        def names(keys: Sequence[Any]) -> str:
            shown = ", ".join(str(k) for k in keys[:limit])
            return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

        lines = [f"loaded {len(self.loaded)} tensor(s)"]
        if self.missing:
            lines.append(f"missing (kept their initial values) {len(self.missing)}: {names(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected (ignored) {len(self.unexpected)}: {names(self.unexpected)}")
        if self.shape_skipped:
            shown = [f"{k} {list(s)}→{list(d)}" for k, s, d in self.shape_skipped]
            lines.append(f"skipped for their shape {len(self.shape_skipped)}: {names(shown)}")
        return "\n".join(lines)


def load_pretrained(
    module: nn.Module,
    source: str | Path | Mapping[str, Any],
    key_map: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
    strict: bool = False,
    weights_only: bool = True,
) -> LoadReport:
    """Copy matching tensors of ``source`` into ``module``; return what happened.

    Args:
        module: The model to fill.
        source: A state dict, a Lightning checkpoint (its ``state_dict``), a file holding either, or a run
            directory of ``kakehashi train fit`` (its best checkpoint).
        key_map: Regex → replacement on source keys (the first pattern that matches is applied, once),
            e.g. ``{"^model\\\\.encoder\\\\.": "backbone."}``.
        exclude: Regexes of source keys (after mapping) not to load.
        strict: Raise if anything is missing, unexpected or skipped.
        weights_only: Refuse pickled objects other than tensors and containers when reading a file.
    """
    state = _state_dict_of(source, weights_only)
    rules = [(re.compile(pattern), replacement) for pattern, replacement in (key_map or {}).items()]
    excluded = [re.compile(pattern) for pattern in exclude]
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            if pattern.search(key):
                key = pattern.sub(replacement, key, count=1)
                break
        if isinstance(value, torch.Tensor) and not any(p.search(key) for p in excluded):
            mapped[key] = value
    target = module.state_dict()
    report = LoadReport()
    loadable: dict[str, torch.Tensor] = {}
    for key, value in mapped.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.shape_skipped.append((key, tuple(value.shape), tuple(target[key].shape)))
        else:
            loadable[key] = value
    report.loaded = sorted(loadable)
    report.missing = sorted(set(target) - set(loadable) - {k for k, _, _ in report.shape_skipped})
    if strict and (report.missing or report.unexpected or report.shape_skipped):
        raise UserError("pretrained weights do not fit the model exactly:\n" + report.summary(), where=str(source))
    module.load_state_dict(loadable, strict=False)
    return report


def _state_dict_of(source: str | Path | Mapping[str, Any], weights_only: bool) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        state: Any = source
    else:
        path = Path(source)
        if path.is_dir():
            from core.train.checkpoints import resolve_checkpoint

            path = resolve_checkpoint(path, "best")
        if not path.is_file():
            raise UserError("pretrained weights not found", where=str(path), hint="give a checkpoint file or run dir")
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise UserError(f"no state dict in the pretrained source (a {type(state).__name__})", where=str(source))
    return state


class LoadPretrained(Callback):
    """Load pretrained weights into the task before training starts (not when resuming a checkpoint).

    Args:
        path: Checkpoint, state-dict file or run directory.
        key_map, exclude, strict, weights_only: See :func:`load_pretrained`.
    """

    def __init__(
        self,
        path: str | Path,
        key_map: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        strict: bool = False,
        weights_only: bool = True,
    ) -> None:
        self.path = Path(path)
        self.key_map = dict(key_map or {})
        self.exclude = list(exclude)
        self.strict = strict
        self.weights_only = weights_only
        self.report: LoadReport | None = None

    def setup(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str) -> None:
        # setup runs before a resumed checkpoint is restored, so resuming overrides these weights as it should
        if stage != "fit":
            return
        self.report = load_pretrained(pl_module, self.path, self.key_map, self.exclude, self.strict, self.weights_only)
        rank_zero_info(f"LoadPretrained {self.path}:\n{self.report.summary()}")


class PrintUnusedParams(Callback):
    """After the first backward pass, list the trainable parameters that received no gradient.

    Such parameters make DDP fail unless ``find_unused_parameters=True``, and usually point at a bug.
    The names are kept in :attr:`unused`.
    """

    def __init__(self) -> None:
        self.unused: list[str] | None = None

    def on_after_backward(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if self.unused is not None:
            return
        trainable = [(name, p) for name, p in pl_module.named_parameters() if p.requires_grad]
        self.unused = [name for name, p in trainable if p.grad is None]
        if self.unused:
            names = ", ".join(self.unused)
            rank_zero_info(f"{len(self.unused)} of {len(trainable)} trainable parameters got no gradient: {names}")
        else:
            rank_zero_info(f"all {len(trainable)} trainable parameters got gradients")


__all__ = ["LastCheckpoint", "LoadPretrained", "LoadReport", "PrintUnusedParams", "SaveMetric", "load_pretrained"]
