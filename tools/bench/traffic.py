"""Benchmark of SUMO traffic calibration through the model bridge, on two scenario families, scored on fresh seeds.

For each family (``apps/traffic/config/grid.yaml``: uncongested 3×3 grids; ``congested.yaml``: random networks
near capacity, with spillback; and with ``--families spider`` a third family nothing was chosen on, ``spider.yaml``,
into its own ``--out``) the whole protocol of ``kakehashi traffic bridge`` runs:

1. the cheap spatial queue model is calibrated on every scenario and microscopic SUMO (TPE) on every held-out
   scenario (direct HPO, 50 runs: the reference); h's training targets are the θ* each training scenario was
   simulated with (``fit.targets: known``: the offline cost is those runs), or with ``--set
   fit.targets=calibrated`` SUMO calibrations of the training scenarios (``--trials`` runs each);
2. h: ξ̂ → θ̂ is fitted per output by cross-validation; on each held-out scenario θ̂ = h(ξ̂) is checked by one SUMO
   run and refined by up to 4 more, as many as the prediction's uncertainty asks for;
3. every θ̂ (bridge, refine, direct HPO, the baselines centre / training mean / nearest training scenario /
   regression on summary statistics, and θ* itself: the noise floor) is scored on 3 fresh SUMO seeds; paired
   differences per scenario get 95% bootstrap intervals; the cost is counted in SUMO runs and wall seconds.

Before that, ``identify`` checks on one *training* scenario of each family that θ is identifiable (z-scores of the
loss at ±10/25/50% of each range against the seed noise). The held-out scenarios are scored once, at the end;
nothing is tuned on them. Workspaces are resumable: a second run reuses finished studies and scores.

    python tools/bench/traffic.py                        # the full protocol: 20 training + 25 held-out per family
    python tools/bench/traffic.py --train 8 --test 6              # smaller (the demo's size)
    python tools/bench/traffic.py --families grid --train 20 --test 12 --held-out-from 20 --redo prepare
                                    # grow a workspace's training set, its held-out scenarios (members 20 …) kept

Running some of the families updates their keys in ``--out`` and keeps the other families' figures there. The
training-only experiments (``--refine-experiment``, ``--input-experiment``, ``--calibration-experiment``,
``--variant-experiment``, ``--known-experiment``, ``--size-experiment``, ``--size-refine``, ``--probe-experiment``,
``--corrector-experiment``, ``--blend-experiment``, ``--second-step-experiment``, ``--features-experiment``,
``--features-sumo-experiment``, ``--pooled-experiment``, ``--guard-experiment``, ``--meso-experiment``,
``--meso-check-experiment``, ``--step-prior-experiment``, ``--kind-weight-experiment``) write to
``--experiments-out`` (``traffic_experiments.json``), never to a draw's file (their code is in
``traffic_experiments.py``); ``--paired-refine`` writes only its
own figures to ``--out``:

    python tools/bench/traffic.py --experiments-only --refine-experiment 2 --input-experiment \
        --calibration-experiment --variant-experiment --known-experiment   # the first draw's workspace
    python tools/bench/traffic.py --experiments-only --size-experiment runs/bench/traffic-fresh \
        runs/bench/traffic-third   # h on 94 training pairs: the first three draws' held-out scenarios added
    python tools/bench/traffic.py --experiments-only --size-refine --workspace runs/bench/traffic-size \
        --train 95 --test 1 --families grid   # the same with SUMO (and --families congested beside it)
    python tools/bench/traffic.py --experiments-only --blend-experiment --workspace runs/bench/traffic-size \
        --train 95 --test 1 --families grid   # the learned step blended in, on members 20–94
    python tools/bench/traffic.py --workspace runs/bench/traffic-seventh --test 50 --held-out-from 170 \
        --direct-trials 1 --set evaluate.direct_gauss_newton=0 --paired-refine runs/bench/traffic-seventh-old \
        --out tools/bench/results/traffic_seventh_draw_paired_refine.json   # two refines, the same members
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

from traffic_experiments import (  # tools/bench, the script's folder, is first on sys.path
    _plot_curves,
    blend_experiment,
    calibration_experiment,
    corrector_experiment,
    features_experiment,
    features_sumo_experiment,
    guard_experiment,
    input_experiment,
    kind_weight_experiment,
    known_experiment,
    meso_check_experiment,
    meso_experiment,
    pooled_experiment,
    probe_experiment,
    refine_experiment,
    second_step_experiment,
    size_experiment,
    size_refine_experiment,
    step_prior_experiment,
    variant_experiment,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tools" / "bench" / "results"
FAMILIES = ("grid", "congested")
OTHER_FAMILIES = ("spider", "congested_days")  # configs the headline does not run: --families F, its own --out

# figures copied per family into the JSON as <figure>_<family>
LATER_EXPERIMENTS = (  # experiments whose keys name their own workspace (not the first draw's)
    "size_refine",
    "probe_experiment",
    "corrector_experiment",
    "blend_experiment",
    "second_step",
    "features_",
    "pooled_experiment",
    "guard_experiment",
    "meso_experiment",
    "meso_check_experiment",
    "step_prior_experiment",
    "kind_weight_experiment",
)
PER_FAMILY = (
    "n_train_scenarios", "n_test_scenarios", "n_fresh_seeds",
    "loss_bridge", "loss_refine", "loss_direct", "loss_theta_star", "loss_centre", "loss_train_mean", "loss_nearest",
    "loss_stats_regression", "param_error_bridge", "param_error_refine", "param_error_direct", "param_error_centre",
    "param_error_train_mean", "param_error_nearest", "param_error_stats_regression",
    "bridge_minus_best_baseline_mean", "bridge_minus_best_baseline_ci_low", "bridge_minus_best_baseline_ci_high",
    "refine_minus_direct_mean", "refine_minus_direct_ci_low", "refine_minus_direct_ci_high",
    "bridge_minus_direct_ci_low", "bridge_minus_direct_ci_high", "bridge_wins_vs_best_baseline",
    "refine_over_direct_loss", "refine_over_direct_loss_ci_low", "refine_over_direct_loss_ci_high",
    "matched_quality_run_ratio", "matched_quality_reached", "direct_runs_to_match_refine",
    "break_even_scenarios", "sumo_runs_per_new_scenario_refine", "sumo_runs_per_new_scenario_direct",
    "wall_s_per_new_scenario_refine", "wall_s_per_new_scenario_direct", "cheap_wall_s_per_new_scenario",
    "amortised_sumo_runs_per_scenario_100_new_bridge", "amortised_sumo_runs_per_scenario_100_new_direct",
    "amortised_wall_s_per_scenario_100_new_bridge", "amortised_wall_s_per_scenario_100_new_direct",
    "offline_sumo_runs", "offline_wall_s", "corr_demand_vs_demand_scale", "corr_free_speed_vs_speed_factor",
    "corr_saturation_flow_vs_tau", "flagged_runs_bridge", "flagged_runs_direct", "flagged_runs_theta_star",
    # the second reference, direct Gauss–Newton from the centre (evaluate.direct_gauss_newton)
    "loss_direct_gauss_newton", "param_error_direct_gauss_newton", "flagged_runs_direct_gauss_newton",
    "refine_minus_direct_gauss_newton_mean", "refine_minus_direct_gauss_newton_ci_low",
    "refine_minus_direct_gauss_newton_ci_high", "bridge_minus_direct_gauss_newton_mean",
    "refine_over_direct_gauss_newton_loss", "direct_gauss_newton_over_direct_loss",
    "sumo_runs_per_new_scenario_direct_gauss_newton", "break_even_scenarios_vs_direct_gauss_newton",
)  # fmt: skip


# the figures a draw split in two (--split-at) gives for each part: the targets and what they read
SPLIT_FIGURES = (
    "loss_theta_star", "loss_bridge", "loss_refine", "loss_direct", "loss_direct_gauss_newton", "best_baseline",
    "bridge_minus_best_baseline_mean", "bridge_minus_best_baseline_ci_low", "bridge_minus_best_baseline_ci_high",
    "refine_over_direct_loss", "refine_over_direct_loss_ci_low", "refine_over_direct_loss_ci_high",
    "direct_runs_to_match_refine", "matched_quality_run_ratio", "break_even_scenarios",
)  # fmt: skip


def split_figures(workspace: Path, first: int, split_at: int) -> dict[str, Any]:
    """A draw's figures over its held-out members before ``split_at`` and over those from it on, each part scored
    alone from the draw's cached fresh-seed scores (no SUMO run): ``<figure>_members_<a>_<b>``. The held-out
    scenario ``test-<j>`` is member ``first + j``."""
    from omegaconf import OmegaConf

    from apps.traffic.scoring import family_figures
    from core.bridge.workspace import Workspace, read_csv

    ws = Workspace(workspace)
    pairs = read_csv(ws.pairs)
    scores = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ws.report_dir / "scores").glob("*.json"))]
    members = {s["scenario"]: first + int(s["scenario"].rsplit("-", 1)[1]) for s in scores}
    space_node = OmegaConf.load(workspace / "merged_config.yaml").models.expensive.params
    space = {str(n): (float(b[0]), float(b[1])) for n, b in space_node.items()}
    out: dict[str, Any] = {}
    for part in ([s for s in scores if members[s["scenario"]] < split_at],
                 [s for s in scores if members[s["scenario"]] >= split_at]):  # fmt: skip
        if not part:
            continue
        low, high = min(members[s["scenario"]] for s in part), max(members[s["scenario"]] for s in part)
        figures = family_figures(ws, pairs, part, space)
        out.update({f"{key}_members_{low}_{high}": figures[key] for key in SPLIT_FIGURES if key in figures})
    return out


def paired_refines(workspace: Path, other: Path, first: int, split_at: int | None) -> dict[str, Any]:
    """Two refines on the same held-out members, from two workspaces' cached fresh-seed scores (no SUMO run):
    ``workspace``'s (``this``) and ``other``'s (the same draw with the evaluate stage rerun under other settings,
    or the whole bridge with another training set). Their mean losses, the paired difference other − this with its
    95% bootstrap interval, and how many members the other refine scores lower on; over all members and over each
    part of ``split_at``; the same for the check runs (``paired_check_*``; equal when only evaluate was rerun)."""
    import numpy as np

    from apps.traffic.scoring import bootstrap_interval

    def losses(root: Path, method: str) -> dict[str, float]:
        found = (json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / "report" / "scores").glob("*.json")))
        return {s["scenario"]: float(s["methods"][method]["loss"]) for s in found}

    out: dict[str, Any] = {}
    for method, prefix in (("refine", "paired_refine"), ("bridge", "paired_check")):
        mine, theirs = losses(workspace, method), losses(other, method)
        if not mine or sorted(mine) != sorted(theirs):
            raise SystemExit(f"paired refines: {workspace} and {other} do not hold the same scored held-out scenarios")
        members = {s: first + int(s.rsplit("-", 1)[1]) for s in mine}
        parts = {"": sorted(mine)}
        if split_at is not None:
            for part in ([s for s in mine if members[s] < split_at], [s for s in mine if members[s] >= split_at]):
                if part:
                    parts[f"_members_{min(members[s] for s in part)}_{max(members[s] for s in part)}"] = sorted(part)
        for tag, scenarios in parts.items():
            this = np.array([mine[s] for s in scenarios])
            that = np.array([theirs[s] for s in scenarios])
            low, high = bootstrap_interval(that - this)
            out[f"{prefix}_scenarios{tag}"] = len(scenarios)
            out[f"{prefix}_loss_this{tag}"] = float(this.mean())
            out[f"{prefix}_loss_other{tag}"] = float(that.mean())
            out[f"{prefix}_other_minus_this_mean{tag}"] = float((that - this).mean())
            out[f"{prefix}_other_minus_this_ci_low{tag}"] = low
            out[f"{prefix}_other_minus_this_ci_high{tag}"] = high
            out[f"{prefix}_other_lower{tag}"] = int((that < this).sum())
    return out


def combined_draws(roots: list[Path]) -> dict[str, Any]:
    """The check run's margin over the best no-SUMO baseline over several draws' held-out members together, from
    their cached fresh-seed scores (no SUMO run): per member the bridge's loss minus that of its own draw's best
    baseline (each draw's baselines fitted to its own training set), the mean and its 95% bootstrap interval over
    all members. Descriptive: each draw is judged alone."""
    import numpy as np

    from apps.traffic.scoring import bootstrap_interval

    diffs: list[float] = []
    for root in roots:
        best = json.loads((root / "report" / "traffic.json").read_text(encoding="utf-8"))["best_baseline"]
        for path in sorted((root / "report" / "scores").glob("*.json")):
            methods = json.loads(path.read_text(encoding="utf-8"))["methods"]
            diffs.append(float(methods["bridge"]["loss"]) - float(methods[best]["loss"]))
    if not diffs:
        raise SystemExit(f"combined draws: no scored held-out scenario in {', '.join(map(str, roots))}")
    values = np.asarray(diffs)
    low, high = bootstrap_interval(values)
    prefix = "combined_bridge_minus_best_baseline"
    return {"combined_draws": ", ".join(str(r.parent.name) for r in roots), "combined_members": len(diffs),
            f"{prefix}_mean": float(values.mean()), f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}  # fmt: skip


EXCESS_METHODS = ("bridge", "refine", "direct", "direct_gauss_newton", "centre", "train_mean", "nearest",
                  "stats_regression")  # fmt: skip


def loss_excess(roots: list[Path]) -> dict[str, Any]:
    """How much of each method's loss above the noise floor its parameter errors explain, from the cached
    fresh-seed scores of several draws' held-out members (no SUMO run; descriptive). Per member and method: the
    excess (its loss − θ*'s, same fresh seeds) and its error e = (θ̂ − θ*) / search width per parameter. A
    quadratic in e (squares, cross products, linear terms, a constant) is fitted to every other method's points by
    least squares and predicts this method's excess from its errors alone: a method whose actual excess is far
    below the prediction found θs that fit this scenario's observations better than their distance from θ* says
    (a valley of θs that reproduce Y), which estimating θ* does not; ``below_floor`` counts the members where a
    method's θ̂ scored below θ* itself (it reproduces Y's own realisation better than the truth does on average)."""
    import numpy as np
    from omegaconf import OmegaConf

    from apps.traffic.scoring import bootstrap_interval

    space = OmegaConf.load(roots[0] / "merged_config.yaml").models.expensive.params  # the first draw's search space
    widths = {str(n): float(b[1]) - float(b[0]) for n, b in space.items()}
    names = list(widths)
    errors, excess, method = [], [], []
    for root in roots:
        for path in sorted((root / "report" / "scores").glob("*.json")):
            score = json.loads(path.read_text(encoding="utf-8"))
            star, floor = score["theta"]["theta_star"], float(score["methods"]["theta_star"]["loss"])
            for m in EXCESS_METHODS:
                errors.append([(score["theta"][m][n] - star[n]) / widths[n] for n in names])
                excess.append(float(score["methods"][m]["loss"]) - floor)
                method.append(m)
    if not excess:
        raise SystemExit(f"loss excess: no scored held-out scenario in {', '.join(map(str, roots))}")
    e, y, label = np.asarray(errors), np.asarray(excess), np.asarray(method)
    pairs = [(i, j) for i in range(len(names)) for j in range(i, len(names))]
    design = np.column_stack([e[:, i] * e[:, j] for i, j in pairs] + [e, np.ones(len(e))])
    out: dict[str, Any] = {"loss_excess_draws": ", ".join(str(r.parent.name) for r in roots),
                           "loss_excess_members": len(y) // len(EXCESS_METHODS)}  # fmt: skip
    for m in EXCESS_METHODS:
        mine = label == m
        coef = np.linalg.lstsq(design[~mine], y[~mine], rcond=None)[0]
        predicted = design[mine] @ coef
        gap = y[mine] - predicted
        low, high = bootstrap_interval(gap)
        out.update({f"loss_excess_{m}": float(y[mine].mean()), f"loss_excess_predicted_{m}": float(predicted.mean()),
                    f"loss_excess_{m}_minus_predicted_ci_low": low, f"loss_excess_{m}_minus_predicted_ci_high": high,
                    f"loss_excess_param_error_{m}": float(np.abs(e[mine]).mean()),
                    f"loss_excess_below_floor_{m}": int(np.sum(y[mine] < 0))})  # fmt: skip
    return out


def sumo_run_seconds(workspace: Path) -> float:
    """Median wall seconds of one SUMO trial, from the direct-HPO studies' trials (2 at a time)."""
    import optuna

    from core.hpo.storage import open_storage

    storage = open_storage(str(workspace / "studies.journal"), workspace, read_only=True).storage
    durations = []
    for summary in optuna.get_all_study_summaries(storage):
        if summary.study_name.endswith("/expensive"):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            durations += [t.duration.total_seconds() for t in study.trials if t.duration is not None]
    return statistics.median(durations) if durations else float("nan")


def cheap_run_seconds(config: Path, workspace: Path) -> float:
    from apps.traffic.objective import unpack_scenario
    from apps.traffic.queue_model import LinkQueueModel
    from core.bridge.scenario import Scenario

    scenario = Scenario.load(sorted((workspace / "scenarios").glob("train-*.json"))[0])
    spec, built, _ = unpack_scenario(scenario)
    model = LinkQueueModel(built, spec)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        model.simulate({})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "bench" / "traffic")
    parser.add_argument("--train", type=int, default=20, help="training scenarios per family")
    parser.add_argument("--test", type=int, default=25, help="held-out scenarios per family")
    parser.add_argument("--trials", type=int, default=20, help="SUMO runs of each training calibration")
    parser.add_argument("--direct-trials", type=int, default=50, help="SUMO runs of direct HPO per held-out scenario")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES + OTHER_FAMILIES)
    parser.add_argument("--identify-seeds", type=int, default=4)
    parser.add_argument(
        "--redo",
        choices=("prepare", "optimize", "collect", "fit", "evaluate", "report"),
        help="redo this stage and the later ones in existing workspaces (e.g. prepare after --train grew, fit "
        "after a change to h): finished "
        "studies are reused, check and refine runs rerun only where their points changed, and fresh-seed scores "
        "are reused for every θ that did not change",
    )
    parser.add_argument(
        "--refine-experiment",
        type=int,
        default=0,
        metavar="R",
        help="also run the training-only leave-one-out experiment that chose the refine rule, R replicates "
        "(replicate 0 on the calibration seed, each further one on a redrawn seed); cached in the workspace",
    )
    parser.add_argument(
        "--held-out-from",
        type=int,
        metavar="I",
        help="the held-out scenarios are members I, I+1, … of the family's draw (default: right after the training "
        "ones); fix it to change --train without changing the held-out set",
    )
    parser.add_argument(
        "--size-experiment",
        type=Path,
        nargs="*",
        metavar="WORKSPACE",
        help="also fit h (θ* targets) to the training scenarios plus the held-out ones of this and these earlier "
        "draws' workspaces, leave-one-out on the training scenarios; errors against θ* (no SUMO run)",
    )
    parser.add_argument(
        "--size-refine",
        action="store_true",
        help="the size experiment with SUMO, in a workspace of --train 95 --test 1: check run and refine from h on "
        "19 or 94 θ* pairs, leave-one-out on the first 20 training members",
    )
    parser.add_argument(
        "--probe-experiment",
        action="store_true",
        help="in the size refine experiment's workspace: the refine's probes at 15, 25 and 40%% of each range, "
        "from h on 20 pairs, on all 95 training members, every run's point scored on the fresh seeds",
    )
    parser.add_argument(
        "--second-step-experiment",
        action="store_true",
        help="after --blend-experiment, in its workspace: a second Gauss–Newton step from the step's run with all 5 "
        "runs as probes (no run more), against the step's point, on members 20–94",
    )
    parser.add_argument(
        "--pooled-experiment",
        action="store_true",
        help="after --blend-experiment, in its workspace: the pooled refine (a Jacobian learned on members 0–19's "
        "offline runs, each refine run on a seed of its own) against the step's point, on members 20–94",
    )
    parser.add_argument(
        "--guard-experiment",
        action="store_true",
        help="after --pooled-experiment, in its workspace: the pooled refine with a guard (a run whose loss rises "
        "above 1.5 × the best is left out and halves the largest move) against the step's point and the pooled "
        "refine, on members 20–94",
    )
    parser.add_argument(
        "--meso-experiment",
        action="store_true",
        help="in the size refine experiment's workspace, no microscopic run: SUMO's mesoscopic model (plain and with "
        "junction control) calibrated on members 0–94; its θ̂'s correlation with θ*, and h on members 0–19 with it "
        "as an input predicting members 20–94",
    )
    parser.add_argument(
        "--meso-check-experiment",
        action="store_true",
        help="after --meso-experiment, in its workspace: h with the mesoscopic model's θ̂ in place of ξ̂ or beside "
        "it, 5-fold over members 0–94, each prediction's check run scored on the fresh seeds with SUMO",
    )
    parser.add_argument(
        "--step-prior-experiment",
        action="store_true",
        help="after --meso-check-experiment, in its workspace: the Gauss–Newton step's prior at 40%% (as it is), 20%% "
        "or 10%% of each range or h's std, from the same check run and probes, each step's point scored with SUMO",
    )
    parser.add_argument(
        "--kind-weight-experiment",
        action="store_true",
        help="after --step-prior-experiment, in its workspace: the Gauss–Newton step (prior h's std) with each kind "
        "of observation's residuals weighted as the loss weighs them, or by its own noise, each point scored with SUMO",
    )
    parser.add_argument(
        "--features-experiment",
        action="store_true",
        help="in the size refine experiment's workspace, no SUMO run: h on members 0–19 predicting members 20–94 "
        "with its inputs as they are and with more statistics of Y's shape (quantiles, queue share, count spread)",
    )
    parser.add_argument(
        "--features-sumo-experiment",
        action="store_true",
        help="after --blend-experiment, in its workspace: the check run and refine from h with the shape statistics "
        "added, against h as it is, on members 20–94",
    )
    parser.add_argument(
        "--corrector-experiment",
        action="store_true",
        help="a learned step instead of the refine's probes: a regression from one run's summary statistics to "
        "θ* − θ, learned from 8 offline runs around each training member's θ*, leave-one-out on the training members",
    )
    parser.add_argument(
        "--input-experiment",
        action="store_true",
        help="also compare h's inputs (ξ̂ alone; with the cheap calibration's best loss; and with the observations' "
        "summary statistics too) by nested leave-one-out on the training scenarios only; cached in the workspace",
    )
    parser.add_argument(
        "--calibration-experiment",
        action="store_true",
        help="also compare training calibrations by Gauss–Newton rounds (10 SUMO runs) with TPE's (20), and h "
        "fitted to either, by leave-one-out on the training scenarios only; cached in the workspace",
    )
    parser.add_argument(
        "--variant-experiment",
        action="store_true",
        help="also try other uses of the refine runs (space mapping: h read on SUMO's own output; h fitted to "
        "Gauss–Newton targets) against the bridge's, by leave-one-out on the training scenarios only (implies "
        "--calibration-experiment); cached in the workspace",
    )
    parser.add_argument(
        "--known-experiment",
        action="store_true",
        help="also fit h to the training scenarios' own θ* (no training calibration: the synthetic-training "
        "offline cost) against the pipeline's calibrated targets, by leave-one-out on the training scenarios only "
        "(implies --calibration-experiment); cached in the workspace",
    )
    parser.add_argument(
        "--split-at",
        type=int,
        metavar="I",
        help="also give the draw's main figures over its held-out members before I and from I on, each part "
        "alone (from the cached scores), e.g. to compare a rerun of an earlier draw's members with new ones",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every family (repeatable), e.g. models.expensive.method=gauss_newton",
    )
    parser.add_argument(
        "--loss-excess",
        type=Path,
        nargs="*",
        metavar="WORKSPACE",
        help="write to --out only how much of each method's loss above the noise floor its parameter errors "
        "explain, over --workspace's and these draws' held-out members (descriptive), from the cached scores",
    )
    parser.add_argument(
        "--combine-draws",
        type=Path,
        nargs="+",
        metavar="WORKSPACE",
        help="write to --out only the check run's margin over the best baseline over these draws' workspaces and "
        "--workspace's held-out members together (descriptive), from the cached scores",
    )
    parser.add_argument(
        "--paired-refine",
        type=Path,
        metavar="WORKSPACE",
        help="write to --out only the comparison of this workspace's refine with WORKSPACE's on the same held-out "
        "members (the same draw, its evaluate rerun there with other settings), from the cached scores",
    )
    parser.add_argument(
        "--blend-experiment",
        action="store_true",
        help="in the size refine experiment's workspace: the Gauss–Newton step's point, the learned step's "
        "estimate from the check run, and their mean, on training members 20–94 (h and the corrector on 0–19)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "traffic.json", help="the draw's figures")
    parser.add_argument(
        "--experiments-out",
        type=Path,
        default=RESULTS / "traffic_experiments.json",
        help="the training-only experiments' figures (kept apart from any draw's)",
    )
    parser.add_argument(
        "--experiments-only",
        action="store_true",
        help="write only --experiments-out (the workspace's bridge must have finished; its draw is not reported)",
    )
    args = parser.parse_args()
    args.calibration_experiment |= args.variant_experiment or args.known_experiment

    from rich.console import Console

    from apps.traffic.bridge import run_bridge
    from core.bridge.pipeline import training_curvature
    from core.bridge.workspace import Workspace, read_csv
    from core.config import load_config

    console = Console()
    figures: dict[str, Any] = {}
    experiments: dict[str, Any] = {}  # training-only: their own file, whichever workspace's draw --out holds
    paired: dict[str, Any] = {}  # --paired-refine, --combine-draws: alone in --out
    started_all = time.perf_counter()
    for family in args.families:
        config = ROOT / "apps" / "traffic" / "config" / f"{family}.yaml"
        workspace = args.workspace / family
        console.print(f"== {family}: identifiability on a training scenario")
        overrides = [f"workspace={workspace}", f"scenarios.n_train={args.train}", f"scenarios.n_test={args.test}",
                     f"models.expensive.n_trials={args.trials}",
                     f"evaluate.direct_trials={args.direct_trials}"]  # fmt: skip
        if args.held_out_from is not None:
            overrides.append(f"+scenarios.first_test_index={args.held_out_from}")
        overrides += args.set
        cfg = load_config(config, overrides)
        cached = workspace / "identify.json"  # resumable like the workspace
        if cached.is_file():
            ident = json.loads(cached.read_text(encoding="utf-8"))
        else:
            ident = identify_with(cfg, args.identify_seeds)
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(ident, indent=1) + "\n", encoding="utf-8")
        console.print(f"== {family}: the bridge ({args.train} training, {args.test} held-out scenarios)")
        started = time.perf_counter()
        result = run_bridge(cfg, log=console.print, redo_from=args.redo)
        result["pipeline_wall_s"] = time.perf_counter() - started  # ~0 when the workspace had finished before
        for key in PER_FAMILY:
            figures[f"{key}_{family}"] = result.get(key)
        figures[f"best_baseline_{family}"] = result["best_baseline"]
        first = int(cfg.scenarios.get("first_test_index") or args.train)
        figures[f"held_out_members_{family}"] = f"{first}-{first + args.test - 1}"
        if args.split_at is not None:
            found = split_figures(workspace, first, args.split_at)
            figures.update({f"{k}_{family}": v for k, v in found.items()})
        figures[f"sumo_run_s_{family}"] = sumo_run_seconds(workspace)
        figures[f"cheap_run_s_{family}"] = cheap_run_seconds(config, workspace)
        figures[f"speedup_cheap_model_vs_sumo_run_{family}"] = (
            figures[f"sumo_run_s_{family}"] / figures[f"cheap_run_s_{family}"]
        )
        card = json.loads((workspace / "model" / "card.json").read_text(encoding="utf-8"))
        for name, weight in card["shrinkage_weight"].items():  # h per θ output: anchor + weight · (model − anchor)
            figures[f"h_model_{name}_{family}"] = card["model"][name]
            figures[f"h_shrinkage_weight_{name}_{family}"] = weight
            figures[f"h_anchor_{name}_{family}"] = f"{card['anchor'][name]['kind']} {card['anchor'][name]['value']:.4g}"
        figures[f"target_top_k_{family}"] = card["target_top_k"]
        figures.update({f"{k}_{family}": v for k, v in ident.items()})
        figures[f"refine_order_{family}"] = str(cfg.evaluate.get("refine_order", "uncertainty"))
        figures[f"refine_share_{family}"] = float(cfg.evaluate.get("refine_share", 0.25))
        figures[f"refine_keep_{family}"] = str(cfg.evaluate.get("refine_keep", "best"))
        figures[f"refine_method_{family}"] = str(cfg.evaluate.get("refine_method", "pattern"))
        if args.loss_excess is not None:
            found = loss_excess([workspace, *(root / family for root in args.loss_excess)])
            paired.update({f"{k}_{family}": v for k, v in found.items()})
        if args.combine_draws:
            found = combined_draws([workspace, *(root / family for root in args.combine_draws)])
            paired.update({f"{k}_{family}": v for k, v in found.items()})
        if args.paired_refine is not None:
            found = paired_refines(workspace, args.paired_refine / family, first, args.split_at)
            paired.update({f"{k}_{family}": v for k, v in found.items()})
            paired[f"paired_refine_this_{family}"] = (
                f"{figures[f'refine_method_{family}']}, share {figures[f'refine_share_{family}']:g}, "
                f"keep {figures[f'refine_keep_{family}']}"
            )
            ran = json.loads((args.paired_refine / family / "stages" / "evaluate.json").read_text(encoding="utf-8"))
            other = ran["inputs"]  # the config its evaluate stage ran with
            paired[f"paired_refine_other_{family}"] = (
                f"{other.get('evaluate.refine_method', 'pattern')}, "
                f"share {float(other.get('evaluate.refine_share', 0.25)):g}, "
                f"keep {other.get('evaluate.refine_keep', 'best')}"
            )
            paired[f"held_out_members_{family}"] = figures[f"held_out_members_{family}"]
            for side, root in (("this", workspace), ("other", args.paired_refine / family)):
                rows = read_csv(Workspace(root).pairs)
                paired[f"paired_training_scenarios_{side}_{family}"] = sum(r["split"] == "train" for r in rows)
                scored = json.loads((root / "report" / "traffic.json").read_text(encoding="utf-8"))
                paired[f"paired_best_baseline_{side}_{family}"] = scored["best_baseline"]  # each side's own fits
                for tail in ("mean", "ci_low", "ci_high"):
                    key = f"bridge_minus_best_baseline_{tail}"
                    paired[f"paired_{key}_{side}_{family}"] = scored[key]
        names = [str(n) for n in cfg.models.expensive.params]
        figures[f"fit_targets_{family}"] = card.get("targets", "calibrated")
        if figures[f"fit_targets_{family}"] == "calibrated":  # known targets: no training study to read
            for name, value in zip(names, training_curvature(cfg, Workspace(workspace), names), strict=True):
                figures[f"refine_curvature_{name}_{family}"] = value  # loss per squared range, training studies
        log = console.print
        earlier = [root / family for root in args.size_experiment or []]
        chosen = (  # (asked for, what it does, the experiment)
            (args.refine_experiment > 0, "refine rules, leave-one-out on the training scenarios",
             partial(refine_experiment, cfg, workspace, args.refine_experiment, log=log)),
            (args.calibration_experiment, "training calibrations by Gauss–Newton rounds, on the training scenarios",
             partial(calibration_experiment, cfg, workspace, log=log)),
            (args.variant_experiment, "other uses of the refine runs, on the training scenarios",
             partial(variant_experiment, cfg, workspace, log=log)),
            (args.known_experiment, "h fitted to the training scenarios' θ*, on the training scenarios",
             partial(known_experiment, cfg, workspace, log=log)),
            (args.size_experiment is not None, "h on more training pairs (θ*), leave-one-out on the training "
             "scenarios", partial(size_experiment, cfg, workspace, earlier)),
            (args.size_refine, "check run and refine from h on 19 or 94 θ* pairs, with SUMO",
             partial(size_refine_experiment, cfg, workspace, log=log)),
            (args.probe_experiment, "the refine's probe step, 15 / 25 / 40% of each range, with SUMO",
             partial(probe_experiment, cfg, workspace, log=log)),
            (args.blend_experiment, "the step's point blended with the learned step's estimate, with SUMO",
             partial(blend_experiment, cfg, workspace, log=log)),
            (args.second_step_experiment, "a second Gauss–Newton step from the step's run, with SUMO",
             partial(second_step_experiment, cfg, workspace, log=log)),
            (args.pooled_experiment, "the pooled refine with a Jacobian learned offline, with SUMO",
             partial(pooled_experiment, cfg, workspace, log=log)),
            (args.guard_experiment, "the pooled refine with a guard against runaway moves, with SUMO",
             partial(guard_experiment, cfg, workspace, log=log)),
            (args.meso_experiment, "the mesoscopic model as a cheap model, members 0–94, no microscopic run",
             partial(meso_experiment, cfg, workspace, log=log)),
            (args.meso_check_experiment, "the mesoscopic model as the cheap model, its check run scored with SUMO",
             partial(meso_check_experiment, cfg, workspace, log=log)),
            (args.step_prior_experiment, "the Gauss–Newton step's prior width, 5-fold over members 0–94, with SUMO",
             partial(step_prior_experiment, cfg, workspace, log=log)),
            (args.kind_weight_experiment, "the Gauss–Newton step's weights per kind of observation, with SUMO",
             partial(kind_weight_experiment, cfg, workspace, log=log)),
            (args.features_experiment, "h with more statistics of Y's shape, members 20–94, no SUMO run",
             partial(features_experiment, cfg, workspace)),
            (args.features_sumo_experiment, "check run and refine from h with the shape statistics, with SUMO",
             partial(features_sumo_experiment, cfg, workspace, log=log)),
            (args.corrector_experiment, "a learned step from one run's statistics, on the training scenarios",
             partial(corrector_experiment, cfg, workspace, log=log)),
            (args.input_experiment, "h's inputs, nested leave-one-out on the training scenarios",
             partial(input_experiment, cfg, workspace)),
        )  # fmt: skip
        for asked, what, experiment in chosen:
            if asked:
                console.print(f"== {family}: {what}")
                experiments.update({f"{k}_{family}": v for k, v in experiment().items()})
        full = workspace.resolve()
        where = str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else workspace.name
        if (
            args.size_refine
            or args.probe_experiment
            or args.blend_experiment
            or args.second_step_experiment
            or args.pooled_experiment
            or args.guard_experiment
            or args.meso_experiment
            or args.meso_check_experiment
            or args.step_prior_experiment
            or args.kind_weight_experiment
            or args.features_experiment
            or args.features_sumo_experiment
        ):
            experiments[f"size_refine_experiment_workspace_{family}"] = where
        if args.corrector_experiment:
            experiments[f"corrector_experiment_workspace_{family}"] = where
        if any(not k.startswith(LATER_EXPERIMENTS) for k in experiments):  # the first draw's experiments ran
            experiments[f"experiments_workspace_{family}"] = where
    if args.calibration_experiment:
        _plot_curves(experiments, args.experiments_out.with_name("traffic_calibration_curves.png"))
    if experiments:
        _write(args.experiments_out, experiments, console)
    if args.paired_refine is not None or args.combine_draws or args.loss_excess is not None:
        _write(args.out, paired, console)
    elif not args.experiments_only:
        figures["benchmark_wall_s"] = time.perf_counter() - started_all
        _write(args.out, figures, console, totals=True)
    return 0


