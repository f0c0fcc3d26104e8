"""Ready tasks built on :class:`~core.train.task.OptimizerTask`.

Example:
    >>> import torch
    >>> from core.train.modules import MLP
    >>> task = ClassificationTask(MLP(4, [8], 3))
    >>> task(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.train.task import OptimizerFactory, OptimizerTask


class ClassificationTask(OptimizerTask):
    """Train ``model`` (inputs → class logits) with cross-entropy; log ``{train,val,test}/loss`` and ``/acc``.

    Batches are ``(inputs, labels)``; ``predict`` returns the predicted class of each input.

    Args:
        model: The network.
        label_smoothing: Cross-entropy label smoothing.
        optimizer, schedulers, param_groups: See :class:`~core.train.task.OptimizerTask`.
    """

    def __init__(
        self,
        model: nn.Module,
        label_smoothing: float = 0.0,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(self, inputs: Tensor) -> Tensor:
        logits: Tensor = self.model(inputs)
        return logits

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        inputs, labels = batch[0], batch[1]
        loss = F.cross_entropy(self(inputs), labels, label_smoothing=self.label_smoothing)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Sequence[Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        logits: Tensor = self(batch[0])
        return logits.argmax(dim=-1)

    def _evaluate(self, batch: Sequence[Tensor], stage: str) -> None:
        inputs, labels = batch[0], batch[1]
        logits = self(inputs)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=-1) == labels).to(torch.float32).mean()
        self.log(f"{stage}/loss", loss, sync_dist=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=True, sync_dist=True)


__all__ = ["ClassificationTask"]
