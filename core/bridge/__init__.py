"""core.bridge: the model bridge. Calibrate a cheap model per scenario, learn the map from its optimum to the
expensive model's, and calibrate new scenarios with the cheap model alone (see README.md).

Example:
    >>> from core.bridge import AnalyticFamily
    >>> len(AnalyticFamily(n_train=3, n_test=2).scenarios())
    5
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

if TYPE_CHECKING:
    from core.bridge.analytic import AnalyticFamily
    from core.bridge.pipeline import STAGES
    from core.bridge.pipeline import run as run_bridge
    from core.bridge.scenario import Scenario, ScenarioFamily
    from core.bridge.workspace import Workspace

# imported on first use, so that the CLI (and core.bridge.scenario users) do not pay for the pipeline
_LAZY = {
    "AnalyticFamily": "core.bridge.analytic",
    "STAGES": "core.bridge.pipeline",
    "Workspace": "core.bridge.workspace",
    "run_bridge": "core.bridge.pipeline:run",
    "Scenario": "core.bridge.scenario",
    "ScenarioFamily": "core.bridge.scenario",
}
__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["STAGES", "AnalyticFamily", "Scenario", "ScenarioFamily", "Workspace", "run_bridge"]
