"""Command recognition with pocketsphinx (its bundled en-us acoustic model) and a JSGF command grammar.

:class:`CommandRecognizer` decodes a whole utterance; :class:`StreamingRecognizer` cuts a continuous stream into
utterances with pocketsphinx's voice-activity endpointer and decodes each as it ends (what the ROS node does).
A decoding that does not reach the end of the grammar returns ``None`` (no command), never a partial one.

Example:
    >>> from apps.robots.frontend.speech import synthesize
    >>> recognizer = CommandRecognizer()
    >>> recognizer.decode(synthesize("turn left", voice="en-us+f3", speed=150))
    'turn left'
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from apps.robots.frontend.speech import COMMANDS, grammar

log = logging.getLogger(__name__)


def _pcm(audio: NDArray[np.floating]) -> bytes:
    return (np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()


def _decoder(commands: tuple[str, ...], fs: int) -> Any:
    from pocketsphinx import Decoder

    # bestpath=False: the forward search alone was right on 81 % of clean espeak-ng commands, the best-path
    # rescoring on 53 % (12 commands × 6 voices × 2 speeds, measured when this was written)
    decoder = Decoder(lm=None, samprate=fs, loglevel="FATAL", bestpath=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "commands.gram"
        path.write_text(grammar(commands), encoding="utf-8")
        decoder.add_jsgf_file("commands", str(path))
    decoder.activate_search("commands")
    return decoder


class CommandRecognizer:
    """Decode one utterance into one of ``commands`` (or ``None``).

    Args:
        commands: The grammar's alternatives.
        fs: Sample rate (16 kHz: the en-us model's).
        normalize: Scale each utterance to a peak of 0.5 first (the recognizer's features are level-dependent).
    """

    def __init__(self, commands: tuple[str, ...] = COMMANDS, fs: int = 16000, normalize: bool = True) -> None:
        self.commands = commands
        self.fs = fs
        self.normalize = normalize
        self._decoder = _decoder(commands, fs)

    def decode(self, audio: NDArray[np.floating]) -> str | None:
        """The command spoken in ``audio`` (1-D float, padded here with 0.3 s of silence on each side)."""
        x = np.asarray(audio, dtype=np.float64)
        if self.normalize:
            x = 0.5 * x / max(float(np.abs(x).max()), 1e-9)
        pad = np.zeros(int(0.3 * self.fs))
        self._decoder.start_utt()
        self._decoder.process_raw(_pcm(np.concatenate([pad, x, pad])), full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        text = None if hyp is None else hyp.hypstr.strip()
        return text if text in self.commands else None


class StreamingRecognizer:
    """Voice-activity endpointing and decoding of a continuous 16 kHz stream.

    ``feed(samples)`` returns the commands of the utterances that ended within ``samples``.

    Args:
        commands: The grammar's alternatives.
        gain: Fixed gain applied before the int16 conversion.
        vad_mode: pocketsphinx's VAD aggressiveness (0–3).
    """

    def __init__(self, commands: tuple[str, ...] = COMMANDS, gain: float = 1.0, vad_mode: int = 1) -> None:
        from pocketsphinx import Endpointer

        self.commands = commands
        self.gain = gain
        self._endpointer = Endpointer(vad_mode=vad_mode, sample_rate=16000)
        self._decoder = _decoder(commands, 16000)
        self._pending = np.zeros(0)
        self._frame = self._endpointer.frame_bytes // 2

    def feed(self, samples: NDArray[np.floating]) -> list[str]:
        found: list[str] = []
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64) * self.gain])
        while len(self._pending) >= self._frame:
            frame, self._pending = self._pending[: self._frame], self._pending[self._frame :]
            was_in_speech = self._endpointer.in_speech
            speech = self._endpointer.process(_pcm(frame))
            if speech is None:
                continue
            if not was_in_speech:
                self._decoder.start_utt()
            self._decoder.process_raw(speech)
            if not self._endpointer.in_speech:
                self._decoder.end_utt()
                hyp = self._decoder.hyp()
                text = None if hyp is None else hyp.hypstr.strip()
                log.info("utterance ended: %r", text)
                if text in self.commands:
                    found.append(text)
        return found


__all__ = ["CommandRecognizer", "StreamingRecognizer"]