def _write(path: Path, figures: dict[str, Any], console: Any, totals: bool = False) -> None:
    """Merge ``figures`` over what ``path`` holds (the families not run this time keep theirs), add the versions
    (and with ``totals`` the offline cost summed over the families), print them and write the JSON."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("w") as lock:  # one process per family may write at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        _merge_and_write(path, figures, console, totals)


def _merge_and_write(path: Path, figures: dict[str, Any], console: Any, totals: bool) -> None:
    from rich.table import Table

    from core.files import write_atomic

    if path.is_file():
        figures = {**json.loads(path.read_text(encoding="utf-8")), **figures}
    if totals:
        for key in ("offline_sumo_runs", "offline_wall_s"):
            figures[key] = sum(figures[f"{key}_{f}"] for f in FAMILIES + OTHER_FAMILIES if f"{key}_{f}" in figures)
    figures = {k: round(v, 5) if isinstance(v, float) else v for k, v in figures.items()}
    figures.update({"sumo_version": version("eclipse-sumo"), "optuna_version": version("optuna"),
                    "scikit_learn_version": version("scikit-learn"), "cpu_count": os.cpu_count()})  # fmt: skip
    table = Table("figure", "value", title=f"traffic: {path.name}")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    write_atomic(path, json.dumps(figures, indent=2, default=str) + "\n")
    console.print(f"wrote {path}")


def identify_with(cfg: Any, seeds: int) -> dict[str, Any]:
    """:func:`identify` on a loaded config (the workspace's family)."""
    from omegaconf import OmegaConf

    from apps.traffic.family import TrafficFamily
    from apps.traffic.identify import landscape

    container = OmegaConf.to_container(cfg.scenarios, resolve=True)
    assert isinstance(container, dict)
    node = {str(k): v for k, v in container.items()}
    node.pop("_target_")
    node["progress"] = False
    (_, _, _, spec), *_ = TrafficFamily(**node).specs()
    params = OmegaConf.to_container(cfg.models.expensive.params, resolve=True)
    assert isinstance(params, dict)
    space = {str(k): v for k, v in params.items()}
    seed_list = [spec.calibration_seed + 200_000 + i for i in range(seeds)]
    table = landscape(spec, space, workdir=node["workdir"], seeds=seed_list)
    out: dict[str, Any] = {
        "identify_noise_sd": table.noise,
        "identify_loss_at_theta_star": statistics.fmean(table.losses_at_star),
    }
    for step in (0.1, 0.25, 0.5):
        out[f"identifiable_params_at_{round(100 * step)}pct"] = sum(table.identifiable(step).values())
    for row in table.rows:
        out[f"identify_z_{row.parameter}_{row.step:+g}"] = row.z
    return out


if __name__ == "__main__":
    sys.exit(main())
