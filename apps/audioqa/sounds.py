"""The sound classes of the soundscapes: procedural synthesizers and spoken words (espeak-ng).

Each class renders an event of a requested duration at unit RMS, so the mixer sets its level exactly. The
parameters of every event (pitch, rate, partials, the words spoken) come from the ``rng`` handed in: the same
generator state gives the same samples. ``speech`` speaks random words with ``espeak-ng`` when the binary is on
``PATH`` (rendered once per process and cached); without it, a formant-synthesised vowel babble stands in.

Example:
    >>> import numpy as np
    >>> wave = render("siren", 0.5, np.random.default_rng(0))
    >>> wave.shape, round(float(np.sqrt(np.mean(wave**2))), 3)
    ((8000,), 1.0)
"""

from __future__ import annotations

import functools
import io
import logging
import shutil
import subprocess
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CLASSES: tuple[str, ...] = (
    "bird chirp",
    "siren",
    "beep",
    "door knock",
    "engine hum",
    "bell",
    "rain",
    "car horn",
    "speech",
    "clap",
)
WORDS: tuple[str, ...] = (
    "hello",
    "seven",
    "window",
    "orange",
    "tomorrow",
    "music",
    "yellow",
    "station",
    "river",
    "garden",
    "number",
    "kitchen",
)

Synth = Callable[[int, np.random.Generator], np.ndarray]


def _t(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _bird_chirp(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    length = int(rng.uniform(0.06, 0.12) * SAMPLE_RATE)
    period = length + int(rng.uniform(0.03, 0.08) * SAMPLE_RATE)
    f0, f1 = rng.uniform(2000, 3000), rng.uniform(3500, 5000)
    t = _t(length)
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))
    chirp = np.sin(phase) * np.hanning(length)
    for start in range(0, n - length, period):
        out[start : start + length] += chirp
    return out


def _siren(n: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n)
    centre, depth, rate = rng.uniform(700, 1000), rng.uniform(200, 350), rng.uniform(1.5, 3.0)
    freq = centre + depth * np.sin(2 * np.pi * rate * t)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)


def _beep(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * rng.uniform(1200, 2000) * _t(n))


def _door_knock(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    period = int(rng.uniform(0.12, 0.22) * SAMPLE_RATE)
    length = min(int(0.08 * SAMPLE_RATE), n)
    t = _t(length)
    f = rng.uniform(150, 350)
    knock = np.exp(-t * 60) * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * 2.7 * f * t))
    for start in range(0, n - length + 1, period):
        out[start : start + length] += knock * rng.uniform(0.7, 1.0)
    return out


def _engine_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n)
    f0 = rng.uniform(60, 110)
    tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
    return np.asarray(tone * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(4, 9) * t)))


def _bell(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    f = rng.uniform(400, 800)
    period = int(rng.uniform(0.4, 0.7) * SAMPLE_RATE)
    length = min(period, n)
    t = _t(length)
    strike = sum(np.sin(2 * np.pi * f * r * t) * np.exp(-t * d) for r, d in ((1, 4), (2.76, 7), (5.4, 11), (8.9, 16)))
    for start in range(0, n, period):
        stop = min(n, start + length)
        out[start:stop] += strike[: stop - start]
    return out


def _rain(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    drops = rng.integers(0, n, size=int(n / SAMPLE_RATE * rng.uniform(150, 300)))
    out[drops] = rng.uniform(-1, 1, size=drops.size)
    kernel = np.exp(-np.arange(40) / 6.0) * np.cos(np.arange(40) * 2.2)  # short, bright drops
    return np.convolve(out, kernel, mode="same")


def _car_horn(n: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n)
    f = rng.uniform(350, 450)
    square = np.sign(np.sin(2 * np.pi * f * t)) + np.sign(np.sin(2 * np.pi * f * 1.26 * t))
    return np.convolve(square, np.ones(4) / 4, mode="same")


def _clap(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    period = int(rng.uniform(0.25, 0.45) * SAMPLE_RATE)
    length = min(int(0.05 * SAMPLE_RATE), n)
    envelope = np.exp(-np.arange(length) / (0.008 * SAMPLE_RATE))
    for start in range(0, n - length + 1, period):
        burst = rng.standard_normal(length) * envelope
        out[start : start + length] += np.diff(burst, prepend=0.0)  # high-passed noise burst
    return out


def _speech(n: int, rng: np.random.Generator) -> np.ndarray:
    bank = word_bank()
    pieces: list[np.ndarray] = []
    total = 0
    while total < n:
        word = bank[WORDS[int(rng.integers(len(WORDS)))]]
        gap = np.zeros(int(rng.uniform(0.03, 0.1) * SAMPLE_RATE))
        pieces += [word, gap]
        total += word.size + gap.size
    return np.concatenate(pieces)[:n]


SYNTHS: dict[str, Synth] = {
    "bird chirp": _bird_chirp,
    "siren": _siren,
    "beep": _beep,
    "door knock": _door_knock,
    "engine hum": _engine_hum,
    "bell": _bell,
    "rain": _rain,
    "car horn": _car_horn,
    "speech": _speech,
    "clap": _clap,
}


@functools.cache
def word_bank() -> dict[str, np.ndarray]:
    """Every word of :data:`WORDS` spoken by espeak-ng at :data:`SAMPLE_RATE` (a vowel babble without espeak-ng).

    Example:
        >>> sorted(word_bank()) == sorted(WORDS)
        True
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        log.warning("espeak-ng is not installed: the speech class is a synthetic vowel babble")
        rng = np.random.default_rng(0)
        return {word: _babble(rng) for word in WORDS}
    return {word: _espeak(binary, word) for word in WORDS}


def _espeak(binary: str, word: str) -> np.ndarray:
    import soundfile
    from scipy.signal import resample_poly

    wav = subprocess.run([binary, "--stdout", "-s", "170", word], check=True, capture_output=True).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    audio = resample_poly(audio, SAMPLE_RATE, rate) if rate != SAMPLE_RATE else audio
    voiced = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    return np.asarray(audio[voiced[0] : voiced[-1] + 1])


def _babble(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.3, 0.6) * SAMPLE_RATE)
    t = _t(n)
    f0 = rng.uniform(100, 180)
    pulses = np.sign(np.sin(2 * np.pi * f0 * t)) * np.hanning(n)
    out = np.zeros(n)
    for formant in rng.uniform([300, 900, 2200], [800, 1800, 3000]):
        out += np.convolve(pulses, np.sin(2 * np.pi * formant * _t(64)) * np.hanning(64), mode="same")
    return out


def render(name: str, duration: float, rng: np.random.Generator) -> np.ndarray:
    """One event of class ``name``, ``duration`` seconds long, unit RMS, with 10 ms fades at both ends."""
    n = round(duration * SAMPLE_RATE)
    wave = np.asarray(SYNTHS[name](n, rng), dtype=np.float64)[:n]
    wave = np.pad(wave, (0, n - wave.size))
    fade = min(int(0.01 * SAMPLE_RATE), n // 2)
    ramp = np.linspace(0.0, 1.0, fade)
    wave[:fade] *= ramp
    wave[n - fade :] *= ramp[::-1]
    rms = float(np.sqrt(np.mean(wave**2)))
    return wave / rms if rms > 0 else wave


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish background noise (white noise with a 1/f power slope), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, n)
    out: np.ndarray = noise / np.sqrt(np.mean(noise**2))
    return out


__all__ = ["CLASSES", "SAMPLE_RATE", "WORDS", "background", "render", "word_bank"]
