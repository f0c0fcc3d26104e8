"""The model bridge on SUMO traffic: core.bridge's pipeline, then the traffic figures of its held-out scenarios.

:func:`run_bridge` runs (or resumes) the stages of :func:`core.bridge.pipeline.run` on a bridge config whose
scenario family is :class:`apps.traffic.family.TrafficFamily` and whose models are the objectives of
:mod:`apps.traffic.objective`, then :func:`headline` reads the workspace and adds what only traffic knows: per
held-out scenario, the count RMSE of the bridge's θ̂ (one SUMO run at the prediction), of the refined θ and of
direct HPO's best θ, of the prior-only baseline (the mean θ̂ of the training scenarios: what the bridge must beat
to show that h uses ξ̂), and the noise floor (θ* itself, simulated with the calibration seed: what a perfect
calibration scores); and it plots observed against simulated vehicles per detector at θ̂. The figures go to
``<workspace>/report/traffic.json`` and ``traffic_counts.png`` beside core.bridge's report.

Example:
    >>> from core.config import load_config
    >>> cfg = load_config("apps/traffic/config/demo.yaml", ["workspace=runs/traffic/mini", "scenarios.n_train=3",
    ...                   "scenarios.n_test=1", "models.expensive.n_trials=4", "models.cheap.n_trials=8"])
    >>> figures = run_bridge(cfg, log=lambda line: None)  # doctest: +SKIP
    >>> sorted(figures)[:3]  # doctest: +SKIP
    ['count_rmse_bridge', 'count_rmse_direct', 'count_rmse_noise_floor']
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Log = Callable[[str], None]


def run_bridge(cfg: Any, force: bool = False, log: Log = print, n_jobs: int = 2) -> dict[str, Any]:
    """Every stage of the bridge (finished ones skipped unless ``force``), then :func:`headline`."""
    from core.bridge.pipeline import run

    workspace = run(cfg, force=force, log=log)
    return headline(workspace.root, n_jobs=n_jobs, force=force)


def headline(workspace: str | Path, n_jobs: int = 2, force: bool = False) -> dict[str, Any]:
    """The traffic figures of a finished bridge workspace (cached in ``report/traffic.json``)."""
    from core.files import write_atomic

    root = Path(workspace)
    out = root / "report" / "traffic.json"
    if out.is_file() and not force:
        cached: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return cached
    rows = _read_csv(root / "evaluation.csv")
    pairs = {r["scenario"]: r for r in _read_csv(root / "pairs.csv")}
    prior = _prior(pairs.values())
    floors = _simulate_test_scenarios(root, rows, prior, n_jobs)
    per_scenario = []
    for row in rows:
        name = row["scenario"]
        floor, at_prior, counts = floors[name]
        entry: dict[str, Any] = {"scenario": name, "count_rmse_noise_floor": floor, "count_rmse_prior": at_prior}
        for prefix in ("bridge", "refine", "direct"):
            for attr in ("count_rmse", "speed_rmse", "geh_share"):
                value = row.get(f"{prefix}.{attr}")
                if value not in (None, ""):
                    entry[f"{attr}_{prefix}"] = float(value)
        cheap_wall = float(pairs[name]["cheap_wall_s"])
        entry["cheap_wall_s"] = cheap_wall
        entry["bridge_wall_s"] = float(row["bridge_wall_s"])
        if row.get("direct_wall_s") not in (None, ""):
            entry["direct_wall_s"] = float(row["direct_wall_s"])
            entry["direct_runs"] = int(float(row["direct_expensive_runs"]))
        entry["counts"] = counts
        per_scenario.append(entry)
    figures = summarize(per_scenario)
    figures["report"] = str(root / "report" / "report.md")
    _plot_counts(root / "report" / "traffic_counts.png", per_scenario)
    figures["per_scenario"] = [{k: v for k, v in e.items() if k != "counts"} for e in per_scenario]
    write_atomic(out, json.dumps(figures, indent=2) + "\n")
    return figures


def summarize(per_scenario: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Medians over held-out scenarios; ratios are taken per scenario, then their median.

    ``speedup_wall`` is direct HPO's wall time over the bridge's search (the cheap calibration and h; what the
    model bridge replaces a direct calibration with); ``speedup_wall_with_check`` also charges the bridge the
    one expensive run at its prediction.
    """

    def median(key: str) -> float:
        values = [float(e[key]) for e in per_scenario if key in e]
        return statistics.median(values) if values else math.nan

    def median_ratio(top: str, bottom: str) -> float:
        values = [float(e[top]) / float(e[bottom]) for e in per_scenario if top in e and bottom in e and e[bottom]]
        return statistics.median(values) if values else math.nan

    return {
        "n_test_scenarios": len(per_scenario),
        "count_rmse_bridge": median("count_rmse_bridge"),
        "count_rmse_refine": median("count_rmse_refine"),
        "count_rmse_direct": median("count_rmse_direct"),
        "count_rmse_noise_floor": median("count_rmse_noise_floor"),
        "rmse_ratio_bridge_vs_direct": median_ratio("count_rmse_bridge", "count_rmse_direct"),
        "rmse_ratio_refine_vs_direct": median_ratio("count_rmse_refine", "count_rmse_direct"),
        "count_rmse_prior": median("count_rmse_prior"),
        "rmse_ratio_prior_vs_direct": median_ratio("count_rmse_prior", "count_rmse_direct"),
        "rmse_ratio_bridge_vs_noise_floor": median_ratio("count_rmse_bridge", "count_rmse_noise_floor"),
        "rmse_ratio_direct_vs_noise_floor": median_ratio("count_rmse_direct", "count_rmse_noise_floor"),
        "speedup_wall": median_ratio("direct_wall_s", "cheap_wall_s"),
        "speedup_wall_with_check": median_ratio("direct_wall_s", "bridge_wall_s"),
        "direct_runs": median("direct_runs"),
        "direct_wall_s": median("direct_wall_s"),
        "cheap_wall_s": median("cheap_wall_s"),
    }


