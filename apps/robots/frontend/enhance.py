"""The trained front-end at work: masks → mask-based MVDR per speaker, DOA, offline and block-online.

:class:`Frontend` wraps a trained :class:`~apps.robots.frontend.task.FrontendTask` (or an untrained one, for
tests): ``masks``, ``separate`` (an MVDR output per speaker component, utterance-level covariances), ``enhance``
(the dominant speaker) and ``doa``. :class:`StreamingFrontend` runs the same network frame by frame with
recursively averaged covariances: block-online, its output lags its input by ``n_fft - hop`` samples (16 ms
at the default 512 / 256), plus the length of the blocks it is fed.

Example:
    >>> import numpy as np
    >>> frontend = Frontend.untrained(hidden=16)
    >>> x = np.random.default_rng(0).standard_normal((4, 8000)).astype(np.float32)
    >>> frontend.separate(x).shape, frontend.enhance(x).shape
    ((2, 8000), (8000,))
    >>> stream = StreamingFrontend(frontend)
    >>> out = np.concatenate([stream.process(x[:, i : i + 512]).audio for i in range(0, 8000, 512)])
    >>> out.shape
    (7936,)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from apps.robots.frontend import functional as F
from apps.robots.frontend.clustering import guided_masks
from core.errors import UserError

AZIMUTHS = np.arange(0.0, 360.0, 1.0)
REFINE_ITERATIONS = 10
"""Offline cACGMM rounds by default, started at the azimuths of the network's masks (see the README)."""


class Frontend:
    """Offline use of a trained front-end.

    Args:
        task: A :class:`~apps.robots.frontend.task.FrontendTask` (weights loaded).
        refine_iterations: cACGMM EM rounds (:func:`~apps.robots.frontend.clustering.guided_masks`) started from
            the geometric models at the azimuths the network's masks point to, before beamforming; 0 uses the
            network's masks as they are.
    """

    def __init__(self, task: Any, refine_iterations: int = REFINE_ITERATIONS) -> None:
        self.task = task.eval()
        self.refine_iterations = refine_iterations
        self.n_fft = int(task.n_fft)
        self.hop = int(task.hop)
        self.fs = int(task.fs)
        self.mics = task.array.positions()

    @classmethod
    def from_run(
        cls, run_dir: str | Path, checkpoint: str = "best", refine_iterations: int = REFINE_ITERATIONS
    ) -> Frontend:
        """The front-end of a ``train-frontend`` run directory; a missing run is a :class:`UserError`."""
        from core.train import load_run

        if not (Path(run_dir) / "merged_config.yaml").is_file():
            raise UserError(
                "no trained front-end here",
                where=str(run_dir),
                hint="train one: kakehashi robots train-frontend apps/robots/frontend/config/train.yaml --run-dir DIR",
            )
        return cls(load_run(run_dir, checkpoint), refine_iterations)

    @classmethod
    def untrained(cls, seed: int = 0, **model: Any) -> Frontend:
        """A front-end with random weights (tests, timing)."""
        from apps.robots.frontend.model import MaskNet
        from apps.robots.frontend.task import FrontendTask

        torch.manual_seed(seed)
        return cls(FrontendTask(model=MaskNet(**model)))

    def stft(self, mixture: NDArray[np.floating]) -> NDArray[np.complexfloating]:
        return F.stft(mixture, self.n_fft, self.hop)

    def masks(self, X: NDArray[np.complexfloating]) -> NDArray[np.float64]:
        """Masks ``(K, F, T)`` of an STFT ``(C, F, T)``: ``refine_iterations`` of cACGMM EM guided by the network's
        masks (the network's own when 0); the last component is the diffuse noise."""
        scale = np.sqrt(np.mean(np.abs(X) ** 2)) + 1e-8
        with torch.no_grad():
            masks, _ = self.task(torch.from_numpy((X / scale).astype(np.complex64))[None])
        network = np.asarray(masks[0].double().numpy())
        return guided_masks(X, network, self.mics, self.fs, self.n_fft, self.refine_iterations)

    def separate(self, mixture: NDArray[np.floating]) -> NDArray[np.float64]:
        """One MVDR output per speaker component ``(K - 1, N)``, at the reference microphone's level."""
        X = self.stft(mixture)
        return F.mask_mvdr(X, self.masks(X)[:-1], self.n_fft, self.hop, mixture.shape[-1])

    def dominant(self, X: NDArray[np.complexfloating], masks: NDArray[np.float64]) -> int:
        """The speaker component that holds the most power."""
        power = (masks[:-1] * (np.abs(X) ** 2).mean(0)).sum((1, 2))
        return int(np.argmax(power))

    def enhance(self, mixture: NDArray[np.floating]) -> NDArray[np.float64]:
        """The dominant speaker, by mask-based MVDR, ``(N,)``."""
        X = self.stft(mixture)
        masks = self.masks(X)
        k = self.dominant(X, masks)
        return np.asarray(F.mask_mvdr(X, masks[k : k + 1], self.n_fft, self.hop, mixture.shape[-1])[0])

    def doa(self, mixture: NDArray[np.floating], method: str = "srp") -> float:
        """Azimuth (degrees) of the dominant speaker: SRP-PHAT or MUSIC on its mask-weighted covariance."""
        X = self.stft(mixture)
        masks = self.masks(X)
        scm = F.spatial_covariance(X, masks[self.dominant(X, masks)])
        return doa_from_scm(scm, self.mics, self.fs, self.n_fft, method)


