"""Array signal processing as pure numpy functions: STFT, spatial covariance, DOA, MVDR, SI-SDR, diffuse noise.

Conventions: a multichannel signal is ``(C, N)``; its STFT is ``(C, F, T)`` with ``F = n_fft // 2 + 1``; a
spatial covariance matrix (SCM) is ``(F, C, C)``; microphone positions are ``(3, C)`` (or ``(2, C)``) in metres,
relative to the array centre. Azimuths are degrees in ``[0, 360)``, counter-clockwise from the x axis.

The STFT is causal-friendly: the signal is padded by ``n_fft - hop`` zeros in front, so frame ``t`` ends at
sample ``(t + 1) * hop`` and a streaming processor can emit it as soon as that sample has arrived.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((2, 4000))
    >>> X = stft(x, n_fft=512, hop=256)
    >>> X.shape
    (2, 257, 17)
    >>> bool(np.allclose(istft(X, n_fft=512, hop=256, length=4000), x))
    True
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

SPEED_OF_SOUND = 343.0

Array = NDArray[np.floating]
Complex = NDArray[np.complexfloating]


def window(n_fft: int) -> NDArray[np.float64]:
    """The analysis and synthesis window: a periodic square-root Hann (w² sums to one at 50 % overlap).

    >>> float(np.round(window(4)[2], 6))
    1.0
    """
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft))


def n_frames(length: int, n_fft: int, hop: int) -> int:
    """Frames of :func:`stft` for ``length`` samples: every sample is covered by ``n_fft / hop`` frames.

    >>> n_frames(4000, 512, 256)
    17
    """
    return -(-(length + n_fft - hop) // hop)


def stft(x: Array, n_fft: int = 512, hop: int = 256) -> Complex:
    """Short-time Fourier transform of ``x`` ``(..., N)`` → ``(..., F, T)`` (square-root Hann, causal padding).

    >>> stft(np.ones((3, 1024)), 256, 128).shape
    (3, 129, 9)
    """
    x = np.asarray(x)
    length = x.shape[-1]
    frames = n_frames(length, n_fft, hop)
    total = (frames - 1) * hop + n_fft
    padded = np.zeros((*x.shape[:-1], total), dtype=np.float64)
    padded[..., n_fft - hop : n_fft - hop + length] = x
    strided = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., ::hop, :]
    spec = np.fft.rfft(strided * window(n_fft), axis=-1)  # (..., T, F)
    return np.swapaxes(spec, -1, -2)


def istft(X: Complex, n_fft: int = 512, hop: int = 256, length: int | None = None) -> NDArray[np.float64]:
    """Inverse of :func:`stft` by weighted overlap-add: ``(..., F, T)`` → ``(..., length)``.

    >>> x = np.random.default_rng(1).standard_normal(1000)
    >>> bool(np.allclose(istft(stft(x, 256, 64), 256, 64, length=1000), x))
    True
    """
    X = np.asarray(X)
    frames = X.shape[-1]
    w = window(n_fft)
    segments = np.fft.irfft(np.swapaxes(X, -1, -2), n=n_fft, axis=-1) * w  # (..., T, n_fft)
    total = (frames - 1) * hop + n_fft
    out = np.zeros((*X.shape[:-2], total))
    norm = np.zeros(total)
    for t in range(frames):
        out[..., t * hop : t * hop + n_fft] += segments[..., t, :]
        norm[t * hop : t * hop + n_fft] += w**2
    out /= np.maximum(norm, 1e-8)
    start = n_fft - hop
    stop = total if length is None else start + length
    return out[..., start:stop]


def spatial_covariance(X: Complex, mask: Array | None = None, normalize: bool = True) -> Complex:
    """Mask-weighted spatial covariance ``Σ_t m_ft x_ft x_ftᴴ / Σ_t m_ft`` of ``X`` ``(C, F, T)`` → ``(F, C, C)``.

    ``mask`` is ``(F, T)`` (ones when ``None``); ``normalize=False`` gives the weighted sum.

    >>> X = np.ones((2, 3, 4), complex)
    >>> spatial_covariance(X)[0].real.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    if mask is None:
        mask = np.ones(X.shape[1:])
    scm: Complex = np.einsum("ft,aft,bft->fab", mask, X, X.conj())
    if normalize:
        scm = scm / np.maximum(mask.sum(axis=-1), 1e-10)[:, None, None]
    return scm


