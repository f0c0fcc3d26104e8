"""Serial runs agree point for point with scipy's Nelder–Mead (the independent reference).

scipy's ``_minimize_neldermead`` and our planner use the same formulas, the same order of checks (expand if f_r <
f_best, accept if f_r < f_second_worst, outside contraction if f_r < f_worst, else inside), the same acceptance
rules (outside: f_c <= f_r; inside: f_cc < f_worst) and the same shrink towards the best vertex, so the sequence of
evaluated points is identical bit for bit. The box is [0, 1] per parameter so that the parameter mapping is the
identity. Documented difference: with ``bounds_handling="reject"`` a point outside the box is scored +inf without an
evaluation; scipy (without bounds) evaluates it, so the reference is scipy minimizing a function that is +inf
outside the box, with its out-of-box calls removed. Second documented difference: vertices with equal values are
ordered by a stable sort here (so every machine replays a study the same way), while scipy's ``np.argsort`` may
order ties either way; the cases below have no ties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pytest
import scipy.optimize
from optuna.distributions import FloatDistribution

from core.hpo.samplers import NelderMeadCoefficients, NelderMeadSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def rosenbrock(lo: float, hi: float) -> Callable[[np.ndarray], float]:
    def f(u: np.ndarray) -> float:
        x = lo + (hi - lo) * np.asarray(u)
        return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))

    return f


def quadratic(u: np.ndarray) -> float:
    u = np.asarray(u)
    weights = np.arange(1, u.size + 1, dtype=float)
    return float(np.sum(weights * (u - 0.3) ** 2) + 0.5 * u[0] * u[-1])


def scipy_points(f, simplex, n, bounds_handling, adaptive=False):  # type: ignore[no-untyped-def]
    calls: list[np.ndarray] = []

    def g(u: np.ndarray) -> float:
        calls.append(np.array(u, dtype=float))
        if bounds_handling == "reject" and not np.all((u >= 0) & (u <= 1)):
            return np.inf
        return f(u)

    kwargs = {"bounds": [(0.0, 1.0)] * simplex.shape[1]} if bounds_handling == "clip" else {}
    options = {"initial_simplex": simplex, "maxfev": n, "xatol": -1.0, "fatol": -1.0, "adaptive": adaptive}
    scipy.optimize.minimize(g, simplex[0], method="Nelder-Mead", options=options, **kwargs)
    return np.array([c for c in calls if np.all((c >= 0) & (c <= 1))])


def our_points(f, simplex, n, bounds_handling, coefficients=None):  # type: ignore[no-untyped-def]
    d = simplex.shape[1]
    names = [f"x{i}" for i in range(d)]
    sampler = NelderMeadSampler(
        {name: FloatDistribution(0.0, 1.0) for name in names},
        initial_simplex=[dict(zip(names, v, strict=True)) for v in simplex],
        coefficients=coefficients,
        bounds_handling=bounds_handling,
        restarts=False,
    )
    study = optuna.create_study(sampler=sampler)
    points = []
    for _ in range(n):
        trial = study.ask()
        u = np.array([trial.suggest_float(name, 0.0, 1.0) for name in names])
        points.append(u)
        study.tell(trial, f(u))
    return np.array(points), sampler, study


CASES = [
    # name, function, initial simplex, evaluations, bounds handling
    ("rosenbrock-2d", rosenbrock(-2, 2), np.array([[0.2, 0.75], [0.25, 0.75], [0.2, 0.8]]), 300, "reject"),
    ("rosenbrock-2d-corner", rosenbrock(-2, 1), np.array([[0.3, 0.6], [0.35, 0.6], [0.3, 0.65]]), 300, "reject"),
    ("rosenbrock-2d-clip", rosenbrock(-2, 1), np.array([[0.3, 0.6], [0.35, 0.6], [0.3, 0.65]]), 300, "clip"),
    # distinct steps per axis: no tied values (scipy's argsort is not stable on ties, ours is; see below)
    (
        "rosenbrock-4d",
        rosenbrock(-2, 2),
        0.4 + np.vstack([np.zeros(4), np.diag([0.05, 0.06, 0.07, 0.08])]),
        600,
        "reject",
    ),
    ("quadratic-3d", quadratic, 0.7 + 0.1 * np.vstack([np.zeros(3), np.eye(3)]), 300, "clip"),
]


@pytest.mark.parametrize(("name", "f", "simplex", "n", "bounds_handling"), CASES, ids=[c[0] for c in CASES])
def test_serial_run_evaluates_the_same_points_as_scipy(name, f, simplex, n, bounds_handling):  # type: ignore[no-untyped-def]
    reference = scipy_points(f, simplex, n, bounds_handling)
    ours, _, study = our_points(f, simplex, len(reference), bounds_handling)
    assert len(reference) > 100
    mismatch = np.flatnonzero(np.any(ours != reference, axis=1))
    assert mismatch.size == 0, (
        f"first difference at evaluation {mismatch[0]}: {ours[mismatch[0]]} vs {reference[mismatch[0]]}"
    )
    if "corner" in name:
        # the optimum sits on the corner of the box: candidates left the box and were rejected without a trial
        assert len(reference) < n
    assert study.best_value == min(f(u) for u in reference)


def test_configurable_coefficients_match_scipy_adaptive() -> None:
    d = 3
    # scipy's `adaptive` coefficients (Gao and Han 2012) are the only other set scipy takes
    coefficients = NelderMeadCoefficients(reflect=1.0, expand=1 + 2 / d, contract=0.75 - 1 / (2 * d), shrink=1 - 1 / d)
    simplex = 0.6 + 0.1 * np.vstack([np.zeros(d), np.eye(d)])
    reference = scipy_points(rosenbrock(-2, 2), simplex, 400, "clip", adaptive=True)
    ours, _, _ = our_points(rosenbrock(-2, 2), simplex, len(reference), "clip", coefficients)
    np.testing.assert_array_equal(ours, reference)


def test_simplex_after_the_run_equals_scipys_final_simplex() -> None:
    f = rosenbrock(-2, 2)
    simplex = np.array([[0.2, 0.75], [0.25, 0.75], [0.2, 0.8]])
    result = scipy.optimize.minimize(
        f,
        simplex[0],
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxfev": 150, "xatol": -1.0, "fatol": -1.0},
    )
    _, sampler, study = our_points(f, simplex, result.nfev, "reject")
    params, values = sampler.simplex(study)  # type: ignore[misc]
    ours = np.array([[p["x0"], p["x1"]] for p in params])
    final_simplex, final_values = result.final_simplex
    np.testing.assert_array_equal(ours, final_simplex)
    np.testing.assert_array_equal(values, final_values)
