"""Recurrent policies: an LSTM mixture of experts, a single-LSTM baseline of the same size, and their helpers.

:class:`MoELSTMPolicy` reads a robot's observations through one LSTM; K expert heads each propose wheel commands
from the LSTM state and the current observation, and a gate (a head of the same form, on the same input) weighs
them: ``action = Σ_k softmax(gate)_k · tanh(expert_k)``. The gate's argmax is the behaviour the policy is in.
:class:`LSTMPolicy` is the same without experts and gate: one LSTM and one head. :func:`matched_lstm_hidden`
picks its LSTM width so that both have the same number of parameters.

Both take ``(batch, time, obs_dim)`` and an optional LSTM state and return ``PolicyOutput(actions, gate_logits,
state, proposals)`` (``proposals``: each expert's action); the single LSTM returns ``gate_logits=None``.

Example:
    >>> import torch
    >>> moe = MoELSTMPolicy(obs_dim=20, hidden=32, n_experts=3, head_hidden=32)
    >>> out = moe(torch.zeros(4, 7, 20))
    >>> tuple(out.actions.shape), tuple(out.gate_logits.shape)
    ((4, 7, 2), (4, 7, 3))
    >>> single = LSTMPolicy(obs_dim=20, hidden=matched_lstm_hidden(moe, 20, head_hidden=96), head_hidden=96)
    >>> abs(count_parameters(single) - count_parameters(moe)) / count_parameters(moe) < 0.02
    True
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]


class PolicyOutput(NamedTuple):
    actions: Tensor  # (batch, time, 2) in [-1, 1]
    gate_logits: Tensor | None  # (batch, time, K) for the mixture
    state: LSTMState
    proposals: Tensor | None = None  # (batch, time, K, 2): each expert's action, for the mixture


def _head(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, out_features))


class MoELSTMPolicy(nn.Module):
    """LSTM with ``n_experts`` action heads and a gate (see the module docstring).

    Args:
        obs_dim: Length of one observation.
        hidden: LSTM width.
        n_experts: Number of expert heads (K).
        head_hidden: Hidden width of each expert head.
        action_dim: Length of one action.
    """

    def __init__(
        self,
        obs_dim: int,
        hidden: int = 48,
        n_experts: int = 3,
        head_hidden: int = 32,
        action_dim: int = 2,
    ) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.n_experts = n_experts
        self.lstm = nn.LSTM(obs_dim, hidden, batch_first=True)
        self.experts = nn.ModuleList(_head(hidden + obs_dim, head_hidden, action_dim) for _ in range(n_experts))
        # which behaviour applies is a nonlinear function of what the robot sees now (is a box inside the scoop?),
        # so the gate is a head like the experts, on the same input, not a linear map of the LSTM state
        self.gate = _head(hidden + obs_dim, head_hidden, n_experts)

    def forward(self, obs: Tensor, state: LSTMState | None = None) -> PolicyOutput:
        features, state = self.lstm(obs, state)
        joined = torch.cat([features, obs], dim=-1)
        proposals = torch.stack([torch.tanh(expert(joined)) for expert in self.experts], dim=-2)  # (B, T, K, A)
        gate_logits = self.gate(joined)
        weights = torch.softmax(gate_logits, dim=-1).unsqueeze(-1)
        return PolicyOutput((weights * proposals).sum(dim=-2), gate_logits, state, proposals)


class LSTMPolicy(nn.Module):
    """One LSTM and one action head: the behaviour-cloning baseline.

    Args:
        obs_dim: Length of one observation.
        hidden: LSTM width (see :func:`matched_lstm_hidden`).
        head_hidden: Hidden width of the head.
        action_dim: Length of one action.
    """

    def __init__(self, obs_dim: int, hidden: int = 64, head_hidden: int = 96, action_dim: int = 2) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.lstm = nn.LSTM(obs_dim, hidden, batch_first=True)
        self.head = _head(hidden + obs_dim, head_hidden, action_dim)

    def forward(self, obs: Tensor, state: LSTMState | None = None) -> PolicyOutput:
        features, state = self.lstm(obs, state)
        return PolicyOutput(torch.tanh(self.head(torch.cat([features, obs], dim=-1))), None, state)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def matched_lstm_hidden(reference: nn.Module, obs_dim: int, head_hidden: int = 96, action_dim: int = 2) -> int:
    """The LSTM width of an :class:`LSTMPolicy` whose parameter count is nearest to ``reference``'s.

    Example:
        >>> matched_lstm_hidden(MoELSTMPolicy(20, hidden=48, n_experts=3, head_hidden=32), 20)
        52
    """
    target = count_parameters(reference)

    def size(hidden: int) -> int:
        lstm = 4 * hidden * (obs_dim + hidden + 2)
        head = (hidden + obs_dim + 1) * head_hidden + (head_hidden + 1) * action_dim
        return lstm + head

    return min(range(1, 1024), key=lambda hidden: abs(size(hidden) - target))


def single_lstm_like(
    obs_dim: int,
    hidden: int = 48,
    n_experts: int = 3,
    head_hidden: int = 32,
    action_dim: int = 2,
    gate_sees_obs: bool = False,
    select: bool = False,
) -> LSTMPolicy:
    """The single-LSTM baseline for a mixture of these arguments: one head as wide as all the experts together,
    and the LSTM width that gives the same parameter count. Takes the mixture's arguments, so a config switches
    between the two by its ``_target_`` alone.

    Example:
        >>> moe, single = MoELSTMPolicy(20), single_lstm_like(20)
        >>> abs(count_parameters(single) - count_parameters(moe)) / count_parameters(moe) < 0.01
        True
    """
    reference = MoELSTMPolicy(obs_dim, hidden, n_experts, head_hidden, action_dim)
    width = n_experts * head_hidden
    return LSTMPolicy(obs_dim, matched_lstm_hidden(reference, obs_dim, width, action_dim), width, action_dim)


__all__ = [
    "LSTMPolicy",
    "LSTMState",
    "MoELSTMPolicy",
    "PolicyOutput",
    "count_parameters",
    "matched_lstm_hidden",
    "single_lstm_like",
]