def steering_vectors(mic_positions: Array, freqs: Array, azimuths_deg: Array, c: float = SPEED_OF_SOUND) -> Complex:
    """Far-field steering vectors in the horizontal plane, ``(F, D, C)`` for ``D`` azimuths.

    A plane wave from azimuth θ reaches microphone ``p`` earlier by ``p · u(θ) / c``; its phase at frequency
    ``f`` is ``exp(+j 2π f p · u / c)`` (the STFT's sign convention).

    >>> a = steering_vectors(np.array([[0.05, -0.05], [0.0, 0.0]]), np.array([0.0, 1000.0]), np.array([0.0, 90.0]))
    >>> a.shape, bool(np.allclose(a[:, 1], 1.0))
    ((2, 2, 2), True)
    """
    theta = np.deg2rad(np.asarray(azimuths_deg, dtype=np.float64))
    directions = np.stack([np.cos(theta), np.sin(theta)])  # (2, D)
    delays = np.asarray(mic_positions)[:2].T @ directions / c  # (C, D): how much earlier each mic hears
    phase = 2.0 * np.pi * np.asarray(freqs)[:, None, None] * delays.T[None]  # (F, D, C)
    vectors: Complex = np.exp(1j * phase)
    return vectors


def _band(n_fft: int, fs: int, freq_range: tuple[float, float]) -> tuple[NDArray[np.intp], Array]:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    bins = np.flatnonzero((freqs >= freq_range[0]) & (freqs <= freq_range[1]))
    return bins, freqs[bins]


def srp_phat_spectrum(
    scm: Complex,
    mic_positions: Array,
    fs: int,
    n_fft: int,
    azimuths_deg: Array,
    freq_range: tuple[float, float] = (300.0, 3500.0),
) -> NDArray[np.float64]:
    """Steered response power with the phase transform over ``azimuths_deg``, from an SCM ``(F, C, C)``.

    Each cross term ``R_ij`` is whitened to ``R_ij / |R_ij|`` (PHAT); the power is ``Σ_f Re(aᴴ R a)``
    over the cross terms, i.e. the sum of the generalized cross-correlations at the pairs' delays.

    >>> mics = np.array([[0.05, 0.0, -0.05, 0.0], [0.0, 0.05, 0.0, -0.05]])
    >>> a = steering_vectors(mics, np.fft.rfftfreq(512, 1 / 16000), np.array([40.0]))[:, 0]
    >>> grid = np.arange(360.0)
    >>> int(grid[np.argmax(srp_phat_spectrum(np.einsum("fa,fb->fab", a, a.conj()), mics, 16000, 512, grid))])
    40
    """
    bins, freqs = _band(n_fft, fs, freq_range)
    R = scm[bins]
    phat = R / np.maximum(np.abs(R), 1e-12)
    channels = R.shape[-1]
    phat = phat * (1.0 - np.eye(channels))  # cross terms only
    a = steering_vectors(mic_positions, freqs, azimuths_deg)  # (F, D, C)
    power = np.einsum("fdc,fce,fde->d", a.conj(), phat, a).real
    return np.asarray(power / (len(bins) * channels * (channels - 1)))


def music_spectrum(
    scm: Complex,
    mic_positions: Array,
    fs: int,
    n_fft: int,
    azimuths_deg: Array,
    n_sources: int = 1,
    freq_range: tuple[float, float] = (300.0, 3500.0),
) -> NDArray[np.float64]:
    """MUSIC pseudo-spectrum ``1 / ‖Eₙᴴ a‖²`` per frequency, each normalized to a maximum of one, then averaged
    (the NormMUSIC combination, so that no single frequency dominates).

    >>> mics = np.array([[0.05, 0.0, -0.05, 0.0], [0.0, 0.05, 0.0, -0.05]])
    >>> a = steering_vectors(mics, np.fft.rfftfreq(512, 1 / 16000), np.array([200.0]))[:, 0]
    >>> scm = np.einsum("fa,fb->fab", a, a.conj()) + 0.01 * np.eye(4)
    >>> grid = np.arange(360.0)
    >>> int(grid[np.argmax(music_spectrum(scm, mics, 16000, 512, grid))])
    200
    """
    bins, freqs = _band(n_fft, fs, freq_range)
    _, vectors = np.linalg.eigh(scm[bins])  # ascending eigenvalues
    noise = vectors[..., : scm.shape[-1] - n_sources]  # (F, C, C - n)
    a = steering_vectors(mic_positions, freqs, azimuths_deg)  # (F, D, C)
    projection = np.einsum("fcn,fdc->fdn", noise.conj(), a)
    pseudo = 1.0 / np.maximum((np.abs(projection) ** 2).sum(-1), 1e-12)  # (F, D)
    pseudo /= pseudo.max(axis=1, keepdims=True)
    return np.asarray(pseudo.mean(axis=0))


