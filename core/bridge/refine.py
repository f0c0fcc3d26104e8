"""Refine runs after the bridge's check run: how many to spend, and where.

The refine step spends at most ``evaluate.refine`` more expensive runs around the prediction θ̂ = h(ξ̂), one
pattern step ± a step per parameter, and keeps the best of the check run and them. ``evaluate.refine_order``
says which parameters get the runs first:

- ``uncertainty``: the largest standard deviation of the prediction as a share of the parameter's range;
- ``curvature``: the largest expected loss reduction, curvature × (step as a share of the range)², with the
  curvature of the loss per parameter taken from the training scenarios' expensive studies
  (:func:`loss_curvature`). A parameter the prediction is unsure of but the loss hardly reacts to comes last.

``evaluate.refine_method: gauss_newton`` spends the runs otherwise: one probe per parameter (:func:`probe_points`),
then one run where a Gauss–Newton step puts the minimum (:func:`gauss_newton_point`). It needs an expensive
objective that reports its loss cell by cell as the user attribute ``residuals``.

Example:
    >>> refine_points({"a": 0.5, "b": 0.5}, [0.1, 0.2], [(0.0, 1.0), (0.0, 1.0)], 2, curvature=[1.0, 0.1])
    [{'a': 0.6, 'b': 0.5}, {'a': 0.4, 'b': 0.5}]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

CURVATURE_FLOOR = 1e-3  # loss per squared range: a flat or concave fit still ranks, last
PROBE_MIN_SHARE = 0.1  # a probe moves a parameter by at least 10% of its range: smaller steps drown in seed noise
STEP_MAX_SHARE = 0.25  # a step (pattern, probe, Gauss–Newton) moves a parameter by at most 25% of its range
STD_MIN_SHARE = 0.02  # the prior's standard deviation is at least 2% of a range


def refine_budget(std: Sequence[float], ranges: Sequence[float], most: int, full_at: float) -> int:
    """How many refine runs to spend: ``most`` × (the prediction's largest standard deviation as a share of its
    parameter's range) / ``full_at``, rounded up, between 1 and ``most`` (0 when ``most`` is 0).

    >>> refine_budget([0.01, 0.02], [1.0, 1.0], most=4, full_at=0.08)
    1
    >>> refine_budget([0.01, 0.2], [1.0, 1.0], most=4, full_at=0.08)
    4
    """
    if most <= 0:
        return 0
    share = max((s / r for s, r in zip(std, ranges, strict=True) if r > 0), default=math.inf)
    if not math.isfinite(share):
        return most
    return max(1, min(most, math.ceil(most * share / full_at - 1e-9)))


def ranked_steps(
    std: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    curvature: Sequence[float] | None,
    low_share: float,
    max_share: float = STEP_MAX_SHARE,
) -> tuple[list[float], list[int]]:
    """Each parameter's step, its standard deviation kept between ``low_share`` and ``max_share`` (25%) of its
    range, and the parameters' order by curvature × (step / range)², the expected loss reduction of the step,
    largest first (``curvature`` None: 1 for all, i.e. the least certain parameter first).

    >>> ranked_steps([0.05, 0.2], [(0.0, 1.0), (0.0, 1.0)], None, low_share=0.1)
    ([0.1, 0.2], [1, 0])
    """
    widths = [high - low for low, high in bounds]
    weights = list(curvature) if curvature is not None else [1.0] * len(widths)
    steps = [min(max(float(s), low_share * w), max_share * w) for s, w in zip(std, widths, strict=True)]
    gain = [c * (s / w) ** 2 if w > 0 else 0.0 for c, s, w in zip(weights, steps, widths, strict=True)]
    return steps, sorted(range(len(widths)), key=lambda j: -gain[j])


def refine_points(
    predicted: dict[str, float],
    std: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    k: int,
    curvature: Sequence[float] | None = None,
) -> list[dict[str, float]]:
    """``k`` points around the prediction: one step of a pattern search, ± one standard deviation (kept between
    2% and 25% of the range) per parameter, inside the bounds. The parameters come in the order of
    curvature × (step / range)², the expected loss reduction of the step (``curvature`` None: 1 for all, i.e.
    the least certain parameter first).

    >>> refine_points({"a": 0.5, "b": 0.5}, [0.05, 0.2], [(0.0, 1.0), (0.0, 1.0)], 3)
    [{'a': 0.5, 'b': 0.7}, {'a': 0.5, 'b': 0.3}, {'a': 0.55, 'b': 0.5}]
    """
    names = list(predicted)
    steps, order = ranked_steps(std, bounds, curvature, low_share=0.02)
    points: list[dict[str, float]] = []
    for j in order:
        for sign in (1.0, -1.0):
            low, high = bounds[j]
            value = round(min(max(predicted[names[j]] + sign * steps[j], low), high), 12)
            point = {**predicted, names[j]: value}
            if len(points) < k and point != predicted and point not in points:
                points.append(point)
    while len(points) < k:  # more runs than pattern points: a second ring at twice the step
        j = order[(len(points) - 2 * len(names)) // 2 % len(names)]
        sign = 1.0 if len(points) % 2 == 0 else -1.0
        low, high = bounds[j]
        value = min(max(predicted[names[j]] + 2 * sign * steps[j], low), high)
        points.append({**predicted, names[j]: round(value, 12)})
    return points


def loss_curvature(
    studies: Sequence[Sequence[tuple[float, Mapping[str, Any]]]], bounds: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """The loss's curvature per parameter, in loss per squared share of its range: for each study (its finished
    trials as (value, params)) a least-squares fit value ≈ a + Σ b_i z_i + Σ c_i z_i² with z_i the parameter as a
    share of its range, then the median c_i over the studies, floored at a small positive number. A study with
    too few trials for the fit is skipped; with none left every curvature is 1 (no preference).

    >>> trials = [(4 * (x - 0.5) ** 2 + 0.1 * (y - 0.5) ** 2, {"x": x, "y": y})
    ...           for x in (0.0, 0.3, 0.6, 1.0) for y in (0.0, 0.5, 1.0)]
    >>> {k: round(v, 3) for k, v in loss_curvature([trials], {"x": (0.0, 1.0), "y": (0.0, 1.0)}).items()}
    {'x': 4.0, 'y': 0.1}
    """
    import numpy as np

    names = [n for n, (low, high) in bounds.items() if high > low]
    fitted = []
    for trials in studies:
        usable = [
            (v, p) for v, p in trials if math.isfinite(v) and all(isinstance(p.get(n), int | float) for n in names)
        ]
        if len(usable) < 2 * len(names) + 2:
            continue
        z = np.array([[(p[n] - bounds[n][0]) / (bounds[n][1] - bounds[n][0]) - 0.5 for n in names] for _, p in usable])
        y = np.array([v for v, _ in usable])
        coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(z)), z, z**2]), y, rcond=None)
        fitted.append(coef[1 + len(names) :])
    if not fitted:
        return dict.fromkeys(bounds, 1.0)
    median = np.median(np.array(fitted), axis=0)
    out = dict.fromkeys(bounds, CURVATURE_FLOOR)
    out.update({n: max(float(c), CURVATURE_FLOOR) for n, c in zip(names, median, strict=True)})
    return out


def probe_points(
    predicted: dict[str, float],
    std: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    k: int,
    curvature: Sequence[float] | None = None,
    max_share: float = STEP_MAX_SHARE,
) -> list[dict[str, float]]:
    """One probe per parameter, for a finite-difference Jacobian: the prediction with one parameter moved by its
    standard deviation (between 10% and ``max_share``, 25%, of its range) toward the middle of its range, for the
    ``k`` parameters with the largest curvature × (step / range)² (all when ``k`` is at least their number).

    >>> probe_points({"a": 0.7, "b": 0.2}, [0.05, 0.2], [(0.0, 1.0), (0.0, 1.0)], 2)
    [{'a': 0.7, 'b': 0.4}, {'a': 0.6, 'b': 0.2}]
    """
    names = list(predicted)
    steps, order = ranked_steps(std, bounds, curvature, low_share=PROBE_MIN_SHARE, max_share=max_share)
    points = []
    for j in [j for j in order if bounds[j][1] > bounds[j][0]][: max(0, k)]:
        low, high = bounds[j]
        sign = 1.0 if predicted[names[j]] <= (low + high) / 2 else -1.0
        value = min(max(predicted[names[j]] + sign * steps[j], low), high)
        points.append({**predicted, names[j]: round(value, 12)})
    return points


def gauss_newton_point(
    predicted: dict[str, float],
    residuals: Sequence[float],
    probes: Sequence[tuple[Mapping[str, float], Sequence[float]]],
    std: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    max_share: float = STEP_MAX_SHARE,
) -> dict[str, float]:
    """Where the loss's linearisation from the probes puts its minimum, held toward the prediction by its
    uncertainty: a Gauss–Newton step with a Gaussian prior (the maximum a posteriori of a linear model).

    ``residuals`` is the loss cell by cell at the prediction, ``probes`` (point, its residuals) the runs around it.
    In shares z of each range: the Jacobian J of the residuals from the probes (least squares), the noise
    variance σ² per cell from what the linear model leaves unexplained at its own minimum, the prior
    z ~ N(0, (std / range)²) (std at least 2% of the range); then
    Δz = −(JᵀJ / σ² + diag(range² / std²))⁻¹ Jᵀ r / σ², each move at most ``max_share`` (25%) of the range,
    inside the bounds.
    Parameters no probe moved stay at the prediction.

    >>> def r(a, b):  # residuals of a loss whose minimum is at a = 0.3, b = 0.6
    ...     return [10 * (a - 0.3), 10 * (b - 0.6), 0.01, -0.01]
    >>> start = {"a": 0.4, "b": 0.5}
    >>> probes = [({"a": 0.5, "b": 0.5}, r(0.5, 0.5)), ({"a": 0.4, "b": 0.6}, r(0.4, 0.6))]
    >>> point = gauss_newton_point(start, r(0.4, 0.5), probes, [0.2, 0.2], [(0.0, 1.0), (0.0, 1.0)])
    >>> {k: round(v, 3) for k, v in point.items()}
    {'a': 0.3, 'b': 0.6}
    """
    import numpy as np

    names = list(predicted)
    widths = np.array([high - low for low, high in bounds], dtype=float)
    r0 = np.asarray(residuals, dtype=float)
    moved = [j for j in range(len(names)) if any(p[names[j]] != predicted[names[j]] for p, _ in probes)]
    if not probes or not moved:
        return dict(predicted)
    dz = np.array([[(p[names[j]] - predicted[names[j]]) / widths[j] for j in moved] for p, _ in probes])
    dr = np.array([np.asarray(values, dtype=float) - r0 for _, values in probes])
    if dr.shape[1] != r0.size:
        raise ValueError("the probes' residuals differ in length from the prediction's")
    jacobian = np.linalg.lstsq(dz, dr, rcond=None)[0].T  # cells × moved parameters
    unexplained = r0 + jacobian @ np.linalg.lstsq(jacobian, -r0, rcond=None)[0]  # at the least-squares minimum
    noise = max(float(unexplained @ unexplained) / max(1, r0.size - len(moved)), 1e-12)
    prior = np.array([max(float(std[j]) / widths[j], STD_MIN_SHARE) for j in moved])
    precision = jacobian.T @ jacobian / noise + np.diag(1.0 / prior**2)
    step = np.linalg.solve(precision, -jacobian.T @ r0 / noise)
    out = dict(predicted)
    for j, move in zip(moved, np.clip(step, -max_share, max_share), strict=True):
        low, high = bounds[j]
        out[names[j]] = round(min(max(predicted[names[j]] + float(move * widths[j]), low), high), 12)
    return out


Run = tuple[dict[str, float], float, list[float] | None]  # (θ, loss, residuals); a failed run: (θ, inf, None)


def gauss_newton_search(
    evaluate: Callable[[list[dict[str, float]]], list[tuple[float, Sequence[float] | None]]],
    start: dict[str, float],
    bounds: Sequence[tuple[float, float]],
    budget: int,
    std: Sequence[float] | None = None,
    shrink: float = 0.5,
    max_share: float = STEP_MAX_SHARE,
) -> list[Run]:
    """Calibrate from ``start`` with at most ``budget`` runs by rounds of Gauss–Newton: each round runs one
    probe per parameter around the best run so far (:func:`probe_points`, its step ``std``: default 25% of each
    range, times ``shrink`` after every round, never below 10% of a range), then the Gauss–Newton step from the
    best run's and the probes' residuals (:func:`gauss_newton_point`, ``std`` as its prior). When fewer runs are
    left than a round needs, each is a step from the best run with every run so far as a probe.
    ``evaluate(points)`` runs a batch (in parallel if it can) and returns (loss, residuals) per point, residuals
    None for a failed run. ``max_share`` caps every probe and step as a share of a range (25%).
    Returns every run in order; a point already run is never run again.

    >>> def evaluate(points):  # a loss whose minimum is at a = 0.3, b = 0.6
    ...     return [(float((10 * (p["a"] - 0.3)) ** 2 + (10 * (p["b"] - 0.6)) ** 2),
    ...              [10 * (p["a"] - 0.3), 10 * (p["b"] - 0.6)]) for p in points]
    >>> runs = gauss_newton_search(evaluate, {"a": 0.5, "b": 0.5}, [(0.0, 1.0), (0.0, 1.0)], budget=6)
    >>> len(runs), round(min(loss for _, loss, _ in runs), 6)
    (4, 0.0)
    """
    widths = [high - low for low, high in bounds]
    step = list(std) if std is not None else [max_share * w for w in widths]
    runs: list[Run] = []

    def spend(points: list[dict[str, float]]) -> int:
        new = [p for i, p in enumerate(points) if p not in points[:i] and all(p != r[0] for r in runs)]
        new = new[: max(0, budget - len(runs))]
        for point, (loss, residuals) in zip(new, evaluate(new) if new else [], strict=True):
            ok = residuals is not None and math.isfinite(loss)
            runs.append((point, float(loss) if ok else math.inf, list(residuals) if ok and residuals else None))
        return len(new)

    spend([dict(start)])
    stalled = 0
    while len(runs) < budget and stalled < 3:
        usable = [r for r in runs if r[2] is not None]
        if not usable:
            break  # nothing to linearise: the start failed
        best, _, residuals = min(usable, key=lambda r: r[1])
        assert residuals is not None
        left = budget - len(runs)
        others = [(p, r) for p, _, r in runs if r is not None and p != best]
        if left > len(best) or not others:  # a round: probes, then the step from them
            probes = probe_points(best, step, bounds, min(len(best), left), max_share=max_share)
            made = spend(probes)
            around = [(p, r) for p, _, r in runs if r is not None and p in probes]
            made += spend([gauss_newton_point(best, residuals, around, step, bounds, max_share)])
            step = [s * shrink for s in step]
        else:  # too few runs left for a round: a step from the best run, every other run a probe
            made = spend([gauss_newton_point(best, residuals, others, step, bounds, max_share)])
        stalled = 0 if made else stalled + 1
    return runs
