"""Behaviour cloning as a core.train task: action regression plus, for the mixture, a gate and experts taught by
the behaviour labels.

``loss = MSE(actions, operator's commands) + gate_weight · CE(gate logits, labels)
+ expert_weight · MSE(the labelled behaviour's expert's action, operator's command)`` over the real (unpadded)
steps. The last term specialises expert k on the steps of behaviour k (explore, collect, store), so that the
gate's choice is a choice among behaviours, not among interchangeable heads. Steps without a label (``-1``) add
no gate or expert term, and a single LSTM (no gate) has neither. Logged: ``{train,val}/loss``, ``/bc`` (the
MSE of the policy's action) and, for the mixture, ``/gate``, ``/gate_acc`` and ``/expert``.

Example:
    >>> import torch
    >>> from apps.robots.imitation.policy import MoELSTMPolicy
    >>> task = ImitationTask(MoELSTMPolicy(obs_dim=6, hidden=8, n_experts=3, head_hidden=8), n_robots=2)
    >>> batch = {"obs": torch.zeros(2, 5, 6), "action": torch.zeros(2, 5, 2),
    ...          "label": torch.zeros(2, 5, dtype=torch.long), "mask": torch.ones(2, 5, dtype=torch.bool)}
    >>> sorted(task.losses(batch))
    ['bc', 'expert', 'gate', 'gate_acc', 'loss']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.train.task import OptimizerFactory, OptimizerTask


class ImitationTask(OptimizerTask):
    """Behaviour cloning of a recurrent policy (see the module docstring).

    Args:
        model: ``MoELSTMPolicy`` or ``LSTMPolicy``.
        n_robots: The team size the policy is trained for (checked when it is evaluated).
        gate_weight: Weight of the gate's cross-entropy against the behaviour labels (0: the gate learns from the
            action loss alone).
        expert_weight: Weight of the labelled behaviour's expert's own action error (0: the experts learn only
            through the gate-weighted mixture).
        optimizer, schedulers, param_groups: See :class:`~core.train.task.OptimizerTask`.
    """

    def __init__(
        self,
        model: nn.Module,
        n_robots: int,
        gate_weight: float = 0.5,
        expert_weight: float = 0.0,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.model = model
        self.n_robots = n_robots
        self.gate_weight = gate_weight
        self.expert_weight = expert_weight

    def forward(self, obs: Tensor, state: Any = None) -> Any:
        return self.model(obs, state)

    def losses(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = self.model(batch["obs"])
        mask = batch["mask"]
        bc = ((out.actions - batch["action"]) ** 2).sum(-1)[mask].mean() / 2
        result = {"bc": bc, "loss": bc}
        if out.gate_logits is not None:
            labelled = mask & (batch["label"] >= 0)
            if labelled.any():
                logits, labels = out.gate_logits[labelled], batch["label"][labelled]
                gate = F.cross_entropy(logits, labels)
                result["gate"] = gate
                result["gate_acc"] = (logits.argmax(-1) == labels).float().mean()
                if self.gate_weight > 0:
                    result["loss"] = result["loss"] + self.gate_weight * gate
                if out.proposals is not None:
                    chosen = out.proposals[labelled][torch.arange(len(labels)), labels]  # (steps, action)
                    expert = ((chosen - batch["action"][labelled]) ** 2).sum(-1).mean() / 2
                    result["expert"] = expert
                    if self.expert_weight > 0:
                        result["loss"] = result["loss"] + self.expert_weight * expert
        return result

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.losses(batch)
        size = len(batch["obs"])
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=size)
        return losses["loss"]

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        for name, value in self.losses(batch).items():
            self.log(f"val/{name}", value, prog_bar=name == "loss", batch_size=len(batch["obs"]), sync_dist=True)


def policy_of(task: Any) -> nn.Module:
    """The policy network of a loaded task (``core.train.load_run``), in eval mode."""
    model: nn.Module = task.model
    model.eval()
    return model


__all__ = ["ImitationTask", "policy_of"]
