"""The bridge pipeline: prepare → optimize → collect → fit → evaluate → report, each stage resumable.

Every stage reads and writes plain files in the workspace; a finished stage leaves ``stages/<stage>.json`` and is
skipped on the next run unless forced. A per-scenario study that finished is never redone (its folder holds its
own storage and ``result.json``), so a killed ``optimize`` resumes where it stopped.

Workspace::

    merged_config.yaml, provenance.json
    scenarios/<name>.json                 one file per scenario (what trial processes read)
    studies/<name>/<cheap|expensive>/     one HPO study per scenario and model, with result.json
    pairs.csv                             scenario, split, ξ̂, θ̂, best values, trials, wall time
    model/model.joblib, model/card.json   the fitted h and its card (cross-validation table, inputs, outputs)
    evaluation.csv                        per test scenario: prediction, its expensive value, refine, direct
    report/                               report.md, summary.json, PNG plots
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from core.bridge.scenario import Scenario
from core.bridge.studies import StudyResult, run_study
from core.config import instantiate, save_run_config
from core.errors import ConfigError, UserError
from core.files import write_atomic

STAGES = ("prepare", "optimize", "collect", "fit", "evaluate", "report")
ROLES = ("cheap", "expensive")


class Workspace:
    """Paths of one bridge workspace."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def scenario_file(self, name: str) -> Path:
        return self.root / "scenarios" / f"{name}.json"

    def study_dir(self, name: str, role: str) -> Path:
        return self.root / "studies" / name / role

    def marker(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def done(self, stage: str) -> bool:
        return self.marker(stage).is_file()

    def mark(self, stage: str, summary: dict[str, Any]) -> None:
        self.marker(stage).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.marker(stage), json.dumps({"finished": time.time(), **summary}, indent=2) + "\n")

    def scenarios(self) -> list[Scenario]:
        files = sorted((self.root / "scenarios").glob("*.json"))
        if not files:
            raise UserError("the workspace has no scenarios", where=str(self.root), hint="run the prepare stage first")
        return [Scenario.load(f) for f in files]

    @property
    def pairs(self) -> Path:
        return self.root / "pairs.csv"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.csv"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"


Log = Callable[[str], None]


