"""The schemas of the traffic configs that run a scenario family: the bridge (core.bridge's keys plus ``score``)
and a family on its own (``traffic scenario family.yaml``).

``bridge.yaml`` (and every family config extending it) names :class:`TrafficBridgeConfig` as its ``_schema_``;
``family.yaml`` names :class:`FamilyConfig`. The family node's arguments are checked against
:class:`apps.traffic.family.TrafficFamily`'s signature, so ``scenarios.n_train=many`` is one error line naming the
file and the key, before any SUMO run.

Example:
    >>> from core.config import load_config
    >>> from core.errors import ConfigError
    >>> try:
    ...     load_config("apps/traffic/config/demo.yaml", ["score.fresh_seeds=0"])
    ... except ConfigError as error:
    ...     print(error.what, error.where, sep=" | ")
    0 is below the minimum 1 | apps/traffic/config/demo.yaml: score.fresh_seeds
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from core.bridge.schema import BridgeConfig
from core.config.schema import bounds, option


@dataclass
class ScoreSchema:
    """How the traffic bridge scores every θ̂ once the pipeline has run."""

    fresh_seeds: int = option(3, ge=1, doc="SUMO seeds no calibration saw, per θ̂ and held-out scenario")


@dataclass
class TrafficBridgeConfig(BridgeConfig):
    """core.bridge's config, and the fresh-seed scoring of ``kakehashi traffic bridge``."""

    score: ScoreSchema = field(default_factory=ScoreSchema)


@dataclass
class FamilyConfig:
    """A scenario family on its own: ``kakehashi traffic scenario family.yaml`` builds and shows its members."""

    name: str = option("family")
    seed: int = option(0, ge=0, doc="the family's seed")
    scenarios: Any = field(
        default=MISSING, metadata=bounds(target=True, doc="a family node: _target_ apps.traffic.family.TrafficFamily")
    )


__all__ = ["FamilyConfig", "ScoreSchema", "TrafficBridgeConfig"]
