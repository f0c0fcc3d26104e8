"""Objectives for the bridge tests, importable by dotted path from trial processes."""

from __future__ import annotations

from collections.abc import Mapping

from core.bridge.analytic import AnalyticFamily, cheap
from core.bridge.scenario import Scenario


def cheap_failing_on_train_001(scenario: Scenario, params: Mapping[str, float]) -> float:
    """The cheap model, except that every run on scenario train-001 crashes."""
    if scenario.name == "train-001":
        raise RuntimeError("simulator crashed")
    return cheap(scenario, params)


def cheap_uninformative(scenario: Scenario, params: Mapping[str, float]) -> float:
    """A cheap model whose optimum is the same on every scenario (and a little noisy): ξ̂ carries no information."""
    import random

    noise = random.Random(f"{scenario.name}{params}").uniform(0, 1e-3)
    return float(sum((float(v) - 0.5) ** 2 for v in params.values()) + noise)


class UnknownFamily(AnalyticFamily):
    """The analytic family, its training scenarios without ``known_params`` (as if calibrated from real data)."""

    def scenarios(self) -> list[Scenario]:
        return [
            Scenario(s.name, s.split, s.seed, {k: v for k, v in s.context.items() if k != "known_params"})
            for s in super().scenarios()
        ]
