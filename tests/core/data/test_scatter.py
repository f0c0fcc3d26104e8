from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.data import gather_results, scatter_dataset
from core.data.scatter import merge_shards, shard_indices


@given(st.integers(0, 200), st.integers(1, 9), st.integers(0, 5))
def test_training_shards_are_equal_and_cover_everything(n: int, world: int, epoch: int) -> None:
    shards = [shard_indices(n, r, world, train=True, seed=3, epoch=epoch) for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    assert len(shards[0]) == -(-n // world)
    assert set().union(*shards) == set(range(n))
    assert sum(len(s) for s in shards) - n < world  # at most world_size - 1 repeats


@given(st.integers(0, 200), st.integers(1, 9))
def test_evaluation_shards_never_duplicate(n: int, world: int) -> None:
    shards = [shard_indices(n, r, world, train=False) for r in range(world)]
    assert merge_shards(shards) == list(range(n))
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_reshuffles_per_epoch_and_reads_through() -> None:
    data = [f"s{i}" for i in range(20)]
    shard = scatter_dataset(data, 1, 4, seed=0)
    first = list(shard)
    shard.set_epoch(1)
    assert list(shard) != first and len(shard) == 5
    shard.set_epoch(0)
    assert list(shard) == first
    assert shard_indices(20, 1, 4, seed=0) != shard_indices(20, 1, 4, seed=1)
    evaluation = scatter_dataset(data, 3, 4, train=False)
    evaluation.set_epoch(7)
    assert list(evaluation) == data[15:]


def test_single_process_defaults() -> None:
    assert list(scatter_dataset(list(range(3)), train=False)) == [0, 1, 2]
    assert gather_results([1, 2]) == [1, 2]
