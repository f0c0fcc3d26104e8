"""The deep-clustering loss in its low-rank form equals the dense ‖VVᵀ − YYᵀ‖² (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from apps.avsl.functional import deep_clustering_loss, deep_clustering_loss_dense


@pytest.mark.parametrize(("n", "d", "s", "weighted"), [(64, 8, 3, False), (200, 16, 6, True), (37, 3, 2, True)])
def test_low_rank_equals_dense(n: int, d: int, s: int, weighted: bool) -> None:
    generator = torch.Generator().manual_seed(n)
    v = F.normalize(torch.randn(3, n, d, generator=generator, dtype=torch.float64), dim=-1).requires_grad_()
    y = F.one_hot(torch.randint(0, s, (3, n), generator=generator), s).double()
    w = torch.rand(3, n, generator=generator, dtype=torch.float64) * 3 if weighted else None
    low = deep_clustering_loss(v, y, w)
    (grad_low,) = torch.autograd.grad(low, v)
    dense = deep_clustering_loss_dense(v, y, w)
    (grad_dense,) = torch.autograd.grad(dense, v)
    # the dense form from its definition, with no shared code: sum over pixel pairs
    vv, yy = v[0] @ v[0].T, y[0] @ y[0].T
    weight = torch.ones(n, dtype=torch.float64) if w is None else w[0]
    manual = sum(
        weight[i] * weight[j] * (vv[i, j] - yy[i, j]) ** 2 for i in range(0, n, 7) for j in range(n)
    )  # a sample of rows, compared with the same rows of the dense affinity below
    rows = ((vv - yy) ** 2 * weight[:, None] * weight[None, :])[::7].sum()
    assert float(manual.detach()) == pytest.approx(float(rows.detach()), rel=1e-10)
    assert float(low) == pytest.approx(float(dense), rel=1e-10)
    torch.testing.assert_close(grad_low, grad_dense, rtol=1e-8, atol=1e-12)


def test_zero_only_for_perfect_embeddings() -> None:
    y = F.one_hot(torch.tensor([[0, 0, 1, 2, 2, 1]]), 3).float()
    assert float(deep_clustering_loss(y, y)) == pytest.approx(0.0, abs=1e-7)
    shuffled = y[:, torch.tensor([1, 2, 0, 3, 5, 4])]
    assert float(deep_clustering_loss(shuffled, y)) > 0.1


def test_map_losses_score_spill_like_ciou() -> None:
    """The overlap term is 1 − soft cIoU of the present classes: 0 for an exact map, ½ for one that spills over as
    many pixels as the object has, and an absent class's map does not count."""
    from apps.avsl.task import AVSLTask

    masks = torch.zeros(1, 2, 16, 32)
    masks[0, 0, 4:8, 10:14] = 1.0  # 16 pixels
    exact = torch.where(masks > 0, 30.0, -30.0)
    exact[0, 1] = 30.0  # class 1 is absent: its map is not scored
    present = torch.tensor([[1.0, 0.0]])
    bce, overlap = AVSLTask._map_losses(exact, masks, present)
    assert float(overlap) == pytest.approx(0.0, abs=1e-6)
    assert float(bce) == pytest.approx(0.0, abs=1e-6)
    spilled = exact.clone()
    spilled[0, 0, 8:12, 10:14] = 30.0  # 16 more pixels outside the object
    _bce, overlap = AVSLTask._map_losses(spilled, masks, present)
    assert float(overlap) == pytest.approx(0.5, abs=1e-6)


def test_clustering_only_on_scenes_that_mark_every_object() -> None:
    """A pseudo-label marks only the sounding object: its silent twin is no cluster of its own there, so the
    deep-clustering term skips such a scene (and a batch mixing both scores the complete scene as alone)."""
    from apps.avsl.model import AVSLNet
    from apps.avsl.task import AVSLTask

    torch.manual_seed(0)
    task = AVSLTask(AVSLNet(width=8, grid=(4, 8))).eval()
    labels = torch.zeros(2, 32, 64, dtype=torch.long)
    labels[:, 8:16, 8:16], labels[:, 8:16, 40:48] = 1, 2  # a sounding object and its silent twin
    batch = {
        "image": torch.randint(0, 255, (2, 3, 32, 64), dtype=torch.uint8),
        "audio": torch.randn(2, 4, 5120),
        "labels": labels,
        "cls": torch.tensor([[1, 1, -1, -1, -1, -1]] * 2),
        "sounding": torch.tensor([[True, False, False, False, False, False]] * 2),
    }
    with torch.no_grad():
        outputs = task(batch["image"], batch["audio"])
        complete = task.losses(outputs, {**batch, "all_objects": torch.tensor([True, True])})
        pseudo = task.losses(outputs, {**batch, "all_objects": torch.tensor([False, False])})
        first = task.losses({k: v[:1] for k, v in outputs.items()}, {k: v[:1] for k, v in batch.items()})
        mixed = task.losses(outputs, {**batch, "all_objects": torch.tensor([True, False])})
    assert float(complete["dc"]) > 0 and float(pseudo["dc"]) == 0.0
    assert float(mixed["dc"]) == pytest.approx(float(first["dc"]), rel=1e-5)
    assert float(pseudo["map"]) == pytest.approx(float(complete["map"]))  # the maps still learn from both