def doa_from_scm(
    scm: NDArray[np.complexfloating], mics: NDArray[np.floating], fs: int, n_fft: int, method: str
) -> float:
    """The azimuth of the highest peak of SRP-PHAT (``"srp"``) or MUSIC (``"music"``) on a covariance.

    >>> mics = np.array([[0.05, 0.0, -0.05, 0.0], [0.0, 0.05, 0.0, -0.05]])
    >>> a = F.steering_vectors(mics, np.fft.rfftfreq(512, 1 / 16000), np.array([75.0]))[:, 0]
    >>> doa_from_scm(np.einsum("fa,fb->fab", a, a.conj()) + 0.01 * np.eye(4), mics, 16000, 512, "music")
    75.0
    """
    if method == "srp":
        spectrum = F.srp_phat_spectrum(scm, mics, fs, n_fft, AZIMUTHS)
    elif method == "music":
        spectrum = F.music_spectrum(scm, mics, fs, n_fft, AZIMUTHS)
    else:
        raise UserError(f"unknown DOA method {method!r}", hint="srp or music")
    return float(F.find_peaks_circular(spectrum, AZIMUTHS, 1)[0])


@dataclass
class StreamOutput:
    """What one block of input gives: enhanced samples (``hop`` per completed frame), the DOA (degrees, or
    ``None`` before the first frame) and the processing time of the block."""

    audio: NDArray[np.float32]
    doa: float | None
    seconds: float


