"""Blind spatial clustering of a multichannel STFT: a complex angular central Gaussian mixture model (cACGMM,
Ito et al. 2016) fitted by EM, started from the directions of the loudest sources.

Each bin's unit-norm observation ``z_ft = x_ft / ‖x_ft‖`` is drawn from one of K components with spatial matrix
``B_kf`` (``p(z | k) ∝ det(B_kf)⁻¹ (zᴴ B_kf⁻¹ z)^-C``) and weight ``π_kf``; the posteriors ``γ_kft`` are the masks.
Components ``0 .. K-2`` are speakers, the last is diffuse noise. Because EM runs per frequency, which speaker is
which could differ between frequencies; starting every frequency from the same geometry (the steering vectors
of the SRP-PHAT peaks for the speakers, the diffuse coherence for the noise) keeps the labels consistent.

It needs nothing but the mixture, so it serves as the training target (the teacher) of the mask network and, from
the network's masks, as an offline refinement.

Example:
    >>> import numpy as np
    >>> from apps.robots.frontend.simulate import ArraySpec
    >>> X = np.random.default_rng(0).standard_normal((4, 257, 20)) + 0j
    >>> masks = teacher_masks(X, ArraySpec().positions(), 16000, 512)
    >>> masks.shape, bool(np.allclose(masks.sum(0), 1.0))
    ((3, 257, 20), True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from apps.robots.frontend import functional as F

Complex = NDArray[np.complexfloating]
Real = NDArray[np.float64]

AZIMUTH_GRID = np.arange(0.0, 360.0, 1.0)


class CACGMM:
    """EM for the cACGMM on one STFT ``X`` ``(C, F, T)``."""

    def __init__(self, X: Complex, eps: float = 1e-10) -> None:
        norm = np.maximum(np.linalg.norm(X, axis=0), eps)  # (F, T)
        self.z = np.transpose(X / norm, (1, 2, 0))  # (F, T, C)
        self.outer = np.einsum("ftc,ftd->ftcd", self.z, self.z.conj())
        self.channels = X.shape[0]
        self.eps = eps

    def _log_joint(self, B: Complex, weights: Real) -> tuple[Real, Real]:
        _, logdet = np.linalg.slogdet(B)
        quad = np.einsum("ftc,kfcd,ftd->kft", self.z.conj(), np.linalg.inv(B), self.z).real
        quad = np.maximum(quad, self.eps)
        return np.log(weights[..., None] + self.eps) - logdet[..., None] - self.channels * np.log(quad), quad

    def e_step(self, B: Complex, weights: Real) -> tuple[Real, Real]:
        """Posteriors ``(K, F, T)`` and the quadratic forms ``zᴴ B⁻¹ z`` ``(K, F, T)`` for ``B`` ``(K, F, C, C)``,
        ``weights`` ``(K, F)``."""
        log_joint, quad = self._log_joint(B, weights)
        posterior = np.exp(log_joint - log_joint.max(0, keepdims=True))
        return posterior / posterior.sum(0, keepdims=True), quad

    def log_likelihood(self, B: Complex, weights: Real) -> float:
        """Mean log-likelihood per bin (up to a constant) of the unit-norm observations."""
        log_joint, _ = self._log_joint(B, weights)
        top = log_joint.max(0)
        return float(np.mean(top + np.log(np.exp(log_joint - top).sum(0))))

    def m_step(self, posterior: Real, quad: Real) -> tuple[Complex, Real]:
        """``B`` ``(K, F, C, C)`` and ``π`` ``(K, F)`` from posteriors (and the previous quadratic forms)."""
        total = np.maximum(posterior.sum(-1), self.eps)  # (K, F)
        B = self.channels * np.einsum("kft,ftcd->kfcd", posterior / quad, self.outer) / total[..., None, None]
        return B + 1e-6 * np.eye(self.channels), posterior.mean(-1)

    def fit(self, posterior: Real, iterations: int) -> Real:
        """``iterations`` rounds of M then E, from initial masks ``(K, F, T)`` (the first M-step takes ``quad = 1``:
        a mask-weighted covariance of the unit vectors)."""
        quad = np.ones_like(posterior)
        for _ in range(iterations):
            B, weights = self.m_step(posterior, quad)
            posterior, quad = self.e_step(B, weights)
        return posterior


def geometric_init(
    X: Complex, mics: Real, fs: int, n_fft: int, n_speakers: int = 2, reverb: float = 100.0
) -> tuple[Complex, Real]:
    """Spatial matrices ``(n_speakers + 1, F, C, C)`` from the array geometry: ``a aᴴ + reverb · Γ`` for each of the
    ``n_speakers`` highest SRP-PHAT peaks of the mixture, the diffuse coherence ``Γ`` for the noise; and the peaks'
    azimuths."""
    spectrum = F.srp_phat_spectrum(F.spatial_covariance(X), mics, fs, n_fft, AZIMUTH_GRID)
    azimuths = F.find_peaks_circular(spectrum, AZIMUTH_GRID, n_speakers)
    if len(azimuths) < n_speakers:  # a flat spectrum: fewer peaks than speakers, spread the rest
        azimuths = np.concatenate([azimuths, azimuths[0] + 360.0 * np.arange(1, n_speakers - len(azimuths) + 1) / 3])
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    gamma = F.diffuse_coherence(mics, freqs) + 1e-2 * np.eye(mics.shape[1])
    a = F.steering_vectors(mics, freqs, azimuths)  # (F, D, C)
    speakers = [np.einsum("fc,fd->fcd", a[:, d], a[:, d].conj()) + reverb * gamma for d in range(n_speakers)]
    return np.stack([*speakers, gamma.astype(complex)]), azimuths


def teacher_masks(
    X: Complex, mics: Real, fs: int, n_fft: int, n_speakers: int = 2, iterations: int = 10, reverb: float = 100.0
) -> Real:
    """cACGMM masks ``(n_speakers + 1, F, T)`` of ``X`` ``(C, F, T)``, EM started from :func:`geometric_init`."""
    model = CACGMM(X)
    B, _ = geometric_init(X, mics, fs, n_fft, n_speakers, reverb)
    posterior, _ = model.e_step(B, np.full(B.shape[:2], 1.0 / B.shape[0]))
    return model.fit(posterior, iterations)


def refine_masks(X: Complex, masks: Real, iterations: int) -> Real:
    """``iterations`` cACGMM EM rounds started from ``masks`` ``(K, F, T)`` (e.g. the network's)."""
    return CACGMM(X).fit(masks, iterations) if iterations > 0 else masks


__all__ = ["CACGMM", "geometric_init", "refine_masks", "teacher_masks"]