def find_peaks_circular(spectrum: Array, azimuths_deg: Array, n_peaks: int = 1) -> NDArray[np.float64]:
    """Azimuths of the ``n_peaks`` highest local maxima of a spectrum over a full circle of azimuths.

    >>> find_peaks_circular(np.array([0.0, 3, 1, 0, 2, 0]), np.arange(0.0, 360, 60), 2).tolist()
    [60.0, 240.0]
    """
    s = np.asarray(spectrum)
    local = (s >= np.roll(s, 1)) & (s > np.roll(s, -1))
    candidates = np.flatnonzero(local)
    if len(candidates) == 0:
        candidates = np.array([int(np.argmax(s))])
    best = candidates[np.argsort(s[candidates])[::-1][:n_peaks]]
    return np.asarray(np.asarray(azimuths_deg, dtype=np.float64)[best])


def angular_error_deg(estimate: Array, truth: Array) -> NDArray[np.float64]:
    """Absolute azimuth difference on the circle, in ``[0, 180]``.

    >>> angular_error_deg(np.array([359.0]), np.array([1.0])).tolist()
    [2.0]
    """
    diff = np.abs(np.asarray(estimate) - np.asarray(truth)) % 360.0
    return np.asarray(np.minimum(diff, 360.0 - diff))


def mvdr_souden(scm_speech: Complex, scm_noise: Complex, ref: int = 0, diag_load: float = 1e-6) -> Complex:
    """Souden's MVDR weights ``w_f = (Φₙ⁻¹ Φₛ / tr(Φₙ⁻¹ Φₛ)) u_ref``, ``(F, C)``.

    No steering vector is needed: the speech SCM carries the relative transfer function. ``diag_load`` (a share
    of ``tr Φₙ / C``) keeps ``Φₙ`` invertible.

    >>> a = np.array([[1.0, 0.5j]])
    >>> phi_s = np.einsum("fa,fb->fab", a, a.conj())
    >>> w = mvdr_souden(phi_s, np.eye(2)[None].astype(complex))
    >>> bool(np.allclose(np.einsum("fc,fc->f", w.conj(), a), 1.0))  # distortionless at the reference mic
    True
    """
    channels = scm_noise.shape[-1]
    load = diag_load * np.trace(scm_noise, axis1=-2, axis2=-1).real / channels
    phi_n = scm_noise + load[:, None, None] * np.eye(channels)
    numerator = np.linalg.solve(phi_n, scm_speech)  # Φₙ⁻¹ Φₛ
    trace = np.trace(numerator, axis1=-2, axis2=-1)
    trace = np.where(np.abs(trace) < 1e-12, 1e-12, trace)
    return np.asarray(numerator[..., ref] / trace[:, None])


def mask_mvdr(X: Complex, masks: Array, n_fft: int, hop: int, length: int) -> NDArray[np.float64]:
    """One Souden MVDR output per mask ``(K, F, T)`` on ``X`` ``(C, F, T)``, ``(K, length)``: the speech SCM weighted
    by the mask, the noise SCM by its complement.

    >>> X = stft(np.tile(np.sin(np.arange(4000) / 5.0), (2, 1)), 512, 256)
    >>> mask_mvdr(X, np.full((1, *X.shape[1:]), 0.5), 512, 256, 4000).shape
    (1, 4000)
    """
    outputs = []
    for mask in masks:
        weights = mvdr_souden(spatial_covariance(X, mask), spatial_covariance(X, 1.0 - mask))
        outputs.append(istft(apply_beamformer(weights, X), n_fft, hop, length=length))
    return np.stack(outputs)


