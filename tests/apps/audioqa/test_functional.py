"""The event F1 against hand-computed cases and sed_eval; the Hungarian matching and the set loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from apps.audioqa.evaluate import sed_eval_f1
from apps.audioqa.functional import event_f1, frame_segments, interval_iou, match_events, set_loss


@pytest.mark.parametrize(
    ("reference", "estimated", "tp"),
    [
        ([("beep", 1.0, 2.0)], [("beep", 1.2, 2.19)], 1),  # onset at the 200 ms collar, offset just inside it
        ([("beep", 1.0, 2.0)], [("beep", 1.21, 2.0)], 0),  # onset just outside
        ([("beep", 1.0, 2.0)], [("bell", 1.0, 2.0)], 0),  # wrong class
        ([("beep", 1.0, 5.0)], [("beep", 1.1, 5.75)], 1),  # offset within 20% of the 4 s length (0.8 s)
        ([("beep", 1.0, 5.0)], [("beep", 1.1, 5.85)], 0),  # ... and beyond it
        ([("beep", 1.0, 1.5)], [("beep", 1.0, 1.69)], 1),  # a short event: the offset collar is still 200 ms
        ([("beep", 1.0, 2.0)], [("beep", 1.0, 2.0), ("beep", 1.05, 2.0)], 1),  # a duplicate is a false positive
        # greedy would give the first estimate to the first reference and leave the second unmatched
        ([("bell", 1.0, 2.0), ("bell", 1.3, 2.3)], [("bell", 1.15, 2.15), ("bell", 0.85, 1.85)], 2),
    ],
)
def test_event_f1_on_hand_computed_cases(reference: list, estimated: list, tp: int) -> None:  # type: ignore[type-arg]
    scores = event_f1([reference], [estimated])
    assert scores["tp"] == tp
    assert scores["f1"] == pytest.approx(2 * tp / (len(reference) + len(estimated)))
    if tp:
        assert sed_eval_f1([reference], [estimated])["f1"] == pytest.approx(scores["f1"])


def test_event_f1_agrees_with_sed_eval_on_random_clips() -> None:
    rng = np.random.default_rng(0)
    labels = ["beep", "bell", "siren"]
    references, estimates = [], []
    for _ in range(60):
        ref = []
        for _ in range(rng.integers(0, 5)):
            on = float(rng.uniform(0, 9))
            ref.append((labels[rng.integers(3)], round(on, 3), round(on + float(rng.uniform(0.3, 2)), 3)))
        est = [(lab if rng.random() < 0.8 else labels[rng.integers(3)], round(on + float(rng.normal(0, 0.15)), 3),
                round(off + float(rng.normal(0, 0.25)), 3)) for lab, on, off in ref if rng.random() < 0.85]  # fmt: skip
        est += [(labels[rng.integers(3)], 5.0, 6.0)] * int(rng.random() < 0.2)
        references.append(ref)
        estimates.append(est)
    ours = event_f1(references, estimates)
    assert 0.3 < ours["f1"] < 0.95  # a mix of hits and misses, so the comparison means something
    assert sed_eval_f1(references, estimates)["f1"] == pytest.approx(ours["f1"], abs=1e-12)


def _cost(logits: torch.Tensor, spans: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = logits.softmax(-1)
    q, n = spans.shape[0], target.shape[0]
    cost = torch.zeros(n, q)
    for j, i in itertools.product(range(n), range(q)):
        iou = interval_iou(spans[i], target[j])
        cost[j, i] = -prob[i, labels[j]] + 5.0 * (spans[i] - target[j]).abs().sum() - 2.0 * iou
    return cost


def test_matching_is_the_optimal_assignment_of_each_clip() -> None:
    from scipy.optimize import linear_sum_assignment

    g = torch.Generator().manual_seed(0)
    batch, queries, n_max, classes = 16, 6, 4, 5
    logits = torch.randn(batch, queries, classes + 1, generator=g)
    spans = torch.rand(batch, queries, 2, generator=g).sort(-1).values
    labels = torch.randint(0, classes, (batch, n_max), generator=g)
    target = torch.rand(batch, n_max, 2, generator=g).sort(-1).values
    mask = torch.arange(n_max)[None, :] < torch.randint(0, n_max + 1, (batch, 1), generator=g)
    matched = match_events(logits, spans, labels, target, mask)
    for b in range(batch):
        n = int(mask[b].sum())
        assert (matched[b, n:] == -1).all()
        if n == 0:
            continue
        cost = _cost(logits[b], spans[b], labels[b, :n], target[b, :n])
        rows, cols = linear_sum_assignment(cost.numpy())
        ours = matched[b, :n]
        assert len(set(ours.tolist())) == n
        assert float(cost[torch.arange(n), ours].sum()) == pytest.approx(float(cost[rows, cols].sum()), abs=1e-5)


def test_set_loss_is_the_dense_formula() -> None:
    logits = torch.tensor([[[2.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]])  # 2 classes + no event
    spans = torch.tensor([[[0.1, 0.3], [0.5, 0.7], [0.2, 0.9]]])
    levels = torch.tensor([[0.5, -1.0, 0.0]])
    labels, target = torch.tensor([[1, 0]]), torch.tensor([[[0.55, 0.75], [0.1, 0.25]]])
    out = set_loss(logits, spans, levels, labels, target, torch.tensor([[0.0, 1.0]]), torch.tensor([[True, True]]))
    # target 0 (class 1, 0.55–0.75) ↔ query 1; target 1 (class 0, 0.1–0.25) ↔ query 0; query 2: no event
    weights = torch.tensor([1.0, 1.0, 0.2])
    nll = -logits[0].log_softmax(-1)[torch.arange(3), torch.tensor([0, 1, 2])]
    assert float(out["class"]) == pytest.approx(float((weights * nll).sum() / weights.sum()))
    l1 = ((spans[0, 1] - target[0, 0]).abs().sum() + (spans[0, 0] - target[0, 1]).abs().sum()) / 4
    assert float(out["span"]) == pytest.approx(float(l1))
    iou = (interval_iou(spans[0, 1], target[0, 0]) + interval_iou(spans[0, 0], target[0, 1])) / 2
    assert float(out["iou"]) == pytest.approx(float(1 - iou))
    assert float(out["level"]) == pytest.approx((abs(-1.0 - 0.0) + abs(0.5 - 1.0)) / 2)
    total = out["class"] + 5 * out["span"] + 2 * out["iou"] + out["level"]
    assert float(out["loss"]) == pytest.approx(float(total))


def test_frame_segments_threshold_median_gap_and_length() -> None:
    activity = np.zeros((20, 2))
    activity[2:8, 0] = 0.9
    activity[4, 0] = 0.2  # a one-frame hole: the 3-frame median fills it
    activity[12, 0] = 0.8  # a one-frame blip: removed
    activity[10:13, 1] = 0.7
    activity[14:17, 1] = 0.6  # one frame (0.1 s) after the class-1 run before it: joined with max_gap 0.1
    events = frame_segments(activity, threshold=0.5, hop_seconds=0.1, median_frames=3, max_gap=0.1)
    assert [(c, on, off) for c, on, off, _ in events] == [(0, 0.2, 0.8), (1, 1.0, 1.7)]
    assert events[0][3] == pytest.approx(float(activity[2:8, 0].mean()), abs=1e-3)
    # without the median filter the hole splits the first event and the blip is an event
    raw = frame_segments(activity, threshold=0.5, hop_seconds=0.1, median_frames=1)
    assert [(c, on, off) for c, on, off, _ in raw] == [(0, 0.2, 0.4), (0, 0.5, 0.8), (1, 1.0, 1.3), (0, 1.2, 1.3),
                                                       (1, 1.4, 1.7)]  # fmt: skip
    # a least length drops the short ones
    kept = frame_segments(activity, threshold=0.5, hop_seconds=0.1, median_frames=1, min_duration=0.25)
    assert [(c, on, off) for c, on, off, _ in kept] == [(0, 0.5, 0.8), (1, 1.0, 1.3), (1, 1.4, 1.7)]


def test_decoders_queries_refined_frames() -> None:
    from apps.audioqa.sed import Decoder, decode_events
    from apps.audioqa.sounds import CLASSES

    n_classes, n_frames = len(CLASSES), 100  # 0.1 s frames over 10 s
    logits = torch.full((1, 3, n_classes + 1), -5.0)
    logits[0, 0, 2] = 5.0  # query 0: class 2 at 1.1–2.3 s (the frames say 1.0–2.0)
    logits[0, 1, 2] = 4.0  # query 1: a duplicate of query 0, less confident
    logits[0, 2, -1] = 5.0  # query 2: no event
    spans = torch.tensor([[[0.11, 0.23], [0.105, 0.225], [0.5, 0.6]]])
    frame_logits = torch.full((1, n_frames, n_classes), -5.0)
    frame_logits[0, 10:20, 2] = 5.0
    frame_logits[0, 50:60, 4] = 5.0  # an event of class 4 that no query found
    out = {"logits": logits, "spans": spans, "levels": torch.zeros(1, 3), "frame_logits": frame_logits}

    def spans_of(decoder: Decoder) -> list[tuple[str, float, float]]:
        return [(e.label, e.onset, e.offset) for e in decode_events(out, decoder)[0]]

    assert spans_of(Decoder("queries")) == [(CLASSES[2], 1.1, 2.3)]  # the duplicate dropped
    assert spans_of(Decoder("refined")) == [(CLASSES[2], 1.0, 2.0)]
    assert spans_of(Decoder("frames")) == [(CLASSES[2], 1.0, 2.0), (CLASSES[4], 5.0, 6.0)]
