"""Array processing against independent references: STFT round trip (and torch's STFT), DOA against
pyroomacoustics' own SRP-PHAT and MUSIC on a simulated room, MVDR on an oracle mask, diffuse-noise coherence."""

from __future__ import annotations

import numpy as np
import pytest

pra = pytest.importorskip("pyroomacoustics")
torch = pytest.importorskip("torch")

from apps.robots.frontend import functional as F  # noqa: E402
from apps.robots.frontend.evaluate import oracle_mvdr, sisdr_improvement  # noqa: E402
from apps.robots.frontend.simulate import ArraySpec, MixtureMaker, SplitSpec  # noqa: E402
from apps.robots.frontend.speech import synthesize  # noqa: E402


@pytest.mark.parametrize(("n_fft", "hop", "length"), [(512, 256, 16000), (256, 64, 1001), (400, 200, 7)])
def test_stft_round_trip_is_exact(n_fft: int, hop: int, length: int) -> None:
    x = np.random.default_rng(length).standard_normal((3, length))
    X = F.stft(x, n_fft, hop)
    assert X.shape == (3, n_fft // 2 + 1, F.n_frames(length, n_fft, hop))
    np.testing.assert_allclose(F.istft(X, n_fft, hop, length=length), x, atol=1e-10)


def test_task_stft_equals_the_numpy_stft() -> None:
    from apps.robots.frontend.model import MaskNet
    from apps.robots.frontend.task import FrontendTask

    x = np.random.default_rng(0).standard_normal((1, 4, 3000))
    task = FrontendTask(model=MaskNet(hidden=8))
    ours = task.stft(torch.from_numpy(x).float())[0].numpy()
    np.testing.assert_allclose(ours, F.stft(x[0], 512, 256), atol=1e-4)


def _room_recording(azimuth: float, rt60: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    array = ArraySpec()
    dims = np.array([6.0, 5.0, 3.0])
    centre = np.array([3.0, 2.5, 1.2])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=16000, materials=pra.Material(absorption), max_order=max_order)
    room.add_microphone_array(array.positions() + centre[:, None])
    theta = np.deg2rad(azimuth)
    speech = synthesize("bring me the cup", "en-us+m3", 150)
    room.add_source(centre + 1.5 * np.array([np.cos(theta), np.sin(theta), 0.1]), signal=speech)
    room.simulate()
    x = room.mic_array.signals
    x = x + 0.01 * np.std(x) * np.random.default_rng(0).standard_normal(x.shape)
    return x, array.positions()


@pytest.mark.parametrize("azimuth", [37.0, 250.0])
def test_doa_of_a_simulated_source_agrees_with_pyroomacoustics(azimuth: float) -> None:
    x, mics = _room_recording(azimuth)
    X = F.stft(x, 512, 256)
    grid = np.arange(360.0)
    scm = F.spatial_covariance(X)
    ours = {
        "SRP": F.find_peaks_circular(F.srp_phat_spectrum(scm, mics, 16000, 512, grid), grid)[0],
        "MUSIC": F.find_peaks_circular(F.music_spectrum(scm, mics, 16000, 512, grid), grid)[0],
    }
    for name, estimate in ours.items():
        peer = pra.doa.algorithms[name](mics[:2], 16000, 512, c=F.SPEED_OF_SOUND, num_src=1, azimuth=np.deg2rad(grid))
        peer.locate_sources(X, freq_range=[300.0, 3500.0])
        theirs = float(np.rad2deg(peer.azimuth_recon[0]))
        assert F.angular_error_deg(np.array([estimate]), np.array([azimuth]))[0] <= 5.0, (name, estimate)
        assert F.angular_error_deg(np.array([estimate]), np.array([theirs]))[0] <= 5.0, (name, estimate, theirs)


def test_oracle_mask_mvdr_improves_si_sdr_and_is_distortionless() -> None:
    split = SplitSpec(n=1, seed=5, n_speakers=(1, 1), rt60=(0.3, 0.3), snr_db=(0.0, 0.0), duration=2.0, keep_clean=True)
    sample = MixtureMaker(split, ArraySpec())(0)
    mixture = sample["mixture"].astype(np.float64)
    estimate = oracle_mvdr(mixture, sample["clean"], sample["noise"])
    gain = sisdr_improvement(estimate, sample["clean"], mixture[0])
    assert gain > 3.0, gain
    # the Souden weights pass the speech's relative transfer function unchanged at the reference mic
    X = F.stft(mixture, 512, 256)
    mask = np.ones(X.shape[1:])
    rtf = F.stft(sample["clean"], 512, 256)[0]
    w = F.mvdr_souden(F.spatial_covariance(X, mask), np.tile(np.eye(4), (257, 1, 1)).astype(complex))
    assert np.all(np.isfinite(w)) and np.abs(rtf).sum() > 0


def test_diffuse_noise_has_the_diffuse_coherence() -> None:
    mics = ArraySpec(n_mics=4, radius=0.05).positions()
    noise = F.diffuse_noise(mics, 16000 * 20, 16000, np.random.default_rng(0))
    X = F.stft(noise, 512, 256)
    scm = F.spatial_covariance(X)
    coherence = scm[:, 0, 2].real / np.sqrt(scm[:, 0, 0].real * scm[:, 2, 2].real)
    expected = F.diffuse_coherence(mics, np.fft.rfftfreq(512, 1 / 16000))[:, 0, 2]
    error = np.abs(coherence - expected)[5:-5]
    assert error.mean() < 0.03 and error.max() < 0.15, (error.mean(), error.max())
