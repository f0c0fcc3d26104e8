"""The schema of train's own keys: what :func:`core.train.run.fit` reads, with its defaults and ranges.

The ``trainer`` node is ``lightning.Trainer``'s arguments: the ones declared here are typed and range-checked,
any other argument of ``Trainer`` passes through (Lightning checks it), except a near miss of a declared one
(``max_epoch``), which is refused with the nearest key. ``task`` and ``datamodule`` are ``_target_`` nodes of the
user's choice; ``callbacks`` maps names to callback nodes (``null`` drops one).

Example:
    >>> from omegaconf import OmegaConf
    >>> cfg = check_train_config(OmegaConf.create({"task": {"_target_": "a.B"}, "datamodule": {"_target_": "c.D"}}),
    ...                          where="train.yaml")
    >>> cfg.trainer.max_epochs, cfg.seed
    (10, 0)
    >>> check_train_config(OmegaConf.create({"trainer": {"max_epochs": "many"}, "task": {}, "datamodule": {}}),
    ...                    where="train.yaml")
    Traceback (most recent call last):
    ...
    core.errors.ConfigError: 'many' is not an int (train.yaml: trainer.max_epochs) — -1: no limit
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING, DictConfig

from core.config.schema import bounds, check_config, option


@dataclass
class TrainerSchema:
    """``lightning.Trainer`` arguments that kakehashi sets or reads; others pass through to Lightning."""

    open_keys: ClassVar[bool] = True

    _target_: str = "lightning.Trainer"
    accelerator: str = option("auto", doc="cpu | gpu | auto")
    devices: Any = field(default="auto", metadata=bounds(doc="a count, a list of device ids, or auto"))
    num_nodes: int = option(1, ge=1)
    strategy: Any = field(default="auto", metadata=bounds(doc="auto, ddp, ... or a strategy node"))
    max_epochs: int | None = option(10, ge=-1, doc="-1: no limit")
    min_epochs: int | None = option(None, ge=0)
    max_steps: int = option(-1, ge=-1, doc="-1: no limit")
    precision: Any = field(default="32-true", metadata=bounds(doc="32-true, 16-mixed, bf16-mixed, ..."))
    log_every_n_steps: int = option(10, ge=1)
    check_val_every_n_epoch: int | None = option(1, ge=1)
    accumulate_grad_batches: int = option(1, ge=1)
    gradient_clip_val: float | None = option(None, ge=0)
    enable_progress_bar: bool = option(True, doc="false: no bar (batch jobs, tests)")
    enable_model_summary: bool = False
    callbacks: Any = field(
        default=None, metadata=bounds(doc="a list of callback nodes, used with the named `callbacks`")
    )
    plugins: Any = None
    logger: Any = field(default=None, metadata=bounds(doc="a _target_ node; null: a CSV logger in <run dir>/logs"))


def _default_callbacks() -> dict[str, Any]:
    return {
        # the top k by `monitor` in <run dir>/checkpoints (`train merge`, --ckpt best)
        "checkpoint": {
            "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
            "monitor": None,
            "mode": "min",
            "save_top_k": 1,
        },
        # <run dir>/checkpoints/last.ckpt after every epoch: what --resume reads
        "last": {"_target_": "core.train.callbacks.LastCheckpoint"},
        "progress": {"_target_": "lightning.pytorch.callbacks.RichProgressBar"},
    }


@dataclass
class TrainConfig:
    """A training config: ``seed``, ``run_dir``, ``trainer``, ``callbacks``, ``task``, ``datamodule``.

    Other top-level keys are allowed (values to interpolate, e.g. ``data_dir``), except a near miss of one of
    these (``sed``, ``trainers``).
    """

    open_keys: ClassVar[bool] = True

    seed: int = option(0, ge=0, doc="seeds Python, NumPy and torch (and the dataloader workers)")
    run_dir: str | None = option(None, doc="null: runs/<config name>/<time>; or --run-dir DIR")
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    callbacks: dict[str, Any] = field(default_factory=_default_callbacks)
    task: Any = field(
        default=MISSING, metadata=bounds(doc="a LightningModule node, e.g. core.train.tasks.ClassificationTask")
    )
    datamodule: Any = field(default=MISSING, metadata=bounds(doc="a LightningDataModule node"))


def check_train_config(cfg: DictConfig, where: str) -> DictConfig:
    """``cfg`` checked against :class:`TrainConfig`, merged over its defaults; one ``ConfigError`` line if not."""
    return check_config(cfg, TrainConfig, where=where)


__all__ = ["TrainConfig", "TrainerSchema", "check_train_config"]
