"""Command sentences spoken by espeak-ng, and the JSGF grammar the recognizer decodes them with.

espeak-ng (a Debian package) is a formant synthesizer: every voice variant, speed and pitch gives different real
synthetic speech, so the data needs no download.

Example:
    >>> speech = synthesize("turn left", voice="en-us+f3", speed=150)
    >>> speech.dtype, 0.3 < len(speech) / 16000 < 2.0
    (dtype('float32'), True)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.errors import DependencyError

COMMANDS: tuple[str, ...] = (
    "go forward",
    "go back",
    "turn left",
    "turn right",
    "stop",
    "come here",
    "follow me",
    "look at me",
    "go to the kitchen",
    "bring me the cup",
    "sit down",
    "stand up",
)
"""The robot's command vocabulary (index = command id in the data)."""

VOICES: tuple[str, ...] = ("en-us", "en-us+f2", "en-us+f3", "en-us+m3", "en-us+m7", "en-gb+m1", "en-us+f4")


def grammar(commands: tuple[str, ...] = COMMANDS) -> str:
    """The JSGF grammar whose one public rule is any of ``commands``.

    >>> print(grammar(("stop", "go")))
    #JSGF V1.0;
    grammar commands;
    public <command> = stop | go;
    <BLANKLINE>
    """
    return "#JSGF V1.0;\ngrammar commands;\npublic <command> = " + " | ".join(commands) + ";\n"


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise DependencyError(
            "espeak-ng is not installed", where="PATH", hint="install the Debian package: apt-get install espeak-ng"
        )
    return found


def synthesize(
    text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50, fs: int = 16000
) -> NDArray[np.float32]:
    """``text`` spoken by espeak-ng, resampled from its 22.05 kHz to ``fs``, peak-normalized to 0.5."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        cmd = [_espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text]
        subprocess.run(cmd, check=True, capture_output=True)
        rate, samples = wavfile.read(path)
    x = samples.astype(np.float64) / 32768.0
    g = gcd(fs, rate)
    x = np.asarray(resample_poly(x, fs // g, rate // g), dtype=np.float64)
    x /= max(float(np.abs(x).max()), 1e-9) * 2.0
    return x.astype(np.float32)


__all__ = ["COMMANDS", "VOICES", "grammar", "synthesize"]
