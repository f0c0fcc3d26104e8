"""The sound classes of the procedural scenes, and what each looks like.

Each class is a family of signals (random within the family, deterministic for a seed) bound to one look (a
shape and a colour), so that a sounding object's appearance tells its class, while an identical-looking silent
distractor shows that appearance alone cannot tell *which* object sounds.

Example:
    >>> rng = np.random.default_rng(0)
    >>> signal = synthesize("chirp", 4000, 16000, rng)
    >>> signal.shape, signal.dtype, round(float(np.abs(signal).max()), 3)
    ((4000,), dtype('float32'), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Look:
    """How objects of one class are drawn: a shape in the tangent plane and an RGB colour."""

    shape: str  # disk | square | triangle | diamond
    color: tuple[int, int, int]
    stripes: bool = False


CLASSES: tuple[str, ...] = ("tone", "chirp", "noise", "clicks")
LOOKS: dict[str, Look] = {
    "tone": Look("disk", (220, 60, 50)),
    "chirp": Look("square", (60, 190, 80)),
    "noise": Look("triangle", (60, 90, 220)),
    "clicks": Look("diamond", (230, 200, 50), stripes=True),
}


def synthesize(kind: str, n: int, rate: int, rng: np.random.Generator) -> Array:
    """``n`` samples at ``rate`` Hz of one member of the class ``kind``, peak-normalised to 1 (float32).

    - ``tone``: a harmonic tone, f0 in 300–600 Hz, three harmonics, slow amplitude modulation;
    - ``chirp``: repeated linear sweeps between ~600 Hz and ~3 kHz;
    - ``noise``: band-pass noise, a 1 kHz band centred in 2–4 kHz;
    - ``clicks``: a click train of 15–40 clicks per second (broadband).
    """
    t = np.arange(n) / rate
    signal: Array
    if kind == "tone":
        f0 = rng.uniform(300.0, 600.0)
        phases = rng.uniform(0, 2 * np.pi, 3)
        signal = sum(np.sin(2 * np.pi * f0 * (k + 1) * t + phases[k]) / (k + 1) for k in range(3))
        signal = signal * (1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(2.0, 6.0) * t))
    elif kind == "chirp":
        low, high = rng.uniform(500.0, 800.0), rng.uniform(2500.0, 3500.0)
        period = rng.uniform(0.08, 0.16)
        phase_t = (t + rng.uniform(0, period)) % period
        rate_hz = (high - low) / period
        signal = np.sin(2 * np.pi * (low * phase_t + 0.5 * rate_hz * phase_t**2))
    elif kind == "noise":
        centre = rng.uniform(2000.0, 4000.0)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / rate)
        spectrum[np.abs(freqs - centre) > 500.0] = 0.0
        signal = np.fft.irfft(spectrum, n)
    elif kind == "clicks":
        period = int(rate / rng.uniform(15.0, 40.0))
        signal = np.zeros(n)
        start = int(rng.integers(0, period))
        click = np.hanning(16) * rng.choice([-1.0, 1.0], 16)
        for at in range(start, n - 16, period):
            signal[at : at + 16] += click
        signal += 0.02 * rng.standard_normal(n)
    else:
        raise ValueError(f"unknown sound class {kind!r}; known: {', '.join(CLASSES)}")
    peak = float(np.abs(signal).max()) or 1.0
    return (signal / peak).astype(np.float32)


__all__ = ["CLASSES", "LOOKS", "Look", "synthesize"]
