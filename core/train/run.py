"""Config-driven training: :func:`fit`, :func:`evaluate` (validate / test / predict) and :func:`load_run`.

A training config has four parts (defaults in ``core/train/config/default.yaml``)::

    seed: 0
    trainer: {_target_: lightning.Trainer, max_epochs: 20, ...}
    callbacks: {checkpoint: {_target_: lightning.pytorch.callbacks.ModelCheckpoint, ...}, metric: ...}
    task: {_target_: core.train.tasks.ClassificationTask, model: {...}, optimizer: {...}}
    datamodule: {_target_: core.train.digits.DigitsDataModule, batch_size: 64}

``callbacks`` is a mapping so that one callback can be changed or dropped by name (``callbacks.metric=null``).
:func:`fit` seeds, writes ``merged_config.yaml`` and ``provenance.json`` into the run directory (rank 0 only),
keeps checkpoints in ``<run dir>/checkpoints`` and logs to ``<run dir>/logs`` (CSV) unless the config says
otherwise, and adds a cluster environment from :mod:`core.train.cluster` when one applies.

Example:
    >>> from core.config import load_config, package_dir
    >>> import tempfile
    >>> cfg = load_config(package_dir("core.train.config") / "digits.yaml",
    ...                   ["trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    >>> result = fit(cfg, run_dir=tempfile.mkdtemp())                       # doctest: +SKIP
    >>> task = load_run(result.run_dir)                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf

from core.config import as_dict, check_targets, instantiate, load_config, save_run_config
from core.errors import ConfigError, UserError
from core.files import atomic_path, write_atomic
from core.jobs.ranks import get_local_rank, get_rank
from core.train.checkpoints import LAST, checkpoint_dir, load_checkpoint, resolve_checkpoint
from core.train.config.schema import TrainConfig, check_train_config

RUN_DIR_VARIABLE = "KAKEHASHI_RUN_DIR"  # handed to the ranks Lightning starts itself, so all use one run dir
_REQUIRED = ("trainer", "task", "datamodule")

Stage = Literal["validate", "test", "predict"]


@dataclass
class FitResult:
    """Where a run went and how it ended."""

    run_dir: Path
    best_checkpoint: Path | None
    best_score: float | None
    last_checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def fit(
    config: DictConfig | str | Path,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> FitResult:
    """Train the config's task on its datamodule with its trainer.

    Args:
        config: A loaded config or a YAML file (then ``overrides`` apply).
        overrides: ``key=value`` overrides of a YAML file.
        run_dir: The run directory (default: the config's ``run_dir``, else ``runs/<config name>/<time>``).
        resume: ``"last"`` (the run directory's last checkpoint), a checkpoint file, or a run directory
            (its last checkpoint; it is also the run directory unless one is given).
    """
    cfg, name = _config_and_name(config, overrides)
    _require(cfg, _REQUIRED)
    check_targets(cfg)
    run, checkpoint = _run_dir_and_resume(cfg, name, run_dir, resume)
    if is_rank_zero():
        _keep_history(run)
        save_run_config(cfg, run)

    import lightning

    _quiet_lightning_tips()
    lightning.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    with _run_dir_for_children(run):
        datamodule = instantiate(cfg.datamodule)
        task = instantiate(cfg.task)
        trainer = build_trainer(cfg, run)
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
    return _fit_result(trainer, run)


def evaluate(
    run_dir: str | Path, stage: Stage, checkpoint: str | Path = "best", overrides: Sequence[str] = ()
) -> tuple[Any, Path]:
    """Validate, test or predict with a trained run; return the results and the file they were written to.

    ``validate`` and ``test`` return the metrics (a dict) and write ``results/<stage>-<checkpoint>.json``;
    ``predict`` returns the list of ``predict_step`` outputs and writes them with ``torch.save`` to
    ``results/predict-<checkpoint>.pt``. The config is the run's ``merged_config.yaml`` with ``overrides``;
    the training callbacks (checkpointing, metric files) are not used.
    """
    import json

    import torch

    run = Path(run_dir)
    cfg = load_run_config(run, overrides)
    path = resolve_checkpoint(run, checkpoint)
    datamodule = instantiate(cfg.datamodule)
    task = instantiate(cfg.task)
    trainer = build_trainer(cfg, run, with_callbacks=False, logger=False)
    results_dir = run / "results"
    results_dir.mkdir(exist_ok=True)
    if stage == "predict":
        predictions = trainer.predict(task, datamodule=datamodule, ckpt_path=str(path))
        out = results_dir / f"predict-{path.stem}.pt"
        with atomic_path(out) as temporary:
            torch.save(predictions, temporary)
        return predictions, out
    run_stage = trainer.validate if stage == "validate" else trainer.test
    logged = run_stage(task, datamodule=datamodule, ckpt_path=str(path))[0]
    metrics = {key: float(value) for key, value in logged.items()}
    out = results_dir / f"{stage}-{path.stem}.json"
    if trainer.is_global_zero:
        write_atomic(out, json.dumps({"checkpoint": str(path), "metrics": metrics}, indent=2) + "\n")
    return metrics, out


def load_run(
    run_dir: str | Path, checkpoint: str | Path = "best", map_location: str = "cpu", overrides: Sequence[str] = ()
) -> Any:
    """The trained task of a run, weights loaded, in eval mode: one call for notebooks, services and ROS nodes.

    Args:
        run_dir: A run directory written by :func:`fit`.
        checkpoint: ``best``, ``last``, a file name in ``<run dir>/checkpoints`` (``merged-top3.ckpt``) or a path.
        map_location: Device of the weights.
        overrides: Overrides of the run's config (e.g. a changed inference setting).

    Example:
        >>> task = load_run("runs/digits/20250101-120000")                   # doctest: +SKIP
        >>> task(inputs).argmax(-1)                                           # doctest: +SKIP
    """
    cfg = load_run_config(run_dir, overrides)
    task = instantiate(cfg.task)
    state = load_checkpoint(resolve_checkpoint(run_dir, checkpoint), mmap=False)
    task.load_state_dict(state["state_dict"])
    task.to(map_location)
    task.eval()
    return task


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The config a run was trained with (``merged_config.yaml``), with ``overrides``."""
    path = Path(run_dir) / "merged_config.yaml"
    if not path.is_file():
        raise UserError(
            "not a run directory: no merged_config.yaml", where=str(run_dir), hint="give the --run-dir of a fit"
        )
    cfg = load_config(path, overrides, schema=TrainConfig)
    _require(cfg, ("task",))
    return cfg


def build_trainer(cfg: DictConfig, run_dir: Path, with_callbacks: bool = True, logger: Any = None) -> Any:
    """The config's ``trainer`` with its callbacks, a CSV logger in the run dir and a cluster environment.

    ``callbacks`` (the top-level mapping; skipped when ``with_callbacks`` is false) and ``trainer.callbacks``
    (a list) are both used. A ``ModelCheckpoint`` without ``dirpath`` saves into ``<run dir>/checkpoints``.
    """
    from lightning.fabric.plugins.environments.cluster_environment import ClusterEnvironment
    from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from core.train.cluster import detect_cluster_environment

    node = as_dict(cfg.trainer, where="trainer")
    trainer_callbacks = node.pop("callbacks", None) or []
    plugins_node = node.pop("plugins", None) or []
    logger_node = node.pop("logger", None)
    callbacks: list[Any] = []
    if with_callbacks:
        named = cfg.get("callbacks") or {}
        if not isinstance(named, DictConfig):
            raise ConfigError("`callbacks` must be a mapping of name to callback", where="callbacks")
        callbacks += [instantiate(value) for value in named.values() if value is not None]
    callbacks += [instantiate(value) for value in _as_list(trainer_callbacks, "trainer.callbacks") if value is not None]
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(checkpoint_dir(run_dir).resolve())
    if node.get("enable_progress_bar", True) is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if logger is None:
        logger = instantiate(logger_node) if logger_node is not None else CSVLogger(str(run_dir), name="logs")
    plugins = [instantiate(p) for p in _as_list(plugins_node, "trainer.plugins")]
    if not any(isinstance(p, ClusterEnvironment) for p in plugins):
        environment = detect_cluster_environment()
        if environment is not None:
            plugins.append(environment)
    node.setdefault("default_root_dir", str(run_dir))
    return instantiate(node, callbacks=callbacks, logger=logger, plugins=plugins or None)


def is_rank_zero() -> bool:
    """Whether this process is the first of its job (before any process group exists)."""
    node_rank = os.environ.get("NODE_RANK", "0")
    return get_rank() == 0 and get_local_rank() == 0 and node_rank in ("", "0")


def _config_and_name(config: DictConfig | str | Path, overrides: Sequence[str]) -> tuple[DictConfig, str]:
    if isinstance(config, DictConfig):
        if overrides:
            raise ValueError("overrides apply to a config file; apply them before passing a loaded config")
        return check_train_config(config, "config"), "run"
    return load_config(config, overrides, schema=TrainConfig), Path(config).stem


def _require(cfg: DictConfig, keys: Sequence[str]) -> None:
    for key in keys:
        if key not in cfg or OmegaConf.is_missing(cfg, key) or cfg.get(key) is None:
            raise ConfigError(
                f"the config has no `{key}` node",
                where=key,
                hint=f"add `{key}:` with a _target_ (see core/train/config/digits.yaml)",
            )


def _run_dir_and_resume(
    cfg: DictConfig, name: str, run_dir: str | Path | None, resume: str | Path | None
) -> tuple[Path, Path | None]:
    inherited = os.environ.get(RUN_DIR_VARIABLE) if "LOCAL_RANK" in os.environ else None
    resume_dir = Path(resume) if resume is not None and Path(resume).is_dir() else None
    chosen = run_dir or inherited or resume_dir or cfg.get("run_dir")
    if resume is not None and chosen is None and str(resume) == "last":
        raise UserError("--resume without a run directory", hint="give --run-dir DIR, or --resume DIR")
    run = Path(chosen) if chosen else _new_run_dir(name)
    if resume is None:
        return run, None
    if str(resume) == "last" or resume_dir is not None:
        last = checkpoint_dir(resume_dir or run) / LAST
        if not last.is_file():
            raise UserError(
                "no last checkpoint to resume from",
                where=str(last),
                hint="train with callbacks.checkpoint.save_last=true, or give a checkpoint file",
            )
        return run, last
    if not Path(resume).is_file():
        raise UserError("checkpoint to resume from not found", where=str(resume))
    return run, Path(resume)


def _new_run_dir(name: str) -> Path:
    base = Path("runs") / name / datetime.now().strftime("%Y%m%d-%H%M%S")
    run, suffix = base, 1
    while run.exists():
        run, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    return run


def _keep_history(run: Path) -> None:
    """Before a resumed run rewrites its config and provenance, keep the previous ones in ``history/<n>``."""
    previous = [run / "merged_config.yaml", run / "provenance.json"]
    if not previous[0].is_file():
        return
    history = run / "history"
    index = len(list(history.glob("*"))) if history.is_dir() else 0
    target = history / str(index)
    target.mkdir(parents=True, exist_ok=True)
    for path in previous:
        if path.is_file():
            shutil.copy2(path, target / path.name)


@contextlib.contextmanager
def _run_dir_for_children(run: Path) -> Iterator[None]:
    previous = os.environ.get(RUN_DIR_VARIABLE)
    os.environ[RUN_DIR_VARIABLE] = str(run.resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_VARIABLE, None)
        else:
            os.environ[RUN_DIR_VARIABLE] = previous


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def _quiet_lightning_tips() -> None:
    """Lightning advertises a cloud service at every start; keep the console for what matters."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())


def _as_list(node: Any, where: str) -> list[Any]:
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, list | ListConfig):
        return list(node)
    raise ConfigError(f"`{where}` must be a list or a mapping", where=where)


def _fit_result(trainer: Any, run: Path) -> FitResult:
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path) if callback is not None and callback.best_model_path else None
    score = callback.best_model_score if callback is not None else None
    last = checkpoint_dir(run) / LAST
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
    return FitResult(
        run_dir=run,
        best_checkpoint=best,
        best_score=float(score) if score is not None else None,
        last_checkpoint=last if last.is_file() else None,
        metrics=metrics,
    )


__all__ = ["FitResult", "build_trainer", "evaluate", "fit", "is_rank_zero", "load_run", "load_run_config"]
