"""Scoring a finished traffic bridge so that seed noise cannot fool it: fresh seeds, baselines, intervals, cost.

Every calibrated θ̂ of a held-out scenario — the bridge's prediction, bridge + refine, direct HPO's best, and the
baselines that use no SUMO run at all — is simulated with ``n_seeds`` *fresh* SUMO seeds (neither the seed of the
observations nor the one every calibration simulated with) and scored against the observations; its loss is the
mean over those seeds. Its parameter error is the mean over parameters of |θ̂ − θ*| / the parameter's search range.
θ* itself, scored the same way, is the **noise floor**: what a perfect calibration scores.

The baselines (each could win, so each is always in the table):

* ``centre``: the middle of the search range — knows nothing about the scenario;
* ``train_mean``: the mean θ̂ of the training scenarios (*prior only*: what the bridge must beat to show that it uses
  the cheap model's ξ̂);
* ``nearest``: θ̂ of the training scenario whose observations look most alike (standardized summary statistics);
* ``stats_regression``: a regression from summary statistics of the observations (mean count, speed, occupancy,
  queue length per detector and interval) to θ̂, chosen per output by cross-validation and shrunk toward the same
  anchor as h (``fit.prior``) — the bridge without the cheap model.

Per family, the paired differences over held-out scenarios get 95% bootstrap intervals; the costs are counted in
SUMO runs and wall seconds: offline (the training scenarios' calibrations) and per new scenario; the
matched-quality run ratio says how many direct-HPO runs reach the fresh-seed loss of bridge + refine, per run that
bridge + refine spent; the break-even is the number of new scenarios after which the offline cost has paid off.

Example:
    >>> import numpy as np
    >>> low, high = bootstrap_interval(np.array([-0.2, -0.1, -0.15, -0.05]), seed=0)
    >>> bool(low < -0.1 < high < 0)
    True
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BASELINES = ("centre", "train_mean", "nearest", "stats_regression")
METHODS = ("bridge", "refine", "direct", *BASELINES, "theta_star")
DIRECT_GN = "direct_gauss_newton"  # the second reference, when evaluate.direct_gauss_newton ran
CHECKPOINTS = (3, 5, 8, 12, 20, 30, 40, 50)  # direct-HPO budgets whose best-so-far is scored on fresh seeds
# the parameter of θ each cheap parameter stands in for (saturation flow falls as the headway tau grows)
CHEAP_COUNTERPART = {"demand": "demand_scale", "free_speed": "speed_factor", "saturation_flow": "tau"}
FRESH_SEED_OFFSET = 100_003  # fresh seeds: calibration seed + offset + i (never an observation or calibration seed)


def bootstrap_interval(values: np.ndarray, level: float = 0.95, n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (paired differences, one per scenario)."""
    values = np.asarray(values, dtype=float)
    return bootstrap_ratio_interval(values, np.ones_like(values), level, n, seed)


