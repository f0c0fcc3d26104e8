"""The sound-event-detection transformer (DETR-style event queries, after SEDT) and its training task and data.

:class:`SEDTransformer` reads a log-mel spectrogram, encodes it with a convolutional stem and a transformer encoder
(the **frame-level** features, one per 80 ms), and decodes a fixed set of learned event queries against it (the
**event-level** embeddings). Each query predicts a class (or "no event"), an (onset, offset) span and a level;
training matches queries to the true events with the Hungarian algorithm (:func:`~apps.audioqa.functional.set_loss`,
on every decoder layer) plus a frame-wise class-activity loss on the encoder.

Example:
    >>> import torch
    >>> model = SEDTransformer(n_classes=10, d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1)
    >>> out = model(torch.zeros(2, 64, 501))
    >>> out["logits"].shape, out["spans"].shape, out["frames"].shape, out["events"].shape
    (torch.Size([2, 8, 11]), torch.Size([2, 8, 2]), torch.Size([2, 126, 32]), torch.Size([2, 8, 32]))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apps.audioqa.functional import N_MELS, event_f1, frame_segments, log_mel, set_loss
from apps.audioqa.sounds import CLASSES
from core.data.datamodule import DataModule
from core.train.functional import sinusoidal_embedding
from core.train.task import OptimizerFactory, OptimizerTask

log = logging.getLogger(__name__)

LEVEL_MEAN, LEVEL_SCALE = 11.0, 6.0  # SNR dB → the level target (about zero mean, unit spread)


class SEDTransformer(nn.Module):
    """Log-mel → frame features (encoder) → event queries (decoder) → class, span, level per query.

    Args:
        n_classes: Event classes (the extra "no event" class is added).
        n_mels: Mel bands of the input.
        d_model, n_heads, dim_feedforward, dropout: Transformer sizes.
        encoder_layers, decoder_layers: Layers of each.
        n_queries: Event queries (the most events one clip can have).
        clip_seconds: Length of a clip: spans are fractions of it.
    """

    def __init__(
        self,
        n_classes: int = len(CLASSES),
        n_mels: int = N_MELS,
        d_model: int = 96,
        n_heads: int = 4,
        dim_feedforward: int = 192,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        n_queries: int = 8,
        dropout: float = 0.1,
        clip_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.d_model = d_model
        self.clip_seconds = clip_seconds
        self.input_norm = nn.BatchNorm1d(n_mels)  # per mel band: the log-mel's offset and scale are arbitrary
        self.stem = nn.Sequential(
            nn.Conv1d(n_mels, d_model, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv1d(d_model, d_model, 5, stride=2, padding=2),
            nn.GELU(),
        )
        self.stem_norm = nn.LayerNorm(d_model)

        def encoder_layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(
                d_model, n_heads, dim_feedforward, dropout, batch_first=True, norm_first=True
            )

        self.encoder = nn.ModuleList([encoder_layer() for _ in range(encoder_layers)])
        self.encoder_norm = nn.LayerNorm(d_model)
        self.frame_head = nn.Linear(d_model, n_classes)
        self.queries = nn.Embedding(n_queries, d_model)
        # Each query owns a learned anchor span (centre, width; logits) spread over the clip at the start; it predicts
        # its span relative to the anchor and is told the anchor's position (as in DAB-DETR): training converges in
        # far fewer epochs than with position-free queries.
        centres = (torch.arange(n_queries, dtype=torch.float32) + 0.5) / n_queries
        self.anchors = nn.Parameter(torch.stack([torch.logit(centres), torch.full_like(centres, -2.0)], dim=-1))
        self.anchor_position = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.decoder = nn.ModuleList(
            [
                nn.TransformerDecoderLayer(
                    d_model, n_heads, dim_feedforward, dropout, batch_first=True, norm_first=True
                )
                for _ in range(decoder_layers)
            ]
        )
        self.decoder_norm = nn.LayerNorm(d_model)
        self.class_head = nn.Linear(d_model, n_classes + 1)
        self.span_head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 2))
        self.level_head = nn.Linear(d_model, 1)

    def encode(self, mel: Tensor) -> Tensor:
        """Frame-level features ``(B, T', d_model)`` of a log-mel ``(B, n_mels, T)``, ``T' = ceil(T / 4)``."""
        x = self.stem(self.input_norm(mel)).transpose(1, 2)
        positions = torch.arange(x.shape[1], device=x.device)
        x = self.stem_norm(x + sinusoidal_embedding(positions, self.d_model).to(x.dtype))
        for layer in self.encoder:
            x = layer(x)
        out: Tensor = self.encoder_norm(x)
        return out

    def _heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        centre_width = torch.sigmoid(self.span_head(h) + self.anchors)
        centre, width = centre_width[..., 0], centre_width[..., 1]
        spans = torch.stack([(centre - width / 2).clamp(0, 1), (centre + width / 2).clamp(0, 1)], dim=-1)
        return self.class_head(h), spans, self.level_head(h).squeeze(-1)

    def forward(self, mel: Tensor) -> dict[str, Any]:
        """``logits (B, Q, C+1)``, ``spans (B, Q, 2)``, ``levels (B, Q)``, ``frames (B, T', d)``,
        ``frame_logits (B, T', C)``, ``events (B, Q, d)``, and ``aux``: the heads of the earlier decoder layers."""
        frames = self.encode(mel)
        # The decoder reads the frames with their positions added again (they fade through the encoder): the
        # queries localize events by cross-attention, so the keys must say where each frame is.
        frame_positions = sinusoidal_embedding(torch.arange(frames.shape[1], device=frames.device), self.d_model)
        memory = frames + frame_positions.to(frames.dtype)
        h = self.queries.weight.unsqueeze(0).expand(mel.shape[0], -1, -1)
        anchor_frames = torch.sigmoid(self.anchors[:, 0]) * frames.shape[1]
        position = self.anchor_position(sinusoidal_embedding(anchor_frames, self.d_model).to(h.dtype))
        aux = []
        for k, layer in enumerate(self.decoder):
            h = layer(h + position, memory)
            if k < len(self.decoder) - 1:
                aux.append(self._heads(self.decoder_norm(h)))
        events = self.decoder_norm(h)
        logits, spans, levels = self._heads(events)
        return {
            "logits": logits,
            "spans": spans,
            "levels": levels,
            "frames": frames,
            "frame_logits": self.frame_head(frames),
            "events": events,
            "aux": aux,
        }


@dataclass(frozen=True)
class DetectedEvent:
    label: str
    onset: float
    offset: float
    confidence: float
    snr_db: float


SOURCES = ("queries", "refined", "frames")


@dataclass(frozen=True)
class Decoder:
    """How the SED's outputs become a list of events per clip.

    ``source``:

    - ``queries``: the event queries whose best class (not "no event") has probability ≥ ``threshold``, with their
      own spans;
    - ``refined``: the same queries, each span replaced by the frame-wise segment of its class that overlaps it most
      (the frame head localizes at 80 ms; the queries say what and roughly where);
    - ``frames``: the frame-wise segments alone (:func:`~apps.audioqa.functional.frame_segments`), each with the
      level of the query of its class that overlaps it most.

    Frame segments: class probability ≥ ``frame_threshold``, a median filter over ``median_frames`` frames, gaps up
    to ``max_gap`` seconds joined, segments shorter than ``min_duration`` seconds dropped. Of two events of one class
    whose spans overlap by more than ``duplicate_iou`` (IoU), the less confident is dropped.

    The defaults follow the generator: events last ≥ 0.4 s and are ≥ 0.3 s apart, so a 3-frame (240 ms) median
    removes blips without joining neighbours, and half the shortest event is the least length kept.
    """

    source: str = "queries"
    threshold: float = 0.5
    frame_threshold: float = 0.5
    median_frames: int = 3
    min_duration: float = 0.2
    max_gap: float = 0.0
    duplicate_iou: float = 0.5

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            from core.errors import ConfigError

            raise ConfigError(f"unknown decoder source {self.source!r}", where="decoder.source", hint=str(SOURCES))


def decode_events(
    out: Mapping[str, Tensor], decoder: Decoder | None = None, clip_seconds: float = 10.0
) -> list[list[DetectedEvent]]:
    """Per clip, the detected events by onset (see :class:`Decoder`)."""
    decoder = decoder or Decoder()
    prob = out["logits"].softmax(-1)[..., :-1].float()
    confidence, label = prob.max(-1)
    spans = out["spans"].float() * clip_seconds
    levels = out["levels"].float() * LEVEL_SCALE + LEVEL_MEAN
    activity = torch.sigmoid(out["frame_logits"].float()) if decoder.source != "queries" else None
    clips: list[list[DetectedEvent]] = []
    for b in range(prob.shape[0]):
        queries = [
            (
                int(label[b, q]),
                float(spans[b, q, 0]),
                float(spans[b, q, 1]),
                float(confidence[b, q]),
                float(levels[b, q]),
            )
            for q in range(prob.shape[1])
        ]
        detected = [e for e in queries if e[3] >= decoder.threshold]
        if activity is not None:
            segments = frame_segments(
                activity[b].numpy(),
                decoder.frame_threshold,
                clip_seconds / activity.shape[1],
                decoder.median_frames,
                decoder.min_duration,
                decoder.max_gap,
            )
            if decoder.source == "refined":
                detected = [_snap(e, segments) for e in detected]
            else:
                detected = [(c, on, off, conf, _level_of(c, on, off, queries)) for c, on, off, conf in segments]
        candidates = sorted(detected, key=lambda e: -e[3])
        kept: list[tuple[int, float, float, float, float]] = []
        for e in candidates:
            if all(k[0] != e[0] or _iou(k[1:3], e[1:3]) <= decoder.duplicate_iou for k in kept):
                kept.append(e)
        clips.append(
            [
                DetectedEvent(CLASSES[c], round(on, 3), round(off, 3), round(conf, 3), round(level, 1))
                for c, on, off, conf, level in sorted(kept, key=lambda e: e[1])
            ]
        )
    return clips


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _snap(
    event: tuple[int, float, float, float, float], segments: Sequence[tuple[int, float, float, float]]
) -> tuple[int, float, float, float, float]:
    """The query event with the span of the same-class segment that overlaps it most (unchanged if none does)."""
    c, on, off, conf, level = event
    best = max((s for s in segments if s[0] == c), key=lambda s: _iou((on, off), s[1:3]), default=None)
    if best is None or _iou((on, off), best[1:3]) == 0.0:
        return event
    return c, best[1], best[2], conf, level


def _level_of(c: int, on: float, off: float, queries: Sequence[tuple[int, float, float, float, float]]) -> float:
    """The level of the same-class query that overlaps ``(on, off)`` most (of the most overlapping query if none)."""
    same = [q for q in queries if q[0] == c] or list(queries)
    return max(same, key=lambda q: _iou((on, off), q[1:3]))[4]


def frame_targets(events: Tensor, mask: Tensor, n_frames: int, n_classes: int, clip_seconds: float) -> Tensor:
    """``(B, n_frames, n_classes)`` activity: 1 where a frame's centre lies inside an event of that class."""
    centres = (torch.arange(n_frames, device=events.device) + 0.5) * clip_seconds / n_frames
    onset, offset = events[..., 1], events[..., 2]  # (B, N)
    inside = (centres[None, :, None] >= onset[:, None, :]) & (centres[None, :, None] < offset[:, None, :])
    inside &= mask[:, None, :]
    labels = F.one_hot(events[..., 0].long().clamp(min=0), n_classes).to(events.dtype)  # (B, N, C)
    return (inside.to(events.dtype) @ labels).clamp(max=1.0)


class SEDTask(OptimizerTask):
    """Train a :class:`SEDTransformer`; validation and test log the event F1 (200 ms collar) as ``{stage}/f1``.

    Batches are ``{"mel": (B, n_mels, T), "events": (B, N, 4) [class, onset s, offset s, snr dB], "mask": (B, N)}``.

    Args:
        model: The network.
        frame_weight: Weight of the frame-wise activity loss on the encoder.
        aux_weight: Weight of the set loss of each earlier decoder layer.
        decoder: The :class:`Decoder`'s settings for validation, test and prediction (a run's ``decoder.json``,
            chosen on the validation split by :func:`apps.audioqa.evaluate.select_decoder`, overrides them where
            the run is scored or used).
        loss: Keyword arguments of :func:`~apps.audioqa.functional.set_loss`.
        optimizer, schedulers, param_groups: See :class:`~core.train.task.OptimizerTask`.
    """

    def __init__(
        self,
        model: SEDTransformer,
        frame_weight: float = 1.0,
        aux_weight: float = 0.5,
        decoder: Mapping[str, Any] | None = None,
        loss: Mapping[str, float] | None = None,
        optimizer: OptimizerFactory | None = None,
        schedulers: Sequence[Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(optimizer=optimizer, schedulers=schedulers, param_groups=param_groups)
        self.model = model
        self.frame_weight = frame_weight
        self.aux_weight = aux_weight
        self.decoder = Decoder(**dict(decoder or {}))
        self.loss_kwargs: dict[str, Any] = dict(loss or {})
        self._references: list[list[tuple[str, float, float]]] = []
        self._estimates: list[list[tuple[str, float, float]]] = []

    def forward(self, mel: Tensor) -> dict[str, Any]:
        out: dict[str, Any] = self.model(mel)
        return out

    def losses(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Any]]:
        out = self(batch["mel"])
        events, mask = batch["events"], batch["mask"]
        seconds = self.model.clip_seconds
        targets = (
            events[..., 0].long(),
            events[..., 1:3] / seconds,
            (events[..., 3] - LEVEL_MEAN) / LEVEL_SCALE,
            mask,
        )
        terms = set_loss(out["logits"], out["spans"], out["levels"], *targets, **self.loss_kwargs)
        total = terms["loss"]
        for logits, spans, levels in out["aux"]:
            total = total + self.aux_weight * set_loss(logits, spans, levels, *targets, **self.loss_kwargs)["loss"]
        frames = frame_targets(events, mask, out["frame_logits"].shape[1], self.model.n_classes, seconds)
        frame_loss = F.binary_cross_entropy_with_logits(out["frame_logits"], frames)
        terms["frame"] = frame_loss
        terms["total"] = total + self.frame_weight * frame_loss
        return terms, out

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        terms, _ = self.losses(batch)
        batch_size = batch["mel"].shape[0]
        self.log("train/loss", terms["total"], prog_bar=True, batch_size=batch_size)
        for name in ("class", "span", "iou", "level", "frame"):
            self.log(f"train/{name}", terms[name], batch_size=batch_size)
        return terms["total"]

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Mapping[str, Tensor], stage: str) -> None:
        terms, out = self.losses(batch)
        self.log(f"{stage}/loss", terms["total"], batch_size=batch["mel"].shape[0], sync_dist=True)
        self._estimates += [
            [(e.label, e.onset, e.offset) for e in clip]
            for clip in decode_events(out, self.decoder, self.model.clip_seconds)
        ]
        self._references += reference_events(batch["events"], batch["mask"])

    def on_validation_epoch_end(self) -> None:
        self._log_f1("val")

    def on_test_epoch_end(self) -> None:
        self._log_f1("test")

    def _log_f1(self, stage: str) -> None:
        scores = event_f1(self._references, self._estimates)
        self._references, self._estimates = [], []
        self.log(f"{stage}/f1", scores["f1"], prog_bar=True)
        self.log(f"{stage}/precision", scores["precision"])
        self.log(f"{stage}/recall", scores["recall"])

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> Any:
        return decode_events(self(batch["mel"]), self.decoder, self.model.clip_seconds)


def reference_events(events: Tensor, mask: Tensor) -> list[list[tuple[str, float, float]]]:
    """The true events of a batch as ``(label, onset, offset)`` lists."""
    return [
        [(CLASSES[int(e[0])], float(e[1]), float(e[2])) for e, m in zip(clip, clip_mask, strict=True) if m]
        for clip, clip_mask in zip(events, mask, strict=True)
    ]


class ClipDataset(torch.utils.data.Dataset[dict[str, Tensor]]):
    """The clips of one split file in memory: log-mel, padded events and their mask (and the questions)."""

    def __init__(self, path: str | Path, max_events: int = 8) -> None:
        from core.data import HDF5Dataset

        self.path = Path(path)
        source = HDF5Dataset(self.path)
        mels, events, masks, self.questions = [], [], [], []
        for i in range(len(source)):
            sample = source[i]
            mels.append(sample["mel"].to(torch.float32))
            ev = sample["events"].reshape(-1, 4)[:max_events]
            padded = torch.zeros(max_events, 4)
            padded[: len(ev)] = ev
            mask = torch.zeros(max_events, dtype=torch.bool)
            mask[: len(ev)] = True
            events.append(padded)
            masks.append(mask)
            text = sample["questions"]
            self.questions.append(text.decode() if isinstance(text, bytes) else str(text))
        source.close()
        self.mel = torch.stack(mels)
        self.events = torch.stack(events)
        self.mask = torch.stack(masks)

    def __len__(self) -> int:
        return int(self.mel.shape[0])

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"mel": self.mel[index], "events": self.events[index], "mask": self.mask[index]}


class SEDDataModule(DataModule):
    """The train / val / test splits written by ``kakehashi audioqa make-data`` (``<data_dir>/<split>.h5``).

    Args:
        data_dir: Folder of the split files.
        batch_size: Clips per batch.
        max_events: Events per clip kept (the model's query count must be at least this).
        num_workers: DataLoader workers (0 is right: the clips are in memory).
    """

    def __init__(self, data_dir: str, batch_size: int = 32, max_events: int = 8, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers)
        self.data_dir = Path(data_dir)
        self.max_events = max_events

    def setup(self, stage: str) -> None:
        if self.train_dataset is not None:
            return
        from core.errors import UserError

        for split in ("train", "val", "test"):
            if not (self.data_dir / f"{split}.h5").is_file():
                raise UserError(
                    f"no {split}.h5 in the data folder",
                    where=str(self.data_dir),
                    hint="run `kakehashi audioqa make-data` first (its out_dir is this data_dir)",
                )
        self.train_dataset = ClipDataset(self.data_dir / "train.h5", self.max_events)
        self.val_dataset = ClipDataset(self.data_dir / "val.h5", self.max_events)
        self.test_dataset = ClipDataset(self.data_dir / "test.h5", self.max_events)
        self.predict_dataset = self.test_dataset


def mel_of_wave(wave: Tensor) -> Tensor:
    """The model input ``(1, n_mels, T)`` of one mono 16 kHz waveform."""
    return log_mel(wave).unsqueeze(0)


__all__ = [
    "ClipDataset",
    "Decoder",
    "DetectedEvent",
    "SEDDataModule",
    "SEDTask",
    "SEDTransformer",
    "decode_events",
    "frame_targets",
    "mel_of_wave",
    "reference_events",
]
