"""Pure functions of the audio QA app: log-mel features, the event-based F1, the set-matching loss of the SED.

Example:
    >>> import torch
    >>> log_mel(torch.zeros(16000)).shape
    torch.Size([64, 51])
    >>> ref = [[("beep", 1.0, 2.0)]]
    >>> event_f1(ref, [[("beep", 1.15, 2.1)]])["f1"], event_f1(ref, [[("beep", 1.3, 2.0)]])["f1"]
    (1.0, 0.0)
    >>> activity = np.zeros((10, 2)); activity[2:6, 1] = 0.9
    >>> frame_segments(activity, threshold=0.5, hop_seconds=0.1)
    [(1, 0.2, 0.6, 0.9)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from apps.audioqa.sounds import SAMPLE_RATE

N_MELS = 64
HOP = 320  # 20 ms at 16 kHz
N_FFT = 1024

_MEL: dict[str, Any] = {}


def log_mel(wave: Tensor) -> Tensor:
    """Log-mel spectrogram ``(..., 64, frames)`` of a 16 kHz waveform ``(..., samples)``, in dB / 20.

    One frame per 20 ms (``samples // 320 + 1`` frames), 64 mel bands up to 8 kHz; the torchaudio transform the
    generator and the SED model share.
    """
    import torchaudio

    key = str(wave.device)
    if key not in _MEL:
        _MEL[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=2.0
        ).to(wave.device)
    power = _MEL[key](wave.to(torch.float32))
    return torch.log10(power + 1e-10) / 2.0


def _hits(reference: Sequence[Any], estimated: Sequence[Any], collar: float, length_fraction: float) -> np.ndarray:
    hit = np.zeros((len(reference), len(estimated)), dtype=bool)
    for j, (r_label, r_on, r_off) in enumerate(reference):
        for i, (e_label, e_on, e_off) in enumerate(estimated):
            offset_collar = max(collar, length_fraction * (r_off - r_on))
            hit[j, i] = r_label == e_label and abs(r_on - e_on) <= collar and abs(r_off - e_off) <= offset_collar
    return hit


def event_f1(
    references: Sequence[Sequence[tuple[str, float, float]]],
    estimates: Sequence[Sequence[tuple[str, float, float]]],
    collar: float = 0.2,
    length_fraction: float = 0.2,
) -> dict[str, float]:
    """Event-based precision, recall and F1 over many clips (micro-averaged), as ``sed_eval`` defines them.

    An estimated event is a hit on a reference event of the same label when its onset lies within ``collar``
    seconds of the reference onset and its offset within ``max(collar, length_fraction * reference length)`` of the
    reference offset (the DCASE settings by default: 200 ms, 20% of the length). Each clip's hits are matched
    one-to-one with the largest number of matches (the maximum bipartite matching of ``sed_eval``'s
    ``event_matching_type="optimal"``).

    Args:
        references, estimates: Per clip, ``(label, onset, offset)`` events in seconds.
        collar: The onset (and least offset) collar, seconds.
        length_fraction: The offset collar as a share of the reference event's length.

    Returns:
        ``{"f1", "precision", "recall", "tp", "n_ref", "n_est"}`` (F1 is 0 when there are no events at all).
    """
    from scipy.optimize import linear_sum_assignment

    if len(references) != len(estimates):
        raise ValueError(f"{len(references)} reference clips but {len(estimates)} estimated ones")
    tp = n_ref = n_est = 0
    for reference, estimated in zip(references, estimates, strict=True):
        n_ref += len(reference)
        n_est += len(estimated)
        hit = _hits(reference, estimated, collar, length_fraction)
        if hit.any():
            rows, cols = linear_sum_assignment(hit.astype(np.float64), maximize=True)
            tp += int(hit[rows, cols].sum())
    precision = tp / n_est if n_est else 0.0
    recall = tp / n_ref if n_ref else 0.0
    f1 = 2 * tp / (n_ref + n_est) if n_ref + n_est else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "n_ref": n_ref, "n_est": n_est}


def frame_segments(
    activity: np.ndarray,
    threshold: float,
    hop_seconds: float,
    median_frames: int = 3,
    min_duration: float = 0.0,
    max_gap: float = 0.0,
) -> list[tuple[int, float, float, float]]:
    """Events of frame-wise class probabilities ``(T, C)``: threshold, median filter, gap merge, minimum length.

    The classic frame-based SED decoder: a frame is active for a class when its probability reaches ``threshold``;
    the binary activity is median-filtered over ``median_frames`` frames (removing blips and holes shorter than half
    the window); runs of one class closer than ``max_gap`` seconds are joined and runs shorter than
    ``min_duration`` seconds dropped. Frame ``t`` covers ``[t, t + 1) * hop_seconds``.

    Returns:
        ``(class, onset, offset, confidence)`` per event (confidence: the mean probability over its frames), by onset.
    """
    from scipy.ndimage import median_filter

    n_classes = activity.shape[1]
    active = activity >= threshold
    if median_frames > 1:
        active = median_filter(active.astype(np.uint8), size=(median_frames, 1), mode="nearest").astype(bool)
    events: list[tuple[int, float, float, float]] = []
    for c in range(n_classes):
        edges = np.diff(np.concatenate([[0], active[:, c].astype(np.int8), [0]]))
        runs = list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))
        joined: list[list[int]] = []
        for start, stop in runs:
            if joined and (start - joined[-1][1]) * hop_seconds <= max_gap:
                joined[-1][1] = stop
            else:
                joined.append([start, stop])
        for start, stop in joined:
            if (stop - start) * hop_seconds >= min_duration:
                confidence = float(activity[start:stop, c].mean())
                events.append((c, round(start * hop_seconds, 3), round(stop * hop_seconds, 3), round(confidence, 3)))
    return sorted(events, key=lambda e: e[1])


def interval_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of 1-D intervals ``(..., 2)`` (onset, offset), elementwise.

    Example:
        >>> interval_iou(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 3.0]])).tolist()
        [0.3333333432674408]
    """
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return inter / union.clamp(min=1e-6)


def match_events(
    logits: Tensor,
    spans: Tensor,
    target_labels: Tensor,
    target_spans: Tensor,
    target_mask: Tensor,
    span_weight: float = 5.0,
    iou_weight: float = 2.0,
) -> Tensor:
    """Hungarian matching of predicted events to the targets of every clip at once (DETR's matcher, batched).

    The cost of giving target ``j`` to query ``q`` is ``-p_q(label_j) + span_weight * |span_q - span_j|_1 -
    iou_weight * IoU(span_q, span_j)``. Padded targets get cost 0 for every query, which leaves the optimal
    assignment of the real targets unchanged; they are dropped from the result.

    Args:
        logits: ``(B, Q, C + 1)`` class logits, the last class "no event".
        spans: ``(B, Q, 2)`` predicted (onset, offset), as fractions of the clip.
        target_labels: ``(B, N)`` int64 classes (any value where padded).
        target_spans: ``(B, N)`` → ``(B, N, 2)`` (onset, offset) fractions.
        target_mask: ``(B, N)`` bool, True for real targets.

    Returns:
        ``(B, N)`` int64: the query matched to each target (-1 where padded).
    """
    from core.train.functional import linear_sum_assignment

    batch, n_queries, _ = logits.shape
    n_targets = target_labels.shape[1]
    if n_targets == 0:
        return torch.zeros(batch, 0, dtype=torch.int64, device=logits.device)
    with torch.no_grad():
        prob = logits.softmax(-1)
        labels = target_labels.clamp(0, logits.shape[-1] - 2)
        class_cost = -prob.gather(2, labels[:, None, :].expand(batch, n_queries, n_targets))
        span_cost = torch.cdist(spans.float(), target_spans.float(), p=1)
        iou = interval_iou(spans[:, :, None, :], target_spans[:, None, :, :])
        cost = class_cost + span_weight * span_cost - iou_weight * iou
        cost = torch.where(target_mask[:, None, :], cost, torch.zeros_like(cost))
        rows, cols = linear_sum_assignment(cost.transpose(1, 2))  # (B, N, Q): rows are targets
    query_of_target = torch.full((batch, n_targets), -1, dtype=torch.int64, device=logits.device)
    query_of_target.scatter_(1, rows, cols)
    return torch.where(target_mask, query_of_target, torch.full_like(query_of_target, -1))


def set_loss(
    logits: Tensor,
    spans: Tensor,
    levels: Tensor,
    target_labels: Tensor,
    target_spans: Tensor,
    target_levels: Tensor,
    target_mask: Tensor,
    no_event_weight: float = 0.2,
    span_weight: float = 5.0,
    iou_weight: float = 2.0,
    level_weight: float = 1.0,
) -> dict[str, Tensor]:
    """The SED's set-prediction loss after :func:`match_events`.

    Cross-entropy of every query's class (unmatched queries: "no event", weighted ``no_event_weight``), and for
    matched queries the L1 and ``1 - IoU`` of the span and the L1 of the level.

    Returns:
        ``{"loss", "class", "span", "iou", "level"}``.

    Example:
        >>> logits = torch.tensor([[[4.0, -4.0, -4.0], [-4.0, -4.0, 4.0]]])  # query 0: class 0; query 1: no event
        >>> spans = torch.tensor([[[0.1, 0.3], [0.5, 0.6]]])
        >>> out = set_loss(logits, spans, torch.zeros(1, 2), torch.tensor([[0]]), torch.tensor([[[0.1, 0.3]]]),
        ...                torch.zeros(1, 1), torch.tensor([[True]]))
        >>> round(float(out["span"]), 4), round(float(out["iou"]), 4), float(out["class"]) < 0.01
        (0.0, 0.0, True)
    """
    batch, n_queries, n_logits = logits.shape
    no_event = n_logits - 1
    matched = match_events(logits, spans, target_labels, target_spans, target_mask, span_weight, iou_weight)
    classes = torch.full((batch, n_queries), no_event, dtype=torch.int64, device=logits.device)
    b_index, t_index = torch.nonzero(matched >= 0, as_tuple=True)
    q_index = matched[b_index, t_index]
    classes[b_index, q_index] = target_labels[b_index, t_index]
    weight = torch.ones(n_logits, device=logits.device)
    weight[no_event] = no_event_weight
    class_loss = F.cross_entropy(logits.reshape(-1, n_logits), classes.reshape(-1), weight=weight)
    if b_index.numel():
        predicted, target = spans[b_index, q_index], target_spans[b_index, t_index]
        span_loss = F.l1_loss(predicted, target)
        iou_loss = (1 - interval_iou(predicted, target)).mean()
        level_loss = F.l1_loss(levels[b_index, q_index], target_levels[b_index, t_index])
    else:
        span_loss = iou_loss = level_loss = spans.sum() * 0.0
    loss = class_loss + span_weight * span_loss + iou_weight * iou_loss + level_weight * level_loss
    return {"loss": loss, "class": class_loss, "span": span_loss, "iou": iou_loss, "level": level_loss}


__all__ = ["event_f1", "frame_segments", "interval_iou", "log_mel", "match_events", "set_loss"]
