"""Video clips stored as mp4 bytes inside HDF5, decoded in memory.

One HDF5 file holds many clips, one group per clip: thousands of small video files become one file that a
parallel file system serves well. Each group holds:

- ``video``: the clip's mp4 file, as a 1-D ``uint8`` dataset (H.264 via PyAV's bundled libx264);
- ``audio/<track>/data`` with ``audio/<track>/sample_rate`` and ``audio/<track>/format``: any number of audio
  tracks, each either flac or wav file bytes (``format`` ``"flac"``/``"wav"``) or a raw float/int array
  (``format`` ``"array"``; shape ``(samples,)`` or ``(samples, channels)``).

Pure functions do the work: :func:`encode_mp4` / :func:`decode_mp4` (no temporary files; a time range or frame
indices decode only from the nearest keyframe on), :func:`encode_audio` / :func:`decode_audio`, and
:func:`clip_sample` builds the group for :class:`~core.data.HDF5Writer`. :func:`convert_folder` turns a folder of
video files into one store (in parallel, resumable). :class:`VideoStore` reads it, as a dataset or by name.

Example:
    >>> import tempfile, os, numpy as np
    >>> frames = np.zeros((8, 32, 48, 3), dtype=np.uint8)
    >>> frames[:, :, :, 0] = np.arange(8)[:, None, None] * 30
    >>> path = os.path.join(tempfile.mkdtemp(), "clips.h5")
    >>> from core.data import HDF5Writer
    >>> written = HDF5Writer(path).write(
    ...     [("clip0", frames)], make_sample=lambda it: (it[0], clip_sample(it[1], fps=8.0, audio=np.zeros(800))))
    >>> store = VideoStore(path)
    >>> store.read("clip0", indices=[2, 5]).shape
    (2, 32, 48, 3)
    >>> store.read_audio("clip0")[1]
    16000
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.data.hdf5 import RawHDF5Dataset, read_dataset
from core.errors import DependencyError, UserError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


def encode_mp4(frames: np.ndarray[Any, Any], fps: float, crf: int = 23, preset: str = "veryfast") -> bytes:
    """Encode RGB frames ``(T, H, W, 3)`` uint8 to mp4 bytes (H.264, yuv420p; odd sizes are padded by one)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sizes
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def decode_mp4(
    data: bytes | np.ndarray[Any, Any],
    start: float | None = None,
    end: float | None = None,
    indices: Sequence[int] | None = None,
) -> np.ndarray[Any, Any]:
    """Decode mp4 (or any container FFmpeg reads) bytes to RGB frames ``(T, H, W, 3)`` uint8, in memory.

    Args:
        data: The file's bytes (or a ``uint8`` array of them, as stored in HDF5).
        start: First time in seconds to return (default: the beginning). Seeks to the keyframe before it.
        end: Return frames with time ``< end`` (default: to the end).
        indices: Frame numbers to return instead of a time range (for constant frame rate video).

    Raises:
        ValueError: the bytes are not decodable video, or an index is past the end.
    """
    import av

    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    wanted: list[int] | None = None
    try:
        # ISO media (mp4, mov, m4a, 3gp) starts with an "ftyp" box: naming the demuxer skips FFmpeg's format
        # probe, which otherwise costs more than decoding a short clip (a file path gets it from the extension)
        with av.open(io.BytesIO(raw), "r", format="mp4" if raw[4:8] == b"ftyp" else None) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            if indices is not None:
                if not fps:
                    raise ValueError("frame indices need a constant frame rate")
                wanted = [int(i) for i in indices]
                if not wanted:
                    return np.zeros((0, stream.height, stream.width, 3), dtype=np.uint8)
                start, end = min(wanted) / fps, (max(wanted) + 0.5) / fps
            eps = 0.25 / fps if fps else 1e-6
            if start is not None and start > 0 and stream.time_base is not None:
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            frames: list[np.ndarray[Any, Any]] = []
            numbers: list[int] = []
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else 0.0
                if start is not None and time < start - eps:
                    continue
                if end is not None and time >= end - eps:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                numbers.append(round(time * fps) if fps else len(numbers))
    except av.FFmpegError as exc:
        raise ValueError(f"undecodable video: {exc}") from exc
    if wanted is not None:
        position = {n: i for i, n in enumerate(numbers)}
        missing = [i for i in wanted if i not in position]
        if missing:
            raise ValueError(f"frame {missing[0]} is past the end ({len(numbers)} frames decoded in range)")
        frames = [frames[position[i]] for i in wanted]
    if not frames:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return np.stack(frames)