def apply_beamformer(weights: Complex, X: Complex) -> Complex:
    """``y_ft = w_fᴴ x_ft``: weights ``(F, C)`` (or ``(F, T, C)`` time-varying) on ``X`` ``(C, F, T)`` → ``(F, T)``.

    >>> apply_beamformer(np.ones((1, 2)), np.ones((2, 1, 3), complex)).real.tolist()
    [[2.0, 2.0, 2.0]]
    """
    subscripts = "ftc,cft->ft" if weights.ndim == 3 else "fc,cft->ft"
    output: Complex = np.einsum(subscripts, weights.conj(), X)
    return output


def si_sdr(estimate: Array, reference: Array) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), zero-mean signals.

    >>> t = np.sin(np.arange(1000) / 7.0)
    >>> round(si_sdr(2.0 * t + 0.01 * np.cos(np.arange(1000) / 3.0), t), 1)
    46.0
    """
    s = np.asarray(reference, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    s = s - s.mean()
    e = e - e.mean()
    target = (e @ s) / max(float(s @ s), 1e-20) * s
    distortion = e - target
    return float(10.0 * np.log10(max(float(target @ target), 1e-20) / max(float(distortion @ distortion), 1e-20)))


def diffuse_coherence(mic_positions: Array, freqs: Array, c: float = SPEED_OF_SOUND) -> NDArray[np.float64]:
    """Spherically isotropic (diffuse) noise coherence ``Γ_ij(f) = sinc(2 f d_ij / c)``, ``(F, C, C)``.

    >>> g = diffuse_coherence(np.array([[0.0, 0.1], [0.0, 0.0], [0.0, 0.0]]), np.array([0.0, 1715.0]))
    >>> np.round(g[:, 0, 1], 3).tolist()  # sinc(1) = 0 at f = c / (2 d)
    [1.0, 0.0]
    """
    p = np.asarray(mic_positions, dtype=np.float64)
    distances = np.linalg.norm(p[:, :, None] - p[:, None, :], axis=0)
    return np.asarray(np.sinc(2.0 * np.asarray(freqs)[:, None, None] * distances[None] / c))


def diffuse_noise(
    mic_positions: Array,
    length: int,
    fs: int,
    rng: np.random.Generator,
    n_fft: int = 512,
    color: float = 0.0,
) -> NDArray[np.float64]:
    """Spherically diffuse noise at the microphones, ``(C, length)``: independent Gaussian noise given the
    diffuse coherence by a per-frequency Cholesky factor (Habets & Gannot's method), power spectrum ``f^-color``.

    >>> mics = np.array([[0.0, 0.02], [0.0, 0.0], [0.0, 0.0]])
    >>> n = diffuse_noise(mics, 16000, 16000, np.random.default_rng(0))
    >>> n.shape, bool(np.corrcoef(n)[0, 1] > 0.5)  # 2 cm apart: strongly coherent
    ((2, 16000), True)
    """
    channels = np.asarray(mic_positions).shape[1]
    hop = n_fft // 2
    white = rng.standard_normal((channels, length))
    W = stft(white, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    gamma = diffuse_coherence(mic_positions, freqs) + 1e-6 * np.eye(channels)
    chol = np.linalg.cholesky(gamma)  # (F, C, C)
    colored = np.einsum("fab,bft->aft", chol, W)
    shape = np.maximum(freqs, 50.0) ** (-color / 2.0)
    colored *= (shape / np.sqrt(np.mean(shape**2)))[None, :, None]
    return istft(colored, n_fft, hop, length=length)


__all__ = [
    "SPEED_OF_SOUND",
    "angular_error_deg",
    "apply_beamformer",
    "diffuse_coherence",
    "diffuse_noise",
    "find_peaks_circular",
    "istft",
    "mask_mvdr",
    "music_spectrum",
    "mvdr_souden",
    "n_frames",
    "si_sdr",
    "spatial_covariance",
    "srp_phat_spectrum",
    "steering_vectors",
    "stft",
    "window",
]
