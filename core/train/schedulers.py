"""Learning-rate schedules that a config can describe: :class:`SequentialLR` chains schedulers built from factories.

``torch.optim.lr_scheduler.SequentialLR`` needs its schedulers already built on the optimizer, which a config
cannot do (the optimizer exists only inside ``configure_optimizers``), and it refuses ``ReduceLROnPlateau``.
This one takes factories (``_partial_: true`` nodes), builds each member when its turn comes, and passes the
monitored metric to a ``ReduceLROnPlateau`` member — e.g. a linear warm-up followed by reduce-on-plateau.

Example:
    >>> import functools, torch
    >>> from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = SequentialLR(opt, [functools.partial(LinearLR, start_factor=0.5, total_iters=2),
    ...                            functools.partial(CosineAnnealingLR, T_max=2)], milestones=[2])
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(round(sched.get_last_lr()[0], 3)); opt.step(); sched.step()
    >>> lrs
    [0.5, 0.75, 1.0, 0.5]
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

SchedulerFactory = Callable[[Optimizer], Any]


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until step ``milestones[0]``, then ``schedulers[1]``, and so on.

    At each milestone the learning rates go back to their initial values and the next member is built on the
    optimizer, as ``torch.optim.lr_scheduler.SequentialLR`` does. A ``ReduceLROnPlateau`` member gets the metric
    passed to :meth:`step` (give the scheduler a ``monitor`` in :class:`~core.train.task.OptimizerTask`).

    Args:
        optimizer: The optimizer whose learning rates are scheduled.
        schedulers: Factories ``optimizer -> scheduler`` (``functools.partial`` or ``_partial_: true`` nodes).
        milestones: Steps at which the next scheduler takes over; one fewer than ``schedulers``, increasing.
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[SchedulerFactory], milestones: Sequence[int]) -> None:
        if not schedulers:
            raise ValueError("SequentialLR needs at least one scheduler")
        if len(milestones) != len(schedulers) - 1:
            n = len(schedulers)
            raise ValueError(f"{n} schedulers need {n - 1} milestones, got {len(milestones)}")
        if any(b <= a for a, b in itertools.pairwise(milestones)) or any(m <= 0 for m in milestones):
            raise ValueError(f"milestones must be positive and increasing, got {list(milestones)}")
        self.optimizer = optimizer
        self.factories = list(schedulers)
        self.milestones = [int(m) for m in milestones]
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = 0
        self.members: list[Any] = [self.factories[0](optimizer)]
        self._last_lr = self._current_lrs()

    def step(self, metrics: float | Tensor | None = None) -> None:
        """Advance one step; ``metrics`` feeds a ``ReduceLROnPlateau`` member (ignored by the others)."""
        index = bisect.bisect_right(self.milestones, self.last_epoch + 1)
        if index >= len(self.members):
            self._reset_lrs()
            self.members.append(self.factories[index](self.optimizer))
        else:
            member = self.members[-1]
            if isinstance(member, ReduceLROnPlateau):
                if metrics is None:
                    raise ValueError("the ReduceLROnPlateau member of SequentialLR needs a metric: set `monitor`")
                member.step(float(metrics))
            else:
                member.step()
        self.last_epoch += 1
        self._last_lr = self._current_lrs()

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "members": [member.state_dict() for member in self.members]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Building a member changes the optimizer's learning rates, which the optimizer's own state restored.
        saved = [group["lr"] for group in self.optimizer.param_groups]
        while len(self.members) < len(state_dict["members"]):
            self.members.append(self.factories[len(self.members)](self.optimizer))
        for member, state in zip(self.members, state_dict["members"], strict=False):
            member.load_state_dict(state)
        for group, lr in zip(self.optimizer.param_groups, saved, strict=True):
            group["lr"] = lr
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self._current_lrs()

    def _reset_lrs(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = lr

    def _current_lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]


__all__ = ["SequentialLR"]
