from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from core.data import CachedDataset, DataModule


def test_shuffles_training_only_and_works_without_workers() -> None:
    data = TensorDataset(torch.arange(64))
    dm = DataModule(train=data, val=data, batch_size=64, num_workers=0)
    torch.manual_seed(0)
    train = next(iter(dm.train_dataloader()))[0]
    assert sorted(train.tolist()) == list(range(64)) and train.tolist() != list(range(64))
    assert next(iter(dm.val_dataloader()))[0].tolist() == list(range(64))
    assert not dm.train_dataloader().persistent_workers


def test_workers_with_a_cached_dataset() -> None:
    cached = CachedDataset(TensorDataset(torch.arange(16.0)))
    dm = DataModule(train=cached, val=cached, batch_size=4, num_workers=2, multiprocessing_context="fork")
    loader = dm.val_dataloader()
    assert loader.persistent_workers
    for _ in range(2):
        assert torch.cat([b[0] for b in loader]).tolist() == [float(i) for i in range(16)]
    assert cached.info()["cached"] == 16
    del loader
    cached.close()
