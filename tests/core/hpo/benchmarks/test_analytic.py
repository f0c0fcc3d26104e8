"""Analytic benchmarks against the literature's optima and an independent numpy transcription of the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.hpo.benchmarks import BENCHMARKS, Borehole, Currin, Forrester, MFBranin, MFHartmann, Park91a, Park91b


def params(*x: float) -> dict[str, float]:
    return {f"x{i}": v for i, v in enumerate(x)}


@pytest.mark.parametrize(
    "u", [((-math.pi + 5) / 15, 12.275 / 15), ((math.pi + 5) / 15, 2.275 / 15), ((9.42478 + 5) / 15, 2.475 / 15)]
)
def test_branin_minima_at_full_fidelity(u: tuple[float, float]) -> None:
    assert MFBranin().evaluate(params(*u), 100).values[0] == pytest.approx(0.397887, abs=1e-5)


def test_hartmann_minima() -> None:
    h3 = MFHartmann(dim=3).evaluate(params(0.114614, 0.555649, 0.852547), 100).values[0]
    h6 = MFHartmann(dim=6).evaluate(params(0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573), 100).values[0]
    assert h3 == pytest.approx(-3.86278, abs=1e-4) and h6 == pytest.approx(-3.32237, abs=1e-4)
    with pytest.raises(ValueError, match="dim 3 or 6"):
        MFHartmann(dim=4)


def numpy_branin(x: np.ndarray, z: float) -> float:
    x1, x2 = 15 * x[0] - 5, 15 * x[1]
    b, c = 5.1 / (4 * np.pi**2) - 0.01 * (1 - z), 5 / np.pi - 0.1 * (1 - z)
    t = 1 / (8 * np.pi) + 0.005 * (1 - z)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10)


def numpy_hartmann(x: np.ndarray, z: float, dim: int) -> float:
    alpha = np.array([1.0, 1.2, 3.0, 3.2]) - 0.1 * (1 - z)
    if dim == 3:
        a = np.array([[3, 10, 30], [0.1, 10, 35], [3, 10, 30], [0.1, 10, 35]])
        p = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
    else:
        a = np.array(
            [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
        )
        p = 1e-4 * np.array(
            [
                [1312, 1696, 5569, 124, 8283, 5886],
                [2329, 4135, 8307, 3736, 1004, 9991],
                [2348, 1451, 3522, 2883, 3047, 6650],
                [4047, 8828, 8732, 5743, 1091, 381],
            ]
        )
    return float(-alpha @ np.exp(-np.sum(a * (x - p) ** 2, axis=1)))


def test_multi_fidelity_values_and_runtimes_match_numpy_on_random_points() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        fidelity = int(rng.integers(1, 101))
        z = fidelity / 100
        x2, x3, x6 = rng.random(2), rng.random(3), rng.random(6)
        branin = MFBranin().evaluate(params(*x2), fidelity)
        assert branin.values[0] == pytest.approx(numpy_branin(x2, z), rel=1e-12)
        assert branin.runtime == pytest.approx(3600 * (0.05 + 0.95 * z**1.5))
        h3 = MFHartmann(dim=3).evaluate(params(*x3), fidelity)
        assert h3.values[0] == pytest.approx(numpy_hartmann(x3, z, 3), rel=1e-12)
        assert h3.runtime == pytest.approx(3600 * (0.1 + 0.9 * np.mean([z, z**2, z**3])))
        h6 = MFHartmann(dim=6).evaluate(params(*x6), fidelity)
        assert h6.values[0] == pytest.approx(numpy_hartmann(x6, z, 6), rel=1e-12)
        assert h6.runtime == pytest.approx(3600 * (0.1 + 0.9 * np.mean([z, z, z**2, z**3])))


def test_bi_fidelity_functions_at_both_ends() -> None:
    # high fidelity: values from the literature's definitions, computed here by hand
    x = 0.75724876
    assert Forrester().evaluate(params(x), 100).values[0] == pytest.approx(-6.02074, abs=1e-4)
    high = (6 * 0.3 - 2) ** 2 * math.sin(12 * 0.3 - 4)
    assert Forrester(max_fidelity=10).evaluate(params(0.3), 1).values[0] == pytest.approx(
        0.1 * high + 0.9 * (0.5 * high + 10 * (0.3 - 0.5) - 5)
    )
    assert Park91b().evaluate(params(0.1, 0.2, 0.3, 0.4), 100).values[0] == pytest.approx(
        2 / 3 * math.exp(0.3) - 0.4 * math.sin(0.3) + 0.3
    )
    x1, x2, x3, x4 = 0.5, 0.2, 0.3, 0.4
    park_a = x1 / 2 * (math.sqrt(1 + (x2 + x3**2) * x4 / x1**2) - 1) + (x1 + 3 * x4) * math.exp(1 + math.sin(x3))
    assert Park91a().evaluate(params(x1, x2, x3, x4), 100).values[0] == pytest.approx(park_a)
    assert math.isfinite(Park91a().evaluate(params(0.0, 0.5, 0.5, 0.5), 50).values[0])
    currin = (
        (1 - math.exp(-1 / (2 * 0.5)))
        * (2300 * 0.125 + 1900 * 0.25 + 2092 * 0.5 + 60)
        / (100 * 0.125 + 500 * 0.25 + 4 * 0.5 + 20)
    )
    assert Currin().evaluate(params(0.5, 0.5), 100).values[0] == pytest.approx(currin)
    rw, r, tu, hu, tl, hl, length, kw = 0.1, 25050.0, 89335.0, 1050.0, 89.55, 760.0, 1400.0, 10950.0
    log = math.log(r / rw)
    flow = 2 * math.pi * tu * (hu - hl) / (log * (1 + 2 * length * tu / (log * rw**2 * kw) + tu / tl))
    assert Borehole().evaluate(params(*[0.5] * 8), 100).values[0] == pytest.approx(flow)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_has_a_consistent_interface(name: str) -> None:
    bench = BENCHMARKS[name]()
    assert list(bench.fidelities) == list(range(10, 101, 10)) and bench.directions == ("minimize",)
    point = {k: 0.37 for k in bench.search_space}
    runtimes = [bench.evaluate(point, f).runtime for f in bench.fidelities]
    assert runtimes == sorted(runtimes) and runtimes[-1] == pytest.approx(3600.0)
    with pytest.raises(ValueError, match="fidelity"):
        bench.evaluate(point, 101)
