"""Batched linear_sum_assignment against scipy, one problem at a time; sinusoidal embeddings against the formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment as scipy_lsa

from core.train.functional import linear_sum_assignment, sinusoidal_embedding
from core.train.modules import SinusoidalPositionalEmbedding


@pytest.mark.parametrize("shape", [(64, 4, 4), (32, 3, 7), (32, 7, 3), (8, 12, 12), (5, 1, 1), (3, 1, 6)])
@pytest.mark.parametrize("maximize", [False, True])
def test_matches_scipy_on_random_costs(shape: tuple[int, int, int], maximize: bool) -> None:
    cost = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64) * 10 - 3
    rows, cols = linear_sum_assignment(cost, maximize=maximize)
    assert rows.shape == cols.shape == (shape[0], min(shape[1:]))
    for b in range(shape[0]):
        ref_rows, ref_cols = scipy_lsa(cost[b].numpy(), maximize=maximize)
        np.testing.assert_array_equal(rows[b].numpy(), ref_rows)
        np.testing.assert_array_equal(cols[b].numpy(), ref_cols)  # random reals: the optimum is unique


def test_ties_reach_the_same_optimum_with_a_valid_assignment() -> None:
    cost = torch.randint(0, 3, (200, 5, 6), generator=torch.Generator().manual_seed(1)).float()
    rows, cols = linear_sum_assignment(cost)
    for b in range(cost.shape[0]):
        ref_rows, ref_cols = scipy_lsa(cost[b].numpy())
        assert len(set(cols[b].tolist())) == 5  # a column at most once
        assert float(cost[b, rows[b], cols[b]].sum()) == pytest.approx(float(cost[b].numpy()[ref_rows, ref_cols].sum()))


def test_leading_batch_dimensions_and_dtype() -> None:
    cost = torch.rand(2, 3, 4, 4, dtype=torch.float32)
    rows, cols = linear_sum_assignment(cost)
    assert rows.shape == (2, 3, 4) and cols.dtype == torch.int64
    ref = scipy_lsa(cost[1, 2].numpy())[1]
    np.testing.assert_array_equal(cols[1, 2].numpy(), ref)


def test_permutation_invariant_loss_use() -> None:
    """Recover the permutation that scrambled estimated sources, as a PIT loss does."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(16, 3, 50, generator=generator)
    permutation = torch.stack([torch.randperm(3, generator=generator) for _ in range(16)])
    estimates = targets.gather(1, permutation[:, :, None].expand(-1, -1, 50)) + 0.01 * torch.randn(16, 3, 50)
    pairwise = ((estimates[:, :, None] - targets[:, None]) ** 2).mean(-1)  # (batch, estimate, target)
    _, cols = linear_sum_assignment(pairwise)
    assert torch.equal(cols, permutation)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        linear_sum_assignment(torch.tensor([[1.0, math.inf], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        linear_sum_assignment(torch.zeros(3))
    rows, cols = linear_sum_assignment(torch.zeros(0, 3, 3))
    assert rows.shape == cols.shape == (0, 3)


def test_sinusoidal_embedding_matches_the_formula() -> None:
    positions = torch.tensor([0.0, 1.0, 7.5, 100.0])
    dim, base = 16, 10000.0
    got = sinusoidal_embedding(positions, dim, base).numpy()
    for i, pos in enumerate(positions.tolist()):
        for k in range(dim // 2):
            angle = pos / base ** (2 * k / dim)
            assert got[i, 2 * k] == pytest.approx(math.sin(angle), abs=1e-6)
            assert got[i, 2 * k + 1] == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_embedding_module_adds_the_encoding() -> None:
    module = SinusoidalPositionalEmbedding(8)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(module(x) - x, sinusoidal_embedding(torch.arange(5), 8).expand(2, 5, 8))
    shifted = module(torch.zeros(1, 2, 8), positions=torch.tensor([3, 4]))
    torch.testing.assert_close(shifted[0], sinusoidal_embedding(torch.tensor([3, 4]), 8))
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionalEmbedding(7)