class StreamingFrontend:
    """Block-online front-end: per frame, masks from the causal network (its state carried over), covariances
    updated recursively, Souden MVDR for the dominant speaker, weighted overlap-add.

    Args:
        frontend: The trained front-end.
        forget: Per-frame forgetting factor of the covariances (0.97 at a 16 ms hop: a ~0.5 s memory).
        doa_every: Frames between DOA updates (SRP-PHAT on the speaker's covariance).
    """

    def __init__(self, frontend: Frontend, forget: float = 0.97, doa_every: int = 8) -> None:
        self.frontend = frontend
        self.n_fft = frontend.n_fft
        self.hop = frontend.hop
        self.forget = forget
        self.doa_every = doa_every
        self.channels = frontend.mics.shape[1]
        self.reset()

    @property
    def delay(self) -> int:
        """Samples by which the output lags the input (not counting the block length)."""
        return self.n_fft - self.hop

    def reset(self) -> None:
        n_freq = self.n_fft // 2 + 1
        self._input = np.zeros((self.channels, self.n_fft - self.hop))
        self._output = np.zeros(self.n_fft - self.hop)
        self._state: torch.Tensor | None = None
        self._scm = np.tile(np.eye(self.channels, dtype=complex) * 1e-6, (3, n_freq, 1, 1))
        self._power = np.zeros(2)
        self._frames = 0
        self._doa: float | None = None
        self._scale: float | None = None
        self._window = F.window(self.n_fft)

    def process(self, block: NDArray[np.floating]) -> StreamOutput:
        """Feed ``(C, n)`` samples; get the enhanced samples completed so far (``hop`` per new frame)."""
        import time

        start = time.perf_counter()
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) samples, got shape {block.shape}")
        self._input = np.concatenate([self._input, block], axis=1)
        count = (self._input.shape[1] - (self.n_fft - self.hop)) // self.hop
        if count == 0:
            return StreamOutput(np.zeros(0, np.float32), self._doa, time.perf_counter() - start)
        frames = np.stack([self._input[:, t * self.hop : t * self.hop + self.n_fft] for t in range(count)], axis=-1)
        self._input = self._input[:, count * self.hop :]
        X = np.fft.rfft(frames * self._window[None, :, None], axis=1)  # (C, F, T)
        if self._scale is None:
            self._scale = float(np.sqrt(np.mean(np.abs(X) ** 2))) + 1e-8
        with torch.no_grad():
            masks, self._state = self.frontend.task(
                torch.from_numpy((X / self._scale).astype(np.complex64))[None], self._state
            )
        masks_np = masks[0].double().numpy()  # (K, F, T)
        out = np.zeros(count * self.hop)
        self._output = np.concatenate([self._output, np.zeros(count * self.hop)])
        for t in range(count):
            x = X[:, :, t]
            outer = np.einsum("af,bf->fab", x, x.conj())
            for k in range(masks_np.shape[0]):
                self._scm[k] = self.forget * self._scm[k] + (1.0 - self.forget) * masks_np[k, :, t, None, None] * outer
            power = (masks_np[:-1, :, t] * (np.abs(x) ** 2).mean(0)).sum(-1)
            self._power = self.forget * self._power + (1.0 - self.forget) * power
            k = int(np.argmax(self._power))
            noise = self._scm.sum(0) - self._scm[k]
            weights = F.mvdr_souden(self._scm[k], noise, diag_load=1e-3)
            y = np.einsum("fc,cf->f", weights.conj(), x)
            segment = np.fft.irfft(y, n=self.n_fft) * self._window
            self._output[t * self.hop : t * self.hop + self.n_fft] += segment
            self._frames += 1
            if self._frames % self.doa_every == 0:
                self._doa = doa_from_scm(self._scm[k], self.frontend.mics, self.frontend.fs, self.n_fft, "srp")
        out = self._output[: count * self.hop].copy()
        self._output = self._output[count * self.hop :]
        return StreamOutput(out.astype(np.float32), self._doa, time.perf_counter() - start)

    def run(self, mixture: NDArray[np.floating], block: int = 512) -> NDArray[np.float64]:
        """The whole ``mixture`` through :meth:`process` in blocks, re-aligned with the input (``(N,)``)."""
        self.reset()
        pieces = [self.process(mixture[:, i : i + block]).audio for i in range(0, mixture.shape[1], block)]
        pieces.append(self.process(np.zeros((self.channels, self.n_fft))).audio)
        out = np.concatenate(pieces).astype(np.float64)
        return out[self.delay : self.delay + mixture.shape[1]]


__all__ = ["AZIMUTHS", "Frontend", "StreamOutput", "StreamingFrontend", "doa_from_scm"]
