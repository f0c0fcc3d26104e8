"""scikit-learn's handwritten digits (1797 8×8 images, shipped with the package) as a Lightning DataModule.

The example dataset of ``core/train/config/digits.yaml``: small enough to train in seconds on a CPU, real enough
that a model must learn something to beat chance (10%).

Example:
    >>> dm = DigitsDataModule(batch_size=32)
    >>> dm.setup("fit")
    >>> inputs, labels = next(iter(dm.train_dataloader()))
    >>> tuple(inputs.shape), int(labels.max()) <= 9
    ((32, 64), True)
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from core.data.datamodule import DataModule


class DigitsDataModule(DataModule):
    """Stratified train / val / test split of the digits; pixels scaled to [0, 1].

    Args:
        batch_size: Samples per batch.
        val_fraction, test_fraction: Shares of the 1797 images held out (stratified by class).
        seed: Seed of the split (and of the label shuffle).
        shuffle_labels: Permute the training and validation labels: a baseline that cannot learn anything
            (the test labels stay true, so its test accuracy is chance).
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        batch_size: int = 64,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
        shuffle_labels: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.shuffle_labels = shuffle_labels

    def setup(self, stage: str) -> None:
        if self.train_dataset is not None:
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        inputs = (digits.data / 16.0).astype(np.float32)
        labels = digits.target.astype(np.int64)
        rest_x, test_x, rest_y, test_y = train_test_split(
            inputs, labels, test_size=self.test_fraction, stratify=labels, random_state=self.seed
        )
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        train_x, val_x, train_y, val_y = train_test_split(
            rest_x, rest_y, test_size=val_share, stratify=rest_y, random_state=self.seed
        )
        if self.shuffle_labels:
            rng = np.random.default_rng(self.seed)
            train_y, val_y = rng.permutation(train_y), rng.permutation(val_y)
        self.train_dataset = TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
        self.val_dataset = TensorDataset(torch.from_numpy(val_x), torch.from_numpy(val_y))
        self.test_dataset = TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y))
        self.predict_dataset = TensorDataset(torch.from_numpy(test_x))
        self.test_labels = test_y


__all__ = ["DigitsDataModule"]
