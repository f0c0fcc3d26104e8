"""The blind spatial-clustering teacher: it separates a simulated two-speaker mixture without a clean signal, and
its EM does not lower the likelihood it climbs; guided by blurred masks (as a network gives), it finds the
speakers' directions and sharpens the masks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyroomacoustics")

from apps.robots.frontend import functional as F
from apps.robots.frontend.clustering import CACGMM, geometric_init, guided_masks, mask_azimuths, teacher_masks
from apps.robots.frontend.evaluate import oracle_masks, sisdr_improvement
from apps.robots.frontend.simulate import ArraySpec, MixtureMaker, SplitSpec


@pytest.fixture(scope="module")
def two_speakers() -> dict[str, np.ndarray]:
    split = SplitSpec(
        n=1, seed=7, n_speakers=(2, 2), rt60=(0.3, 0.3), snr_db=(10.0, 10.0), duration=2.0, keep_clean=True
    )
    return MixtureMaker(split, ArraySpec())(0)


def _mvdr(X: np.ndarray, masks: np.ndarray, length: int) -> np.ndarray:
    outputs = []
    for mask in masks:
        w = F.mvdr_souden(F.spatial_covariance(X, mask), F.spatial_covariance(X, 1.0 - mask))
        outputs.append(F.istft(F.apply_beamformer(w, X), 512, 256, length=length))
    return np.stack(outputs)


def test_teacher_masks_separate_two_speakers(two_speakers: dict[str, np.ndarray]) -> None:
    mixture = two_speakers["mixture"].astype(np.float64)
    X = F.stft(mixture, 512, 256)
    masks = teacher_masks(X, ArraySpec().positions(), 16000, 512)
    gain = sisdr_improvement(_mvdr(X, masks[:-1], mixture.shape[1]), two_speakers["clean"], mixture[0])
    uniform = sisdr_improvement(
        _mvdr(X, np.full_like(masks[:-1], 0.5), mixture.shape[1]), two_speakers["clean"], mixture[0]
    )
    assert gain > 2.0 and gain > uniform + 2.0, (gain, uniform)


def test_em_does_not_lower_the_likelihood(two_speakers: dict[str, np.ndarray]) -> None:
    X = F.stft(two_speakers["mixture"].astype(np.float64), 512, 256)
    model = CACGMM(X)
    B, _ = geometric_init(X, ArraySpec().positions(), 16000, 512)
    weights = np.full(B.shape[:2], 1.0 / 3)
    posterior, quad = model.e_step(B, weights)
    previous = -np.inf
    for _ in range(5):
        B, weights = model.m_step(posterior, quad)
        posterior, quad = model.e_step(B, weights)
        current = model.log_likelihood(B, weights)
        assert current >= previous - 1e-6, (current, previous)
        previous = current


def test_guided_masks_find_the_speakers_and_sharpen_blurred_masks(two_speakers: dict[str, np.ndarray]) -> None:
    mixture = two_speakers["mixture"].astype(np.float64)
    X = F.stft(mixture, 512, 256)
    mics = ArraySpec().positions()
    speech = oracle_masks(two_speakers["clean"], two_speakers["noise"])
    blurred = 0.1 * np.concatenate([speech, 1.0 - speech.sum(0, keepdims=True)]) + 0.9 / 3  # mostly uniform
    found = mask_azimuths(X, blurred, mics, 16000, 512)
    assert np.all(F.angular_error_deg(found, two_speakers["doa"]) <= 10.0), (found, two_speakers["doa"])
    masks = guided_masks(X, blurred, mics, 16000, 512)
    assert masks.shape == blurred.shape and np.allclose(masks.sum(0), 1.0)
    assert np.array_equal(guided_masks(X, blurred, mics, 16000, 512, iterations=0), blurred)
    length = mixture.shape[1]
    gain = sisdr_improvement(_mvdr(X, masks[:-1], length), two_speakers["clean"], mixture[0])
    before = sisdr_improvement(_mvdr(X, blurred[:-1], length), two_speakers["clean"], mixture[0])
    assert gain > 3.0 and gain > before + 2.0, (gain, before)
