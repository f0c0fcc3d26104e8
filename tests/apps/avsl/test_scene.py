"""The scene generator: deterministic per seed, what it promises (look-alikes, masks, directions), and the
mp4-in-HDF5 round trip through core.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps.avsl.data import AVSLDataset, SceneArrays
from apps.avsl.functional import cross_spectra, mic_pairs, steering_phases
from apps.avsl.geometry import direction_to_pixel, tetrahedral_array
from apps.avsl.scene import extend_split, make_scene, scene_sample, write_split
from core.data import HDF5Dataset, VideoStore
from core.errors import UserError
from tests.apps.avsl.conftest import TINY


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path: Path) -> None:
    first = write_split(tmp_path / "a.h5", TINY, seed=7, n=6, chunk_size=4)
    second = write_split(tmp_path / "b.h5", TINY, seed=7, n=6, chunk_size=2, num_workers=2)
    third = write_split(tmp_path / "c.h5", TINY, seed=8, n=6)
    a, b, c = VideoStore(first), VideoStore(second), VideoStore(third)
    for i in range(6):  # the stored bytes (mp4, audio, masks) do not depend on chunking or workers
        assert a.mp4(i) == b.mp4(i)
        raw_a, raw_b = a.read_raw(i), b.read_raw(i)
        assert np.array_equal(raw_a["labels"], raw_b["labels"])
        assert np.array_equal(raw_a["audio"]["default"]["data"], raw_b["audio"]["default"]["data"])
    assert all(a.mp4(i) != c.mp4(i) for i in range(6))
    name, sample = scene_sample(TINY, 7, 3)
    assert name == a.group_names[3] and sample["video"] == a.mp4(3)


def test_a_grown_split_holds_the_scenes_of_one_written_at_that_size(tmp_path: Path) -> None:
    grown = extend_split(write_split(tmp_path / "a.h5", TINY, seed=7, n=3), TINY, seed=7, n=5)
    whole = VideoStore(write_split(tmp_path / "b.h5", TINY, seed=7, n=5))
    store = VideoStore(grown)
    assert store.group_names == whole.group_names and len(store) == 5
    assert all(store.mp4(i) == whole.mp4(i) for i in range(5))
    assert AVSLDataset(grown)[4]["labels"].shape == (TINY.height, TINY.width)
    assert not list(tmp_path.glob("a.h5.more*"))
    with pytest.raises(UserError, match="another seed"):
        extend_split(grown, TINY, seed=8, n=6)


def test_scenes_have_look_alike_silent_distractors_and_consistent_masks() -> None:
    twins = silent_only = 0
    for index in range(30):
        scene = make_scene(TINY, seed=11, index=index)
        objects = scene["objects"]
        sounding = [o for o in objects if o.sounding]
        silent = [o for o in objects if not o.sounding]
        assert 0 <= len(sounding) <= 3 and len({o.cls for o in sounding}) == len(sounding) and silent
        if not sounding:
            silent_only += 1
            assert np.abs(scene["audio"]).max() < 0.2  # only sensor noise
        elif any(o.cls == s.cls and o.color == s.color and o.radius == s.radius for o in silent for s in sounding):
            twins += 1
        for i, obj in enumerate(objects):  # each mask holds its object's centre pixel
            x, y = direction_to_pixel(obj.azimuth, obj.elevation, TINY.height, TINY.width)
            assert scene["labels"][round(float(y)), round(float(x)) % TINY.width] == i + 1
    assert twins == 30 - silent_only and 0 < silent_only < 15


def test_the_audio_points_at_the_sounding_object() -> None:
    """Steered response power of the rendered audio peaks at the sounding object (the physics the model uses)."""
    import torch

    errors = []
    for index in range(20):
        scene = make_scene(TINY, seed=12, index=index)
        sounding = [o for o in scene["objects"] if o.sounding]
        if len(sounding) != 1:
            continue
        audio = torch.from_numpy(scene["audio"].T.copy())
        spectra = torch.stft(audio, 512, 256, window=torch.hann_window(512), return_complex=True)[None]
        freqs = np.fft.rfftfreq(512, 1 / 16000)
        band = slice(10, 230)
        steering = steering_phases(tetrahedral_array(TINY.mic_radius), freqs[band], 32, 64)
        cross = cross_spectra(spectra[:, :, band], mic_pairs(4))
        power = torch.einsum("bpf,pfg->bg", cross, steering).real.reshape(32, 64)
        y, x = np.unravel_index(int(power.argmax()), power.shape)
        want_x, want_y = direction_to_pixel(sounding[0].azimuth, sounding[0].elevation, 32, 64)
        dx = min(abs(x - want_x), 64 - abs(x - want_x))
        errors.append(max(dx, abs(y - want_y)))
    assert len(errors) >= 3 and np.median(errors) <= 2.0, errors


def test_mp4_in_hdf5_round_trip(tmp_path: Path) -> None:
    path = write_split(tmp_path / "s.h5", TINY, seed=5, n=3)
    store = VideoStore(path)
    for i in range(3):
        scene = make_scene(TINY, seed=5, index=i)
        frames = store.read(i)
        assert frames.shape == scene["frames"].shape and frames.dtype == np.uint8
        mse = np.mean((frames.astype(np.float64) - scene["frames"]) ** 2)
        assert 10 * np.log10(255**2 / mse) > 25.0  # lossy H.264 (crf 18, 4:2:0) of a noisy texture: close
        audio, rate = store.read_audio(i)
        assert rate == TINY.sample_rate and np.array_equal(audio, scene["audio"])  # raw float32: exact
    raw = HDF5Dataset(path)[1]  # the same file as a plain core.data dataset (tensors)
    assert tuple(raw["labels"].shape) == (TINY.height, TINY.width)
    sample = AVSLDataset(path, cache_bytes=16 << 20)[2]  # through the shared-memory cache
    assert tuple(sample["image"].shape) == (3, TINY.height, TINY.width)
    assert np.array_equal(sample["labels"].numpy(), make_scene(TINY, 5, 2)["labels"])


def test_a_file_that_is_not_a_scene_file_is_a_user_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match="not a scene file"):
        SceneArrays(bogus)
    bogus.with_name("bogus.h5.scene.json").write_text('{"scene": {}}')
    with pytest.raises(UserError):
        SceneArrays(bogus)[0]
