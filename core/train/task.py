"""``OptimizerTask``: a LightningModule whose optimizer, LR schedulers and parameter groups come from the config.

A task subclasses it and writes only ``training_step`` (and the evaluation steps); the config says how to
optimise::

    task:
      _target_: my.Task
      optimizer: {_target_: torch.optim.AdamW, _partial_: true, lr: 1e-3, weight_decay: 0.01}
      param_groups:                          # first matching group wins; the rest keep the defaults
        - {pattern: "encoder.*", lr: 1e-4}
        - {pattern: ["*.bias", "*norm*"], weight_decay: 0.0}
      schedulers:
        - scheduler: {_target_: torch.optim.lr_scheduler.OneCycleLR, _partial_: true, max_lr: 1e-3,
                      total_steps: 1000}
          interval: step                     # step | epoch
        - scheduler: {_target_: torch.optim.lr_scheduler.ReduceLROnPlateau, _partial_: true, patience: 2}
          monitor: val/loss

Patterns are shell-style globs (``fnmatch``) on the names of ``named_parameters()``.

Example:
    >>> import functools, torch
    >>> class Task(OptimizerTask):
    ...     def __init__(self, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.encoder, self.head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    >>> task = Task(optimizer=functools.partial(torch.optim.SGD, lr=0.1),
    ...             param_groups=[{"pattern": "encoder.*", "lr": 0.01}])
    >>> [(len(g["params"]), g["lr"]) for g in task.configure_optimizers()[0][0].param_groups]
    [(2, 0.01), (2, 0.1)]
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from core.errors import ConfigError
from core.train.schedulers import SequentialLR

OptimizerFactory = Callable[..., Optimizer]
_SCHEDULER_KEYS = {"scheduler", "interval", "frequency", "monitor", "strict", "name", "reduce_on_plateau"}


class OptimizerTask(lightning.LightningModule):
    """A LightningModule with ``configure_optimizers`` driven by its arguments (see the module docstring).

    Args:
        optimizer: ``params -> Optimizer`` (a ``_partial_: true`` node); default ``torch.optim.AdamW`` at lr 1e-3.
        schedulers: Each a factory ``optimizer -> scheduler`` or a mapping with ``scheduler`` (the factory) and
            Lightning's ``interval`` (``epoch`` | ``step``), ``frequency``, ``monitor``, ``strict``, ``name``.
        param_groups: Each a mapping with ``pattern`` (a glob or a list of globs over parameter names) and the
            optimizer options of that group. A pattern that matches no trainable parameter is an error.
    """

    def __init__(
        self,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_specs = list(schedulers or [])
        self.param_group_specs = [dict(group) for group in (param_groups or [])]

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: one per ``param_groups`` entry, then the unmatched parameters."""
        named = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": []} for _ in self.param_group_specs]
        rest: list[nn.Parameter] = []
        for name, parameter in named:
            for spec, group in zip(self.param_group_specs, groups, strict=True):
                if any(fnmatch.fnmatchcase(name, p) for p in _patterns(spec)):
                    group["params"].append(parameter)
                    break
            else:
                rest.append(parameter)
        for index, (spec, group) in enumerate(zip(self.param_group_specs, groups, strict=True)):
            if not group["params"]:
                shown = ", ".join(name for name, _ in named[:4]) + (", ..." if len(named) > 4 else "")
                raise ConfigError(
                    f"parameter group pattern {spec.get('pattern')!r} matches no trainable parameter",
                    where=f"task.param_groups[{index}]",
                    hint=f"parameter names look like: {shown}",
                )
            group.update({k: v for k, v in spec.items() if k != "pattern"})
        if rest:
            groups.append({"params": rest})
        return groups

    def configure_optimizers(self) -> Any:
        factory = self.optimizer_factory or _default_optimizer
        optimizer = factory(self.parameter_groups())
        configs = [self._scheduler_config(optimizer, spec, index) for index, spec in enumerate(self.scheduler_specs)]
        return [optimizer], configs

    def _scheduler_config(self, optimizer: Optimizer, spec: Any, index: int) -> dict[str, Any]:
        where = f"task.schedulers[{index}]"
        if callable(spec):
            spec = {"scheduler": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"a scheduler must be a factory or a mapping, got {type(spec).__name__}", where=where)
        config = dict(spec)
        unknown = set(config) - _SCHEDULER_KEYS
        if unknown:
            raise ConfigError(
                f"unknown scheduler key(s) {sorted(unknown)}", where=where, hint=f"allowed: {sorted(_SCHEDULER_KEYS)}"
            )
        if not callable(config.get("scheduler")):
            raise ConfigError(
                "`scheduler` must be a factory of the optimizer", where=where, hint="add `_partial_: true` to its node"
            )
        if config.setdefault("interval", "epoch") not in ("epoch", "step"):
            raise ConfigError(f"interval must be 'epoch' or 'step', got {config['interval']!r}", where=where)
        scheduler = config["scheduler"](optimizer)
        config["scheduler"] = scheduler
        plateau = isinstance(scheduler, ReduceLROnPlateau) or (
            isinstance(scheduler, SequentialLR) and config.get("monitor") is not None
        )
        config.setdefault("reduce_on_plateau", plateau)
        if config["reduce_on_plateau"] and not config.get("monitor"):
            raise ConfigError(
                "a ReduceLROnPlateau scheduler needs `monitor`", where=where, hint="e.g. monitor: val/loss"
            )
        return config


def _patterns(spec: Mapping[str, Any]) -> list[str]:
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        return [pattern]
    if isinstance(pattern, Iterable):
        return [str(p) for p in pattern]
    raise ConfigError("each parameter group needs a `pattern` (a glob or a list of globs)", where="task.param_groups")


def _default_optimizer(params: Any) -> Optimizer:
    return torch.optim.AdamW(params, lr=1e-3)


__all__ = ["OptimizerTask"]