def encode_audio(samples: np.ndarray[Any, Any], sample_rate: int, format: str = "flac") -> bytes:
    """Encode audio ``(samples,)`` or ``(samples, channels)`` to flac or wav file bytes with soundfile."""
    sf = _soundfile()
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(samples), sample_rate, format=format.upper())
    return buffer.getvalue()


def decode_audio(data: bytes | np.ndarray[Any, Any], dtype: str = "float32") -> tuple[np.ndarray[Any, Any], int]:
    """Decode flac or wav bytes to ``(samples, sample_rate)``; one channel comes back 1-D."""
    sf = _soundfile()
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    samples, rate = sf.read(io.BytesIO(raw), dtype=dtype)
    return samples, int(rate)


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError:
        raise DependencyError(
            "soundfile is needed for flac/wav audio", hint="pip install 'kakehashi[torch]' or soundfile"
        ) from None
    return soundfile


def clip_sample(
    frames: np.ndarray[Any, Any] | None = None,
    fps: float = 30.0,
    *,
    mp4: bytes | None = None,
    audio: np.ndarray[Any, Any] | Mapping[str, np.ndarray[Any, Any]] | None = None,
    sample_rate: int = 16000,
    audio_format: str = "flac",
    crf: int = 23,
) -> dict[str, Any]:
    """Build one clip's group (for :class:`~core.data.HDF5Writer`): mp4 bytes plus audio tracks.

    Give either ``frames`` (encoded here) or ready ``mp4`` bytes. ``audio`` is one track (named ``"default"``) or a
    dict of named tracks; ``audio_format`` is ``"flac"``, ``"wav"`` or ``"array"`` (stored raw).
    """
    if (frames is None) == (mp4 is None):
        raise ValueError("give exactly one of frames and mp4")
    sample: dict[str, Any] = {"video": mp4 if mp4 is not None else encode_mp4(frames, fps, crf=crf)}  # type: ignore[arg-type]
    if audio is not None:
        sample["audio"] = _audio_group(audio, sample_rate, audio_format)
    return sample


def _audio_group(
    audio: np.ndarray[Any, Any] | Mapping[str, np.ndarray[Any, Any]], sample_rate: int, audio_format: str
) -> dict[str, Any]:
    if audio_format not in ("flac", "wav", "array"):
        raise ValueError(f"audio_format must be flac, wav or array, not {audio_format!r}")
    tracks = audio if isinstance(audio, Mapping) else {"default": audio}
    return {
        track: {
            "data": np.asarray(data) if audio_format == "array" else encode_audio(data, sample_rate, audio_format),
            "sample_rate": np.int64(sample_rate),
            "format": audio_format,
        }
        for track, data in tracks.items()
    }


