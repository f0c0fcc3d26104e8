"""``CPUBudget``: train for a budget of CPU time, with the learning rate annealed over the budget.

"At most 15 minutes of CPU training" means compute, not wall time: on a shared machine the wall clock also counts
other people's jobs. The callback reads this process's CPU time (user + system, all threads) from the start of
fit, sets the learning rate of every parameter group to ``base · ½(1 + cos(π·f))`` (``f``: share of the budget
spent, never below ``min_factor``), and stops at the end of the first epoch that finds the budget spent (so the
last epoch is validated and checkpointed). Under DDP the ranks agree to stop together.

Example:
    >>> budget = CPUBudget(minutes=0.5)
    >>> budget.factor(0.0), round(budget.factor(15.0), 3), budget.factor(60.0)
    (1.0, 0.5, 0.02)
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning


class CPUBudget(lightning.Callback):
    """Stop after ``minutes`` of this process's CPU time; anneal the learning rate over the budget (cosine).

    Args:
        minutes: The budget.
        anneal: Set the learning rate from the budget share spent (off: leave it to the task's schedulers).
        min_factor: The smallest learning-rate factor.
    """

    def __init__(self, minutes: float = 15.0, anneal: bool = True, min_factor: float = 0.02) -> None:
        self.seconds = 60.0 * minutes
        self.anneal = anneal
        self.min_factor = min_factor
        self.start: float | None = None
        self.spent_before = 0.0  # CPU seconds of earlier runs of a resumed fit
        self.base_lrs: list[float] = []

    def factor(self, spent: float) -> float:
        share = min(1.0, spent / self.seconds) if self.seconds > 0 else 1.0
        return max(self.min_factor, 0.5 * (1.0 + math.cos(math.pi * share)))

    def spent(self) -> float:
        return self.spent_before + (time.process_time() - self.start if self.start is not None else 0.0)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.start = time.process_time()
        if not self.base_lrs:  # a resumed fit keeps the first run's (the optimizer's were annealed)
            self.base_lrs = [group.get("initial_lr", group["lr"]) for group in trainer.optimizers[0].param_groups]

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self.anneal:
            return
        factor = self.factor(self.spent())
        for group, base in zip(trainer.optimizers[0].param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        pl_module.log("train/lr_factor", factor, batch_size=1)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        over = self.spent() >= self.seconds
        if trainer.strategy.reduce_boolean_decision(over, all=False):
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.spent(), "base_lrs": self.base_lrs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.spent_before = float(state_dict.get("spent", 0.0))
        self.base_lrs = [float(lr) for lr in state_dict.get("base_lrs", [])]


__all__ = ["CPUBudget"]