def run(cfg: DictConfig, stages: Sequence[str] = STAGES, force: bool = False, log: Log = print) -> Workspace:
    """Run ``stages`` in order (skipping finished ones unless ``force``) and return the workspace."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r}", hint=f"stages are {' → '.join(STAGES)}")
    workspace = Workspace(cfg.workspace)
    for stage in stages:
        if workspace.done(stage) and not force:
            log(f"{stage}: done before, skipped (--force redoes it)")
            continue
        started = time.perf_counter()
        summary = _STAGE_FUNCTIONS[stage](cfg, workspace, log)
        workspace.mark(stage, {"seconds": round(time.perf_counter() - started, 3), **summary})
        log(f"{stage}: finished in {time.perf_counter() - started:.1f} s")
    return workspace


# -- prepare ----------------------------------------------------------------------------------------------------


def prepare(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    for role in ROLES:
        _model_config(cfg, role)  # fail early on a bad model section
    family = instantiate(cfg.scenarios)
    if not hasattr(family, "scenarios"):
        raise ConfigError("the scenario family has no scenarios() method", where="scenarios._target_")
    scenarios = list(family.scenarios())
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ConfigError("scenario names are not unique", where="scenarios")
    n_train = sum(s.split == "train" for s in scenarios)
    if n_train == 0 or n_train == len(scenarios):
        raise ConfigError(
            f"the family gave {n_train} train and {len(scenarios) - n_train} test scenarios",
            where="scenarios",
            hint="a bridge needs both",
        )
    save_run_config(cfg, workspace.root)
    for scenario in scenarios:
        path = workspace.scenario_file(scenario.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, scenario.to_json() + "\n")
    _write_make_rules(cfg, workspace)
    log(f"prepare: {n_train} train and {len(scenarios) - n_train} test scenarios in {workspace.root}")
    return {"n_train": n_train, "n_test": len(scenarios) - n_train}


def _model_config(cfg: DictConfig, role: str) -> DictConfig:
    model: DictConfig | None = cfg.models.get(role)
    if model is None:
        raise ConfigError(f"no models.{role} section", where="models", hint="describe the cheap and expensive models")
    has_objective = OmegaConf.select(model, "objective", throw_on_missing=False) not in (None, "???")
    if not has_objective and not model.get("command"):
        raise ConfigError(f"models.{role} has neither objective nor command", where=f"models.{role}")
    if model.get("direction", "minimize") != "minimize":
        raise ConfigError(
            "the bridge compares losses: direction must be minimize",
            where=f"models.{role}.direction",
            hint="negate a score to make it a loss",
        )
    if OmegaConf.is_missing(model, "params") or not model.params:
        raise ConfigError(f"models.{role}.params is empty", where=f"models.{role}.params")
    return model


def _write_make_rules(cfg: DictConfig, workspace: Workspace) -> None:
    """``studies.mk``: one make rule per study, for ``core/workflow/bridge.mk`` (``make -j``, cluster jobs)."""
    lines, results = [], []
    for scenario, role in _planned_studies(cfg, workspace):
        result = workspace.study_dir(scenario.name, role) / "result.json"
        results.append(str(result))
        lines += [
            f"{result}:",
            f"\t$(BRIDGE_JOB) $(call BRIDGE_RUN,study) --scenario {scenario.name} --role {role}",
            "",
        ]
    text = "BRIDGE_STUDY_RESULTS := " + " \\\n  ".join(results) + "\n\n" + "\n".join(lines)
    write_atomic(workspace.root / "studies.mk", text)


def run_one_study(cfg: DictConfig, scenario_name: str, role: str) -> StudyResult:
    """Run (or resume) the study of one scenario and model; the unit of work of ``bridge study`` and make rules."""
    if role not in ROLES:
        raise UserError(f"unknown model role {role!r}", hint="cheap or expensive")
    workspace = Workspace(cfg.workspace)
    path = workspace.scenario_file(scenario_name)
    if not path.is_file():
        raise UserError(f"no scenario {scenario_name!r} in the workspace", where=str(path), hint="run prepare first")
    return run_study(workspace.study_dir(scenario_name, role), _model_config(cfg, role), Scenario.load(path), path)


# -- optimize ---------------------------------------------------------------------------------------------------


def _planned_studies(cfg: DictConfig, workspace: Workspace) -> list[tuple[Scenario, str]]:
    plan = []
    for scenario in workspace.scenarios():
        plan.append((scenario, "cheap"))
        if scenario.split == "train" or cfg.evaluate.direct_reference:
            plan.append((scenario, "expensive"))
    return plan


def optimize(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    from rich.progress import Progress

    plan = _planned_studies(cfg, workspace)
    todo = [(s, r) for s, r in plan if not (workspace.study_dir(s.name, r) / "result.json").is_file()]
    log(f"optimize: {len(plan)} studies, {len(plan) - len(todo)} done before, {len(todo)} to run")

    def one(item: tuple[Scenario, str]) -> StudyResult:
        scenario, role = item
        return run_study(
            workspace.study_dir(scenario.name, role),
            _model_config(cfg, role),
            scenario,
            workspace.scenario_file(scenario.name),
        )

    failed = 0
    with Progress(transient=True) as progress, ThreadPoolExecutor(max(1, int(cfg.parallel_studies))) as pool:
        task = progress.add_task("studies", total=len(todo))
        for (scenario, role), result in zip(todo, pool.map(one, todo), strict=True):
            progress.advance(task)
            if result.best_value is None:
                failed += 1
                log(f"optimize: warning: every trial of {scenario.name}/{role} failed ({result.reason})")
    return {"studies": len(plan), "failed": failed}


# -- collect ----------------------------------------------------------------------------------------------------


def collect(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    rows, excluded = [], []
    cheap_names = list(_model_config(cfg, "cheap").params)
    expensive_names = list(_model_config(cfg, "expensive").params)
    for scenario, role in _planned_studies(cfg, workspace):
        if role != "cheap":
            continue
        cheap = StudyResult.load(workspace.study_dir(scenario.name, "cheap"))
        expensive_dir = workspace.study_dir(scenario.name, "expensive")
        expensive = StudyResult.load(expensive_dir) if (expensive_dir / "result.json").is_file() else None
        if cheap.best_value is None or (
            scenario.split == "train" and (expensive is None or expensive.best_value is None)
        ):
            excluded.append(scenario.name)
            log(f"collect: warning: {scenario.name} excluded (a study found no finished trial)")
            continue
        row: dict[str, Any] = {"scenario": scenario.name, "split": scenario.split}
        row.update({f"xi.{n}": cheap.best_params[n] for n in cheap_names})
        row.update({"cheap_best": cheap.best_value, "cheap_trials": cheap.n_trials, "cheap_wall_s": cheap.wall_s})
        found = expensive is not None and expensive.best_value is not None
        row.update({f"theta.{n}": expensive.best_params[n] if found and expensive else "" for n in expensive_names})
        row.update(
            {
                "expensive_best": expensive.best_value if found and expensive else "",
                "expensive_trials": expensive.n_trials if found and expensive else "",
                "expensive_wall_s": expensive.wall_s if found and expensive else "",
            }
        )
        rows.append(row)
    _write_csv(workspace.pairs, rows)
    log(f"collect: {len(rows)} pairs in {workspace.pairs}" + (f", excluded {', '.join(excluded)}" if excluded else ""))
    return {"pairs": len(rows), "excluded": excluded}


# -- fit --------------------------------------------------------------------------------------------------------


def fit(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    import joblib
    import numpy as np
    import sklearn

    from core.bridge.regressors import MODELS, cross_validate, make_model, min_pairs

    rows = [r for r in _read_csv(workspace.pairs) if r["split"] == "train"]
    inputs, outputs = _columns(rows, "xi."), _columns(rows, "theta.")
    x = np.array([[float(r[c]) for c in inputs] for r in rows])
    y = np.array([[float(r[c]) for c in outputs] for r in rows])
    names = list(cfg.fit.models)
    select = str(cfg.fit.select)
    if select != "cv":
        if select not in MODELS:
            raise ConfigError(
                f"fit.select must be cv or one of {', '.join(MODELS)}, not {select!r}", where="fit.select"
            )
        names = [select]
    usable = [n for n in names if len(x) >= min_pairs(n, x.shape[1])]
    if usable and len(usable) < len(names):
        skipped = ", ".join(n for n in names if n not in usable)
        log(f"fit: {skipped} skipped: {len(x)} pairs are too few for them")
    scores = cross_validate(usable or names, x, y, seed=int(cfg.seed))
    chosen = min(scores, key=scores.__getitem__)
    model = make_model(chosen, x.shape[1], int(cfg.seed)).fit(x, y)
    workspace.model_dir.mkdir(parents=True, exist_ok=True)
    temporary = workspace.model_dir / ".model.joblib.tmp"
    joblib.dump(model, temporary)
    temporary.replace(workspace.model_dir / "model.joblib")
    card = {
        "model": chosen,
        "cv_mse_standardized": scores,
        "inputs": inputs,
        "outputs": outputs,
        "n_pairs": len(rows),
        "scikit_learn": sklearn.__version__,
    }
    write_atomic(workspace.model_dir / "card.json", json.dumps(card, indent=2) + "\n")
    table = ", ".join(f"{n} {s:.3g}" for n, s in sorted(scores.items(), key=lambda kv: kv[1]))
    log(f"fit: chose {chosen} by cross-validation on {len(rows)} pairs (MSE, standardized: {table})")
    return {"model": chosen, "cv": scores}


def load_model(workspace: Workspace) -> tuple[Any, dict[str, Any]]:
    """The fitted bridge h and its card."""
    import joblib

    path = workspace.model_dir / "model.joblib"
    if not path.is_file():
        raise UserError("no fitted model", where=str(path), hint="run the fit stage first")
    return joblib.load(path), json.loads((workspace.model_dir / "card.json").read_text())


# -- evaluate ---------------------------------------------------------------------------------------------------


def evaluate(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    import numpy as np

    from core.bridge.regressors import predict_with_std

    model, card = load_model(workspace)
    expensive_cfg = _model_config(cfg, "expensive")
    rows = [r for r in _read_csv(workspace.pairs) if r["split"] == "test"]
    if not rows:
        raise UserError("no test scenario has a cheap calibration", where=str(workspace.pairs))
    x = np.array([[float(r[c]) for c in card["inputs"]] for r in rows])
    mean, std = predict_with_std(model, x)
    names = [c.removeprefix("theta.") for c in card["outputs"]]
    results = []
    for index, row in enumerate(rows):
        scenario = Scenario.load(workspace.scenario_file(row["scenario"]))
        predicted = _clip(dict(zip(names, map(float, mean[index]), strict=True)), expensive_cfg.params)
        # the expensive model at the prediction: the one trial of the scenario's "bridge" study
        bridge_dir = workspace.study_dir(scenario.name, "bridge")
        scenario_file = workspace.scenario_file(scenario.name)
        point = run_study(bridge_dir, expensive_cfg, scenario, scenario_file, n_trials=1, enqueue=[predicted])
        if point.best_value is None:
            raise UserError(
                f"the expensive model failed at the bridge's prediction ({point.reason})", where=str(bridge_dir)
            )
        value = point.best_value
        result: dict[str, Any] = {
            "scenario": scenario.name,
            "bridge_value": value,
            "bridge_expensive_runs": 1,
            "bridge_wall_s": float(row["cheap_wall_s"]) + point.wall_s,
        }
        result.update({f"pred.{n}": v for n, v in predicted.items()})
        result.update(_attrs("bridge", point))
        if std is not None:
            result.update({f"pred_std.{n}": float(s) for n, s in zip(names, std[index], strict=True)})
        k = int(cfg.evaluate.refine)
        if k > 0:
            # k more runs in a study of their own, started at the prediction; the bridge's run counts too
            refine_dir = workspace.study_dir(scenario.name, "refine")
            refined = run_study(  # one at a time: each step of a local search needs the last result
                refine_dir,
                expensive_cfg,
                scenario,
                scenario_file,
                n_trials=k,
                sampler=_refine_sampler(cfg, predicted),
                n_max_jobs=1,
            )
            better = refined.best_value is not None and refined.best_value < value
            result.update(_attrs("refine", refined if better else point))
            result.update(
                {
                    "refine_value": refined.best_value if better else value,
                    "refine_expensive_runs": 1 + k,
                    "refine_wall_s": float(row["cheap_wall_s"]) + point.wall_s + refined.wall_s,
                }
            )
        if row.get("expensive_best") not in (None, ""):
            direct = StudyResult.load(workspace.study_dir(scenario.name, "expensive"))
            result.update(_attrs("direct", direct))
            runs_to_match = _runs_to_reach(direct.history, value)
            result.update(
                {
                    "direct_value": direct.best_value,
                    "direct_expensive_runs": direct.n_trials,
                    "direct_wall_s": direct.wall_s,
                    "param_error": math.dist([predicted[n] for n in names], [direct.best_params[n] for n in names]),
                    "direct_runs_to_match_bridge": runs_to_match,
                    "direct_wall_s_to_match_bridge": direct.wall_s * runs_to_match / max(1, direct.n_trials),
                }
            )
        results.append(result)
    _write_csv(workspace.evaluation, results)
    summary = summarize(results)
    log("evaluate: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if isinstance(v, float)))
    return summary


def _attrs(prefix: str, study: StudyResult) -> dict[str, Any]:
    """The numeric metrics the objective reported for a study's best trial, as ``<prefix>.<name>`` columns."""
    return {
        f"{prefix}.{k}": v
        for k, v in study.best_user_attrs.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _refine_sampler(cfg: DictConfig, predicted: dict[str, float]) -> Any:
    """The refine sampler's config; it starts at the prediction when its ``_target_`` takes an ``x0``."""
    import inspect

    from core.config import locate

    node = cfg.evaluate.get("refine_sampler")
    if node is None:
        return None
    sampler = OmegaConf.to_container(node, resolve=True)
    assert isinstance(sampler, dict)
    if "x0" in inspect.signature(locate(str(sampler["_target_"]))).parameters:
        sampler.setdefault("x0", predicted)
    return sampler


def _clip(point: dict[str, float], params: DictConfig) -> dict[str, float]:
    """Keep a predicted point inside the expensive model's search box."""
    clipped = {}
    for name, value in point.items():
        spec = params[name]
        low, high = (spec[0], spec[1]) if OmegaConf.is_list(spec) else (spec.get("low"), spec.get("high"))
        clipped[name] = min(max(value, float(low)), float(high)) if low is not None and high is not None else value
    return clipped


def _runs_to_reach(history: Sequence[float], target: float) -> int:
    """Trials the direct study needed before its best-so-far reached ``target`` (its total if never)."""
    best = math.inf
    for count, value in enumerate(history, start=1):
        if not math.isnan(value):
            best = min(best, value)
        if best <= target:
            return count
    return len(history)


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Headline figures over held-out scenarios (medians)."""
    import numpy as np

    def median(key: str) -> float:
        values = [float(r[key]) for r in results if r.get(key) not in (None, "")]
        return float(np.median(values)) if values else math.nan

    summary: dict[str, Any] = {"n_test_scenarios": len(results)}
    with_direct = [r for r in results if r.get("direct_value") not in (None, "")]
    if with_direct:
        floor = 1e-12
        summary["regret_ratio_vs_direct"] = float(
            np.median([(float(r["bridge_value"]) + floor) / (float(r["direct_value"]) + floor) for r in with_direct])
        )
        summary["speedup_runs"] = float(
            np.median(
                [float(r["direct_runs_to_match_bridge"]) / float(r["bridge_expensive_runs"]) for r in with_direct]
            )
        )
        summary["speedup"] = float(
            np.median([float(r["direct_wall_s_to_match_bridge"]) / float(r["bridge_wall_s"]) for r in with_direct])
        )
        summary["speedup_full_direct_wall"] = float(
            np.median([float(r["direct_wall_s"]) / float(r["bridge_wall_s"]) for r in with_direct])
        )
        summary["param_error"] = median("param_error")
        summary["direct_value"] = median("direct_value")
    summary["bridge_value"] = median("bridge_value")
    if any("refine_value" in r for r in results):
        summary["refine_value"] = median("refine_value")
    return summary


# -- report -----------------------------------------------------------------------------------------------------


def report(cfg: DictConfig, workspace: Workspace, log: Log) -> dict[str, Any]:
    from core.bridge.report import write_report

    path = write_report(workspace, cfg)
    log(f"report: {path}")
    return {"report": str(path)}


# -- files ------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import io

    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise UserError("missing workspace file", where=str(path), hint="run the earlier stages first")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _columns(rows: Sequence[dict[str, str]], prefix: str) -> list[str]:
    return [c for c in rows[0] if c.startswith(prefix)] if rows else []


_STAGE_FUNCTIONS: dict[str, Callable[[DictConfig, Workspace, Log], dict[str, Any]]] = {
    "prepare": prepare,
    "optimize": optimize,
    "collect": collect,
    "fit": fit,
    "evaluate": evaluate,
    "report": report,
}