class VideoStore(RawHDF5Dataset):
    """Read clips from an HDF5 file of mp4 bytes (see the module docstring for the layout).

    As a dataset, ``store[i]`` is ``{"name", "video": (T, H, W, 3) uint8, "audio": {track: samples},
    "sample_rate": {track: rate}}`` (the video as a uint8 tensor with ``as_tensor=True``). Opened lazily in each
    process, like :class:`~core.data.RawHDF5Dataset`, whose arguments it takes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        groups: Sequence[str] | str | os.PathLike[str] | None = None,
        locking: bool | None = None,
        as_tensor: bool = False,
    ) -> None:
        super().__init__(path, groups, locking)
        self.as_tensor = as_tensor

    def _name(self, clip: str | int) -> tuple[str, int | None]:
        if isinstance(clip, str):
            return clip, None
        return self.group_names[clip], int(clip)

    def _where(self, clip: str | int) -> str:
        name, index = self._name(clip)
        return f"{self.path}, clip {name!r}" + (f" (sample {index})" if index is not None else "")

    def _dataset(self, clip: str | int, key: str) -> Any:
        name, _ = self._name(clip)
        try:
            return read_dataset(self._handle(), f"{name}/{key}")
        except KeyError:
            raise UserError(f"no {key} in clip", where=self._where(clip), hint="check the clip name") from None
        except OSError as exc:
            raise UserError(f"cannot read {key}: {exc}", where=self._where(clip), hint="the file is corrupt") from None

    def mp4(self, clip: str | int) -> bytes:
        """The clip's mp4 bytes, as stored."""
        data: bytes = self._dataset(clip, "video").tobytes()
        return data

    def read(
        self,
        clip: str | int,
        start: float | None = None,
        end: float | None = None,
        indices: Sequence[int] | None = None,
    ) -> np.ndarray[Any, Any]:
        """Decode a clip (by name or index), optionally a time range ``[start, end)`` or given frame indices."""
        try:
            return decode_mp4(self._dataset(clip, "video"), start=start, end=end, indices=indices)
        except ValueError as exc:
            raise UserError(str(exc), where=self._where(clip), hint="re-encode or remove this clip") from None

    def audio_tracks(self, clip: str | int) -> list[str]:
        """Names of the clip's audio tracks."""
        name, _ = self._name(clip)
        group = self._handle()[name]
        return sorted(group["audio"].keys()) if "audio" in group else []

    def read_audio(self, clip: str | int, track: str = "default") -> tuple[np.ndarray[Any, Any], int]:
        """One audio track of a clip as ``(samples, sample_rate)``."""
        data = self._dataset(clip, f"audio/{track}/data")
        rate = int(self._dataset(clip, f"audio/{track}/sample_rate"))
        fmt = self._dataset(clip, f"audio/{track}/format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt == "array":
            return np.asarray(data), rate
        try:
            samples, _ = decode_audio(data)
        except RuntimeError as exc:  # soundfile's error for undecodable bytes
            raise UserError(f"undecodable {fmt} audio: {exc}", where=self._where(clip)) from None
        return samples, rate

    def __getitem__(self, index: int) -> dict[str, Any]:
        video: Any = self.read(index)
        if self.as_tensor:
            import torch

            video = torch.from_numpy(video)
        audio: dict[str, Any] = {}
        rates: dict[str, int] = {}
        for track in self.audio_tracks(index):
            audio[track], rates[track] = self.read_audio(index, track)
        return {"name": self.group_names[index], "video": video, "audio": audio, "sample_rate": rates}


def _file_to_clip(path: str, reencode: bool, crf: int, audio_format: str) -> tuple[str, dict[str, Any]]:
    import av

    source = Path(path)
    try:
        with av.open(str(source)) as container:
            video = container.streams.video[0] if container.streams.video else None
            codec = video.codec_context.name if video is not None else None
            fps = float(video.average_rate or 30) if video is not None else 30.0
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as exc:
        raise UserError(f"cannot read video file: {exc}", where=str(source)) from None
    if video is None:
        raise UserError("no video stream", where=str(source))
    if not reencode and source.suffix.lower() in (".mp4", ".m4v") and codec == "h264":
        sample: dict[str, Any] = {"video": source.read_bytes()}
    else:
        try:
            sample = {"video": encode_mp4(decode_mp4(source.read_bytes()), fps, crf=crf)}
        except ValueError as exc:
            raise UserError(str(exc), where=str(source)) from None
    if has_audio:
        samples, rate = _decode_audio_stream(source)
        sample["audio"] = _audio_group(samples, rate, audio_format)
    return source.stem, sample


def _decode_audio_stream(source: Path) -> tuple[np.ndarray[Any, Any], int]:
    import av

    chunks: list[np.ndarray[Any, Any]] = []
    with av.open(str(source)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=stream.rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, stream.channels))
        rate = int(stream.rate)
    samples = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    return (samples[:, 0] if samples.shape[1] == 1 else samples), rate


def convert_folder(
    source: str | os.PathLike[str],
    path: str | os.PathLike[str],
    num_workers: int = 1,
    reencode: bool = False,
    crf: int = 23,
    audio_format: str = "flac",
    overwrite: bool = False,
) -> Path:
    """Store every video file of a folder (recursively) in one HDF5 :class:`VideoStore` file.

    H.264 mp4 files are stored byte for byte unless ``reencode``; other formats are decoded and re-encoded to
    H.264 mp4. Audio streams are decoded and stored as ``audio_format`` track ``"default"``. Group names are the
    file names without suffix (they must be unique). Runs through :class:`~core.data.HDF5Writer`: parallel with
    ``num_workers``, resumable, never a half-written output.
    """
    from core.data.writer import HDF5Writer

    root = Path(source)
    if not root.is_dir():
        raise UserError("video folder not found", where=str(root), hint="check the path")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise UserError("no video files in folder", where=str(root), hint=f"expected {', '.join(VIDEO_SUFFIXES)}")
    make = partial(_file_to_clip, reencode=reencode, crf=crf, audio_format=audio_format)
    return HDF5Writer(path, num_workers=num_workers, overwrite=overwrite).write(files, make_sample=make)
