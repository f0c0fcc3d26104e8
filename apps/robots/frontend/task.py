"""Training on mixtures only, as a core.train task: ``kakehashi robots train-frontend CFG``.

:class:`MixtureDataset` reads one HDF5 dataset per sample, ``<group>/mixture``, and nothing else: the clean
images and the noise that the evaluation splits hold are never opened by the training path (and the training
split the data verb writes does not even contain them). :class:`FrontendTask` trains the mask network with one
of two objectives, both functions of the mixture alone:

- ``teacher`` (the default): the KL divergence from the masks of a blind spatial-clustering teacher
  (:func:`~apps.robots.frontend.clustering.teacher_masks`, a cACGMM fitted to each whole training mixture),
  minimized over the speakers' order;
- ``fca``: the FCA negative log-likelihood of :mod:`apps.robots.frontend.model`.

Example:
    >>> import torch
    >>> task = FrontendTask(n_fft=128, hop=64, model=MaskNet(n_freq=65, n_mics=4, hidden=16), objective="fca")
    >>> loss = task.loss({"mixture": torch.randn(2, 4, 3200)})
    >>> bool(torch.isfinite(loss))
    True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from apps.robots.frontend import functional as F
from apps.robots.frontend.clustering import teacher_masks
from apps.robots.frontend.model import MaskNet, fca_nll, teacher_kl
from apps.robots.frontend.simulate import ArraySpec
from core.data.datamodule import DataModule
from core.data.hdf5 import RawHDF5Dataset, read_dataset
from core.errors import ConfigError, UserError
from core.train.task import OptimizerTask

OBJECTIVES = ("teacher", "fca")


@dataclass(frozen=True)
class TeacherSpec:
    """The spatial-clustering teacher: the STFT and array of the task, the speakers it looks for, EM rounds and
    the reverberant share of its initial speaker models (:func:`~apps.robots.frontend.clustering.teacher_masks`)."""

    array: ArraySpec = field(default_factory=ArraySpec)
    n_fft: int = 512
    hop: int = 256
    fs: int = 16000
    n_speakers: int = 2
    iterations: int = 10
    reverb: float = 100.0

    def masks(self, mixture: np.ndarray) -> np.ndarray:
        """Teacher masks ``(n_speakers + 1, F, T)`` of a mixture ``(C, N)`` (its STFT is :func:`functional.stft`)."""
        X = F.stft(np.asarray(mixture, dtype=np.float64), self.n_fft, self.hop)
        return teacher_masks(
            X, self.array.positions(), self.fs, self.n_fft, self.n_speakers, self.iterations, self.reverb
        )


class MixtureDataset(RawHDF5Dataset):
    """The ``mixture`` ``(C, N)`` of every sample of a front-end data file (and, with a ``teacher``, its teacher
    masks ``(K, F, T)``), as float tensors in a dict; nothing but the mixture is read.

    The teacher runs on the whole mixture, once per sample (cached), and is cropped with it: crops start on a
    multiple of the hop, so crop frame ``t`` is frame ``start / hop + t`` of the whole mixture.

    Args:
        path: An HDF5 file written by ``make-frontend-data``.
        crop: Samples per item (a random crop in training); ``None``: the whole mixture.
        seed: Seed of the crops.
        teacher: The spatial-clustering teacher, or ``None``.
    """

    def __init__(
        self, path: str | os.PathLike[str], crop: int | None = None, seed: int = 0, teacher: TeacherSpec | None = None
    ) -> None:
        super().__init__(path)
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.teacher = teacher
        self._teacher_cache: dict[int, np.ndarray] = {}

    def _mixture(self, index: int) -> np.ndarray:
        name = self.group_names[index]
        try:
            return np.asarray(read_dataset(self._handle(), f"{name}/mixture"))
        except KeyError:
            raise UserError(
                "sample has no mixture", where=f"{self.path}, group {name!r}", hint="write it with make-frontend-data"
            ) from None

    def read_raw(self, index: int) -> dict[str, Any]:
        mixture = self._mixture(index)
        item: dict[str, Any] = {}
        if self.teacher is not None:
            if index not in self._teacher_cache:
                self._teacher_cache[index] = self.teacher.masks(mixture).astype(np.float16)
            item["teacher"] = self._teacher_cache[index]
        if self.crop is not None and mixture.shape[-1] > self.crop:
            hop = self.teacher.hop if self.teacher is not None else 1
            frame = int(self.rng.integers(0, (mixture.shape[-1] - self.crop) // hop + 1))
            mixture = mixture[:, frame * hop : frame * hop + self.crop]
            if self.teacher is not None:  # then item holds its masks
                frames = F.n_frames(self.crop, self.teacher.n_fft, hop)
                item["teacher"] = item["teacher"][..., frame : frame + frames]
        item["mixture"] = mixture
        return item

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in self.read_raw(index).items()}


class MixtureDataModule(DataModule):
    """Training and validation mixtures (no clean signal anywhere) for :class:`FrontendTask`.

    Args:
        train: The training split's file; ``val``: the validation split's file.
        crop_seconds: Length of the random training crops.
        fs: Sample rate.
        teacher: Keyword arguments of :class:`TeacherSpec` (``array`` as a mapping), or ``None`` for no teacher
            masks (the ``fca`` objective).
    """

    def __init__(
        self,
        train: str,
        val: str,
        batch_size: int = 8,
        crop_seconds: float | None = 2.0,
        fs: int = 16000,
        num_workers: int = 0,
        seed: int = 0,
        teacher: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.train_path = train
        self.val_path = val
        self.crop = None if crop_seconds is None else int(crop_seconds * fs)
        self.seed = seed
        if teacher is not None:
            teacher = dict(teacher)
            teacher["array"] = ArraySpec(**dict(teacher.get("array") or {}))
        self.teacher = None if teacher is None else TeacherSpec(**teacher)

    def setup(self, stage: str) -> None:
        for path in (self.train_path, self.val_path):
            if not os.path.isfile(path):
                raise UserError("data file not found", where=path, hint="run kakehashi robots make-frontend-data first")
        self.train_dataset = MixtureDataset(self.train_path, crop=self.crop, seed=self.seed, teacher=self.teacher)
        self.val_dataset = MixtureDataset(self.val_path, teacher=self.teacher)


class FrontendTask(OptimizerTask):
    """Training of :class:`MaskNet` on mixtures only: from a spatial-clustering teacher or by the FCA likelihood.

    Args:
        model: The mask network.
        array: The microphone array (for the diffuse-noise coherence); default the 4-mic, 5 cm circle.
        n_fft, hop, fs: STFT of the front-end (512 / 256 at 16 kHz: 32 ms frames, 16 ms hop).
        loss_bins: Share of frequency bins the training loss is computed on, drawn at random per step (an
            unbiased estimate of the full loss at a fraction of its cost); validation uses every bin.
        floor: Sensor-noise floor of the model (a share of the bin's power).
        objective: ``teacher`` (KL from the batch's teacher masks) or ``fca`` (the FCA likelihood).
    """

    noise_scm: Tensor  # a buffer: the diffuse coherence of the array, (F, C, C)

    def __init__(
        self,
        model: MaskNet,
        array: dict[str, Any] | None = None,
        n_fft: int = 512,
        hop: int = 256,
        fs: int = 16000,
        loss_bins: float = 1.0,
        floor: float = 1e-3,
        objective: str = "teacher",
        optimizer: Any = None,
        schedulers: Any = None,
        param_groups: Any = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.model = model
        self.array = ArraySpec(**(array or {}))
        self.n_fft = n_fft
        self.hop = hop
        self.fs = fs
        self.loss_bins = loss_bins
        self.floor = floor
        if objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {objective!r}", where="task.objective", hint=" or ".join(OBJECTIVES))
        self.objective = objective
        freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
        gamma = F.diffuse_coherence(self.array.positions(), freqs) + 1e-3 * np.eye(self.array.n_mics)
        self.register_buffer("noise_scm", torch.from_numpy(gamma.astype(np.complex64)), persistent=False)
        self.save_hyperparameters(ignore=["model", "optimizer", "schedulers", "param_groups"])

    def stft(self, audio: Tensor) -> Tensor:
        """``(B, C, N)`` → ``(B, C, F, T)``, the same transform as :func:`functional.stft`."""
        batch, channels, length = audio.shape
        frames = F.n_frames(length, self.n_fft, self.hop)
        total = (frames - 1) * self.hop + self.n_fft
        padded = torch.nn.functional.pad(audio, (self.n_fft - self.hop, total - length - (self.n_fft - self.hop)))
        window = torch.from_numpy(F.window(self.n_fft)).to(audio)
        spec = torch.stft(
            padded.reshape(batch * channels, -1), self.n_fft, self.hop, window=window, center=False,
            return_complex=True,
        )  # fmt: skip
        return spec.reshape(batch, channels, *spec.shape[-2:])

    def forward(self, X: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Masks ``(B, K, F, T)`` of an STFT ``(B, C, F, T)`` and the network's state."""
        masks, state = self.model(X, state)
        return masks, state

    def loss(self, batch: dict[str, Tensor], loss_bins: float = 1.0) -> Tensor:
        """The objective on a batch: ``mixture`` ``(B, C, N)`` and, for ``teacher``, ``teacher`` ``(B, K, F, T)``."""
        X = self.stft(batch["mixture"].float())
        scale = (X.abs() ** 2).mean((1, 2, 3), keepdim=True).sqrt() + 1e-8
        X = X / scale
        masks, _ = self.model(X)
        if self.objective == "teacher":
            if "teacher" not in batch:
                raise ConfigError("the teacher objective needs teacher masks", hint="set datamodule.teacher")
            return teacher_kl(masks, batch["teacher"].to(masks))
        noise_scm = self.noise_scm
        if loss_bins < 1.0:
            keep = torch.randperm(X.shape[2], device=X.device)[: max(1, int(loss_bins * X.shape[2]))]
            X, masks, noise_scm = X[:, :, keep], masks[:, :, keep], noise_scm[keep]
        return fca_nll(X, masks, noise_scm, floor=self.floor)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch, self.loss_bins)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["mixture"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.loss(batch), prog_bar=True, batch_size=batch["mixture"].shape[0])


__all__ = ["OBJECTIVES", "FrontendTask", "MixtureDataModule", "MixtureDataset", "TeacherSpec"]
