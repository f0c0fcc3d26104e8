"""The mask networks: causal (what the block-online path relies on), and the directional features point at the
source."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from apps.robots.frontend import functional as F  # noqa: E402
from apps.robots.frontend.model import DirectionalMaskNet, MaskNet  # noqa: E402
from apps.robots.frontend.simulate import ArraySpec  # noqa: E402


@pytest.mark.parametrize("azimuth", [0.0, 130.0, 250.0])
def test_direction_response_peaks_at_the_azimuth_of_a_plane_wave(azimuth: float) -> None:
    freqs = np.fft.rfftfreq(512, 1.0 / 16000)
    a = F.steering_vectors(ArraySpec().positions(), freqs, np.array([azimuth]))[:, 0]  # (F, C)
    rng = np.random.default_rng(0)
    source = rng.standard_normal((257, 6)) + 1j * rng.standard_normal((257, 6))
    noise = 0.1 * (rng.standard_normal((4, 257, 6)) + 1j * rng.standard_normal((4, 257, 6)))
    X = torch.from_numpy((a.T[:, :, None] * source[None] + noise).astype(np.complex64))[None]
    net = DirectionalMaskNet()
    D = net.direction_response(X)[0]  # (T, F, 36)
    band = (freqs > 1000) & (freqs < 4000)
    assert D.shape == (6, 257, 36)
    assert float(D[:, band].mean((0, 1)).argmax()) * 10.0 == azimuth
    assert float(D.abs().max()) <= 1.0 + 1e-5


@pytest.mark.parametrize("model", [MaskNet, DirectionalMaskNet])
def test_masks_are_causal_and_the_state_carries_over(model: type) -> None:
    torch.manual_seed(0)
    net = model(hidden=16).eval()
    X = torch.randn(1, 4, 257, 12, dtype=torch.complex64)
    with torch.no_grad():
        whole, _ = net(X)
        head, state = net(X[..., :5])
        tail, _ = net(X[..., 5:], state)
        changed, _ = net(torch.cat([X[..., :5], 2.0 * X[..., 5:].flip(-1)], dim=-1))
    assert torch.allclose(torch.cat([head, tail], dim=-1), whole, atol=1e-5)
    assert torch.allclose(changed[..., :5], whole[..., :5], atol=1e-6)  # the future does not reach the past
    assert not torch.allclose(changed[..., 5:], whole[..., 5:], atol=1e-3)
