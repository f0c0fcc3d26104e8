"""Blind spatial clustering of a multichannel STFT: a complex angular central Gaussian mixture model (cACGMM,
Ito et al. 2016) fitted by EM, started from the directions of the loudest sources.

Each bin's unit-norm observation ``z_ft = x_ft / ‖x_ft‖`` is drawn from one of K components with spatial matrix
``B_kf`` (``p(z | k) ∝ det(B_kf)⁻¹ (zᴴ B_kf⁻¹ z)^-C``) and weight ``π_kf``; the posteriors ``γ_kft`` are the masks.
Components ``0 .. K-2`` are speakers, the last is diffuse noise. Because EM runs per frequency, which speaker is
which could differ between frequencies; starting every frequency from the same geometry (the steering vectors
of the SRP-PHAT peaks for the speakers, the diffuse coherence for the noise) keeps the labels consistent.

It needs nothing but the mixture, so it serves as the training target (the teacher) of the mask network and,
started at the azimuths the network's masks point to (:func:`guided_masks`), as the offline front-end's
per-utterance fit.

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


def geometric_models(mics: Real, fs: int, n_fft: int, azimuths: Real, reverb: float = 100.0) -> Complex:
    """Spatial matrices ``(len(azimuths) + 1, F, C, C)``: ``a aᴴ + reverb · Γ`` for a speaker at each azimuth
    (degrees), the diffuse coherence ``Γ`` for the noise (the last)."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    gamma = F.diffuse_coherence(mics, freqs) + 1e-2 * np.eye(mics.shape[1])
    a = F.steering_vectors(mics, freqs, np.asarray(azimuths, dtype=np.float64))  # (F, D, C)
    speakers = [np.einsum("fc,fd->fcd", a[:, d], a[:, d].conj()) + reverb * gamma for d in range(a.shape[1])]
    return np.stack([*speakers, gamma.astype(complex)])


def geometric_init(
    X: Complex, mics: Real, fs: int, n_fft: int, n_speakers: int = 2, reverb: float = 100.0
) -> tuple[Complex, Real]:
    """:func:`geometric_models` at the ``n_speakers`` highest SRP-PHAT peaks of the mixture, and the peaks'
    azimuths."""
    spectrum = F.srp_phat_spectrum(F.spatial_covariance(X), mics, fs, n_fft, AZIMUTH_GRID)
    azimuths = F.find_peaks_circular(spectrum, AZIMUTH_GRID, n_speakers)
    if len(azimuths) < n_speakers:  # a flat spectrum: fewer peaks than speakers, spread the rest
        azimuths = np.concatenate([azimuths, azimuths[0] + 360.0 * np.arange(1, n_speakers - len(azimuths) + 1) / 3])
    return geometric_models(mics, fs, n_fft, azimuths, reverb), azimuths


def fit_from_models(X: Complex, B: Complex, iterations: int) -> Real:
    """cACGMM masks ``(K, F, T)`` of ``X`` after ``iterations`` EM rounds started (E-step, equal weights) from the
    spatial matrices ``B`` ``(K, F, C, C)``."""
    model = CACGMM(X)
    posterior, _ = model.e_step(B, np.full(B.shape[:2], 1.0 / B.shape[0]))
    return model.fit(posterior, iterations)


def teacher_masks(
    X: Complex, mics: Real, fs: int, n_fft: int, n_speakers: int = 2, iterations: int = 10, reverb: float = 100.0
) -> Real:
    """cACGMM masks ``(n_speakers + 1, F, T)`` of ``X`` ``(C, F, T)``, EM started from :func:`geometric_init`."""
    B, _ = geometric_init(X, mics, fs, n_fft, n_speakers, reverb)
    return fit_from_models(X, B, iterations)


def mask_azimuths(
    X: Complex, masks: Real, mics: Real, fs: int, n_fft: int, min_separation: float = 20.0
) -> NDArray[np.float64]:
    """One azimuth per speaker mask ``(K - 1, F, T)`` (the noise's, last, is ignored): the highest SRP-PHAT peak of
    its mask-weighted covariance. Two speakers closer than ``min_separation`` degrees cannot both be right; the
    one with the weaker peak moves to its highest peak at least that far from the others.

    >>> from apps.robots.frontend.simulate import ArraySpec
    >>> mics = ArraySpec().positions()
    >>> a = F.steering_vectors(mics, np.fft.rfftfreq(512, 1 / 16000), np.array([40.0, 200.0]))  # (F, 2, C)
    >>> s = np.random.default_rng(0).standard_normal((2, 50))
    >>> X = np.concatenate([np.einsum("fc,t->cft", a[:, d], s[d]) for d in range(2)], axis=-1)  # 50 frames each
    >>> masks = np.zeros((3, 257, 100)); masks[0, :, :50] = masks[1, :, 50:] = 1.0
    >>> mask_azimuths(X, masks, mics, 16000, 512).tolist()
    [40.0, 200.0]
    """
    spectra = [F.srp_phat_spectrum(F.spatial_covariance(X, m), mics, fs, n_fft, AZIMUTH_GRID) for m in masks[:-1]]
    azimuths = [float(F.find_peaks_circular(s, AZIMUTH_GRID, 1)[0]) for s in spectra]
    for k in np.argsort([s.max() for s in spectra]):  # the weakest first
        others = np.array([a for j, a in enumerate(azimuths) if j != k])
        if len(others) == 0 or F.angular_error_deg(others, np.array([azimuths[k]])).min() >= min_separation:
            continue
        for peak in F.find_peaks_circular(spectra[k], AZIMUTH_GRID, len(AZIMUTH_GRID)):
            if F.angular_error_deg(others, np.array([peak])).min() >= min_separation:
                azimuths[k] = float(peak)
                break
    return np.array(azimuths)


def guided_masks(
    X: Complex, masks: Real, mics: Real, fs: int, n_fft: int, iterations: int = 10, reverb: float = 100.0
) -> Real:
    """Per-utterance cACGMM masks guided by a network's masks ``(K, F, T)``: each speaker's azimuth from its mask
    (:func:`mask_azimuths`), EM started from the geometric models at those azimuths (:func:`geometric_models`);
    the network's masks as they are when ``iterations`` is 0."""
    if iterations <= 0:
        return masks
    B = geometric_models(mics, fs, n_fft, mask_azimuths(X, masks, mics, fs, n_fft), reverb)
    return fit_from_models(X, B, iterations)


__all__ = [
    "CACGMM",
    "fit_from_models",
    "geometric_init",
    "geometric_models",
    "guided_masks",
    "mask_azimuths",
    "teacher_masks",
]
