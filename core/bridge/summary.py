"""The headline figures of a bridge's held-out scenarios (medians over scenarios), shared by evaluate and report.

Example:
    >>> rows = [{"bridge_value": 1.0, "direct_value": 2.0, "direct_runs_to_match_bridge": 50,
    ...          "bridge_expensive_runs": 1, "direct_wall_s_to_match_bridge": 10.0, "bridge_wall_s": 2.0,
    ...          "direct_wall_s": 10.0, "param_error": 0.1}]
    >>> figures = summarize(rows)
    >>> round(figures["regret_ratio_vs_direct"], 6), figures["speedup_runs"], figures["speedup"]
    (0.5, 50.0, 5.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.bridge.workspace import median


def summarize(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over held-out scenarios of the evaluation's columns, and of ratios taken per scenario.

    ``regret_ratio_vs_direct``: the expensive objective at the bridge's prediction over direct HPO's best;
    ``speedup_runs``: the expensive runs direct HPO needed to reach the bridge's value over the bridge's runs;
    ``speedup``: the same in wall time (the bridge's: its cheap study and its one expensive run);
    ``speedup_full_direct_wall``: direct HPO's whole wall time over the bridge's.
    """
    summary: dict[str, Any] = {"n_test_scenarios": len(results)}
    with_direct = [r for r in results if r.get("direct_value") not in (None, "")]
    if with_direct:
        floor = 1e-12

        def ratio(top: str, bottom: str, shift: float = 0.0) -> float:
            return median((float(r[top]) + shift) / (float(r[bottom]) + shift) for r in with_direct)

        summary["regret_ratio_vs_direct"] = ratio("bridge_value", "direct_value", floor)
        summary["speedup_runs"] = ratio("direct_runs_to_match_bridge", "bridge_expensive_runs")
        summary["speedup"] = ratio("direct_wall_s_to_match_bridge", "bridge_wall_s")
        summary["speedup_full_direct_wall"] = ratio("direct_wall_s", "bridge_wall_s")
        summary["param_error"] = median(r.get("param_error") for r in results)
        summary["direct_value"] = median(r.get("direct_value") for r in results)
    summary["bridge_value"] = median(r.get("bridge_value") for r in results)
    if any("refine_value" in r for r in results):
        summary["refine_value"] = median(r.get("refine_value") for r in results)
    return summary