def bootstrap_ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, level: float = 0.95, n: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of mean(``numerator``) / mean(``denominator``), the scenarios (pairs of
    values) resampled together.

    >>> low, high = bootstrap_ratio_interval(np.array([1.1, 0.9, 1.2, 1.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    >>> 0.9 <= low < 1.05 < high <= 1.2
    True
    """
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if len(numerator) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(numerator), (n, len(numerator)))
    ratios = numerator[drawn].mean(axis=1) / denominator[drawn].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1.0 - tail))


SUMMARY_STATISTICS = ("mean_count", "mean_speed", "mean_occupancy", "mean_queue", "slow_share")


def summary_statistics(observed: Mapping[str, Any]) -> list[float]:
    """Plain statistics of observations Y (as a dict), named by :data:`SUMMARY_STATISTICS`: the mean count,
    speed, occupancy and queue length per detector and interval, and the share of cells slower than 5 m/s."""
    values = []
    for key in ("counts", "speeds", "occupancy", "queue"):
        cells = np.array([[np.nan if v is None else v for v in row] for row in observed.get(key, [[0.0]])], float)
        values.append(float(np.nanmean(cells)) if np.isfinite(cells).any() else 0.0)
    speeds = np.array([[np.nan if v is None else v for v in row] for row in observed["speeds"]], float)
    values.append(float(np.mean(np.nan_to_num(speeds, nan=0.0) < 5.0)))
    return values


def score_workspace(
    root: str | Path,
    *,
    n_seeds: int = 3,
    n_jobs: int = 2,
    timeout: float = 300.0,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> dict[str, Any]:
    """Score every held-out scenario of a finished bridge workspace and return the family's figures.

    The scores are cached per scenario in ``report/scores/<scenario>.json``, each θ's with the θ and the seeds: a
    second scoring (resumed after a kill, or after h was refitted) simulates only the θ that are new there."""
    from core.bridge.studies import open_journal
    from core.bridge.workspace import Workspace, read_csv
    from core.files import write_atomic

    workspace = Workspace(root)
    pairs = read_csv(workspace.pairs)
    evaluation = {r["scenario"]: r for r in read_csv(workspace.evaluation)}
    cfg = json.loads(json.dumps(_merged_config(workspace)))
    space = {name: (float(b[0]), float(b[1])) for name, b in cfg["models"]["expensive"]["params"].items()}
    baselines = _baselines(workspace, pairs, space, [n for n in evaluation], cfg)
    folder = workspace.report_dir / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    storage = open_journal(workspace.storage)
    plans = {
        name: _plan(workspace, storage, name, evaluation[name], baselines[name], space, n_seeds) for name in evaluation
    }
    cached = {name: _cached(folder / f"{name}.json", plans[name]) for name in evaluation}
    todo = [name for name in evaluation if cached[name] is None]
    advance = progress(len(todo)) if progress is not None else (lambda: None)
    for name in todo:
        scored = _score_scenario(workspace, name, plans[name], space, n_jobs, timeout, folder / f"{name}.json")
        write_atomic(folder / f"{name}.json", json.dumps(scored, indent=1) + "\n")
        advance()
    scores = [json.loads((folder / f"{name}.json").read_text(encoding="utf-8")) for name in evaluation]
    return family_figures(workspace, pairs, scores, space)


def _cached(path: Path, plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached scores of a scenario if every θ and the seeds are those of ``plan`` (else ``None``)."""
    if not path.is_file():
        return None
    cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    same = cached.get("seeds") == plan["seeds"] and cached.get("theta") == plan["theta"]
    return cached if same and cached.get("runs") == plan["runs"] else None


def _merged_config(workspace: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from core.config import as_dict

    path = workspace.root / "merged_config.yaml"
    return as_dict(OmegaConf.load(path), where=str(path), resolve=False)


def _baselines(
    workspace: Any, pairs: Sequence[Mapping[str, str]], space: Mapping[str, tuple[float, float]], tests: list[str],
    cfg: Mapping[str, Any],
) -> dict[str, dict[str, dict[str, float]]]:  # fmt: skip
    """θ̂ of every no-SUMO baseline on every held-out scenario."""
    from core.bridge.scenario import Scenario

    names = list(space)
    train = [r for r in pairs if r["split"] == "train"]

    def features(scenario: str) -> list[float]:
        context = Scenario.load(workspace.scenario_file(scenario)).context
        return summary_statistics(context["observed"])

    # the same anchor as the bridge's h (fit.prior, recorded in the model card), so the two differ only in inputs
    card = json.loads((workspace.model_dir / "card.json").read_text(encoding="utf-8"))
    found = no_sumo_baselines(
        np.array([features(r["scenario"]) for r in train]),
        np.array([[float(r[f"theta.{n}"]) for n in names] for r in train]),
        np.array([features(name) for name in tests]),
        space,
        [str(m) for m in cfg.get("fit", {}).get("models", ["linear", "ridge", "gp"])],
        [card["prior"][n] for n in names] if card.get("prior") else None,
        int(cfg.get("seed", 0)),
    )
    return dict(zip(tests, found, strict=True))


def no_sumo_baselines(
    x_train: np.ndarray, theta_train: np.ndarray, x_test: np.ndarray, space: Mapping[str, tuple[float, float]],
    candidates: Sequence[str], prior: Sequence[float | None] | None, seed: int,
) -> list[dict[str, dict[str, float]]]:  # fmt: skip
    """Each baseline's θ̂ (:data:`BASELINES`) for each row of ``x_test`` (summary statistics), from the training
    scenarios' statistics ``x_train`` and targets ``theta_train`` (columns in ``space``'s order)."""
    from core.bridge.regressors import BridgeRegressor

    names = list(space)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    regression = BridgeRegressor(list(candidates), seed=seed, prior=prior).fit(x_train, theta_train)
    for warning in regression.warnings:
        log.warning("stats_regression: %s", warning)
    predicted, _ = regression.predict(x_test)
    out = []
    for i, here in enumerate(x_test):
        nearest = theta_train[int(np.argmin(np.linalg.norm((x_train - here) / scale, axis=1)))]
        out.append(
            {
                "centre": {n: (low + high) / 2 for n, (low, high) in space.items()},
                "train_mean": dict(zip(names, theta_train.mean(axis=0).tolist(), strict=True)),
                "nearest": dict(zip(names, nearest.tolist(), strict=True)),
                "stats_regression": {
                    n: float(min(max(v, space[n][0]), space[n][1])) for n, v in zip(names, predicted[i], strict=True)
                },
            }
        )
    return out


def _direct_trials(storage: Any, scenario: str) -> list[tuple[float, dict[str, float]]]:
    """(value, params) of the direct-HPO study's finished trials in order (failed ones: value inf)."""
    from optuna.trial import TrialState

    from core.bridge.studies import load_trials
    from core.bridge.workspace import study_name

    return [
        (float(t.value) if t.state == TrialState.COMPLETE and t.value is not None else math.inf, t.params)
        for t in load_trials(storage, study_name(scenario, "expensive"))
    ]


def _plan(
    workspace: Any,
    storage: Any,
    name: str,
    row: Mapping[str, str],
    baselines: Mapping[str, Mapping[str, float]],
    space: Mapping[str, tuple[float, float]],
    n_seeds: int,
) -> dict[str, Any]:
    """What a scenario's scoring simulates: θ per method (and per direct-HPO checkpoint), the SUMO runs each
    method spent, the fresh seeds, and which trial is direct HPO's incumbent at each checkpoint."""
    from apps.traffic.objective import unpack_scenario
    from core.bridge.scenario import Scenario

    spec, _, _ = unpack_scenario(Scenario.load(workspace.scenario_file(name)))
    names = list(space)
    thetas: dict[str, dict[str, float]] = {
        "bridge": {n: float(row[f"pred.{n}"]) for n in names},
        "refine": {n: float(row.get(f"refined.{n}") or row[f"pred.{n}"]) for n in names},
        **{k: dict(v) for k, v in baselines.items()},
        "theta_star": {n: float(spec.theta_star[n]) for n in names},
    }
    runs = {"bridge": 1, "refine": int(float(row.get("refine_expensive_runs") or 1))}
    trials = _direct_trials(storage, name)
    incumbents: dict[int, int] = {}  # checkpoint -> index of the best trial so far
    best = -1
    for index, (value, _) in enumerate(trials):
        if best < 0 or value < trials[best][0]:
            best = index
        if index + 1 in CHECKPOINTS or index + 1 == len(trials):
            incumbents[index + 1] = best
    thetas["direct"] = dict(trials[incumbents[len(trials)]][1])
    runs["direct"] = len(trials)
    if row.get(f"{DIRECT_GN}.{names[0]}") not in (None, ""):
        thetas[DIRECT_GN] = {n: float(row[f"{DIRECT_GN}.{n}"]) for n in names}
        runs[DIRECT_GN] = int(float(row[f"{DIRECT_GN}_expensive_runs"]))
    for trial in sorted(set(incumbents.values())):
        thetas[f"trial{trial}"] = dict(trials[trial][1])
    seeds = [spec.calibration_seed + FRESH_SEED_OFFSET + i for i in range(n_seeds)]
    return {"seeds": seeds, "runs": runs, "theta": thetas, "incumbents": {str(c): i for c, i in incumbents.items()}}


def _score_scenario(
    workspace: Any,
    name: str,
    plan: Mapping[str, Any],
    space: Mapping[str, tuple[float, float]],
    n_jobs: int,
    timeout: float,
    previous: Path,
) -> dict[str, Any]:
    """Simulate each distinct θ of ``plan`` on its fresh seeds (reusing a θ's scores from ``previous``, the
    scenario's earlier scores, when the θ and seeds are the same) and score it against the observations."""
    from apps.traffic.objective import discrepancy, unpack_scenario
    from apps.traffic.simulator import simulate
    from core.bridge.scenario import Scenario

    spec, built, observed = unpack_scenario(Scenario.load(workspace.scenario_file(name)))
    names, seeds, thetas, runs = list(space), plan["seeds"], plan["theta"], plan["runs"]
    incumbents = {int(c): int(i) for c, i in plan["incumbents"].items()}
    reused: dict[str, dict[str, Any]] = {}
    if previous.is_file():
        old = json.loads(previous.read_text(encoding="utf-8"))
        if old.get("seeds") == seeds:
            for method, theta in old.get("theta", {}).items():
                reused.setdefault(json.dumps(theta, sort_keys=True), old["methods"][method])
    distinct = list(dict.fromkeys(json.dumps(t, sort_keys=True) for t in thetas.values()))  # each θ runs once
    jobs = [(key, seed) for key in distinct if key not in reused for seed in seeds]

    def one(job: tuple[str, int]) -> tuple[str, int, dict[str, Any]]:
        key, seed = job
        series = simulate(built, spec, json.loads(key), seed, backend="traci", timeout=timeout)
        return key, seed, discrepancy(observed, series).to_dict()

    by_theta: dict[str, list[dict[str, Any]]] = {key: [] for key in distinct if key not in reused}
    with ThreadPoolExecutor(max(1, n_jobs)) as pool:
        for key, _, fit in pool.map(one, jobs):
            by_theta[key].append(fit)
    out: dict[str, Any] = {"scenario": name, "seeds": seeds, "runs": runs, "theta": thetas, "methods": {}}
    for method, theta in thetas.items():
        key = json.dumps(theta, sort_keys=True)
        items = by_theta.get(key, [])
        scores = dict(reused[key]) if key in reused else {
            "loss": float(np.mean([f["loss"] for f in items])),
            "count_rmse": float(np.mean([f["count_rmse"] for f in items])),
            "flagged_runs": sum(bool(f["flagged"]) for f in items),
            "teleports": float(np.mean([f["teleports"] for f in items])),
        }  # fmt: skip
        scores["param_error"] = float(
            np.mean([abs(theta[n] - thetas["theta_star"][n]) / (space[n][1] - space[n][0]) for n in names])
        )
        out["methods"][method] = scores
    out["direct_curve"] = {str(c): out["methods"][f"trial{i}"]["loss"] for c, i in incumbents.items()}
    return out


def family_figures(
    workspace: Any,
    pairs: Sequence[Mapping[str, str]],
    scores: Sequence[Mapping[str, Any]],
    space: Mapping[str, tuple[float, float]],
) -> dict[str, Any]:
    """The family's figures from the per-scenario scores (see the module docstring)."""
    from core.bridge.scenario import Scenario

    methods = [*METHODS, *([DIRECT_GN] if all(DIRECT_GN in s["methods"] for s in scores) else [])]
    loss = {m: np.array([s["methods"][m]["loss"] for s in scores]) for m in methods}
    figures: dict[str, Any] = {"n_test_scenarios": len(scores), "n_fresh_seeds": len(scores[0]["seeds"])}
    for method in methods:
        figures[f"loss_{method}"] = float(loss[method].mean())
        figures[f"param_error_{method}"] = float(np.mean([s["methods"][method]["param_error"] for s in scores]))
        figures[f"flagged_runs_{method}"] = int(sum(s["methods"][method]["flagged_runs"] for s in scores))
    best = min(BASELINES, key=lambda m: float(loss[m].mean()))
    figures["best_baseline"] = best
    for method in ("bridge", "refine"):
        for other in (best, "direct", *([DIRECT_GN] if DIRECT_GN in loss else [])):
            difference = loss[method] - loss[other]
            low, high = bootstrap_interval(difference)
            tag = "best_baseline" if other == best else other
            figures[f"{method}_minus_{tag}_mean"] = float(difference.mean())
            figures[f"{method}_minus_{tag}_ci_low"] = low
            figures[f"{method}_minus_{tag}_ci_high"] = high
    figures["bridge_wins_vs_best_baseline"] = int(np.sum(loss["bridge"] < loss[best]))
    figures["refine_over_direct_loss"] = float(loss["refine"].mean() / loss["direct"].mean())
    low, high = bootstrap_ratio_interval(loss["refine"], loss["direct"])  # how far the draw alone moves it
    figures["refine_over_direct_loss_ci_low"], figures["refine_over_direct_loss_ci_high"] = low, high
    figures["bridge_over_noise_floor_loss"] = float(loss["bridge"].mean() / loss["theta_star"].mean())
    figures["direct_over_noise_floor_loss"] = float(loss["direct"].mean() / loss["theta_star"].mean())

    # cost: SUMO runs and wall seconds, offline (the training calibrations, or with fit.targets: known the runs
    # that simulated the training observations) and per new scenario
    train = [r for r in pairs if r["split"] == "train"]
    offline_runs = sum(int(float(r["expensive_trials"])) for r in train)
    offline_wall = sum(float(r["expensive_wall_s"] or math.nan) for r in train)  # nan: a wall not recorded
    tests = {r["scenario"]: r for r in pairs if r["split"] == "test"}
    refine_runs = float(np.mean([s["runs"]["refine"] for s in scores]))
    direct_runs = float(np.mean([s["runs"]["direct"] for s in scores]))
    direct_wall = float(np.mean([float(tests[s["scenario"]]["expensive_wall_s"]) for s in scores]))
    cheap_wall = float(np.mean([float(tests[s["scenario"]]["cheap_wall_s"]) for s in scores]))
    sumo_run_wall = direct_wall / direct_runs if direct_runs else math.nan
    curve = {int(c): float(np.mean([s["direct_curve"].get(str(c), s["direct_curve"][max(s["direct_curve"], key=int)])
                                    for s in scores])) for c in CHECKPOINTS if c <= direct_runs}  # fmt: skip
    target = float(loss["refine"].mean())
    reached = [c for c, value in sorted(curve.items()) if value <= target]
    matched = reached[0] if reached else None
    card = json.loads((workspace.model_dir / "card.json").read_text(encoding="utf-8"))
    known = card.get("targets") == "known"
    offline_of = "the runs that simulated the training observations" if known else "the training calibrations"
    jacobian_file = workspace.model_dir / "jacobian.json"  # refine_method pooled: its offline runs count too
    if jacobian_file.is_file():
        jacobian = json.loads(jacobian_file.read_text(encoding="utf-8"))
        offline_runs += int(jacobian["runs"])
        offline_wall += float(jacobian["wall_s"])
        offline_of += f" and the refine's Jacobian runs ({int(jacobian['runs'])})"
    figures.update(
        {
            "fit_targets": "known" if known else "calibrated",
            "offline_cost_of": offline_of,
            "offline_sumo_runs": offline_runs,
            "offline_wall_s": offline_wall,
            "n_train_scenarios": len(train),
            "sumo_runs_per_new_scenario_bridge": 1,
            "sumo_runs_per_new_scenario_refine": refine_runs,
            "sumo_runs_per_new_scenario_direct": direct_runs,
            "cheap_wall_s_per_new_scenario": cheap_wall,
            "wall_s_per_new_scenario_refine": cheap_wall + refine_runs * sumo_run_wall,
            "wall_s_per_new_scenario_direct": direct_wall,
            "direct_loss_curve": curve,
            "direct_runs_to_match_refine": matched if matched is not None else f">{int(direct_runs)}",
            "matched_quality_run_ratio": (matched if matched is not None else direct_runs) / refine_runs,
            "matched_quality_reached": matched is not None,
        }
    )
    saved = (matched if matched is not None else direct_runs) - refine_runs
    figures["break_even_scenarios"] = offline_runs / saved if saved > 0 else math.inf
    if DIRECT_GN in loss:  # against the second reference: what the bridge saves where it is at least as good
        gn_runs = float(np.mean([s["runs"][DIRECT_GN] for s in scores]))
        figures[f"sumo_runs_per_new_scenario_{DIRECT_GN}"] = gn_runs
        figures[f"refine_over_{DIRECT_GN}_loss"] = float(loss["refine"].mean() / loss[DIRECT_GN].mean())
        figures[f"{DIRECT_GN}_over_direct_loss"] = float(loss[DIRECT_GN].mean() / loss["direct"].mean())
        as_good = loss["refine"].mean() <= loss[DIRECT_GN].mean() and gn_runs > refine_runs
        saved_vs_gn = gn_runs - refine_runs
        figures[f"break_even_scenarios_vs_{DIRECT_GN}"] = offline_runs / saved_vs_gn if as_good else math.inf
    figures["amortised_sumo_runs_per_scenario_100_new_bridge"] = (offline_runs + 100 * refine_runs) / 100
    figures["amortised_sumo_runs_per_scenario_100_new_direct"] = direct_runs
    figures["amortised_wall_s_per_scenario_100_new_bridge"] = (
        offline_wall + 100 * (cheap_wall + refine_runs * sumo_run_wall)
    ) / 100
    figures["amortised_wall_s_per_scenario_100_new_direct"] = direct_wall

    # does the cheap model's ξ̂ track θ*? correlation over every scenario of the family
    every = [r for r in pairs]
    xi_names = [c for c in every[0] if c.startswith("xi.")]
    stars = {r["scenario"]: Scenario.load(workspace.scenario_file(r["scenario"])).context["traffic"]["theta_star"]
             for r in every}  # fmt: skip
    for xi in xi_names:
        theta = CHEAP_COUNTERPART.get(xi.removeprefix("xi."))
        if theta is None or theta not in space:
            continue
        a = np.array([float(r[xi]) for r in every])
        b = np.array([float(stars[r["scenario"]][theta]) for r in every])
        figures[f"corr_{xi.removeprefix('xi.')}_vs_{theta}"] = float(np.corrcoef(a, b)[0, 1])
    return figures
