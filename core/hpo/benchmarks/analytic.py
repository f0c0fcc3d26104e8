"""Analytic multi-fidelity test functions with runtime models, on the unit cube ``x0..x{d-1}`` in [0, 1].

The fidelity is an integer level ``1..max_fidelity`` (default 100, think "epochs"); ``z = fidelity / max_fidelity``
is the fidelity in [0, 1] of Kandasamy et al. 2017 (arXiv 1703.06240), ``z = 1`` the target function.
The runtime is that of evaluating from scratch at ``z``, ``runtime_factor`` seconds at ``z = 1``.

* :class:`MFBranin` and :class:`MFHartmann` (3-D and 6-D) follow Kandasamy et al. (as in mfhpo-simulator's
  benchmarks): Branin's coefficients and Hartmann's ``alpha - bias (1 - z)`` move with ``z``; runtimes
  ``0.05 + 0.95 z^1.5`` and ``0.1 + 0.9 mean(z, z², z³)`` (6-D: ``mean(z, z, z², z³)``).
* :class:`Currin`, :class:`Park91a`, :class:`Park91b`, :class:`Borehole`, :class:`Forrester` are the bi-fidelity
  functions of the ``mf2`` collection (high ``f_h`` and low ``f_l``), made continuous as
  ``f(x, z) = z f_h(x) + (1 - z) f_l(x)``, with runtime ``0.1 + 0.9 z``.

All are minimized as defined and deterministic (no noise), so reruns are identical.

Example:
    >>> bench = MFHartmann(dim=3)
    >>> params = {"x0": 0.114614, "x1": 0.555649, "x2": 0.852547}
    >>> round(bench.evaluate(params, fidelity=100).values[0], 4)
    -3.8628
    >>> bench.evaluate(params, fidelity=10).runtime < bench.evaluate(params, fidelity=50).runtime
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.hpo.benchmarks.base import BenchmarkResult

if TYPE_CHECKING:
    import optuna


class AnalyticBenchmark:
    """Shared machinery: unit-cube search space, integer fidelity levels, ``_value(x, z)`` and ``_runtime(z)``."""

    name = "analytic"
    dim = 1

    def __init__(
        self,
        max_fidelity: int = 100,
        fidelities: Sequence[int] | None = None,
        runtime_factor: float = 3600.0,
    ) -> None:
        if max_fidelity < 1:
            raise ValueError(f"max_fidelity must be >= 1, got {max_fidelity}")
        if runtime_factor <= 0:
            raise ValueError(f"runtime_factor must be > 0, got {runtime_factor}")
        self.max_fidelity = int(max_fidelity)
        self.runtime_factor = float(runtime_factor)
        if fidelities is None:
            step = max(1, self.max_fidelity // 10)
            fidelities = sorted({*range(step, self.max_fidelity + 1, step), self.max_fidelity})
        self._fidelities = tuple(int(f) for f in fidelities)
        if list(self._fidelities) != sorted(set(self._fidelities)) or not (
            self._fidelities[0] >= 1 and self._fidelities[-1] <= self.max_fidelity
        ):
            raise ValueError(f"fidelities must increase within 1..{self.max_fidelity}, got {list(fidelities)}")

    @property
    def directions(self) -> Sequence[str]:
        return ("minimize",)

    @property
    def search_space(self) -> dict[str, optuna.distributions.BaseDistribution]:
        from optuna.distributions import FloatDistribution

        return {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(self.dim)}

    @property
    def fidelities(self) -> Sequence[float]:
        return self._fidelities

    def evaluate(self, params: Mapping[str, Any], fidelity: float) -> BenchmarkResult:
        if not 0 < fidelity <= self.max_fidelity:
            raise ValueError(f"fidelity must be in (0, {self.max_fidelity}], got {fidelity}")
        x = [float(params[f"x{i}"]) for i in range(self.dim)]
        z = fidelity / self.max_fidelity
        return BenchmarkResult(values=(self._value(x, z),), runtime=self._runtime(z) * self.runtime_factor)

    def _value(self, x: list[float], z: float) -> float:
        raise NotImplementedError

    def _runtime(self, z: float) -> float:
        return 0.1 + 0.9 * z


class MFBranin(AnalyticBenchmark):
    """Multi-fidelity Branin (2-D); minimum 0.397887 at z = 1."""

    name = "mf_branin"
    dim = 2

    def _value(self, x: list[float], z: float) -> float:
        x1, x2 = 15.0 * x[0] - 5.0, 15.0 * x[1]
        b = 5.1 / (4.0 * math.pi**2) - 0.01 * (1.0 - z)
        c = 5.0 / math.pi - 0.1 * (1.0 - z)
        t = 1.0 / (8.0 * math.pi) + 0.005 * (1.0 - z)
        return float((x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0)

    def _runtime(self, z: float) -> float:
        return float(0.05 + 0.95 * z**1.5)


_HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
_HARTMANN_A = {
    3: ((3.0, 10.0, 30.0), (0.1, 10.0, 35.0), (3.0, 10.0, 30.0), (0.1, 10.0, 35.0)),
    6: (
        (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
        (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
        (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
        (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
    ),
}
_HARTMANN_P = {
    3: ((3689, 1170, 2673), (4699, 4387, 7470), (1091, 8732, 5547), (381, 5743, 8828)),
    6: (
        (1312, 1696, 5569, 124, 8283, 5886),
        (2329, 4135, 8307, 3736, 1004, 9991),
        (2348, 1451, 3522, 2883, 3047, 6650),
        (4047, 8828, 8732, 5743, 1091, 381),
    ),
}


class MFHartmann(AnalyticBenchmark):
    """Multi-fidelity Hartmann, 3-D (minimum -3.86278) or 6-D (minimum -3.32237) at z = 1."""

    def __init__(self, dim: int = 3, bias: float = 0.1, **kwargs: Any) -> None:
        if dim not in (3, 6):
            raise ValueError(f"MFHartmann has dim 3 or 6, got {dim}")
        super().__init__(**kwargs)
        self.dim = dim
        self.bias = float(bias)
        self.name = f"mf_hartmann{dim}"

    def _value(self, x: list[float], z: float) -> float:
        total = 0.0
        for alpha, a_row, p_row in zip(_HARTMANN_ALPHA, _HARTMANN_A[self.dim], _HARTMANN_P[self.dim], strict=True):
            exponent = sum(a * (xi - p * 1e-4) ** 2 for a, xi, p in zip(a_row, x, p_row, strict=True))
            total += (alpha - self.bias * (1.0 - z)) * math.exp(-exponent)
        return -total

    def _runtime(self, z: float) -> float:
        terms = (z, z**2, z**3) if self.dim == 3 else (z, z, z**2, z**3)
        return 0.1 + 0.9 * sum(terms) / len(terms)


class _BiFidelity(AnalyticBenchmark):
    """``f(x, z) = z f_h(x) + (1 - z) f_l(x)`` from a high and a low fidelity function on the unit cube."""

    def _value(self, x: list[float], z: float) -> float:
        high = self._high(x)
        return high if z >= 1.0 else z * high + (1.0 - z) * self._low(x, high)

    def _high(self, x: list[float]) -> float:
        raise NotImplementedError

    def _low(self, x: list[float], high: float) -> float:
        raise NotImplementedError


def _currin_high(x1: float, x2: float) -> float:
    factor = 1.0 if x2 <= 0.0 else 1.0 - math.exp(-1.0 / (2.0 * x2))
    return factor * (2300 * x1**3 + 1900 * x1**2 + 2092 * x1 + 60) / (100 * x1**3 + 500 * x1**2 + 4 * x1 + 20)


class Currin(_BiFidelity):
    """Currin exponential (2-D)."""

    name = "currin"
    dim = 2

    def _high(self, x: list[float]) -> float:
        return _currin_high(x[0], x[1])

    def _low(self, x: list[float], high: float) -> float:
        x1, x2 = x
        return 0.25 * (
            _currin_high(x1 + 0.05, x2 + 0.05)
            + _currin_high(x1 + 0.05, max(0.0, x2 - 0.05))
            + _currin_high(x1 - 0.05, x2 + 0.05)
            + _currin_high(x1 - 0.05, max(0.0, x2 - 0.05))
        )


class Park91a(_BiFidelity):
    """Park (1991) function a (4-D)."""

    name = "park91a"
    dim = 4

    def _high(self, x: list[float]) -> float:
        x1, x2, x3, x4 = x
        # x1/2 * (sqrt(1 + (x2 + x3²) x4 / x1²) - 1), written so that x1 = 0 is defined
        first = 0.5 * math.sqrt(x1**2 + (x2 + x3**2) * x4) - 0.5 * x1
        return first + (x1 + 3.0 * x4) * math.exp(1.0 + math.sin(x3))

    def _low(self, x: list[float], high: float) -> float:
        x1, x2, x3, _ = x
        return (1.0 + math.sin(x1) / 10.0) * high - 2.0 * x1 + x2**2 + x3**2 + 0.5


class Park91b(_BiFidelity):
    """Park (1991) function b (4-D)."""

    name = "park91b"
    dim = 4

    def _high(self, x: list[float]) -> float:
        x1, x2, x3, x4 = x
        return 2.0 / 3.0 * math.exp(x1 + x2) - x4 * math.sin(x3) + x3

    def _low(self, x: list[float], high: float) -> float:
        return 1.2 * high - 1.0


_BOREHOLE_RANGES = (
    (0.05, 0.15),  # rw: borehole radius (m)
    (100.0, 50000.0),  # r: radius of influence (m)
    (63070.0, 115600.0),  # Tu: transmissivity of the upper aquifer
    (990.0, 1110.0),  # Hu: potentiometric head of the upper aquifer (m)
    (63.1, 116.0),  # Tl: transmissivity of the lower aquifer
    (700.0, 820.0),  # Hl: potentiometric head of the lower aquifer (m)
    (1120.0, 1680.0),  # L: borehole length (m)
    (9855.0, 12045.0),  # Kw: hydraulic conductivity of the borehole
)


class Borehole(_BiFidelity):
    """Borehole water flow (8-D), inputs scaled from the unit cube to their physical ranges."""

    name = "borehole"
    dim = 8

    def _physical(self, x: list[float]) -> list[float]:
        return [low + xi * (high - low) for xi, (low, high) in zip(x, _BOREHOLE_RANGES, strict=True)]

    def _flow(self, x: list[float], numerator: float, offset: float) -> float:
        rw, r, tu, hu, tl, hl, length, kw = self._physical(x)
        log_ratio = math.log(r / rw)
        return (
            numerator * tu * (hu - hl) / (log_ratio * (offset + 2 * length * tu / (log_ratio * rw**2 * kw) + tu / tl))
        )

    def _high(self, x: list[float]) -> float:
        return self._flow(x, 2.0 * math.pi, 1.0)

    def _low(self, x: list[float], high: float) -> float:
        return self._flow(x, 5.0, 1.5)


class Forrester(_BiFidelity):
    """Forrester et al. (2007) 1-D function."""

    name = "forrester"
    dim = 1

    def _high(self, x: list[float]) -> float:
        return (6.0 * x[0] - 2.0) ** 2 * math.sin(12.0 * x[0] - 4.0)

    def _low(self, x: list[float], high: float) -> float:
        return 0.5 * high + 10.0 * (x[0] - 0.5) - 5.0


BENCHMARKS: dict[str, Callable[..., AnalyticBenchmark]] = {
    "mf_branin": MFBranin,
    "mf_hartmann3": lambda **kw: MFHartmann(dim=3, **kw),
    "mf_hartmann6": lambda **kw: MFHartmann(dim=6, **kw),
    "currin": Currin,
    "park91a": Park91a,
    "park91b": Park91b,
    "borehole": Borehole,
    "forrester": Forrester,
}

__all__ = [
    "BENCHMARKS",
    "AnalyticBenchmark",
    "Borehole",
    "Currin",
    "Forrester",
    "MFBranin",
    "MFHartmann",
    "Park91a",
    "Park91b",
]
