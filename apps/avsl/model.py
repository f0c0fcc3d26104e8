"""The audio-visual localization network: per-pixel visual embeddings, an audio encoder, similarity maps.

- :class:`VisualEncoder`: a small CNN on the equirectangular frame plus each pixel's direction (unit vector), so
  that two identical-looking objects at different places get different embeddings. Output: unit-length
  embeddings ``V`` ``(B, D, H/4, W/4)``, trained with the deep-clustering loss to group the pixels of each object.
- :class:`AudioEncoder`: from the multichannel STFT, (a) the steered response power per frequency and direction
  from the inter-channel phase (PHAT cross-spectra against the array's steering phases), turned by 1×1 and 3×3
  convolutions into one **direction map per sound class** on a coarse sphere grid, and (b) log band energies
  (mean and spread over time) giving the **presence** (audio tagging) of each class.
- :class:`AVSLNet`: each class's audio embedding ``a_k`` lives in the visual embedding space: the pixel
  embeddings pooled with the class's direction map as attention. The localization map of class ``k`` is the
  similarity ``α⟨v_p, a_k⟩ + γ·direction_k(p) + β``; the scene's map is ``max_k σ(presence_k)·σ(map_k)``, and a
  detected object's class is the ``k`` that wins there.

Example:
    >>> import torch
    >>> net = AVSLNet(n_classes=4, grid=(4, 8)).eval()
    >>> out = net(torch.zeros(1, 3, 32, 64, dtype=torch.uint8), torch.zeros(1, 4, 5120))
    >>> tuple(out["map_logits"].shape), tuple(net.probabilities(out, (32, 64)).shape)
    ((1, 4, 8, 16), (1, 4, 32, 64))
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apps.avsl.functional import cross_spectra, mic_pairs, steering_phases, upsample_map
from apps.avsl.geometry import pixel_vectors, tetrahedral_array


class SphereConv(nn.Module):
    """3×3 convolution padded circularly in azimuth and by replication at the poles, then batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.pad = dilation
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        p = self.pad
        x = F.pad(F.pad(x, (p, p, 0, 0), mode="circular"), (0, 0, p, p), mode="replicate")
        out: Tensor = F.relu(self.norm(self.conv(x)))
        return out


def _direction_channels(h: int, w: int) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(pixel_vectors(h, w).transpose(2, 0, 1)))