def _prior(pairs: Any) -> dict[str, float]:
    """The prior-only baseline: the mean of the training scenarios' θ̂, whatever the cheap model says."""
    train = [r for r in pairs if r["split"] == "train"]
    names = [c for c in train[0] if c.startswith("theta.")] if train else []
    return {n.removeprefix("theta."): statistics.fmean(float(r[n]) for r in train) for n in names}


def _simulate_test_scenarios(
    root: Path, rows: Sequence[Mapping[str, str]], prior: Mapping[str, float], n_jobs: int
) -> dict[str, tuple[float, float, dict[str, list[float]]]]:
    """Per test scenario: the count RMSE of the noise floor and of the prior-only baseline, and vehicles per
    detector observed and at θ̂."""
    from apps.traffic.objective import discrepancy, unpack_scenario
    from apps.traffic.simulator import simulate
    from core.bridge.scenario import Scenario

    def one(row: Mapping[str, str]) -> tuple[str, tuple[float, float, dict[str, list[float]]]]:
        scenario = Scenario.load(root / "scenarios" / f"{row['scenario']}.json")
        spec, built, observed = unpack_scenario(scenario)
        floor = discrepancy(observed, simulate(built, spec, spec.theta_star, spec.calibration_seed, backend="traci"))
        predicted = {k.removeprefix("pred."): float(v) for k, v in row.items() if k.startswith("pred.")}
        at_prediction = simulate(built, spec, predicted, spec.calibration_seed, backend="traci")
        counts = {
            "observed": observed.counts.sum(axis=1).tolist(),
            "bridge": at_prediction.counts.sum(axis=1).tolist(),
        }
        baseline = discrepancy(observed, simulate(built, spec, prior, spec.calibration_seed, backend="traci"))
        return row["scenario"], (floor.count_rmse, baseline.count_rmse, counts)

    with ThreadPoolExecutor(max(1, n_jobs)) as pool:  # SUMO child processes (traci): libsumo would hold the GIL
        return dict(pool.map(one, rows))


def _plot_counts(path: Path, per_scenario: Sequence[Mapping[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 5))
    top = 1.0
    for entry in per_scenario:
        observed, simulated = entry["counts"]["observed"], entry["counts"]["bridge"]
        axis.scatter(observed, simulated, s=14, label=entry["scenario"])
        top = max(top, *observed, *simulated)
    axis.plot([0, top * 1.05], [0, top * 1.05], color="gray", linestyle="--")
    axis.set_xlabel("observed vehicles per detector")
    axis.set_ylabel("simulated at the bridge's θ̂")
    axis.set_title("held-out scenarios: one SUMO run at θ̂ = h(ξ̂)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _read_csv(path: Path) -> list[dict[str, str]]:
    from core.errors import UserError

    if not path.is_file():
        raise UserError("missing bridge workspace file", where=str(path), hint="run the bridge's stages first")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
