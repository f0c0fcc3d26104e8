"""Shared fixtures: a tiny scenario (3×3 grid, 20 simulated minutes: a fraction of a second per SUMO run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.traffic.scenario import BuiltScenario, DemandSpec, DetectorSpec, NetworkSpec, TrafficScenario, build

TINY = TrafficScenario(
    name="tiny",
    network=NetworkSpec(size=3, length=150.0),
    demand=DemandSpec(vehicles_per_hour=1200.0, n_routes=8, duration=1200.0),
    detectors=DetectorSpec(count=6),
    theta_star={"demand_scale": 1.1, "speed_factor": 0.92, "tau": 1.3},
)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traffic-scenarios")


@pytest.fixture(scope="session")
def tiny(workdir: Path) -> tuple[TrafficScenario, BuiltScenario]:
    return TINY, build(TINY, workdir)
