"""core.bridge: the model bridge. Calibrate a cheap model per scenario, learn the map from its optimum to the
expensive model's, and calibrate new scenarios with the cheap model alone (see README.md).

Example:
    >>> from core.bridge import AnalyticFamily, Scenario, run_bridge
"""

from core.bridge.analytic import AnalyticFamily
from core.bridge.pipeline import STAGES, Workspace
from core.bridge.pipeline import run as run_bridge
from core.bridge.scenario import Scenario, ScenarioFamily

__all__ = ["STAGES", "AnalyticFamily", "Scenario", "ScenarioFamily", "Workspace", "run_bridge"]
