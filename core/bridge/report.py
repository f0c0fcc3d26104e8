"""The bridge report: ``report/report.md``, ``report/summary.json`` and PNG plots, from the workspace files.

It reads the workspace through :mod:`core.bridge.workspace` and :mod:`core.bridge.summary` only (the pipeline
calls it; it never imports the pipeline).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.bridge.summary import summarize
from core.bridge.workspace import Workspace, load_model, read_csv
from core.files import write_atomic


def write_report(workspace: Workspace, cfg: DictConfig) -> Path:
    """Write the report of a workspace whose evaluate stage finished; returns the path of ``report.md``."""
    import matplotlib

    matplotlib.use("Agg")

    from core.bridge.studies import StudyResult

    out = workspace.report_dir
    out.mkdir(parents=True, exist_ok=True)
    evaluation = read_csv(workspace.evaluation)
    pairs = read_csv(workspace.pairs)
    _, card = load_model(workspace)
    summary = summarize(evaluation)
    summary["model"] = card["model"]
    stages = workspace.root / "stages" / "collect.json"
    excluded = json.loads(stages.read_text()).get("excluded", []) if stages.is_file() else []
    summary["excluded_scenarios"] = excluded
    write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")

    names = [c.removeprefix("pred.") for c in evaluation[0] if c.startswith("pred.")]
    plots = [_plot_predictions(out, evaluation, names, workspace), _plot_values(out, evaluation)]
    histories = {}
    for row in evaluation:
        folder = workspace.study_dir(row["scenario"], "expensive")
        if (folder / "result.json").is_file():
            histories[row["scenario"]] = StudyResult.load(folder).history
    if histories:
        plots.append(_plot_quality_vs_cost(out, evaluation, histories, int(cfg.evaluate.refine)))

    lines = [f"# Model bridge report: {cfg.name}", ""]
    keys = sorted({k for scores in card["cv_mse_standardized"].values() for k in scores})
    targets = {
        "known": "the parameters each training scenario was simulated with (fit.targets: known)",
        "calibrated": f"each training scenario's calibration (the mean of its {card.get('target_top_k', 1)} best runs)",
    }[card.get("targets", "calibrated")]
    lines += [
        f"h's targets: {targets}.",
        "",
        f"Regression models, chosen per output by cross-validation on {card['n_pairs']} training pairs "
        "(mean squared error on standardized targets; `mean` predicts the training mean, about 1; `prior` the "
        "anchor given, e.g. the centre of the search range; `shrunk` the prediction as used). Each output predicts "
        "`anchor + weight · (model − anchor)`, the weight in [0, 1] chosen by leave-one-out error:",
        "",
        "| output | chosen | anchor | weight | " + " | ".join(keys) + " |",
        "|---|---|---|---|" + "---|" * len(keys),
    ]
    for output, scores in card["cv_mse_standardized"].items():
        cells = " | ".join(f"{scores[k]:.3g}" if k in scores else "" for k in keys)
        anchor = card.get("anchor", {}).get(output, {"kind": "mean", "value": math.nan})
        weight = card.get("shrinkage_weight", {}).get(output, math.nan)
        lines.append(
            f"| {output} | {card['model'][output]} | {anchor['kind']} {anchor['value']:.4g} | {weight:.3g} | {cells} |"
        )
    if card.get("fallback_to_mean"):
        lines += [
            "",
            f"No candidate beat the anchor for: {', '.join(card['fallback_to_mean'])} (predicted as the anchor).",
        ]
    lines += ["", "## Held-out scenarios (medians)", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary.items() if k not in ("excluded_scenarios",)]
    lines += [
        "",
        "`regret_ratio_vs_direct`: objective at the bridge's prediction over the direct HPO optimum's. "
        "`speedup`: wall time direct HPO needed to reach the bridge's value, over the bridge's wall time "
        "(cheap study + one expensive run).",
        "",
    ]
    lines += [
        "## Per scenario",
        "",
        "| scenario | bridge | refine | direct | direct runs to match |",
        "|---|---|---|---|---|",
    ]
    for row in evaluation:
        lines.append(
            f"| {row['scenario']} | {_fmt(row.get('bridge_value'))} | {_fmt(row.get('refine_value'))} | "
            f"{_fmt(row.get('direct_value'))} | {row.get('direct_runs_to_match_bridge', '')} |"
        )
    if excluded:
        lines += ["", f"Excluded (a study found no finished trial): {', '.join(excluded)}"]
    lines += ["", f"{sum(r['split'] == 'train' for r in pairs)} training pairs, {len(evaluation)} test scenarios.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    path = out / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _fmt(value: Any) -> str:
    if value in (None, ""):
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.4g}"


def _plot_predictions(out: Path, evaluation: list[dict[str, str]], names: list[str], workspace: Workspace) -> Path:
    import matplotlib.pyplot as plt

    from core.bridge.studies import StudyResult

    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        truth, predicted, errors = [], [], []
        for row in evaluation:
            folder = workspace.study_dir(row["scenario"], "expensive")
            if not (folder / "result.json").is_file():
                continue
            truth.append(StudyResult.load(folder).best_params[name])
            predicted.append(float(row[f"pred.{name}"]))
            errors.append(float(row.get(f"pred_std.{name}") or 0.0))
        axis.errorbar(truth, predicted, yerr=errors if any(errors) else None, fmt="o", capsize=3)
        if truth:
            low, high = min(truth + predicted), max(truth + predicted)
            axis.plot([low, high], [low, high], "k--", linewidth=1)
        axis.set_xlabel(f"{name}: direct HPO optimum")
        axis.set_ylabel(f"{name}: bridge prediction")
    figure.tight_layout()
    path = out / "predicted_vs_direct.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plot_values(out: Path, evaluation: list[dict[str, str]]) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(max(6, len(evaluation) * 0.6), 4))
    positions = np.arange(len(evaluation))
    for offset, (key, label) in enumerate(
        [("bridge_value", "bridge"), ("refine_value", "bridge + refine"), ("direct_value", "direct HPO")]
    ):
        values = [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in evaluation]
        axis.bar(positions + (offset - 1) * 0.27, values, width=0.27, label=label)
    axis.set_xticks(positions, [r["scenario"] for r in evaluation], rotation=45, ha="right")
    axis.set_ylabel("expensive objective (lower is better)")
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.legend()
    figure.tight_layout()
    path = out / "objective_per_scenario.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _plot_quality_vs_cost(
    out: Path, evaluation: list[dict[str, str]], histories: dict[str, list[float]], refine: int
) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    length = max(len(h) for h in histories.values())
    curves = []
    for history in histories.values():
        best = np.minimum.accumulate(np.nan_to_num(np.asarray(history, dtype=float), nan=np.inf))
        curves.append(np.pad(best, (0, length - len(best)), mode="edge"))
    figure, axis = plt.subplots(figsize=(6, 4))
    runs = np.arange(1, length + 1)
    axis.plot(runs, np.median(curves, axis=0), label="direct HPO (median best so far)")
    axis.scatter(
        [1],
        [np.median([float(r["bridge_value"]) for r in evaluation])],
        color="C1",
        zorder=3,
        label="bridge (1 expensive run)",
    )
    refined = [float(r["refine_value"]) for r in evaluation if r.get("refine_value") not in (None, "")]
    if refined:
        axis.scatter([1 + refine], [np.median(refined)], color="C2", zorder=3, label=f"bridge + refine ({refine})")
    axis.set_xscale("log")
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set_xlabel("expensive-model runs per scenario")
    axis.set_ylabel("expensive objective (median over test scenarios)")
    axis.legend()
    figure.tight_layout()
    path = out / "quality_vs_cost.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
