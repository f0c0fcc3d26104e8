"""Analytic scenario families for the bridge: an expensive model f and a cheap, biased model g per scenario.

Each scenario hides an expensive optimum θ*; the cheap model's optimum is ξ* = m(θ*), a distorted copy of it,
so the bridge must learn h = m⁻¹ from pairs (ξ̂, θ̂). With ``mapping="linear"`` m is affine (a linear regressor
suffices); with ``mapping="nonlinear"`` m bends (tanh) and couples the coordinates, so the model choice matters.
``delay`` makes each expensive call sleep, to give wall-time comparisons a cost to save.

Example:
    >>> family = AnalyticFamily(n_train=3, n_test=2, dim=2, seed=0)
    >>> train = [s for s in family.scenarios() if s.split == "train"]
    >>> theta_star = train[0].context["theta_star"]
    >>> expensive(train[0], {"theta0": theta_star[0], "theta1": theta_star[1]})
    0.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Literal

from core.bridge.scenario import Scenario, Split

Mapping_ = Literal["linear", "nonlinear"]
THETA_BOUND = 2.0  # θ ∈ [-2, 2]^dim
XI_BOUND = 3.0  # ξ ∈ [-3, 3]^dim


class AnalyticFamily:
    """``n_train`` + ``n_test`` scenarios with θ* drawn uniformly in [-1.5, 1.5]^dim from ``seed``."""

    def __init__(
        self,
        n_train: int = 12,
        n_test: int = 10,
        dim: int = 2,
        mapping: Mapping_ = "linear",
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.n_train = n_train
        self.n_test = n_test
        self.dim = dim
        self.mapping = mapping
        self.delay = delay
        self.seed = seed

    def scenarios(self) -> list[Scenario]:
        import numpy as np

        if self.mapping not in ("linear", "nonlinear"):
            raise ValueError(f"mapping must be linear or nonlinear, not {self.mapping!r}")
        rng = np.random.default_rng(self.seed)
        out = []
        for index in range(self.n_train + self.n_test):
            split: Split = "train" if index < self.n_train else "test"
            number = index if split == "train" else index - self.n_train
            theta_star = [round(float(v), 6) for v in rng.uniform(-1.5, 1.5, self.dim)]
            context: dict[str, object] = {
                "theta_star": theta_star,
                "xi_star": cheap_optimum(theta_star, self.mapping),
                "mapping": self.mapping,
                "delay": self.delay,
            }
            if split == "train":  # h's target with fit.targets: known
                context["known_params"] = {f"theta{i}": v for i, v in enumerate(theta_star)}
            out.append(Scenario(f"{split}-{number:03d}", split, self.seed * 1000 + index, context))
        return out


def cheap_optimum(theta_star: Sequence[float], mapping: Mapping_) -> list[float]:
    """ξ* = m(θ*): where the cheap model of a scenario has its optimum."""
    dim = len(theta_star)
    if mapping == "linear":
        return [0.7 * theta_star[i] + 0.25 * theta_star[(i + 1) % dim] + 0.3 for i in range(dim)]
    return [
        2.0 * math.tanh(0.9 * theta_star[i]) + 0.3 * theta_star[(i + 1) % dim] * (1 if i % 2 == 0 else -1)
        for i in range(dim)
    ]


def expensive(scenario: Scenario, params: Mapping[str, float]) -> float:
    """f_s(θ): a rotated, ill-conditioned bowl around θ* (minimum 0), sleeping ``delay`` seconds."""
    theta_star = scenario.context["theta_star"]
    d = [float(params[f"theta{i}"]) - theta_star[i] for i in range(len(theta_star))]
    value = sum((d[i] + d[(i + 1) % len(d)]) ** 2 + 3.0 * (d[i] - d[(i + 1) % len(d)]) ** 2 for i in range(len(d)))
    delay = float(scenario.context.get("delay", 0.0))
    if delay > 0:
        time.sleep(delay)
    return float(round(value / (2 * len(d)), 12))


def expensive_with_residuals(scenario: Scenario, params: Mapping[str, float]) -> dict[str, object]:
    """:func:`expensive` with its residuals (``user_attrs.residuals``, whose squares sum to the value): the form
    ``evaluate.refine_method: gauss_newton`` needs.

    >>> family = AnalyticFamily(n_train=1, n_test=0, dim=2, seed=0)
    >>> result = expensive_with_residuals(family.scenarios()[0], {"theta0": 0.0, "theta1": 0.0})
    >>> round(sum(r * r for r in result["user_attrs"]["residuals"]), 9) == round(result["value"], 9)
    True
    """
    theta_star = scenario.context["theta_star"]
    d = [float(params[f"theta{i}"]) - theta_star[i] for i in range(len(theta_star))]
    norm = math.sqrt(2 * len(d))
    residuals = [(d[i] + d[(i + 1) % len(d)]) / norm for i in range(len(d))]
    residuals += [math.sqrt(3.0) * (d[i] - d[(i + 1) % len(d)]) / norm for i in range(len(d))]
    return {"value": expensive(scenario, params), "user_attrs": {"residuals": residuals}}


def cell_features(scenario: Scenario) -> list[list[float]]:
    """One indicator feature per residual of :func:`expensive_with_residuals` (the identity): its Jacobian is the
    same on every scenario, so ``evaluate.refine_method: pooled`` learns it exactly (W = J).

    >>> cell_features(AnalyticFamily(n_train=1, n_test=0, dim=2, seed=0).scenarios()[0])
    [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """
    cells = 2 * len(scenario.context["theta_star"])
    return [[float(i == j) for j in range(cells)] for i in range(cells)]


def cheap(scenario: Scenario, params: Mapping[str, float]) -> float:
    """g_s(ξ): a round bowl around ξ* (minimum 0); no delay."""
    xi_star = scenario.context["xi_star"]
    return float(round(sum((float(params[f"xi{i}"]) - xi_star[i]) ** 2 for i in range(len(xi_star))), 12))
