"""Evaluation on the simulated test splits: SI-SDR improvement against blind source separation peers and the
oracle-mask MVDR, DOA errors, command accuracy. Clean signals are read here, and only here.

Every separator maps a mixture ``(C, N)`` to estimates ``(E, N)`` at the reference microphone; the score of a
mixture is the mean over its speakers of SI-SDR(estimate) − SI-SDR(mixture at mic 0), with speakers assigned to
estimates by the best one-to-one assignment (the same oracle choice for every method, ours included).

Example:
    >>> import numpy as np
    >>> clean = np.random.default_rng(0).standard_normal((2, 4000))
    >>> round(sisdr_improvement(clean[::-1], clean, clean.sum(0)), 1) > 20
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apps.robots.frontend import functional as F

Array = NDArray[np.floating]


def sisdr_improvement(estimates: Array, clean: Array, mixture_ref: Array) -> float:
    """Mean SI-SDR improvement over the speakers in ``clean`` ``(S, N)``, each matched to one of ``estimates``
    ``(E ≥ S, N)`` by the assignment that maximizes the total SI-SDR."""
    from scipy.optimize import linear_sum_assignment

    scores = np.array([[F.si_sdr(e, c) for e in estimates] for c in clean])  # (S, E)
    rows, cols = linear_sum_assignment(scores, maximize=True)
    baseline = np.array([F.si_sdr(mixture_ref, c) for c in clean])
    return float(np.mean(scores[rows, cols] - baseline[rows]))


def samples(path: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The samples of an evaluation split (all their fields), in order."""
    from core.data.hdf5 import RawHDF5Dataset

    data = RawHDF5Dataset(path)
    for index in range(len(data) if limit is None else min(limit, len(data))):
        yield data[index]
    data.close()


def _tfc(mixture: Array, n_fft: int, hop: int) -> NDArray[np.complexfloating]:
    return np.transpose(F.stft(mixture, n_fft, hop), (2, 1, 0))  # (T, F, C): pyroomacoustics' layout


def _back(Y: NDArray[np.complexfloating], n_fft: int, hop: int, length: int) -> NDArray[np.float64]:
    return F.istft(np.transpose(Y, (2, 1, 0)), n_fft, hop, length=length)  # (E, N)


def separate_auxiva(mixture: Array, n_fft: int = 512, hop: int = 256, n_iter: int = 30) -> NDArray[np.float64]:
    """pyroomacoustics' AuxIVA (as many outputs as microphones, projected back to mic 0)."""
    import pyroomacoustics as pra

    Y = pra.bss.auxiva(_tfc(mixture, n_fft, hop), n_iter=n_iter, proj_back=True)
    return _back(Y, n_fft, hop, mixture.shape[-1])


def separate_fastmnmf2(
    mixture: Array, n_src: int = 3, n_fft: int = 512, hop: int = 256, n_iter: int = 30, seed: int = 0
) -> NDArray[np.float64]:
    """pyroomacoustics' FastMNMF2 with ``n_src`` sources (speakers + noise), images at mic 0.

    It initializes from numpy's global random state, so a run is seeded with ``seed`` (and the global state
    restored afterwards): the same mixture always gets the same estimate.
    """
    import pyroomacoustics as pra

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        Y = pra.bss.fastmnmf2(_tfc(mixture, n_fft, hop), n_src=n_src, n_iter=n_iter, mic_index=0)
    finally:
        np.random.set_state(state)
    return _back(Y, n_fft, hop, mixture.shape[-1])


def oracle_masks(clean: Array, noise: Array, n_fft: int = 512, hop: int = 256) -> NDArray[np.float64]:
    """Ideal ratio masks ``|S_k|² / (Σ_j |S_j|² + |N|²)`` at mic 0, ``(S, F, T)``."""
    power = np.abs(F.stft(np.concatenate([clean, noise[None]]), n_fft, hop)) ** 2
    return np.asarray(power[:-1] / np.maximum(power.sum(0), 1e-12))


def oracle_mvdr(mixture: Array, clean: Array, noise: Array, n_fft: int = 512, hop: int = 256) -> NDArray[np.float64]:
    """Souden MVDR from oracle masks: the ceiling of any mask-based MVDR, ``(S, N)``."""
    X = F.stft(mixture, n_fft, hop)
    return F.mask_mvdr(X, oracle_masks(clean, noise, n_fft, hop), n_fft, hop, mixture.shape[-1])


def separate_cacgmm(
    mixture: Array, mics: Array, fs: int = 16000, n_fft: int = 512, hop: int = 256
) -> NDArray[np.float64]:
    """The training teacher on its own: cACGMM masks (:func:`~apps.robots.frontend.clustering.teacher_masks`, two
    speakers) → Souden MVDR, ``(2, N)``."""
    from apps.robots.frontend.clustering import teacher_masks

    X = F.stft(mixture, n_fft, hop)
    masks = teacher_masks(X, np.asarray(mics, dtype=np.float64), fs, n_fft)
    return F.mask_mvdr(X, masks[:-1], n_fft, hop, mixture.shape[-1])


def paired_interval(a: Array, b: Array, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its ``level`` t-interval (paired over the same mixtures).

    >>> mean, low, high = paired_interval(np.array([2.0, 3.0, 4.0]), np.array([1.0, 1.0, 1.0]))
    >>> mean, low < mean < high
    (2.0, True)
    """
    from scipy import stats

    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean = float(diff.mean())
    half = float(stats.t.ppf(0.5 + level / 2.0, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
    return mean, mean - half, mean + half


__all__ = [
    "oracle_masks",
    "oracle_mvdr",
    "paired_interval",
    "samples",
    "separate_auxiva",
    "separate_cacgmm",
    "separate_fastmnmf2",
    "sisdr_improvement",
]
