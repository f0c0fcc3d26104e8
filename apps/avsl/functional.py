"""Pure tensor functions of the model: the deep-clustering loss, steered-response features, map helpers.

Example:
    >>> import torch
    >>> v = torch.nn.functional.normalize(torch.randn(2, 50, 8), dim=-1)
    >>> y = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 50)), 3).float()
    >>> bool(torch.allclose(deep_clustering_loss(v, y), deep_clustering_loss_dense(v, y), rtol=1e-4))
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from apps.avsl.geometry import pixel_vectors

SPEED_OF_SOUND = 343.0


def deep_clustering_loss(embeddings: Tensor, assignments: Tensor, weights: Tensor | None = None) -> Tensor:
    """‖VVᵀ − YYᵀ‖²_F / N² per item, averaged over the batch, in the low-rank form (Hershey et al. 2016).

    ``‖VVᵀ−YYᵀ‖² = ‖VᵀV‖² − 2‖VᵀY‖² + ‖YᵀY‖²``: O(N·D²) instead of O(N²·D) memory and time.

    Args:
        embeddings: ``V`` ``(B, N, D)``, one embedding per pixel.
        assignments: ``Y`` ``(B, N, S)``, each pixel's one-hot (or soft) membership of ``S`` sources.
        weights: Optional ``(B, N)`` pixel weights ``w``; the loss is then ‖W^½(VVᵀ−YYᵀ)W^½‖², i.e. ``V`` and
            ``Y`` scaled by ``√w`` (used to keep the large background from drowning small objects).
    """
    v, y = embeddings, assignments
    if weights is not None:
        root = weights.clamp_min(0).sqrt().unsqueeze(-1)
        v, y = v * root, y * root
    vv = torch.einsum("bnd,bne->bde", v, v)
    vy = torch.einsum("bnd,bns->bds", v, y)
    yy = torch.einsum("bns,bnt->bst", y, y)
    n = embeddings.shape[1]
    loss = (vv.pow(2).sum((1, 2)) - 2 * vy.pow(2).sum((1, 2)) + yy.pow(2).sum((1, 2))) / n**2
    return loss.mean()


def deep_clustering_loss_dense(embeddings: Tensor, assignments: Tensor, weights: Tensor | None = None) -> Tensor:
    """The same loss from the N×N affinity matrices (the reference that :func:`deep_clustering_loss` must equal)."""
    affinity = embeddings @ embeddings.transpose(1, 2) - assignments @ assignments.transpose(1, 2)
    if weights is not None:
        root = weights.clamp_min(0).sqrt()
        affinity = affinity * root.unsqueeze(1) * root.unsqueeze(2)
    n = embeddings.shape[1]
    return (affinity.pow(2).sum((1, 2)) / n**2).mean()


def mic_pairs(n_mics: int) -> list[tuple[int, int]]:
    """All pairs ``i < j``.

    >>> mic_pairs(3)
    [(0, 1), (0, 2), (1, 2)]
    """
    return [(i, j) for i in range(n_mics) for j in range(i + 1, n_mics)]


def steering_phases(mics: np.ndarray[Any, Any], freqs: np.ndarray[Any, Any], grid_h: int, grid_w: int) -> Tensor:
    """Complex ``(pairs, F, grid_h·grid_w)`` phase terms ``exp(jω(τᵢ(g) − τⱼ(g)))`` of a plane wave from each
    grid direction (the centres of a ``grid_h × grid_w`` equirectangular grid), for the array ``mics`` ``(M, 3)``.

    With the cross-spectrum ``Rᵢⱼ(f)`` of the recording, ``Re Σ Rᵢⱼ·steering`` is the steered response power
    (SRP) per frequency and direction: largest where a source is.
    """
    directions = pixel_vectors(grid_h, grid_w).reshape(-1, 3).astype(np.float64)
    delays = -(directions @ np.asarray(mics, np.float64).T) / SPEED_OF_SOUND  # (G, M): a closer mic hears it first
    pairs = mic_pairs(len(mics))
    tdoa = np.stack([delays[:, i] - delays[:, j] for i, j in pairs])  # (P, G)
    omega = 2 * np.pi * np.asarray(freqs, np.float64)
    phase = omega[None, :, None] * tdoa[:, None, :]
    return torch.from_numpy(np.exp(1j * phase).astype(np.complex64))


def cross_spectra(spectra: Tensor, pairs: list[tuple[int, int]], phat: bool = True) -> Tensor:
    """Time-averaged cross-spectra ``(B, P, F)`` of STFTs ``(B, M, F, T)``; PHAT-weighted per time-frequency bin."""
    first = spectra[:, [i for i, _ in pairs]]
    second = spectra[:, [j for _, j in pairs]]
    product = first * second.conj()
    if phat:
        product = product / product.abs().clamp_min(1e-8)
    return product.mean(-1)


def upsample_map(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of ``(B, K, h, w)`` maps that wraps around in azimuth (the image's left/right edges meet)."""
    pad = 1
    wrapped = torch.cat([maps[..., -pad:], maps, maps[..., :pad]], dim=-1)
    _h, w = maps.shape[-2:]
    scale = size[1] / w
    big = torch.nn.functional.interpolate(
        wrapped, size=(size[0], round((w + 2 * pad) * scale)), mode="bilinear", align_corners=False
    )
    offset = round(pad * scale)
    return big[..., offset : offset + size[1]]


def log_uniform(n: int) -> float:
    """``log n``: a log-softmax over ``n`` cells plus this is 0 for the uniform distribution."""
    return math.log(n)


__all__ = [
    "cross_spectra",
    "deep_clustering_loss",
    "deep_clustering_loss_dense",
    "log_uniform",
    "mic_pairs",
    "steering_phases",
    "upsample_map",
]
