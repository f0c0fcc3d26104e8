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
    moved, jacobian, unexplained = probe_model(predicted, residuals, probes, bounds)
    if not moved:
        return dict(predicted)
    noise = max(float(unexplained @ unexplained) / max(1, r0.size - len(moved)), 1e-12)
    prior = np.array([max(float(std[j]) / widths[j], STD_MIN_SHARE) for j in moved])
    precision = jacobian.T @ jacobian / noise + np.diag(1.0 / prior**2)
    step = np.linalg.solve(precision, -jacobian.T @ r0 / noise)
    out = dict(predicted)
    for j, move in zip(moved, np.clip(step, -max_share, max_share), strict=True):
        low, high = bounds[j]
        out[names[j]] = round(min(max(predicted[names[j]] + float(move * widths[j]), low), high), 12)
    return out


def probe_model(
    predicted: dict[str, float],
    residuals: Sequence[float],
    probes: Sequence[tuple[Mapping[str, float], Sequence[float]]],
    bounds: Sequence[tuple[float, float]],
) -> tuple[list[int], Any, Any]:
    """The linear model of the residuals that :func:`gauss_newton_point` steps on: the indices of the parameters
    some probe moved, the Jacobian (cells × those parameters, in shares of each range, least squares over the
    probes) and what the model leaves unexplained at its own least-squares minimum (the noise estimate's cells).
    No parameter moved: ``([], None, None)``."""
    import numpy as np

    names = list(predicted)
    widths = np.array([high - low for low, high in bounds], dtype=float)
    r0 = np.asarray(residuals, dtype=float)
    moved = [j for j in range(len(names)) if any(p[names[j]] != predicted[names[j]] for p, _ in probes)]
    if not probes or not moved:
        return [], None, None
    dz = np.array([[(p[names[j]] - predicted[names[j]]) / widths[j] for j in moved] for p, _ in probes])
    dr = np.array([np.asarray(values, dtype=float) - r0 for _, values in probes])
    if dr.shape[1] != r0.size:
        raise ValueError("the probes' residuals differ in length from the prediction's")
    jacobian = np.linalg.lstsq(dz, dr, rcond=None)[0].T  # cells × moved parameters
    unexplained = r0 + jacobian @ np.linalg.lstsq(jacobian, -r0, rcond=None)[0]  # at the least-squares minimum
    return moved, jacobian, unexplained


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


# -- a Jacobian learned offline, and the pooled step ----------------------------------------------------------
#
# ``evaluate.refine_method: pooled`` spends the refine runs otherwise again: no probes. The Jacobian of the
# residuals comes from the training scenarios (:func:`fit_jacobian`): a model J = F W, with F features per residual
# cell that the application derives from a scenario's observations (traffic: each cell's observed value and its
# scale, per kind of observation) and W fitted once to offline runs around the training scenarios' targets. Online,
# every run (each on a seed of its own: its noise independent of the others') gives the residuals' intercept
# a = r − J z; their mean is the pooled intercept, and the next point is where a + J z is least, held toward the
# prediction (:func:`pooled_point`). The result is the point the pooled model puts after the last run.


def fit_jacobian(samples: Sequence[tuple[Any, Any, Any]]) -> Any:
    """W (features × parameters) of the Jacobian model J = F W, by least squares over offline runs.

    Each sample is one training scenario's (F: cells × features, Z: runs × parameters in shares of each range,
    R: runs × cells of residuals). Per scenario the runs are centred (Z − its mean, R − its mean), so what the
    scenario's residuals are at its target does not enter: only how they move with θ. A scenario with fewer than
    2 runs is skipped; with none left the result is None.

    >>> import numpy as np
    >>> F = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> W = np.array([[0.5, -1.0], [0.0, 0.3]])
    >>> Z = np.array([[0.1, 0.2], [0.4, 0.1], [0.3, 0.6]])
    >>> (np.round(fit_jacobian([(F, Z, Z @ (F @ W).T + 0.7)]), 6) + 0.0).tolist()
    [[0.5, -1.0], [0.0, 0.3]]
    """
    import numpy as np

    rows, targets = [], []
    for features, z, r in samples:
        f, zz, rr = (np.asarray(v, dtype=float) for v in (features, z, r))
        if len(zz) < 2:
            continue
        zc, rc = zz - zz.mean(axis=0), rr - rr.mean(axis=0)
        for dz, dr in zip(zc, rc, strict=True):  # r_c = Σ_p dz_p Σ_q F_cq W_qp: the row of W's p-major entries
            rows.append(np.einsum("p,cq->cpq", dz, f).reshape(len(f), -1))
            targets.append(dr)
    if not rows:
        return None
    weights, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(targets), rcond=None)
    p = np.asarray(samples[0][1], dtype=float).shape[1]
    return weights.reshape(p, -1).T


def offline_points(
    target: Mapping[str, float], bounds: Sequence[tuple[float, float]], n: int, spread: float, seed: Sequence[int]
) -> list[dict[str, float]]:
    """``n`` points around a training scenario's ``target`` for :func:`fit_jacobian`: each parameter drawn normal
    with standard deviation ``spread`` of its range (random generator seeded by ``seed``), kept in its bounds.

    >>> points = offline_points({"a": 0.5}, [(0.0, 1.0)], 3, 0.2, [0, 1])
    >>> len(points), all(0.0 <= p["a"] <= 1.0 for p in points)
    (3, True)
    """
    import numpy as np

    rng = np.random.default_rng(list(seed))
    names = list(target)
    out = []
    for _ in range(n):
        moves = rng.normal(0.0, spread, len(names))
        out.append({m: round(float(min(max(target[m] + d * (hi - lo), lo), hi)), 12)
                    for m, d, (lo, hi) in zip(names, moves, bounds, strict=True)})  # fmt: skip
    return out


