"""Split a dataset across ranks: equal reshuffled shards for training, exact uneven shards for evaluation.

Training (``train=True``): every epoch the indices are permuted with ``(seed, epoch)`` and dealt out so each rank
gets ``ceil(n / world_size)`` samples; the few missing to make the shards equal are taken from the start of the
permutation (a different few each epoch), as DDP needs equal step counts. Call
:meth:`ScatteredDataset.set_epoch` before each epoch (with ``persistent_workers=False``, or workers keep the old
order).

Evaluation (``train=False``): contiguous shards, sizes differing by at most one, **no sample twice**, so metrics
over the union are exact. :func:`gather_results` collects per-rank lists back into dataset order.

Example:
    >>> shards = [scatter_dataset(list(range(5)), rank, 2, train=False) for rank in range(2)]
    >>> [list(s) for s in shards]
    [[0, 1, 2], [3, 4]]
    >>> merge_shards([list(s) for s in shards])
    [0, 1, 2, 3, 4]
    >>> a, b = (scatter_dataset(list(range(5)), r, 2, seed=1) for r in range(2))
    >>> len(a) == len(b) == 3 and set(a) | set(b) == {0, 1, 2, 3, 4}
    True
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from core.data.cache import SizedDataset

T = TypeVar("T")


def shard_indices(n: int, rank: int, world_size: int, train: bool = True, seed: int = 0, epoch: int = 0) -> list[int]:
    """The dataset indices that ``rank`` reads (see the module docstring)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    if not train:
        base, extra = divmod(n, world_size)
        start = rank * base + min(rank, extra)
        return list(range(start, start + base + (rank < extra)))
    if n == 0:
        return []
    order = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = -(-n // world_size)
    padded = np.resize(order, per_rank * world_size)  # repeats the head of the permutation to fill
    return [int(i) for i in padded[rank::world_size]]


class ScatteredDataset:
    """The shard of ``dataset`` that one rank reads; ``set_epoch`` reshuffles training shards."""

    def __init__(
        self, dataset: SizedDataset[T], rank: int, world_size: int, train: bool = True, seed: int = 0, epoch: int = 0
    ) -> None:
        self.dataset = dataset
        self.rank = rank
        self.world_size = world_size
        self.train = train
        self.seed = seed
        self.indices = shard_indices(len(dataset), rank, world_size, train, seed, epoch)

    def set_epoch(self, epoch: int) -> None:
        """Deal a new permutation for ``epoch`` (training shards only; evaluation shards never change)."""
        self.indices = shard_indices(len(self.dataset), self.rank, self.world_size, self.train, self.seed, epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]


def scatter_dataset(
    dataset: SizedDataset[T],
    rank: int | None = None,
    world_size: int | None = None,
    train: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> ScatteredDataset:
    """``rank``'s shard of ``dataset``; rank and world size default to ``torch.distributed``'s (or 0 and 1)."""
    if rank is None or world_size is None:
        rank, world_size = _dist_rank_and_size()
    return ScatteredDataset(dataset, rank, world_size, train, seed, epoch)


def _dist_rank_and_size() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def merge_shards(per_rank: list[list[T]]) -> list[T]:
    """Per-rank results of evaluation shards (rank order) back into dataset order: a concatenation."""
    return [item for shard in per_rank for item in shard]


def gather_results(local: list[T]) -> list[T]:
    """All ranks' evaluation results in dataset order (via ``torch.distributed``; just ``local`` without it)."""
    _, world_size = _dist_rank_and_size()
    if world_size == 1:
        return list(local)
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, list(local))
    return merge_shards(gathered)
