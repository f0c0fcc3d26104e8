"""The model bridge on SUMO traffic: core.bridge's pipeline, then fresh-seed scoring of every θ̂ and the cost.

:func:`run_bridge` runs (or resumes) the stages of :func:`core.bridge.pipeline.run` on a bridge config whose
scenario family is :class:`apps.traffic.family.TrafficFamily` and whose models are the objectives of
:mod:`apps.traffic.objective`, then :func:`headline` scores the held-out scenarios with
:func:`apps.traffic.scoring.score_workspace` (fresh SUMO seeds, the baselines, 95% bootstrap intervals, SUMO runs
and wall time offline and per new scenario) and writes ``<workspace>/report/traffic.json`` with two plots beside
core.bridge's report: ``traffic_loss.png`` (fresh-seed loss per held-out scenario and method, with θ*'s loss —
the noise floor) and ``traffic_theta.png`` (θ̂ of the bridge and of direct HPO against θ*).

Example:
    >>> from core.config import load_config
    >>> cfg = load_config("apps/traffic/config/demo.yaml", ["workspace=runs/traffic/mini"])
    >>> figures = run_bridge(cfg, log=lambda line: None)  # doctest: +SKIP
    >>> figures["loss_bridge"] < figures["loss_centre"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
Log = Callable[[str], None]

# (key, plain words) of the figures the final table prints, in order
TABLE = (
    ("loss_noise_floor", "loss of θ* itself (the noise floor: a perfect calibration)"),
    ("loss_bridge", "loss, bridge: θ̂ = h(cheap calibration), 1 SUMO check run"),
    ("loss_refine", "loss, bridge + refine (the check run + up to k more)"),
    ("loss_direct", "loss, direct HPO (all its SUMO runs)"),
    ("loss_direct_gauss_newton", "loss, direct Gauss–Newton calibration from the centre (its SUMO runs)"),
    ("loss_best_baseline", "loss, best no-SUMO baseline"),
    ("bridge_minus_best_baseline_ci", "bridge − best baseline, 95% interval (below 0: bridge better)"),
    ("refine_over_direct_loss", "bridge + refine loss / direct HPO loss"),
    ("refine_over_direct_loss_ci", "the same, 95% interval over the held-out scenarios"),
    ("sumo_runs_per_new_scenario_refine", "SUMO runs per new scenario, bridge + refine"),
    ("sumo_runs_per_new_scenario_direct", "SUMO runs per new scenario, direct HPO"),
    ("sumo_runs_per_new_scenario_direct_gauss_newton", "SUMO runs per new scenario, direct Gauss–Newton"),
    ("refine_minus_direct_gauss_newton_ci", "bridge + refine − direct Gauss–Newton, 95% interval"),
    ("direct_runs_to_match_refine", "direct-HPO runs to reach bridge + refine's loss"),
    ("matched_quality_run_ratio", "SUMO runs saved at matched quality (direct runs / bridge + refine runs)"),
    ("offline_sumo_runs", "offline: SUMO runs ({offline})"),
    ("offline_wall_s", "offline: wall seconds ({offline})"),
    ("break_even_scenarios", "new scenarios before the offline runs pay off"),
    ("break_even_scenarios_vs_direct_gauss_newton", "the same against direct Gauss–Newton (inf: never)"),
    ("amortised_sumo_runs_per_scenario_100_new_bridge", "SUMO runs per scenario over 100 new ones, bridge"),
    ("amortised_sumo_runs_per_scenario_100_new_direct", "SUMO runs per scenario over 100 new ones, direct"),
)


def run_bridge(
    cfg: Any,
    force: bool = False,
    log: Log = print,
    n_jobs: int | None = None,
    progress: bool = True,
    redo_from: str | None = None,
) -> dict[str, Any]:
    """Every stage of the bridge (finished ones skipped unless ``force``; ``redo_from`` redoes that stage and the
    later ones, reusing finished studies and the fresh-seed scores of every θ that did not change), then
    :func:`headline`."""
    from omegaconf import OmegaConf

    from apps.traffic.config.schema import TrafficBridgeConfig
    from apps.traffic.scenario import check_physics
    from core.bridge.pipeline import run
    from core.bridge.schema import check_bridge_config
    from core.config import as_dict

    cfg = check_bridge_config(cfg, TrafficBridgeConfig)
    if not OmegaConf.is_missing(cfg.models.expensive, "params"):
        space = as_dict(cfg.models.expensive.params, where="models.expensive.params")
        check_physics(space, 1.0, "models.expensive.params")
    workspace = run(cfg, force=force, log=log, progress=progress, redo_from=redo_from)
    jobs = n_jobs if n_jobs is not None else int(cfg.models.expensive.n_max_jobs)
    seeds = int(cfg.score.fresh_seeds)
    return headline(workspace.root, n_jobs=jobs, n_seeds=seeds, force=force, progress=progress, log=log)


def headline(
    workspace: str | Path,
    n_jobs: int = 2,
    n_seeds: int = 3,
    force: bool = False,
    progress: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """The traffic figures of a finished bridge workspace (cached in ``report/traffic.json`` until the pairs, the
    model or the evaluation change)."""
    from apps.traffic.scoring import score_workspace
    from core.files import write_atomic

    root = Path(workspace)
    out = root / "report" / "traffic.json"
    inputs = [root / "evaluation.csv", root / "pairs.csv", root / "model" / "card.json"]
    newest = max((p.stat().st_mtime for p in inputs if p.is_file()), default=0.0)
    if out.is_file() and not force and out.stat().st_mtime >= newest:  # stale after a new evaluate
        cached: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return cached
    with _Bar(progress, "scoring held-out scenarios on fresh SUMO seeds") as bar:
        figures = score_workspace(root, n_seeds=n_seeds, n_jobs=n_jobs, progress=bar)
    figures["loss_noise_floor"] = figures["loss_theta_star"]
    figures["loss_best_baseline"] = figures[f"loss_{figures['best_baseline']}"]
    figures["report"] = str(root / "report" / "report.md")
    scores = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / "report" / "scores").glob("*.json"))]
    _plot_losses(root / "report" / "traffic_loss.png", scores)
    _plot_theta(root / "report" / "traffic_theta.png", scores)
    write_atomic(out, json.dumps(figures, indent=2, default=str) + "\n")
    log(f"scores: {out}")
    return figures


def table_rows(figures: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(plain words, value) for the final table."""
    rows = []
    for key, words in TABLE:
        if key.endswith("_ci") and f"{key}_low" not in figures:
            continue  # a reference that did not run (evaluate.direct_gauss_newton: 0)
        if key.endswith("_ci"):
            low, high = figures[f"{key}_low"], figures[f"{key}_high"]
            value = f"[{low:.3f}, {high:.3f}]" if "_over_" in key else f"[{low:+.4f}, {high:+.4f}]"
            if key == "bridge_minus_best_baseline_ci":
                words += f" ({figures['best_baseline']})"
        elif key == "matched_quality_run_ratio" and not figures.get("matched_quality_reached", True):
            value = f"≥ {figures[key]:.3g} (direct never reached it)"
        elif key not in figures:
            continue
        else:
            number = figures.get(key)
            value = f"{number:.4g}" if isinstance(number, float) else str(number)
        rows.append((words.format(offline=figures.get("offline_cost_of", "the training calibrations")), value))
    return rows


