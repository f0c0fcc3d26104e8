"""A Lightning ``DataModule`` over ready datasets: shuffles training only; ``num_workers=0`` works.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> dm = DataModule(train=TensorDataset(torch.arange(10.0)), val=TensorDataset(torch.arange(4.0)), batch_size=4)
    >>> [len(b[0]) for b in dm.val_dataloader()]
    [4]
"""

from __future__ import annotations

from typing import Any

import lightning
from torch.utils.data import DataLoader


class DataModule(lightning.LightningDataModule):
    """Wrap train/val/test/predict datasets (any map-style dataset, e.g. a cached one) in DataLoaders.

    Args:
        train, val, test, predict: The datasets; a loader is offered for each one given.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes (0: read in the main process).
        persistent_workers: Keep workers between epochs (only applies when ``num_workers > 0``).
        loader_kwargs: Anything else for ``DataLoader`` (``collate_fn``, ``pin_memory``, ``multiprocessing_context``).
    """

    def __init__(
        self,
        train: Any = None,
        val: Any = None,
        test: Any = None,
        predict: Any = None,
        batch_size: int = 32,
        num_workers: int = 0,
        persistent_workers: bool = True,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__()
        self.train_dataset = train
        self.val_dataset = val
        self.test_dataset = test
        self.predict_dataset = predict
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.persistent_workers = persistent_workers
        self.loader_kwargs = loader_kwargs

    def _loader(self, dataset: Any, stage: str, shuffle: bool) -> DataLoader[Any]:
        if dataset is None:
            raise ValueError(f"DataModule has no {stage} dataset")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            **self.loader_kwargs,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.train_dataset, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.val_dataset, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.test_dataset, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        return self._loader(self.predict_dataset, "predict", shuffle=False)
