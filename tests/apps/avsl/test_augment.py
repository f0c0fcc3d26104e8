"""The array's symmetries as augmentation: the mapped frame, mask and audio describe one consistent scene."""

from __future__ import annotations

import numpy as np
import torch

from apps.avsl.augment import array_symmetries
from apps.avsl.functional import cross_spectra, mic_pairs, steering_phases
from apps.avsl.geometry import direction_to_pixel, tetrahedral_array
from apps.avsl.scene import make_scene
from tests.apps.avsl.conftest import TINY


def _loudest_pixel(audio: np.ndarray) -> tuple[int, int]:
    """Where the steered response power of ``(M, N)`` audio peaks on the tiny frame's grid."""
    signal = torch.from_numpy(np.ascontiguousarray(audio))
    spectra = torch.stft(signal, 512, 256, window=torch.hann_window(512), return_complex=True)[None]
    band = slice(10, 230)
    freqs = np.fft.rfftfreq(512, 1 / 16000)[band]
    steering = steering_phases(tetrahedral_array(TINY.mic_radius), freqs, TINY.height, TINY.width)
    power = torch.einsum("bpf,pfg->bg", cross_spectra(spectra[:, :, band], mic_pairs(4)), steering).real
    y, x = np.unravel_index(int(power.argmax()), (TINY.height, TINY.width))
    return int(x), int(y)


def test_the_tetrahedral_array_has_a_half_turn_and_two_mirrors() -> None:
    found = array_symmetries(tetrahedral_array(TINY.mic_radius), TINY.width)
    assert [(s.mirror, s.degrees) for s in found] == [(False, 0), (False, 180), (True, 90), (True, 270)]
    for s in found:  # each maps the array onto itself through its channel order
        mics = tetrahedral_array(TINY.mic_radius)
        np.testing.assert_allclose(mics @ s.matrix(), mics[list(s.channels)], atol=1e-12)
    lopsided = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # no turn or mirror maps it onto itself
    assert [(s.mirror, s.degrees) for s in array_symmetries(lopsided, 64)] == [(False, 0)]


def test_mapped_audio_points_at_the_mapped_object() -> None:
    """After each symmetry the audio's steered response still peaks on the sounding object's mapped mask."""
    checked = 0
    for index in range(12):
        scene = make_scene(TINY, seed=21, index=index)
        sounding = [i for i, o in enumerate(scene["objects"]) if o.sounding]
        if len(sounding) != 1:
            continue
        obj = scene["objects"][sounding[0]]
        if _missed(scene["audio"].T, scene["labels"], sounding[0]):
            continue  # the physics test covers the generator; here only scenes it gets right
        for symmetry in array_symmetries(tetrahedral_array(TINY.mic_radius), TINY.width):
            labels = symmetry.pixels(scene["labels"])
            frame = symmetry.pixels(scene["frames"][0], width_axis=1)
            audio = scene["audio"].T[list(symmetry.channels)]
            azimuth = (-obj.azimuth if symmetry.mirror else obj.azimuth) + symmetry.degrees
            x, y = direction_to_pixel((azimuth + 180.0) % 360.0 - 180.0, obj.elevation, TINY.height, TINY.width)
            assert labels[round(float(y)), round(float(x)) % TINY.width] == sounding[0] + 1
            before = scene["frames"][0][scene["labels"] == sounding[0] + 1]
            after = frame[labels == sounding[0] + 1]  # the frame moved with the mask: same pixels, same colours
            np.testing.assert_array_equal(np.sort(after, axis=0), np.sort(before, axis=0))
            assert not _missed(audio, labels, sounding[0]), (index, symmetry)
        checked += 1
    assert checked >= 3


def _missed(audio: np.ndarray, labels: np.ndarray, obj: int) -> bool:
    """Whether the loudest direction is more than 2 pixels from the object's mask."""
    x, y = _loudest_pixel(audio)
    ys, xs = np.nonzero(labels == obj + 1)
    dx = np.abs(xs - x)
    return bool(np.min(np.maximum(np.minimum(dx, TINY.width - dx), np.abs(ys - y))) > 2)