class _Bar:
    """A rich bar whose total is set by the caller (``bar(total)`` returns the advance function)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled, self.label = enabled, label
        self.progress: Any = None

    def __enter__(self) -> Callable[[int], Callable[[], None]]:
        def start(total: int) -> Callable[[], None]:
            if not self.enabled or total == 0:
                return lambda: None
            from rich.progress import Progress

            self.progress = Progress(transient=True)
            self.progress.start()
            task = self.progress.add_task(self.label, total=total)
            return lambda: self.progress.advance(task)

        return start

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _plot_losses(path: Path, scores: Sequence[Mapping[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from apps.traffic.scoring import DIRECT_GN, METHODS
    from core.files import atomic_path

    methods = [m for m in (*METHODS, DIRECT_GN) if m != "theta_star" and all(m in s["methods"] for s in scores)]
    figure, axis = plt.subplots(figsize=(max(6.0, 0.45 * len(scores) + 2), 4))
    positions = np.arange(len(scores))
    floor = [s["methods"]["theta_star"]["loss"] for s in scores]
    for k, method in enumerate(methods):
        values = [s["methods"][method]["loss"] for s in scores]
        axis.scatter(positions + (k - len(methods) / 2) * 0.08, values, s=10, label=method)
    axis.plot(positions, floor, "k_", markersize=14, label="θ* (noise floor)")
    axis.set_xticks(positions, [s["scenario"] for s in scores], rotation=60, ha="right", fontsize=6)
    axis.set_ylabel("loss on fresh SUMO seeds (lower is better)")
    axis.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def _plot_theta(path: Path, scores: Sequence[Mapping[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.files import atomic_path

    names = list(scores[0]["theta"]["theta_star"])
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        star = [s["theta"]["theta_star"][name] for s in scores]
        for method, marker in (("bridge", "o"), ("refine", "s"), ("direct", "x"), ("direct_gauss_newton", "+")):
            if any(method not in s["theta"] for s in scores):
                continue
            axis.scatter(star, [s["theta"][method][name] for s in scores], marker=marker, s=14, label=method)
        low, high = min(star), max(star)
        axis.plot([low, high], [low, high], "k--", linewidth=1, label="θ̂ = θ*")
        axis.set_xlabel(f"{name}: θ* (hidden truth)")
        axis.set_ylabel(f"{name}: calibrated")
        axis.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
