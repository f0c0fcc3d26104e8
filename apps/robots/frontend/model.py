"""The neural part: a causal mask network and the full-rank spatial-model likelihood it is trained with.

The model of a multichannel STFT bin ``x_ft`` (C channels) is the full-rank spatial covariance analysis (FCA)
model: a sum of K zero-mean complex Gaussian components,

    x_ft ~ CN(0, Y_ft),   Y_ft = Σ_k λ_kft H_kf,

with a time-varying power spectral density ``λ_kft`` and a full-rank spatial covariance ``H_kf`` per component.
Components ``0 .. K-2`` are speakers; the last is diffuse noise, whose spatial covariance is fixed to the
spherically isotropic coherence of the array (``sinc(2 f d_ij / c)``), which makes it identifiable.

Amortized inference (as in neural FCA, Bando et al. 2021): a causal network reads the mixture and outputs
masks ``m_kft`` (softmax over k); the PSDs are ``λ_kft = m_kft p_ft`` with ``p_ft = ‖x_ft‖² / C``, and the speakers'
spatial covariances follow in closed form from the masks (one M-step of FCA, ``H_kf = Σ_t m_kft x xᴴ /
Σ_t m_kft p_ft``). The loss is the negative log-likelihood of the mixture, ``log det Y + xᴴ Y⁻¹ x`` averaged over
bins: nothing but the mixture enters it, so training needs no clean signal.

Example:
    >>> import torch
    >>> net = MaskNet(n_freq=65, n_mics=2, n_components=3, hidden=16)
    >>> X = torch.randn(1, 2, 65, 10, dtype=torch.complex64)
    >>> masks, _ = net(X)
    >>> masks.shape, bool(torch.allclose(masks.sum(1), torch.ones(1, 65, 10)))
    (torch.Size([1, 3, 65, 10]), True)
    >>> gamma = torch.eye(2, dtype=torch.complex64).expand(65, 2, 2)
    >>> bool(torch.isfinite(fca_nll(X, masks, gamma)))
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def features(X: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-frame input features of ``X`` ``(B, C, F, T)`` → ``(B, T, (2C - 1) F)``: the log power averaged over
    channels, centred per frame (level-invariant), and the cosine and sine of each channel's phase against mic 0.

    >>> features(torch.ones(1, 3, 5, 2, dtype=torch.complex64)).shape
    torch.Size([1, 2, 25])
    """
    power = (X.abs() ** 2).mean(1)  # (B, F, T)
    log_power = torch.log(power + eps)
    log_power = log_power - log_power.mean(1, keepdim=True)
    cross = X[:, 1:] * X[:, :1].conj()  # (B, C-1, F, T)
    unit = cross / (cross.abs() + eps)
    feats = torch.cat([log_power.unsqueeze(1) / 5.0, unit.real, unit.imag], dim=1)  # (B, 2C-1, F, T)
    batch, parts, freqs, frames = feats.shape
    return feats.permute(0, 3, 1, 2).reshape(batch, frames, parts * freqs)