def pooled_point(
    runs: Sequence[tuple[Sequence[float], Sequence[float]]],
    jacobian: Any,
    start: Sequence[float],
    share: float,
    cap: float = STEP_MAX_SHARE,
    around: Sequence[float] | None = None,
) -> list[float]:
    """The next point, in shares z of each range, from every run so far (z, residuals) and the Jacobian J.

    The pooled intercept a is the mean over runs of r − J z; the noise variance σ² per cell is what a + J z leaves
    at its least-squares minimum; with the prior z ~ N(start, share²) the point is the posterior mean
    (K JᵀJ / σ² + I / share²)⁻¹ (−K Jᵀ a / σ² + start / share²) for K runs, moved at most ``cap`` from
    ``around`` (default: the last run) and kept in [0, 1].

    >>> import numpy as np
    >>> J = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> def r(z): return J @ (np.asarray(z) - [0.3, 0.6])
    >>> [round(v, 3) for v in pooled_point([([0.5, 0.5], r([0.5, 0.5]))], J, [0.5, 0.5], share=1.0, cap=0.5)]
    [0.3, 0.6]
    """
    import numpy as np

    j = np.asarray(jacobian, dtype=float)
    z = np.array([np.asarray(p, dtype=float) for p, _ in runs])
    a = np.mean([np.asarray(r, dtype=float) - j @ p for p, r in zip(z, (r for _, r in runs), strict=True)], axis=0)
    unexplained = a + j @ np.linalg.lstsq(j, -a, rcond=None)[0]
    noise = max(float(unexplained @ unexplained) / max(1, len(a) - j.shape[1]), 1e-12)
    k, origin = len(z), np.asarray(start, dtype=float)
    precision = k * j.T @ j / noise + np.eye(j.shape[1]) / share**2
    point = np.linalg.solve(precision, -k * j.T @ a / noise + origin / share**2)
    centre = z[-1] if around is None else np.asarray(around, dtype=float)
    point = np.clip(np.clip(point, centre - cap, centre + cap), 0.0, 1.0)
    return [round(float(v), 12) for v in point]


def pooled_search(
    evaluate: Callable[[dict[str, float], int], tuple[float, Sequence[float] | None]],
    start: dict[str, float],
    bounds: Sequence[tuple[float, float]],
    budget: int,
    jacobian: Any,
    share: float,
    cap: float = STEP_MAX_SHARE,
    guard: float | None = None,
) -> tuple[list[Run], dict[str, float]]:
    """``budget`` runs from ``start``: run k (``evaluate(point, k)``, k = 0 the check run) at the point
    :func:`pooled_point` puts from runs 0 … k − 1; returns the runs and the point the pooled model puts after all
    of them (the result: never run itself). A failed run (residuals None) adds nothing; if every run failed the
    result is ``start``.

    With ``guard`` g, a run whose loss exceeds g × the lowest loss of the runs pooled before it is taken as a
    sign that the linear model does not hold that far out: it is left out of the pool, and from then on every
    point (the result too) stays within half its distance (largest share of a range) from the pooled run with the
    lowest loss. (Not a config option: on fresh training members of congested networks it changed nothing; the
    benchmark's guard experiment keeps it, apps/traffic/EXPERIMENTS.md.)

    >>> import numpy as np
    >>> J = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> def evaluate(p, k):
    ...     r = J @ (np.array([p["a"], p["b"]]) - [0.3, 0.6]) + (0.01 if k % 2 else -0.01)
    ...     return float(r @ r), r.tolist()
    >>> runs, point = pooled_search(evaluate, {"a": 0.5, "b": 0.5}, [(0.0, 1.0)] * 2, 4, J, share=1.0)
    >>> len(runs), {k: round(v, 2) for k, v in point.items()}
    (4, {'a': 0.3, 'b': 0.6})
    """
    names = list(start)
    lows = [low for low, _ in bounds]
    widths = [high - low for low, high in bounds]

    def share_of(point: Mapping[str, float]) -> list[float]:
        return [(point[n] - lo) / w if w > 0 else 0.0 for n, lo, w in zip(names, lows, widths, strict=True)]

    def theta(z: Sequence[float]) -> dict[str, float]:
        return {n: round(lo + v * w, 12) for n, lo, w, v in zip(names, lows, widths, z, strict=True)}

    origin = share_of(start)
    runs: list[Run] = []
    usable: list[tuple[Sequence[float], Sequence[float]]] = []
    best: tuple[float, list[float]] | None = None  # the lowest loss pooled so far and its point
    reach, around = cap, None  # the largest move and where from (None: the last run)
    point = dict(start)
    for k in range(budget):
        loss, residuals = evaluate(point, k)
        ok = residuals is not None and math.isfinite(loss)
        runs.append((point, float(loss) if ok else math.inf, list(residuals) if ok and residuals else None))
        if ok and residuals:
            z = share_of(point)
            if guard is not None and best is not None and loss > guard * best[0]:
                reach = min(reach, max(abs(a - b) for a, b in zip(z, best[1], strict=True))) / 2
                around = best[1]
            else:
                usable.append((z, residuals))
                if best is None or loss < best[0]:
                    best = (float(loss), z)
                if around is not None:
                    around = best[1]
        if usable:
            point = theta(pooled_point(usable, jacobian, origin, share, reach, around))
    return runs, point if usable else dict(start)
