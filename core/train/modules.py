"""Small ``nn.Module`` building blocks, thin wrappers around :mod:`core.train.functional`.

Example:
    >>> import torch
    >>> MLP(64, [32], 10)(torch.zeros(5, 64)).shape
    torch.Size([5, 10])
    >>> SinusoidalPositionalEmbedding(8)(torch.zeros(2, 3, 8)).shape
    torch.Size([2, 3, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from core.train.functional import sinusoidal_embedding


class MLP(nn.Sequential):
    """Linear layers with ReLU and dropout between them: ``in_features → hidden... → out_features``.

    Args:
        in_features: Input size.
        hidden: Sizes of the hidden layers (empty: a linear model).
        out_features: Output size (no activation after the last layer).
        dropout: Dropout probability after each hidden activation.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        size = in_features
        for width in hidden:
            layers += [nn.Linear(size, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, out_features))
        super().__init__(*layers)


class SinusoidalPositionalEmbedding(nn.Module):
    """Add the sinusoidal position encoding to a ``(batch, time, dim)`` sequence.

    Args:
        dim: Feature size (even).
        base: Wavelength base (10000 in the original Transformer).
    """

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if dim <= 0 or dim % 2:
            raise ValueError(f"dim must be a positive even number, got {dim}")
        self.dim = dim
        self.base = base

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """``x + PE(positions)``; positions default to ``0, 1, ..., time - 1``."""
        if positions is None:
            positions = torch.arange(x.shape[-2], device=x.device)
        return x + sinusoidal_embedding(positions, self.dim, self.base).to(x.dtype)


__all__ = ["MLP", "SinusoidalPositionalEmbedding"]
