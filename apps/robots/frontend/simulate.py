"""Simulated far-field recordings: pyroomacoustics rooms, a microphone array on a robot head, espeak-ng speakers
saying commands, spherically diffuse noise; written with :class:`core.data.HDF5Writer`.

Every sample of a split is a function of ``(split seed, index)`` only, so a split is reproducible and a crashed
write resumes. A sample holds:

- ``mixture`` ``(C, N)`` float32: what the array records (always);
- ``clean`` ``(S, N)`` and ``noise`` ``(N,)`` float32: each speaker's reverberant image and the noise at the
  reference microphone 0 (only where ``keep_clean``: the evaluation splits; the training split never has them);
- ``doa`` ``(S,)`` azimuths in degrees in the array's frame, ``command`` ``(S,)`` command ids
  (:data:`~apps.robots.frontend.speech.COMMANDS`), ``onset`` ``(S,)`` samples, ``rt60``, ``snr_db``, ``voice``.

Example:
    >>> sample = MixtureMaker(SplitSpec(n=1, seed=0, n_speakers=(1, 1), duration=2.0, keep_clean=True), ArraySpec())(0)
    >>> sample["mixture"].shape, sample["clean"].shape
    ((4, 32000), (1, 32000))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apps.robots.frontend import functional as F
from apps.robots.frontend.speech import COMMANDS, synthesize
from core.errors import ConfigError

TRAIN_VOICES: tuple[str, ...] = (
    "en-us+m1", "en-us+m2", "en-us+m4", "en-us+m5", "en-us+m6", "en-us+f1", "en-us+f2", "en-us+f4", "en-gb+m1",
)  # fmt: skip
TEST_VOICES: tuple[str, ...] = ("en-us", "en-us+m3", "en-us+m7", "en-us+f3", "en-us+f5")
"""Held-out voices: the evaluation splits use speakers the model never heard in training."""


@dataclass(frozen=True)
class ArraySpec:
    """A uniform circular array on a robot head: ``n_mics`` on a circle of ``radius`` m at ``height`` m,
    microphone 0 on the robot's x axis (azimuth 0)."""

    n_mics: int = 4
    radius: float = 0.05
    height: float = 1.2

    def positions(self) -> NDArray[np.float64]:
        """Microphone positions ``(3, C)`` relative to the array centre.

        >>> ArraySpec(n_mics=4).positions().shape
        (3, 4)
        """
        angles = 2.0 * np.pi * np.arange(self.n_mics) / self.n_mics
        return np.stack([self.radius * np.cos(angles), self.radius * np.sin(angles), np.zeros(self.n_mics)])


@dataclass(frozen=True)
class SplitSpec:
    """One split of the data: how many mixtures and the ranges they are drawn from."""

    n: int = 100
    seed: int = 0
    n_speakers: tuple[int, int] = (1, 2)
    rt60: tuple[float, float] = (0.2, 0.6)
    snr_db: tuple[float, float] = (0.0, 10.0)
    duration: float = 3.0
    voices: tuple[str, ...] = TRAIN_VOICES
    keep_clean: bool = False
    distance: tuple[float, float] = (1.0, 2.0)
    min_separation_deg: float = 30.0
    fs: int = 16000
    noise_color: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SplitSpec:
        """Build from a config mapping (lists become tuples; ``voices: train | test`` names a voice set).

        >>> SplitSpec.from_dict({"n": 3, "rt60": [0.3, 0.3], "voices": "test"}).voices == TEST_VOICES
        True
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown split keys {sorted(unknown)}", hint=f"known: {', '.join(sorted(known))}")
        args: dict[str, Any] = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in values.items()}
        if isinstance(args.get("voices"), str):
            sets = {"train": TRAIN_VOICES, "test": TEST_VOICES}
            if args["voices"] not in sets:
                raise ConfigError(f"unknown voice set {args['voices']!r}", hint="train, test, or a list of voices")
            args["voices"] = sets[args["voices"]]
        n = args.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"a split's n must be a whole number of at least 1, not {n!r}", where="splits.<split>.n")
        return cls(**args)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MixtureMaker:
    """``index → sample``: picklable, for :class:`core.data.HDF5Writer`'s worker processes."""

    def __init__(self, split: SplitSpec, array: ArraySpec) -> None:
        self.split = split
        self.array = array

    def __call__(self, index: int) -> dict[str, Any]:
        return simulate_mixture(self.split, self.array, np.random.default_rng([self.split.seed, index]))


def _room(rng: np.random.Generator, rt60: float) -> tuple[NDArray[np.float64], float, int]:
    import pyroomacoustics as pra

    while True:
        dims = np.array([rng.uniform(4.0, 8.0), rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.2)])
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # too large a room for so short a reverberation time
            continue
        return dims, float(absorption), int(max_order)


