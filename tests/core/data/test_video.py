from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from torch.utils.data import DataLoader

from core.data import HDF5Writer, VideoStore, clip_sample, convert_folder, decode_mp4, encode_mp4
from core.errors import UserError


def moving_square(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    frames = np.full((t, h, w, 3), 40, dtype=np.uint8)
    for k in range(t):
        frames[k, 8:24, 2 + 4 * k : 18 + 4 * k] = (250, 30, 30)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def test_encode_decode_roundtrip_ranges_and_indices() -> None:
    frames = moving_square()
    data = encode_mp4(frames, fps=6.0, crf=18)
    assert data[4:8] == b"ftyp"
    out = decode_mp4(data)
    assert out.shape == frames.shape and psnr(out, frames) > 30
    picked = decode_mp4(np.frombuffer(data, np.uint8), indices=[9, 3, 3])
    assert [psnr(p, frames[i]) > 30 for p, i in zip(picked, [9, 3, 3], strict=True)] == [True] * 3
    assert psnr(picked[0], frames[3]) < 25  # the square moved: frame 9 is not frame 3
    window = decode_mp4(data, start=1.0, end=1.5)  # frames 6, 7, 8 at 6 fps
    assert len(window) == 3 and psnr(window[0], frames[6]) > 30
    assert encode_mp4(moving_square(h=31, w=45), fps=5).startswith(data[:4])  # odd sizes are padded
    with pytest.raises(ValueError, match="past the end"):
        decode_mp4(data, indices=[12])


def write_store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    tone = np.sin(np.linspace(0, 200, 8000)).astype(np.float32) * 0.5
    stereo = rng.integers(-2000, 2000, size=(4000, 2)).astype(np.int16)
    items = [
        ("a", moving_square(), {"mic": tone, "stereo": stereo}, "flac"),
        ("b", moving_square()[::-1].copy(), tone, "wav"),
        ("c", moving_square(), tone, "array"),
    ]

    def make(it: tuple) -> tuple[str, dict]:
        name, frames, audio, fmt = it
        return name, clip_sample(frames, fps=6.0, audio=audio, sample_rate=8000, audio_format=fmt)

    return HDF5Writer(path, chunk_size=2).write(items, make_sample=make)


def test_store_audio_tracks_and_dataset(tmp_path: Path) -> None:
    store = VideoStore(write_store(tmp_path / "v.h5"))
    assert store.group_names == ["a", "b", "c"]
    assert store.audio_tracks("a") == ["mic", "stereo"]
    mic, rate = store.read_audio("a", "mic")
    assert rate == 8000 and mic.shape == (8000,)
    np.testing.assert_allclose(mic, np.sin(np.linspace(0, 200, 8000)) * 0.5, atol=1e-4)  # flac: 16-bit exact
    stereo, _ = store.read_audio("a", "stereo")
    assert stereo.shape == (4000, 2)
    assert store.read_audio("c")[0].dtype == np.float32
    assert psnr(store.read("b", indices=[0])[0], moving_square()[-1]) > 30
    item = store[0]
    assert item["video"].shape == (12, 48, 64, 3) and item["sample_rate"] == {"mic": 8000, "stereo": 8000}
    tensor_store = VideoStore(tmp_path / "v.h5", as_tensor=True)
    names = [
        b["name"][0] for b in DataLoader(tensor_store, batch_size=1, num_workers=2, multiprocessing_context="fork")
    ]
    assert names == ["a", "b", "c"]


def test_undecodable_clip_names_file_and_clip(tmp_path: Path) -> None:
    good = encode_mp4(moving_square(), fps=6)
    path = HDF5Writer(tmp_path / "bad.h5").write(
        [("ok", {"video": good}), ("broken", {"video": good[:40] + b"\x00" * 300})],
        make_sample=lambda x: x,
    )
    store = VideoStore(path)
    assert len(store.read("ok")) == 12
    with pytest.raises(UserError) as err:
        store[1]
    message = str(err.value)
    assert "bad.h5" in message and "'broken'" in message and "sample 1" in message
    with pytest.raises(UserError, match="no audio"):
        store.read_audio("ok")


def write_file(path: Path, codec: str, with_audio: bool) -> None:
    frames = moving_square()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=6)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
        if audio is not None:
            samples = (np.sin(np.arange(32000) / 10) * 0.3).astype(np.float32)[None, :]
            for start in range(0, 32000, 1024):
                af = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="fltp", layout="mono")
                af.sample_rate = 16000
                container.mux(audio.encode(af))
            container.mux(audio.encode())


def test_convert_folder(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    (src / "sub").mkdir(parents=True)
    write_file(src / "one.mp4", "libx264", with_audio=True)
    write_file(src / "sub" / "two.avi", "mpeg4", with_audio=False)
    path = convert_folder(src, tmp_path / "clips.h5", num_workers=2)
    store = VideoStore(path)
    assert store.group_names == ["one", "two"]
    assert store.mp4("one") == (src / "one.mp4").read_bytes()  # h264 mp4 is stored byte for byte
    assert store.mp4("two")[4:8] == b"ftyp"  # avi was re-encoded to mp4
    assert psnr(store.read("two", indices=[5])[0], moving_square()[5]) > 25
    samples, rate = store.read_audio("one")
    assert rate == 16000 and abs(len(samples) - 32000) < 2048
    assert store.audio_tracks("two") == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no video files"):
        convert_folder(tmp_path / "empty", tmp_path / "z.h5")
