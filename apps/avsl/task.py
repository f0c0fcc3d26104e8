"""``AVSLTask``: the LightningModule of the training configs (core.train's ``OptimizerTask``).

Losses (on the embedding grid, a quarter of the frame's resolution, except the map's):

- ``dc``: deep clustering of the pixel embeddings into the scene's objects (every object, sounding or not, is its
  own cluster; background one more), pixels weighted so that each cluster counts the same; only on scenes whose
  labels mark every object (``all_objects``: not on pseudo-labels, which mark only the sounding ones);
- ``map``: binary cross-entropy of each present class's map against that class's sounding-object mask, at the
  frame's resolution (the logits upsampled as the metrics see them, so the edges are learnt where they are scored);
- ``overlap``: ``1 −`` the soft cIoU of each present class's map and mask, ``Σpg / (Σg + Σp(1−g))`` at the frame's
  resolution: the measure the benchmark scores, and the term that makes spill around an object cost in proportion
  to the object's area (per-pixel cross-entropy alone barely notices a halo round a 2%-of-the-frame object);
- ``direction``: cross-entropy of each present class's direction distribution against its object's mask on the
  coarse grid;
- ``presence``: binary cross-entropy of the audio tagging;
- ``contrastive`` (optional, weight 0 by default): InfoNCE of each class's audio embedding against the mean
  embeddings of the scene's objects (its own object the positive, the look-alikes and the rest the negatives;
  also only where every object is labelled).

Validation logs ``val/loss`` and ``val/ciou_success`` (the checkpoint monitor); test logs the localization metrics
of :mod:`apps.avsl.metrics` averaged over scenes.

Example:
    >>> task = AVSLTask(AVSLNet(grid=(4, 8)))
    >>> batch = {"image": torch.zeros(2, 3, 32, 64, dtype=torch.uint8), "audio": torch.zeros(2, 4, 5120),
    ...          "labels": torch.zeros(2, 32, 64, dtype=torch.long), "cls": torch.full((2, 6), -1),
    ...          "sounding": torch.zeros(2, 6, dtype=torch.bool)}
    >>> sorted(task.losses(task(batch["image"], batch["audio"]), batch))
    ['contrastive', 'dc', 'direction', 'loss', 'map', 'overlap', 'presence']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from apps.avsl.functional import deep_clustering_loss, upsample_map
from apps.avsl.metrics import scene_metrics
from apps.avsl.model import AVSLNet
from core.train.task import OptimizerFactory, OptimizerTask


class AVSLTask(OptimizerTask):
    """Train :class:`~apps.avsl.model.AVSLNet` (see the module docstring for the losses).

    Args:
        model: The network.
        dc_weight, map_weight, overlap_weight, direction_weight, presence_weight, contrastive_weight: Loss
            weights.
        temperature: Of the contrastive term.
        threshold: Map value that counts as "sounding" in the metrics.
        init_from: Start from the network weights of this run directory's best checkpoint (or of a checkpoint
            file): the next round of the annotation loop starts from its teacher.
        optimizer, schedulers, param_groups: See :class:`~core.train.task.OptimizerTask`.
    """

    def __init__(
        self,
        model: AVSLNet,
        dc_weight: float = 1.0,
        map_weight: float = 1.0,
        overlap_weight: float = 1.0,
        direction_weight: float = 0.5,
        presence_weight: float = 0.5,
        contrastive_weight: float = 0.0,
        temperature: float = 0.1,
        threshold: float = 0.5,
        init_from: str | None = None,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.model = model
        self.weights = {
            "dc": dc_weight,
            "map": map_weight,
            "overlap": overlap_weight,
            "direction": direction_weight,
            "presence": presence_weight,
            "contrastive": contrastive_weight,
        }
        self.temperature = temperature
        self.threshold = threshold
        self.init_from = init_from

    def setup(self, stage: str) -> None:
        """At the start of a fit, the ``init_from`` weights (a resumed fit's checkpoint is restored after this;
        loading a trained run for inference never reads them)."""
        if stage == "fit" and self.init_from:
            self._load_network(self.init_from)

    def _load_network(self, source: str) -> None:
        """The network weights of a run's best checkpoint (or a checkpoint file); a mismatch is a user error."""
        from pathlib import Path

        from core.errors import UserError
        from core.train.checkpoints import load_checkpoint, resolve_checkpoint

        path = Path(source) if Path(source).is_file() else resolve_checkpoint(source, "best")
        state = load_checkpoint(path, mmap=False)["state_dict"]
        weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(f"the weights do not fit this model: {first}", where=str(path)) from None

    def forward(self, image: Tensor, audio: Tensor) -> dict[str, Tensor]:
        outputs: dict[str, Tensor] = self.model(image, audio)
        return outputs

    def predict_maps(self, image: Tensor, audio: Tensor) -> Tensor:
        """Per-class maps ``(B, K, H, W)`` in [0, 1] at the frame's size."""
        return self.model.probabilities(self(image, audio), (image.shape[-2], image.shape[-1]))

    def targets(self, batch: Mapping[str, Tensor], size: tuple[int, int]) -> dict[str, Tensor]:
        """Instance one-hots, class masks and presence on a grid of ``size`` (the frame is a multiple of it), and
        the class masks at the frame's resolution (``frame_masks``)."""
        labels = batch["labels"]
        n_obj = batch["cls"].shape[1]
        k = self.model.n_classes
        instances = F.one_hot(labels, n_obj + 1).permute(0, 3, 1, 2).float()  # (B, S, H, W), S = objects + bg
        cls = batch["cls"].clamp_min(0)
        sounding = batch["sounding"] & (batch["cls"] >= 0)
        # class k's mask: the sounding object(s) of class k
        owner = F.one_hot(cls, k).float() * sounding[..., None].float()  # (B, objects, K)
        frame_masks = torch.einsum("bohw,bok->bkhw", instances[:, 1:], owner).clamp(0, 1)
        present = owner.amax(1)
        return {
            "instances": F.adaptive_avg_pool2d(instances, size),  # fractions of each cluster per cell
            "class_masks": F.adaptive_avg_pool2d(frame_masks, size),
            "frame_masks": frame_masks,
            "present": present,
        }

    def losses(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        embeddings = outputs["embeddings"]
        _b, _d, h, w = embeddings.shape
        target = self.targets(batch, (h, w))
        instances = target["instances"].flatten(2).transpose(1, 2)  # (B, N, S)
        hard = F.one_hot(instances.argmax(-1), instances.shape[-1]).float()
        counts = hard.sum(1, keepdim=True)  # (B, 1, S)
        n_clusters = (counts > 0).sum(-1, keepdim=True).clamp_min(1)
        weights = (hard / counts.clamp_min(1)).sum(-1) * (h * w) / n_clusters[..., 0]
        # only scenes whose labels mark every object: a pseudo-label leaves the silent look-alikes in the
        # background, and clustering them with it would teach the encoder to merge the very objects it must keep apart
        complete = batch["all_objects"].float() if "all_objects" in batch else torch.ones_like(weights[:, 0])
        dc = deep_clustering_loss(embeddings.flatten(2).transpose(1, 2), hard, weights * complete[:, None])
        dc = dc * complete.numel() / complete.sum().clamp_min(1.0)

        present = target["present"]
        n_present = present.sum().clamp_min(1.0)
        map_loss, overlap = self._map_losses(outputs["map_logits"], target["frame_masks"], present)

        grid = (outputs["direction"].shape[-2], outputs["direction"].shape[-1])
        on_grid = F.adaptive_avg_pool2d(target["class_masks"], grid).flatten(2)
        on_grid = on_grid / on_grid.sum(-1, keepdim=True).clamp_min(1e-6)
        log_prob = F.log_softmax(outputs["direction"].flatten(2), dim=-1)
        direction = (-(on_grid * log_prob).sum(-1) * present).sum() / n_present

        presence = F.binary_cross_entropy_with_logits(outputs["presence"], present)
        contrastive = self._contrastive(outputs, hard, batch, present * complete[:, None])
        total = (
            self.weights["dc"] * dc
            + self.weights["map"] * map_loss
            + self.weights["overlap"] * overlap
            + self.weights["direction"] * direction
            + self.weights["presence"] * presence
            + self.weights["contrastive"] * contrastive
        )
        return {
            "loss": total,
            "dc": dc,
            "map": map_loss,
            "overlap": overlap,
            "direction": direction,
            "presence": presence,
            "contrastive": contrastive,
        }

    @staticmethod
    def _map_losses(logits: Tensor, masks: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy and ``1 −`` soft cIoU of each present class's map against its mask, at the masks'
        (the frame's) resolution, averaged over the present classes."""
        logits = upsample_map(logits, (masks.shape[-2], masks.shape[-1]))
        bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").mean((2, 3))
        p = torch.sigmoid(logits)
        inside = (p * masks).sum((2, 3))
        spill = (p * (1.0 - masks)).sum((2, 3))
        soft_ciou = inside / (masks.sum((2, 3)) + spill).clamp_min(1.0)
        n_present = present.sum().clamp_min(1.0)
        return (bce * present).sum() / n_present, ((1.0 - soft_ciou) * present).sum() / n_present

    def _contrastive(
        self, outputs: Mapping[str, Tensor], hard: Tensor, batch: Mapping[str, Tensor], present: Tensor
    ) -> Tensor:
        """Each present class's audio embedding against the scene's object embeddings (its own the positive)."""
        embeddings = outputs["embeddings"].flatten(2)  # (B, D, N)
        counts = hard.sum(1)  # (B, S)
        means = F.normalize(torch.einsum("bdn,bns->bsd", embeddings, hard) / counts.clamp_min(1)[..., None], dim=-1)
        logits = torch.einsum("bkd,bsd->bks", outputs["audio_embeddings"], means) / self.temperature
        logits = logits.masked_fill((counts == 0)[:, None, :], -1e4)
        k = self.model.n_classes
        cls = batch["cls"].clamp_min(0)
        owner = F.one_hot(cls, k).float() * (batch["sounding"] & (batch["cls"] >= 0))[..., None].float()  # (B, O, K)
        positive = torch.cat([torch.zeros_like(owner[:, :1]), owner], dim=1).argmax(1)  # (B, K): cluster index
        nll = F.cross_entropy(logits.flatten(0, 1), positive.flatten(), reduction="none").reshape(present.shape)
        valid = present * (counts.gather(1, positive) > 0).float()  # an object too small for the grid: skip it
        return (nll * valid).sum() / valid.sum().clamp_min(1.0)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        losses = self.losses(self(batch["image"], batch["audio"]), batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch["image"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self.predict_maps(batch["image"], batch["audio"])

    def _evaluate(self, batch: Mapping[str, Tensor], stage: str) -> None:
        outputs = self(batch["image"], batch["audio"])
        losses = self.losses(outputs, batch)
        size = batch["image"].shape[0]
        self.log(f"{stage}/loss", losses["loss"], sync_dist=True, batch_size=size)
        maps = (
            self.model.probabilities(outputs, (batch["image"].shape[-2], batch["image"].shape[-1]))
            .detach()
            .cpu()
            .numpy()
        )
        per_scene = [
            scene_metrics(
                maps[i],
                batch["labels"][i].cpu().numpy(),
                batch["cls"][i].cpu().numpy(),
                batch["sounding"][i].cpu().numpy(),
                self.threshold,
            )
            for i in range(size)
        ]
        localized = [m for m in per_scene if m["n_sounding"] > 0]
        if localized:
            success = sum(m["ciou"] >= 0.5 for m in localized) / len(localized)
            self.log(f"{stage}/ciou_success", success, sync_dist=True, batch_size=len(localized), prog_bar=True)
        silent = [m for m in per_scene if m["n_sounding"] == 0]
        if silent:
            area = sum(m["positive_area"] for m in silent) / len(silent)
            self.log(f"{stage}/silent_false_positive_area", area, sync_dist=True, batch_size=len(silent))


__all__ = ["AVSLTask"]