def _place_sources(
    rng: np.random.Generator, split: SplitSpec, dims: NDArray[np.float64], centre: NDArray[np.float64], count: int
) -> list[tuple[float, NDArray[np.float64]]]:
    for _ in range(1000):
        azimuths = rng.uniform(0.0, 360.0, count)
        if count > 1 and F.angular_error_deg(azimuths[:1], azimuths[1:2])[0] < split.min_separation_deg:
            continue
        placed = []
        for azimuth in azimuths:
            distance = rng.uniform(*split.distance)
            theta = np.deg2rad(azimuth)
            position = centre + np.array([distance * np.cos(theta), distance * np.sin(theta), 0.0])
            position[2] = rng.uniform(1.2, 1.7)
            placed.append((float(azimuth), position))
        if all(np.all(p[:2] > 0.5) and np.all(p[:2] < dims[:2] - 0.5) for _, p in placed):
            return placed
    raise RuntimeError("could not place the sources in the room")


def simulate_mixture(split: SplitSpec, array: ArraySpec, rng: np.random.Generator) -> dict[str, Any]:
    """One mixture drawn from ``split`` (see the module docstring for its fields)."""
    import pyroomacoustics as pra

    fs = split.fs
    length = round(split.duration * fs)
    rt60 = float(rng.uniform(*split.rt60))
    dims, absorption, max_order = _room(rng, rt60)
    centre = np.array([rng.uniform(1.2, dims[0] - 1.2), rng.uniform(1.2, dims[1] - 1.2), array.height])
    count = int(rng.integers(split.n_speakers[0], split.n_speakers[1] + 1))
    sources = _place_sources(rng, split, dims, centre, count)

    room = pra.ShoeBox(dims, fs=fs, materials=pra.Material(absorption), max_order=max_order)
    mics = array.positions()
    room.add_microphone_array(mics + centre[:, None])
    commands, onsets, voices = [], [], []
    for k, (_, position) in enumerate(sources):
        command = int(rng.integers(len(COMMANDS)))
        voice = str(split.voices[int(rng.integers(len(split.voices)))])
        speech = synthesize(COMMANDS[command], voice, int(rng.integers(130, 181)), int(rng.integers(30, 71)), fs)
        speech = speech[: length - fs // 5]
        onset = int(rng.integers(fs // 10, max(fs // 10 + 1, length - len(speech) - fs // 10)))
        signal = np.zeros(length)
        signal[onset : onset + len(speech)] = speech * (10.0 ** (rng.uniform(-1.5, 1.5) / 20.0) if k else 1.0)
        room.add_source(position, signal=signal)
        commands.append(command)
        onsets.append(onset)
        voices.append(voice)
    premix = room.simulate(return_premix=True)[:, :, :length]  # (S, C, N)
    images = np.zeros((count, mics.shape[1], length))
    images[:, :, : premix.shape[-1]] = premix
    speech_sum = images.sum(axis=0)
    noise = F.diffuse_noise(mics, length, fs, rng, color=float(rng.uniform(*split.noise_color)))
    snr_db = float(rng.uniform(*split.snr_db))
    noise *= np.sqrt(np.mean(speech_sum[0] ** 2) / np.mean(noise[0] ** 2) / 10.0 ** (snr_db / 10.0))
    mixture = speech_sum + noise
    scale = 0.5 / max(float(np.abs(mixture).max()), 1e-9)
    sample: dict[str, Any] = {
        "mixture": (mixture * scale).astype(np.float32),
        "doa": np.array([azimuth for azimuth, _ in sources], dtype=np.float32),
        "command": np.array(commands, dtype=np.int64),
        "onset": np.array(onsets, dtype=np.int64),
        "rt60": np.float32(rt60),
        "snr_db": np.float32(snr_db),
        "voice": ",".join(voices),
    }
    if split.keep_clean:
        sample["clean"] = (images[:, 0] * scale).astype(np.float32)
        sample["noise"] = (noise[0] * scale).astype(np.float32)
    return sample


def write_split(path: str, split: SplitSpec, array: ArraySpec, num_workers: int = 1, overwrite: bool = False) -> str:
    """Write ``split.n`` mixtures to the HDF5 file ``path`` (resumable); returns the path."""
    from core.data import HDF5Writer

    writer = HDF5Writer(path, num_workers=num_workers, chunk_size=16, overwrite=overwrite)
    return str(writer.write(range(split.n), make_sample=MixtureMaker(split, array)))


__all__ = ["TEST_VOICES", "TRAIN_VOICES", "ArraySpec", "MixtureMaker", "SplitSpec", "simulate_mixture", "write_split"]
