"""Pure tensor functions that models and losses share: batched optimal assignment and sinusoidal embeddings.

Example:
    >>> import torch
    >>> cost = torch.tensor([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]])
    >>> rows, cols = linear_sum_assignment(cost)
    >>> cols.tolist(), float(cost[0, rows[0], cols[0]].sum())
    ([[1, 0, 2]], 5.0)
    >>> sinusoidal_embedding(torch.arange(3), 4).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_sum_assignment(cost: Tensor, maximize: bool = False) -> tuple[Tensor, Tensor]:
    """Solve many linear sum assignment problems at once, as ``scipy.optimize.linear_sum_assignment`` does for one.

    The Hungarian algorithm with potentials (shortest augmenting paths, O(n²m) per problem), run for the whole batch
    together: the batch dimensions are vectorised and only the augmenting steps loop in Python, so it runs on the
    tensor's device without copying to the CPU. Permutation-invariant losses (source separation, set prediction)
    call it on small matrices for every batch.

    Args:
        cost: ``(..., n, m)`` finite costs; any number of leading batch dimensions.
        maximize: Find the assignment of largest total instead of smallest.

    Returns:
        ``(rows, cols)``, each ``(..., min(n, m))`` int64: problem ``b`` assigns row ``rows[b, k]`` to column
        ``cols[b, k]``, with ``rows`` increasing, as scipy returns them.

    Raises:
        ValueError: When ``cost`` has fewer than two dimensions or holds NaN or infinite values.
    """
    if cost.dim() < 2:
        raise ValueError(f"cost must be (..., n, m), got shape {tuple(cost.shape)}")
    if not bool(torch.isfinite(cost).all()):
        raise ValueError("cost holds NaN or infinite values")
    batch_shape = cost.shape[:-2]
    n, m = cost.shape[-2:]
    work = cost.reshape(-1, n, m).to(torch.float64)
    if maximize:
        work = -work
    transposed = n > m
    if transposed:
        work = work.transpose(1, 2)
    k = min(n, m)
    if work.shape[0] == 0 or k == 0:
        empty = torch.zeros(*batch_shape, k, dtype=torch.int64, device=cost.device)
        return empty, empty.clone()
    col_of_row = _hungarian(work)  # (B, min(n, m)): the column of each row of the (possibly transposed) problem
    row_of_col = torch.arange(k, device=cost.device).expand_as(col_of_row)
    if transposed:  # rows of `work` are columns of `cost`: sort by the original row
        rows, order = col_of_row.sort(dim=1)
        cols = row_of_col.gather(1, order)
    else:
        rows, cols = row_of_col.clone(), col_of_row
    return rows.reshape(*batch_shape, k), cols.reshape(*batch_shape, k)


def _hungarian(cost: Tensor) -> Tensor:
    """Column assigned to each row, for ``cost`` of shape ``(B, n, m)`` with ``n <= m`` (1-based internally)."""
    batch, n, m = cost.shape
    device = cost.device
    a = torch.zeros(batch, n + 1, m + 1, dtype=cost.dtype, device=device)
    a[:, 1:, 1:] = cost
    u = torch.zeros(batch, n + 1, dtype=cost.dtype, device=device)  # row potentials
    v = torch.zeros(batch, m + 1, dtype=cost.dtype, device=device)  # column potentials
    p = torch.zeros(batch, m + 1, dtype=torch.int64, device=device)  # row matched to each column (0: none)
    way = torch.zeros(batch, m + 1, dtype=torch.int64, device=device)  # previous column on the augmenting path
    inf = torch.tensor(math.inf, dtype=cost.dtype, device=device)
    zero = torch.zeros((), dtype=cost.dtype, device=device)
    for i in range(1, n + 1):
        p[:, 0] = i
        j0 = torch.zeros(batch, dtype=torch.int64, device=device)
        minv = torch.full((batch, m + 1), math.inf, dtype=cost.dtype, device=device)
        used = torch.zeros(batch, m + 1, dtype=torch.bool, device=device)
        active = torch.ones(batch, dtype=torch.bool, device=device)
        while bool(active.any()):
            used.scatter_(1, j0[:, None], used.gather(1, j0[:, None]) | active[:, None])
            i0 = p.gather(1, j0[:, None]).squeeze(1)
            row = a.gather(1, i0[:, None, None].expand(batch, 1, m + 1)).squeeze(1)
            reduced = row - u.gather(1, i0[:, None]) - v
            free = ~used
            free[:, 0] = False
            better = free & active[:, None] & (reduced < minv)
            minv = torch.where(better, reduced, minv)
            way = torch.where(better, j0[:, None], way)
            delta, j1 = torch.where(free, minv, inf).min(dim=1)
            delta = torch.where(active, delta, zero)
            step = torch.where(used, delta[:, None], zero)
            u.scatter_add_(1, p, step)  # rows matched to used columns (all distinct) move up by delta
            v = v - step
            minv = torch.where(free & active[:, None], minv - delta[:, None], minv)
            j0 = torch.where(active, j1, j0)
            active = active & (p.gather(1, j0[:, None]).squeeze(1) != 0)
        active = torch.ones(batch, dtype=torch.bool, device=device)
        while bool(active.any()):  # flip the augmenting path back to column 0
            j1 = way.gather(1, j0[:, None]).squeeze(1)
            moved = torch.where(active, p.gather(1, j1[:, None]).squeeze(1), p.gather(1, j0[:, None]).squeeze(1))
            p.scatter_(1, j0[:, None], moved[:, None])
            j0 = torch.where(active, j1, j0)
            active = active & (j0 != 0)
    col_of_row = torch.zeros(batch, n + 1, dtype=torch.int64, device=device)
    columns = torch.arange(m + 1, device=device).expand(batch, m + 1)
    matched = p != 0
    col_of_row.scatter_(1, torch.where(matched, p, 0), torch.where(matched, columns, 0))
    return col_of_row[:, 1:] - 1


def sinusoidal_embedding(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """The sinusoidal position encoding of "Attention Is All You Need": ``(..., dim)`` for positions ``(...)``.

    Entry ``2k`` is ``sin(pos / base^(2k/dim))`` and entry ``2k+1`` is ``cos`` of the same angle. Positions may be
    fractional (e.g. timestamps in frames).

    Example:
        >>> import torch
        >>> sinusoidal_embedding(torch.tensor([0.0]), 4).tolist()
        [[0.0, 1.0, 0.0, 1.0]]
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even number, got {dim}")
    dtype = positions.dtype if positions.is_floating_point() else torch.get_default_dtype()
    frequencies = torch.exp(
        torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64) * (-math.log(base) / dim)
    )
    angles = positions.to(torch.float64)[..., None] * frequencies
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)


__all__ = ["linear_sum_assignment", "sinusoidal_embedding"]