class VisualEncoder(nn.Module):
    """Frame ``(B, 3, H, W)`` (uint8 or float in [0, 1]) → unit embeddings ``(B, dim, H/4, W/4)``.

    Two strided convolutions to a quarter of the resolution (fine detail), one more to an eighth where dilated
    convolutions gather the context of a whole object, upsampled and joined with the fine features and the pixel
    directions by a 1×1 head.
    """

    def __init__(self, dim: int = 16, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(SphereConv(6, width // 2, stride=2), SphereConv(width // 2, width, stride=2))
        self.down = SphereConv(width, width, stride=2)
        self.context = nn.Sequential(SphereConv(width, width), SphereConv(width, width, dilation=2))
        self.head = nn.Sequential(nn.Conv2d(2 * width + 3, 2 * width, 1), nn.ReLU(), nn.Conv2d(2 * width, dim, 1))
        self._directions: dict[tuple[int, int], Tensor] = {}

    def directions(self, h: int, w: int, like: Tensor) -> Tensor:
        key = (h, w)
        if key not in self._directions:
            self._directions[key] = _direction_channels(h, w)
        return self._directions[key].to(like).expand(like.shape[0], -1, -1, -1)

    def forward(self, image: Tensor) -> Tensor:
        x = image.float() / 255.0 if image.dtype == torch.uint8 else image
        x = (x - 0.5) / 0.25
        h, w = x.shape[-2:]
        fine = self.stem(torch.cat([x, self.directions(h, w, x)], dim=1))
        coarse = upsample_map(self.context(self.down(fine)), (fine.shape[-2], fine.shape[-1]))
        joined = torch.cat([fine, coarse, self.directions(fine.shape[-2], fine.shape[-1], fine)], dim=1)
        return F.normalize(self.head(joined), dim=1)


class AudioEncoder(nn.Module):
    """Microphone signals ``(B, M, N)`` → class direction logits ``(B, K, gh, gw)`` and presence logits ``(B, K)``.

    Args:
        n_classes: Sound classes ``K``.
        grid: The coarse direction grid ``(gh, gw)`` (an equirectangular grid; ``gw = 2·gh``).
        mic_radius: Radius of the tetrahedral array in metres (the steering phases depend on it).
        sample_rate, n_fft, hop: The STFT.
        f_min, f_max: The frequency range whose phases are used.
        width: Channels of the direction network.
        n_bands: Log-energy bands of the tagging branch.
    """

    steering: Tensor
    window: Tensor
    bands: Tensor

    def __init__(
        self,
        n_classes: int = 4,
        grid: tuple[int, int] = (16, 32),
        mic_radius: float = 0.05,
        sample_rate: int = 16000,
        n_fft: int = 512,
        hop: int = 256,
        f_min: float = 150.0,
        f_max: float = 7000.0,
        width: int = 32,
        n_bands: int = 48,
    ) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.n_fft, self.hop = n_fft, hop
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
        self.bins = [int(i) for i in np.nonzero((freqs >= f_min) & (freqs <= f_max))[0]]
        mics = tetrahedral_array(mic_radius)
        self.pairs = mic_pairs(len(mics))
        steering = steering_phases(mics, freqs[self.bins], *self.grid)
        self.register_buffer("steering", steering, persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        n_bins = len(self.bins)
        self.direction = nn.Sequential(
            nn.Conv2d(n_bins, width, 1),
            nn.ReLU(),
            SphereConv(width, width),
            SphereConv(width, width, dilation=2),
            nn.Conv2d(width, n_classes, 1),
        )
        # plus broadband SRP-PHAT (the mean over bins), so every class's map starts peaked at the sources
        self.srp_scale = nn.Parameter(torch.full((n_classes, 1, 1), 20.0))
        edges = np.linspace(0, n_fft // 2 + 1, n_bands + 1).astype(int)
        self.band_edges = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        bands = torch.zeros(n_fft // 2 + 1, n_bands)
        for k, (a, b) in enumerate(self.band_edges):
            bands[a:b, k] = 1.0 / (b - a)
        self.register_buffer("bands", bands, persistent=False)
        self.tagger = nn.Sequential(nn.Linear(2 * n_bands, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        b, m, n = audio.shape
        spectra = torch.stft(
            audio.reshape(b * m, n), self.n_fft, self.hop, window=self.window, return_complex=True, center=False
        ).reshape(b, m, self.n_fft // 2 + 1, -1)
        cross = cross_spectra(spectra[:, :, self.bins], self.pairs)  # (B, P, F')
        srp = torch.einsum("bpf,pfg->bfg", cross, self.steering).real / len(self.pairs)
        srp = srp.reshape(b, len(self.bins), *self.grid)
        directions: Tensor = self.direction(srp) + self.srp_scale * srp.mean(1, keepdim=True)
        power = spectra.abs().pow(2).mean(1)  # (B, F, T)
        bands = torch.log(torch.einsum("bft,fk->bkt", power, self.bands) + 1e-6)
        features = torch.cat([bands.mean(-1), bands.std(-1)], dim=-1)
        presence: Tensor = self.tagger(features)
        return directions, presence


class AVSLNet(nn.Module):
    """The whole model (see the module docstring). ``forward(image, audio)`` returns a dict of tensors:

    ``embeddings`` ``(B, D, h, w)``, ``direction`` ``(B, K, gh, gw)`` logits, ``presence`` ``(B, K)`` logits,
    ``audio_embeddings`` ``(B, K, D)``, ``map_logits`` ``(B, K, h, w)``.
    """

    def __init__(
        self,
        n_classes: int = 4,
        dim: int = 16,
        width: int = 32,
        grid: tuple[int, int] = (16, 32),
        mic_radius: float = 0.05,
        sample_rate: int = 16000,
        audio_width: int = 32,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.visual = VisualEncoder(dim=dim, width=width)
        self.audio = AudioEncoder(
            n_classes=n_classes, grid=grid, mic_radius=mic_radius, sample_rate=sample_rate, width=audio_width
        )
        self.scale = nn.Parameter(torch.tensor(6.0))
        self.direction_weight = nn.Parameter(torch.tensor(0.5))
        self.bias = nn.Parameter(torch.tensor(-3.0))

    def forward(self, image: Tensor, audio: Tensor) -> dict[str, Tensor]:
        embeddings = self.visual(image)
        directions, presence = self.audio(audio)
        b, _d, h, w = embeddings.shape
        log_prob = F.log_softmax(upsample_map(directions, (h, w)).flatten(2), dim=-1)  # (B, K, h·w)
        attention = log_prob.exp()
        audio_embeddings = F.normalize(torch.einsum("bkn,bdn->bkd", attention, embeddings.flatten(2)), dim=-1)
        similarity = torch.einsum("bkd,bdn->bkn", audio_embeddings, embeddings.flatten(2))
        prior = (log_prob + math.log(h * w)).clamp_min(-8.0)
        logits = self.scale * similarity + self.direction_weight * prior + self.bias
        return {
            "embeddings": embeddings,
            "direction": directions,
            "presence": presence,
            "audio_embeddings": audio_embeddings,
            "map_logits": logits.reshape(b, self.n_classes, h, w),
        }

    @staticmethod
    def probabilities(outputs: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        """Per-class maps ``σ(presence_k)·σ(map_k)`` at the frame's ``size``: ``(B, K, H, W)`` in [0, 1]."""
        maps = torch.sigmoid(upsample_map(outputs["map_logits"], size))
        return maps * torch.sigmoid(outputs["presence"])[..., None, None]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters.

    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["AVSLNet", "AudioEncoder", "SphereConv", "VisualEncoder", "count_parameters"]