class MaskNet(nn.Module):
    """Causal mask estimator: linear → GRU → linear, a softmax over ``n_components`` per bin.

    Causal in time (a unidirectional GRU), so the same weights run offline and block-online: ``forward`` takes
    and returns the GRU state.

    Args:
        n_freq: Frequency bins (``n_fft // 2 + 1``).
        n_mics: Channels.
        n_components: Speakers + 1 (the last component is the diffuse noise).
        hidden: Width of the GRU.
        layers: GRU layers.
    """

    def __init__(self, n_freq: int = 257, n_mics: int = 4, n_components: int = 3, hidden: int = 256, layers: int = 1):
        super().__init__()
        self.n_freq = n_freq
        self.n_mics = n_mics
        self.n_components = n_components
        self.inp = nn.Sequential(nn.Linear((2 * n_mics - 1) * n_freq, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, n_components * n_freq)

    def forward(self, X: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Masks ``(B, K, F, T)`` of the STFT ``X`` ``(B, C, F, T)``, and the GRU state after the last frame."""
        h = self.inp(features(X))
        h, state = self.gru(h, state)
        logits = self.out(h)  # (B, T, K F)
        batch, frames, _ = logits.shape
        logits = logits.reshape(batch, frames, self.n_components, self.n_freq).permute(0, 2, 3, 1)
        return torch.softmax(logits, dim=1), state


class DirectionalMaskNet(nn.Module):
    """Causal mask estimator that shares its weights across frequencies, through directional features.

    Each bin's phase differences are turned into a direction response, ``D_ftd = mean over mic pairs of
    Re(u_ij,ft · conj(a_i a_j*)_fd)`` for ``n_directions`` azimuths (``u`` the pair's unit cross-spectrum, ``a`` the
    far-field steering vectors): 1 where the bin's phases fit a wave from azimuth ``d``, the same scale at every
    frequency. A GRU reads per-frame summaries (the band-averaged direction response, plain and power-weighted,
    and the log power in ``n_bands`` bands, centred per frame as in :func:`features`) and keeps track of where the
    speakers are; a small per-bin network, the same at every frequency (plus a learned frequency embedding), reads
    the bin's direction response and log power and the frame's GRU state and gives the bin's K logits. Unlike
    :class:`MaskNet`, whose input layer maps all ``(2C - 1) F`` features of a frame at once, nothing here has to be
    learned separately per frequency.

    Args:
        n_freq: Frequency bins (``n_fft // 2 + 1``).
        array: The microphone array (:class:`~apps.robots.frontend.simulate.ArraySpec` fields).
        fs: Sample rate.
        n_components: Speakers + 1 (the last component is the diffuse noise).
        hidden: Width of the GRU.
        bin_hidden: Width of the per-bin network.
        n_directions: Azimuths of the direction response (evenly spaced over 360°).
        n_bands: Bands of the frame's log-power summary.
        band: Frequency range (Hz) of the frame's direction summary.

    >>> net = DirectionalMaskNet(n_freq=65, fs=8000, hidden=8, bin_hidden=8, n_directions=12)
    >>> masks, state = net(torch.randn(1, 4, 65, 10, dtype=torch.complex64))
    >>> masks.shape, bool(torch.allclose(masks.sum(1), torch.ones(1, 65, 10)))
    (torch.Size([1, 3, 65, 10]), True)
    """

    pair_steering: Tensor  # (F, D, P): conj(a_i a_j*) of each direction and mic pair
    band_weights: Tensor  # (F,): 1 inside the direction summary's band, normalized
    band_pool: Tensor  # (F, n_bands): averages the bins of each log-power band

    def __init__(
        self,
        n_freq: int = 257,
        array: dict[str, Any] | None = None,
        fs: int = 16000,
        n_components: int = 3,
        hidden: int = 128,
        bin_hidden: int = 64,
        n_directions: int = 36,
        n_bands: int = 16,
        band: tuple[float, float] = (300.0, 4000.0),
    ) -> None:
        super().__init__()
        from apps.robots.frontend.functional import steering_vectors
        from apps.robots.frontend.simulate import ArraySpec

        spec = ArraySpec(**(array or {}))
        self.n_freq = n_freq
        self.n_mics = spec.n_mics
        self.n_components = n_components
        freqs = np.linspace(0.0, fs / 2.0, n_freq)
        a = steering_vectors(spec.positions(), freqs, np.arange(n_directions) * 360.0 / n_directions)  # (F, D, C)
        self.pairs = list(itertools.combinations(range(spec.n_mics), 2))
        steer = np.stack([a[..., i] * a[..., j].conj() for i, j in self.pairs], axis=-1).conj()
        self.register_buffer("pair_steering", torch.from_numpy(steer.astype(np.complex64)), persistent=False)
        inside = ((freqs >= band[0]) & (freqs <= band[1])).astype(np.float32)
        self.register_buffer("band_weights", torch.from_numpy(inside / max(inside.sum(), 1.0)), persistent=False)
        edges = np.linspace(0, n_freq, n_bands + 1).astype(int)
        pool = np.zeros((n_freq, n_bands), np.float32)
        for b in range(n_bands):
            pool[edges[b] : edges[b + 1], b] = 1.0 / max(edges[b + 1] - edges[b], 1)
        self.register_buffer("band_pool", torch.from_numpy(pool), persistent=False)
        self.frame_in = nn.Sequential(nn.Linear(2 * n_directions + n_bands, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.freq_embedding = nn.Parameter(torch.zeros(n_freq, 16))
        self.bin_in = nn.Linear(n_directions + 1, bin_hidden)
        self.freq_in = nn.Linear(16, bin_hidden, bias=False)
        self.context = nn.Linear(hidden, bin_hidden)
        self.bin_out = nn.Sequential(
            nn.ReLU(), nn.Linear(bin_hidden, bin_hidden), nn.ReLU(), nn.Linear(bin_hidden, n_components)
        )

    @torch.no_grad()
    def direction_response(self, X: Tensor, eps: float = 1e-8) -> Tensor:
        """``D`` ``(B, T, F, n_directions)`` of the STFT ``X`` ``(B, C, F, T)`` (a fixed transform: no gradient)."""
        cross = torch.stack([X[:, i] * X[:, j].conj() for i, j in self.pairs], dim=-1)  # (B, F, T, P)
        unit = (cross / (cross.abs() + eps)).permute(1, 0, 2, 3)  # (F, B, T, P)
        freqs, batch, frames, pairs = unit.shape
        unit = unit.reshape(freqs, batch * frames, pairs)
        steer = self.pair_steering.transpose(1, 2)  # (F, P, D)
        D = torch.bmm(unit.real, steer.real) - torch.bmm(unit.imag, steer.imag)  # Re(u · steer), (F, B T, D)
        return D.reshape(freqs, batch, frames, -1).permute(1, 2, 0, 3) / pairs

    def forward(self, X: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Masks ``(B, K, F, T)`` of the STFT ``X`` ``(B, C, F, T)``, and the GRU state after the last frame."""
        D = self.direction_response(X)  # (B, T, F, Dir)
        power = (X.abs() ** 2).mean(1).transpose(1, 2)  # (B, T, F)
        log_power = torch.log(power + 1e-8)
        log_power = (log_power - log_power.mean(-1, keepdim=True)) / 5.0  # centred per frame: level-invariant
        weights = self.band_weights[:, None]
        loud = power * self.band_weights
        loud = loud / (loud.sum(-1, keepdim=True) + 1e-12)
        frame = torch.cat(
            [(D * weights).sum(2), (D * loud.unsqueeze(-1)).sum(2), log_power @ self.band_pool], dim=-1
        )  # (B, T, 2 Dir + bands)
        context, state = self.gru(self.frame_in(frame), state)  # (B, T, H)
        h = self.bin_in(torch.cat([D, log_power.unsqueeze(-1)], dim=-1))  # (B, T, F, bin_hidden)
        h = h + self.freq_in(self.freq_embedding) + self.context(context).unsqueeze(2)
        logits = self.bin_out(h)  # (B, T, F, K)
        return torch.softmax(logits.permute(0, 3, 2, 1), dim=1), state


def speaker_covariances(X: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Closed-form spatial covariances of the speaker components, ``H_kf = Σ_t m_kft x xᴴ / Σ_t m_kft p_ft``,
    ``(B, K - 1, F, C, C)``, with a small diagonal load.

    >>> X = torch.ones(1, 2, 3, 4, dtype=torch.complex64)
    >>> H = speaker_covariances(X, torch.full((1, 2, 3, 4), 0.5))
    >>> H.shape, round(float(H[0, 0, 0, 0, 1].real), 3)
    (torch.Size([1, 1, 3, 2, 2]), 1.0)
    """
    power = (X.abs() ** 2).mean(1)  # (B, F, T)
    m = masks[:, :-1].to(X.dtype)  # (B, K-1, F, T)
    weighted = torch.einsum("bkft,bcft,bdft->bkfcd", m, X, X.conj())
    norm = (masks[:, :-1] * power.unsqueeze(1)).sum(-1)  # (B, K-1, F)
    H = weighted / (norm[..., None, None] + 1e-10)
    channels = X.shape[1]
    return H + eps * torch.eye(channels, dtype=X.dtype, device=X.device)


def fca_nll(X: Tensor, masks: Tensor, noise_scm: Tensor, floor: float = 1e-3) -> Tensor:
    """Mean negative log-likelihood per bin (up to the constant ``C log π``) of ``X`` ``(B, C, F, T)`` under
    the FCA model with PSDs ``m p``, closed-form speaker covariances and the fixed ``noise_scm`` ``(F, C, C)``.

    ``floor`` adds ``floor · p_ft · I`` to every ``Y_ft`` (sensor noise), so that no bin is singular.
    """
    power = (X.abs() ** 2).mean(1) + 1e-10  # (B, F, T)
    H = speaker_covariances(X, masks)  # (B, K-1, F, C, C)
    channels = X.shape[1]
    lam = (masks * power.unsqueeze(1)).to(X.dtype)  # (B, K, F, T)
    noise = noise_scm.to(X.dtype)
    floor_term = (floor * power).to(X.dtype)

    def element(i: int, j: int) -> Tensor:  # Y_ft[i, j] for every bin, without building the (…, C, C) tensor
        y = torch.einsum("bkft,bkf->bft", lam[:, :-1], H[..., i, j]) + lam[:, -1] * noise[:, i, j, None]
        return y + floor_term if i == j else y

    logdet, quad = _gaussian_terms(element, [X[:, c] for c in range(channels)])
    return (logdet + quad - channels * torch.log(power)).mean()  # − C log p: a constant that keeps it near 0


def teacher_kl(masks: Tensor, teacher: Tensor, eps: float = 1e-6) -> Tensor:
    """Mean KL divergence per bin from ``teacher`` masks to ``masks`` (both ``(B, K, F, T)``, the noise last), in
    the order of the speakers that makes it smallest, chosen per mixture (the teacher's speaker order is arbitrary).

    >>> t = torch.tensor([0.7, 0.2, 0.1]).reshape(1, 3, 1, 1)
    >>> float(teacher_kl(t[:, [1, 0, 2]], t)) < 1e-5  # the swapped speakers are found
    True
    """
    speakers = masks.shape[1] - 1
    log_masks = torch.log(masks.clamp_min(eps))
    entropy = (teacher * torch.log(teacher.clamp_min(eps))).sum(1).mean((1, 2))  # (B,)
    per_order = [
        entropy - (teacher[:, [*order, speakers]] * log_masks).sum(1).mean((1, 2))
        for order in itertools.permutations(range(speakers))
    ]
    return torch.stack(per_order).min(0).values.mean()


def gaussian_terms(Y: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``log det Y`` and ``xᴴ Y⁻¹ x`` for Hermitian positive definite ``Y`` ``(..., C, C)`` and ``x`` ``(..., C)``.

    An unrolled Cholesky factorization over the (small) channel axis, each step one elementwise operation over
    all bins: for millions of 4 × 4 matrices this is several times faster than batched LAPACK calls, forward
    and backward.

    >>> A = torch.randn(5, 3, 3, dtype=torch.complex128)
    >>> Y = A @ A.mH + torch.eye(3)
    >>> x = torch.randn(5, 3, dtype=torch.complex128)
    >>> logdet, quad = gaussian_terms(Y, x)
    >>> bool(torch.allclose(logdet, torch.linalg.slogdet(Y)[1]))
    True
    >>> bool(torch.allclose(quad, (x.conj().unsqueeze(-2) @ torch.linalg.solve(Y, x.unsqueeze(-1))).real[..., 0, 0]))
    True
    """
    return _gaussian_terms(lambda i, j: Y[..., i, j], [x[..., c] for c in range(Y.shape[-1])])


def _gaussian_terms(element: Callable[[int, int], Tensor], x: list[Tensor]) -> tuple[Tensor, Tensor]:
    channels = len(x)
    L: dict[tuple[int, int], Tensor] = {}  # the strictly lower triangle, L[i, j] for i > j
    diag: list[Tensor] = []
    for j in range(channels):
        d = element(j, j).real
        for k in range(j):
            d = d - L[j, k].abs() ** 2
        root = torch.sqrt(torch.clamp(d, min=1e-20))
        diag.append(root)
        for i in range(j + 1, channels):
            v = element(i, j)
            for k in range(j):
                v = v - L[i, k] * L[j, k].conj()
            L[i, j] = v / root
    z: list[Tensor] = []
    for i in range(channels):
        v = x[i]
        for k in range(i):
            v = v - L[i, k] * z[k]
        z.append(v / diag[i])
    log_diag = torch.log(diag[0])
    quad = z[0].abs() ** 2
    for i in range(1, channels):
        log_diag = log_diag + torch.log(diag[i])
        quad = quad + z[i].abs() ** 2
    return 2.0 * log_diag, quad


__all__ = [
    "DirectionalMaskNet",
    "MaskNet",
    "fca_nll",
    "features",
    "gaussian_terms",
    "speaker_covariances",
    "teacher_kl",
]
