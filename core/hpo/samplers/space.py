"""The box of numeric parameters that Nelder–Mead moves in, mapped to and from the unit cube.

Log parameters are mapped in log space (for enqueued values too), integer and stepped parameters are rounded
to their grid when a point becomes parameters, and read back exactly.

Example:
    >>> from optuna.distributions import FloatDistribution, IntDistribution
    >>> box = UnitBox({"lr": FloatDistribution(1e-4, 1e-0, log=True), "layers": IntDistribution(1, 9)})
    >>> params = box.to_params(np.array([0.5, 0.5]))
    >>> round(params["lr"], 12), params["layers"]
    (0.01, 5)
    >>> box.to_unit({"lr": 0.01, "layers": 5}).round(12).tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

Array = npt.NDArray[np.float64]
NumericDistribution = FloatDistribution | IntDistribution


def is_box_distribution(distribution: BaseDistribution) -> bool:
    """Whether Nelder–Mead handles this distribution (a numeric range with more than one value)."""
    return isinstance(distribution, FloatDistribution | IntDistribution) and distribution.low < distribution.high


class UnitBox:
    """Numeric parameters ``name → distribution`` (in this order) as coordinates of ``[0, 1]^d``."""

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.distributions: dict[str, NumericDistribution] = {}
        for name, distribution in distributions.items():
            if is_box_distribution(distribution):
                assert isinstance(distribution, FloatDistribution | IntDistribution)
                self.distributions[name] = distribution
        self.names = tuple(self.distributions)

    @property
    def dim(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.distributions

    def _ends(self, distribution: NumericDistribution) -> tuple[float, float]:
        if distribution.log:
            return math.log(distribution.low), math.log(distribution.high)
        return float(distribution.low), float(distribution.high)

    def value(self, name: str, u: float) -> Any:
        """The parameter value at unit coordinate ``u`` (rounded to the parameter's grid, inside its range)."""
        distribution = self.distributions[name]
        low, high = self._ends(distribution)
        x = low + u * (high - low)
        if distribution.log:
            x = math.exp(x)
        step = distribution.step
        if step is not None:
            x = distribution.low + round((x - distribution.low) / step) * step
            # the top of the grid may sit below `high`
            top = distribution.low + math.floor((distribution.high - distribution.low) / step + 1e-9) * step
            x = min(max(x, distribution.low), top)
        x = min(max(x, distribution.low), distribution.high)
        if isinstance(distribution, IntDistribution):
            return round(x)
        return float(x)

    def to_params(self, point: Array) -> dict[str, Any]:
        """Parameters for a point of the unit box."""
        return {name: self.value(name, float(u)) for name, u in zip(self.names, point, strict=True)}

    def to_unit(self, params: Mapping[str, Any]) -> Array | None:
        """The unit-box point of ``params``; ``None`` when a parameter is missing or outside its range."""
        point = np.empty(self.dim)
        for i, name in enumerate(self.names):
            if name not in params:
                return None
            distribution = self.distributions[name]
            value = float(params[name])
            if not distribution.low <= value <= distribution.high:
                return None
            low, high = self._ends(distribution)
            x = math.log(value) if distribution.log else value
            point[i] = (x - low) / (high - low)
        return np.clip(point, 0.0, 1.0)
