"""The bridge pipeline: prepare → optimize → collect → fit → evaluate → report, each stage resumable.

Every stage reads and writes plain files in the workspace (:class:`core.bridge.workspace.Workspace`); a finished
stage leaves ``stages/<stage>.json`` and is skipped on the next run unless forced. Every study lives in the
workspace's one storage (``studies.journal``) as ``<scenario>/<role>``; a study that finished is never redone
(its folder holds ``result.json``), so a killed ``optimize`` resumes where it stopped.

Example:
    >>> import tempfile
    >>> from core.config import load_config, package_dir
    >>> cfg = load_config(package_dir("core.bridge.config") / "examples" / "analytic.yaml",
    ...                   [f"workspace={tempfile.mkdtemp()}", "scenarios.n_train=5", "scenarios.n_test=1",
    ...                    "models.cheap.n_trials=6", "models.expensive.n_trials=6", "fit.models=[ridge]",
    ...                    "evaluate.refine=0"])
    >>> workspace = run(cfg, log=lambda line: None, progress=False)
    >>> sorted(p.name for p in workspace.report_dir.glob("*.json"))
    ['summary.json']
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from core.bridge.refine import (
    STEP_MAX_SHARE,
    fit_jacobian,
    gauss_newton_point,
    loss_curvature,
    offline_points,
    pooled_search,
    probe_points,
    refine_budget,
    refine_points,
)
from core.bridge.report import write_report
from core.bridge.scenario import Scenario
from core.bridge.schema import check_bridge_config
from core.bridge.studies import (
    StudyResult,
    discard_study,
    load_trials,
    open_journal,
    run_gauss_newton_study,
    run_study,
    top_k_params,
)
from core.bridge.summary import summarize
from core.bridge.workspace import Workspace, columns, load_model, read_csv, study_name, write_csv
from core.config import instantiate, save_run_config
from core.errors import ConfigError, UserError
from core.files import write_atomic

STAGES = ("prepare", "optimize", "collect", "fit", "evaluate", "report")
# the config keys each stage's results depend on: a finished stage records their values, and a later run that skips
# it with other values says so (keys that only say how the work runs, _HOW_IT_RUNS, are left out)
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "prepare": ("seed", "scenarios"),
    "optimize": ("seed", "scenarios", "models", "fit.targets", "evaluate.direct_reference", "evaluate.direct_trials",
                 "evaluate.direct_gauss_newton"),
    "collect": ("fit.targets", "fit.target_top_k"),
    "fit": ("seed", "fit", "models.expensive.params"),
    "evaluate": ("seed", "models.expensive", "evaluate"),
    "report": (),
}  # fmt: skip
_HOW_IT_RUNS = frozenset({"n_max_jobs", "jobs", "parallel_studies"})
ROLES = ("cheap", "expensive")
DIRECT_GN = "direct_gauss_newton"  # the study of the second reference: Gauss–Newton rounds on a held-out scenario

Log = Callable[[str], None]


def run(
    cfg: DictConfig,
    stages: Sequence[str] = STAGES,
    force: bool = False,
    log: Log = print,
    progress: bool = True,
    redo_from: str | None = None,
) -> Workspace:
    """Run ``stages`` in order (skipping finished ones unless ``force``) and return the workspace.

    ``redo_from`` redoes that stage and every later one even if finished (e.g. ``fit`` after a change to ``fit``:
    finished studies are still reused, and evaluate reruns a check or refine study only where its points changed).
    ``log`` receives one line per stage; ``progress`` shows a rich bar for the stages that run models. A finished
    stage records its inputs (:func:`stage_inputs`); the first skipped stage whose inputs differ from ``cfg``'s is
    a warning line naming the changed keys, and its results (and the later stages') are kept as they are. A call
    that runs any stage writes ``cfg`` as ``merged_config.yaml`` (and ``provenance.json``) before the first.
    """
    if redo_from is not None and redo_from not in STAGES:
        raise UserError(f"unknown stage {redo_from!r}", hint=f"stages are {' → '.join(STAGES)}")
    redo = set(STAGES[STAGES.index(redo_from) :]) if redo_from is not None else set()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r}", hint=f"stages are {' → '.join(STAGES)}")
    cfg = check_bridge_config(cfg)
    workspace = Workspace(cfg.workspace)
    stale = False  # a skipped stage's results came from another config: say so once, at the first such stage
    saved = False  # merged_config.yaml: the config of the latest command that ran a stage
    for stage in stages:
        inputs = stage_inputs(cfg, stage)
        if workspace.done(stage) and not force and stage not in redo:
            changed = [] if stale else changed_inputs(workspace, stage, inputs)
            if changed:
                stale = True
                remedy = (
                    f"--redo-from {stage} redoes them"
                    if STAGES.index(stage) > STAGES.index("optimize")
                    else f"a new workspace runs this config (--redo-from {stage} reuses finished studies as they are)"
                )
                shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
                log(f"{stage}: warning: done before with another config ({shown}): it and the later "
                    f"stages keep that config's results; {remedy}")  # fmt: skip
            else:
                log(f"{stage}: done before, skipped (--force redoes it)")
            continue
        if not saved and stage != "prepare":  # prepare writes it once the scenarios are known good
            save_run_config(cfg, workspace.root)
        saved = True
        started = time.perf_counter()
        summary = _STAGE_FUNCTIONS[stage](cfg, workspace, log, progress)
        workspace.mark(stage, {"seconds": round(time.perf_counter() - started, 3), **summary, "inputs": inputs})
        log(f"{stage}: finished in {time.perf_counter() - started:.1f} s")
    return workspace


def stage_inputs(cfg: DictConfig, stage: str) -> dict[str, Any]:
    """The values of the config keys ``stage``'s results depend on (:data:`STAGE_INPUTS`), as dotted key → JSON
    value, interpolations resolved."""
    out: dict[str, Any] = {}

    def walk(key: str, value: Any) -> None:
        if key.rsplit(".", 1)[-1] in _HOW_IT_RUNS:
            return
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(f"{key}.{name}", item)
        else:
            out[key] = json.loads(json.dumps(value, default=str))

    for key in STAGE_INPUTS[stage]:
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if isinstance(node, DictConfig | ListConfig):
            node = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
        walk(key, node)
    return out


def changed_inputs(workspace: Workspace, stage: str, inputs: dict[str, Any]) -> list[str]:
    """``key: recorded → now`` for each input of a finished ``stage`` whose value differs from ``inputs`` (nothing
    for a stage that recorded none: a workspace from before stages recorded their inputs)."""
    recorded = json.loads(workspace.marker(stage).read_text(encoding="utf-8")).get("inputs")
    if not isinstance(recorded, dict):
        return []
    keys = [*recorded, *(k for k in inputs if k not in recorded)]
    return [
        f"{key}: {_shown(recorded, key)} → {_shown(inputs, key)}"
        for key in keys
        if key not in recorded or key not in inputs or recorded[key] != inputs[key]
    ]


def _shown(values: dict[str, Any], key: str) -> str:
    """A config value in a log line: JSON (so a list's brackets are not read as console markup), or ``unset``."""
    return json.dumps(values[key], ensure_ascii=False) if key in values else "unset"


class _Bar:
    """A rich progress bar over ``total`` units of work (or nothing when disabled)."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self.enabled, self.label, self.total = enabled, label, total
        self.bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled or self.total == 0:
            return lambda: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- prepare ----------------------------------------------------------------------------------------------------


def prepare(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """Build the scenario family, check the model sections, and write ``scenarios/*.json``, the config as run
    and ``studies.mk`` (one make rule per study, for ``core/workflow/bridge.mk``)."""
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
    if known_targets(cfg):  # fail before any study runs
        _no_curvature_without_studies(cfg)
        expensive_names = list(_model_config(cfg, "expensive").params)
        for scenario in scenarios:
            if scenario.split == "train":
                _known_params(scenario, expensive_names)
    save_run_config(cfg, workspace.root)
    for scenario in scenarios:
        path = workspace.scenario_file(scenario.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, scenario.to_json() + "\n")
    _write_make_rules(cfg, workspace)
    log(f"prepare: {n_train} train and {len(scenarios) - n_train} test scenarios in {workspace.root}")
    return {"n_train": n_train, "n_test": len(scenarios) - n_train}


def _model_config(cfg: DictConfig, role: str) -> DictConfig:
    """The model section ``role`` (checked by the schema when the config loaded); its params must be set."""
    model: DictConfig = cfg.models[role]
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


def _study(
    cfg: DictConfig, workspace: Workspace, scenario: Scenario, role: str, model_role: str | None = None, **kwargs: Any
) -> StudyResult:
    """Run (or resume) the study ``<scenario>/<role>`` in the workspace's storage with ``model_role``'s model.

    Direct HPO on a test scenario (the reference) gets ``evaluate.direct_trials`` runs when that is set and always
    the model's sampler; a calibration study of a model with ``method: gauss_newton`` runs Gauss–Newton rounds
    from the centre of its ranges instead (and so does the second reference, ``direct_gauss_newton``)."""
    direct_trials = cfg.evaluate.get("direct_trials")
    direct = role == "expensive" and scenario.split == "test"
    if direct and direct_trials is not None:
        kwargs.setdefault("n_trials", int(direct_trials))
    model = _model_config(cfg, model_role or ("expensive" if role == DIRECT_GN else role))
    scenario_file = kwargs.pop("scenario_file", workspace.scenario_file(scenario.name))
    if role == DIRECT_GN or (model_role is None and not direct and model.get("method") == "gauss_newton"):
        budget = int(cfg.evaluate.get(DIRECT_GN) or 0) if role == DIRECT_GN else int(model.n_trials)
        return run_gauss_newton_study(
            workspace.study_dir(scenario.name, role), model, scenario, scenario_file,
            budget=budget, storage=workspace.storage, name=study_name(scenario.name, role),
        )  # fmt: skip
    return run_study(
        workspace.study_dir(scenario.name, role),
        model,
        scenario,
        scenario_file,
        storage=workspace.storage,
        name=study_name(scenario.name, role),
        **kwargs,
    )


def run_one_study(cfg: DictConfig, scenario_name: str, role: str) -> StudyResult:
    """Run (or resume) the study of one scenario and model; the unit of work of ``bridge study`` and make rules."""
    if role not in (*ROLES, DIRECT_GN):
        raise UserError(f"unknown model role {role!r}", hint=f"cheap, expensive or {DIRECT_GN}")
    cfg = check_bridge_config(cfg)
    workspace = Workspace(cfg.workspace)
    path = workspace.scenario_file(scenario_name)
    if not path.is_file():
        raise UserError(f"no scenario {scenario_name!r} in the workspace", where=str(path), hint="run prepare first")
    return _study(cfg, workspace, Scenario.load(path), role)


# -- optimize ---------------------------------------------------------------------------------------------------


def _planned_studies(cfg: DictConfig, workspace: Workspace) -> list[tuple[Scenario, str]]:
    plan = []
    for scenario in workspace.scenarios():
        plan.append((scenario, "cheap"))
        if (scenario.split == "train" and not known_targets(cfg)) or (
            scenario.split == "test" and cfg.evaluate.direct_reference
        ):
            plan.append((scenario, "expensive"))
        if scenario.split == "test" and int(cfg.evaluate.get(DIRECT_GN) or 0) > 0:
            plan.append((scenario, DIRECT_GN))
    return plan


def known_targets(cfg: DictConfig) -> bool:
    """``fit.targets: known``: the training scenarios' θ targets are the parameters they were simulated with."""
    return str(cfg.fit.get("targets", "calibrated")) == "known"


def _known_params(scenario: Scenario, names: Sequence[str]) -> dict[str, float]:
    """A training scenario's ``context.known_params`` (every expensive parameter), or one clear error."""
    known = scenario.context.get("known_params")
    missing = [n for n in names if not isinstance(known, dict) or n not in known]
    if missing:
        raise ConfigError(
            f"fit.targets is known but training scenario {scenario.name!r} has no known " + ", ".join(missing),
            where="fit.targets",
            hint="the family must put the parameters it simulated each training scenario with in "
            "context['known_params'], or use fit.targets: calibrated",
        )
    return {n: float(known[n]) for n in names}  # type: ignore[index]


def optimize(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """Calibrate the cheap model on every scenario and the expensive one on the training scenarios (unless
    ``fit.targets: known``) and on the test ones when ``evaluate.direct_reference`` (direct HPO, the reference),
    ``parallel_studies`` at once."""
    plan = _planned_studies(cfg, workspace)
    todo = [(s, r) for s, r in plan if not (workspace.study_dir(s.name, r) / "result.json").is_file()]
    log(f"optimize: {len(plan)} studies, {len(plan) - len(todo)} done before, {len(todo)} to run")

    def one(item: tuple[Scenario, str]) -> StudyResult:
        return _study(cfg, workspace, *item)

    failed = 0
    with _Bar(progress, "studies", len(todo)) as advance, ThreadPoolExecutor(int(cfg.parallel_studies)) as pool:
        for (scenario, role), result in zip(todo, pool.map(one, todo), strict=True):
            advance()
            if result.best_value is None:
                failed += 1
                log(f"optimize: warning: every trial of {study_name(scenario.name, role)} failed ({result.reason})")
    return {"studies": len(plan), "failed": failed}


# -- collect ----------------------------------------------------------------------------------------------------


def collect(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """Gather each scenario's best ξ̂ (cheap) and θ̂ (expensive) into ``pairs.csv``; a scenario whose study found
    no finished trial is excluded, with a warning. With ``fit.target_top_k`` = k > 1 a training scenario's θ̂ is
    the mean of its expensive study's k best trials' parameters (``theta_top_k`` says so), not the single best:
    the best of a few noisy runs is partly chosen by the seed's noise, and the runs near it average that out."""
    top_k = int(cfg.fit.get("target_top_k", 1))
    known = known_targets(cfg)
    journal = open_journal(workspace.storage) if top_k > 1 and workspace.storage.is_file() else None
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
            scenario.split == "train" and not known and (expensive is None or expensive.best_value is None)
        ):
            excluded.append(scenario.name)
            log(f"collect: warning: {scenario.name} excluded (a study found no finished trial)")
            continue
        row: dict[str, Any] = {"scenario": scenario.name, "split": scenario.split}
        row.update({f"xi.{n}": cheap.best_params[n] for n in cheap_names})
        row.update({"cheap_best": cheap.best_value, "cheap_trials": cheap.n_trials, "cheap_wall_s": cheap.wall_s})
        row.update({f"feature.{k}": float(v) for k, v in dict(scenario.context.get("features") or {}).items()})
        found = expensive is not None and expensive.best_value is not None
        theta = expensive.best_params if found and expensive else {}
        if found and journal is not None and scenario.split == "train":
            trials = load_trials(journal, study_name(scenario.name, "expensive"))
            theta = top_k_params(trials, top_k) or theta
        if known and scenario.split == "train":  # simulated with known θ: its observations are the offline cost
            row.update({f"theta.{n}": v for n, v in _known_params(scenario, expensive_names).items()})
            wall = scenario.context.get("observation_wall_s")  # unknown: left empty, never counted as 0
            runs = int(scenario.context.get("observation_runs") or 1)  # e.g. several days averaged: each a run
            row.update({"theta_top_k": "", "expensive_best": "", "expensive_trials": runs,
                        "expensive_wall_s": float(wall) if wall is not None else ""})  # fmt: skip
            rows.append(row)
            continue
        row.update({f"theta.{n}": theta[n] if theta else "" for n in expensive_names})
        row["theta_top_k"] = top_k if theta and scenario.split == "train" else ""
        row.update(
            {
                "expensive_best": expensive.best_value if found and expensive else "",
                "expensive_trials": expensive.n_trials if found and expensive else "",
                "expensive_wall_s": expensive.wall_s if found and expensive else "",
            }
        )
        rows.append(row)
    write_csv(workspace.pairs, rows)
    targets = "the best trial's θ" if top_k == 1 else f"the mean θ of the {top_k} best trials"
    if known:
        targets = "the θ each was simulated with (context.known_params)"
    log(
        f"collect: {len(rows)} pairs in {workspace.pairs} (training targets: {targets})"
        + (f", excluded {', '.join(excluded)}" if excluded else "")
    )
    return {
        "pairs": len(rows),
        "excluded": excluded,
        "target_top_k": top_k,
        "targets": "known" if known else "calibrated",
    }


# -- fit --------------------------------------------------------------------------------------------------------


def fit(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """Fit h: ξ̂ → θ̂ on the training pairs (with ``fit.cheap_loss_input`` the cheap calibration's best loss is an
    input too), the model chosen per output by cross-validation and shrunk toward an
    anchor by the weight that cross-validates best (the anchor alone, with a warning, where no candidate helps);
    the anchor is the training mean, or with ``fit.prior: centre`` the centre of the parameter's search range where
    that fits the training targets better. Write ``model/model.joblib`` and its card (model, weight and anchor per
    output)."""
    import joblib
    import numpy as np
    import sklearn

    from core.bridge.regressors import BridgeRegressor, min_pairs

    rows = [r for r in read_csv(workspace.pairs) if r["split"] == "train"]
    inputs, outputs = h_inputs(cfg, rows), columns(rows, "theta.")
    x = np.array([[float(r[c]) for c in inputs] for r in rows])
    y = np.array([[float(r[c]) for c in outputs] for r in rows])
    names = list(cfg.fit.models)
    select = str(cfg.fit.select)
    if select != "cv":  # the schema checked that it names a model
        names = [select]
    usable = [n for n in names if len(x) >= min_pairs(n, x.shape[1])]
    if not usable:
        from core.bridge.regressors import cross_validate

        cross_validate(names, x, y)  # raises the "too few pairs" error that names the models
    if len(usable) < len(names):
        skipped = ", ".join(n for n in names if n not in usable)
        log(f"fit: {skipped} skipped: {len(x)} pairs are too few for them")
    names_out = [c.removeprefix("theta.") for c in outputs]
    prior = centre_prior(cfg, names_out) if str(cfg.fit.get("prior", "centre")) == "centre" else None
    model = BridgeRegressor(usable, seed=int(cfg.seed), prior=prior).fit(x, y)
    for warning in model.warnings:
        log(f"fit: warning: {warning.replace('output ', 'θ output ')}")
    workspace.model_dir.mkdir(parents=True, exist_ok=True)
    temporary = workspace.model_dir / ".model.joblib.tmp"
    joblib.dump(model, temporary)
    temporary.replace(workspace.model_dir / "model.joblib")
    chosen = {name.removeprefix("theta."): c for name, c in zip(outputs, model.chosen_, strict=True)}
    cv = {name.removeprefix("theta."): scores for name, scores in zip(outputs, model.cv_, strict=True)}
    shrinkage = dict(zip(names_out, model.shrinkage_, strict=True))
    anchor = {
        n: {"kind": k, "value": float(v)} for n, k, v in zip(names_out, model.anchor_kind_, model.anchor_, strict=True)
    }
    card = {
        "model": chosen,
        "shrinkage_weight": shrinkage,
        "anchor": anchor,
        "prior": dict(zip(names_out, prior, strict=True)) if prior is not None else None,
        "targets": "known" if known_targets(cfg) else "calibrated",
        "target_top_k": int(cfg.fit.get("target_top_k", 1)),
        "cv_mse_standardized": cv,
        "fallback_to_mean": [n for n, c in chosen.items() if c == "mean"],
        "inputs": inputs,
        "outputs": outputs,
        "n_pairs": len(rows),
        "scikit_learn": sklearn.__version__,
    }
    write_atomic(workspace.model_dir / "card.json", json.dumps(card, indent=2) + "\n")
    choices = ", ".join(
        f"{n} → {anchor[n]['kind']} {anchor[n]['value']:.4g} + {shrinkage[n]:.2g} × ({c} − it) "
        f"(CV MSE {cv[n].get('shrunk', cv[n].get('prior', cv[n][c])):.3g}, mean {cv[n]['mean']:.3g})"
        for n, c in chosen.items()
    )
    log(f"fit: chose per output by cross-validation on {len(rows)} pairs: {choices}")
    return {"model": chosen, "cv": cv}


def h_inputs(cfg: DictConfig, rows: Sequence[dict[str, str]]) -> list[str]:
    """The columns of ``pairs.csv`` that h reads: ξ̂ (``xi.*``), the cheap calibration's best loss
    (``cheap_best``) with ``fit.cheap_loss_input``, the scenarios' features (``feature.*``) with
    ``fit.feature_inputs``."""
    inputs = columns(rows, "xi.") + (["cheap_best"] if bool(cfg.fit.get("cheap_loss_input", False)) else [])
    if bool(cfg.fit.get("feature_inputs", False)):
        features = columns(rows, "feature.")
        if not features:
            raise UserError(
                "fit.feature_inputs is true but no scenario has context.features",
                hint="the scenario family must put numbers in each scenario's context['features']",
            )
        inputs += features
    return inputs


def centre_prior(cfg: DictConfig, names: Sequence[str]) -> list[float | None]:
    """The centre of each expensive parameter's search range (``None`` for one without a numeric range): the
    anchor ``fit.prior: centre`` offers the regression beside the training mean."""
    params = _model_config(cfg, "expensive").params
    centres: list[float | None] = []
    for name in names:
        spec = params.get(name)
        ranged = OmegaConf.is_list(spec) or OmegaConf.is_dict(spec)
        low, high = _bounds(spec) if ranged else (-math.inf, math.inf)  # a constant has no range
        centres.append((low + high) / 2 if math.isfinite(low) and math.isfinite(high) else None)
    return centres


# -- evaluate ---------------------------------------------------------------------------------------------------


def evaluate(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """On each test scenario: predict θ̂ = h(ξ̂) (with its standard deviation), run the expensive model there once
    (the study ``<scenario>/bridge``), refine from it with as many more runs as the uncertainty asks for (up to
    ``evaluate.refine``; study ``<scenario>/refine``), and put both beside direct HPO's result."""
    import numpy as np

    model, card = load_model(workspace)
    expensive_cfg = _model_config(cfg, "expensive")
    rows = [r for r in read_csv(workspace.pairs) if r["split"] == "test"]
    if not rows:
        raise UserError("no test scenario has a cheap calibration", where=str(workspace.pairs))
    x = np.array([[float(r[c]) for c in card["inputs"]] for r in rows])
    mean, std = model.predict(x)
    names = [c.removeprefix("theta.") for c in card["outputs"]]
    ranges = [_bounds(expensive_cfg.params[n])[1] - _bounds(expensive_cfg.params[n])[0] for n in names]
    most = int(cfg.evaluate.refine)
    full_at = float(cfg.evaluate.get("refine_full_at", 0.1))
    curvature = None
    if most > 0 and str(cfg.evaluate.get("refine_order", "uncertainty")) == "curvature":
        curvature = training_curvature(cfg, workspace, names)
        log("evaluate: refine order by curvature × std², the loss's curvature per squared range from the training "
            "studies: " + ", ".join(f"{n} {c:.3g}" for n, c in zip(names, curvature, strict=True)))  # fmt: skip
    weights = None
    if most > 0 and str(cfg.evaluate.get("refine_method", "pattern")) == "pooled":
        weights = _jacobian_weights(cfg, workspace, names, log, progress)
    else:  # an earlier pooled evaluate's record: not this evaluation's offline cost
        (workspace.model_dir / "jacobian.json").unlink(missing_ok=True)
    results = []
    with _Bar(progress, "evaluate: expensive runs on held-out scenarios", len(rows)) as advance:
        for index, row in enumerate(rows):
            results.append(
                _evaluate_one(
                    cfg, workspace, row, names, mean[index], std[index], ranges, most, full_at, curvature, weights
                )
            )
            advance()
    write_csv(workspace.evaluation, results)
    summary = summarize(results)
    plain = {"bridge_value": "expensive objective at h(ξ̂)", "refine_value": "after refine",
             "direct_value": "direct HPO's best"}  # fmt: skip
    values = ", ".join(f"{words} {summary[k]:.4g}" for k, words in plain.items() if k in summary)
    log(f"evaluate: medians over {len(results)} held-out scenarios, on the seed the studies used: {values}")
    return summary


def _evaluate_one(
    cfg: DictConfig,
    workspace: Workspace,
    row: dict[str, str],
    names: list[str],
    mean: Any,
    std: Any,
    ranges: list[float],
    most: int,
    full_at: float,
    curvature: list[float] | None = None,
    weights: Any = None,
) -> dict[str, Any]:
    expensive_cfg = _model_config(cfg, "expensive")
    scenario = Scenario.load(workspace.scenario_file(row["scenario"]))
    predicted = _clip(dict(zip(names, map(float, mean), strict=True)), expensive_cfg.params)
    _fresh(workspace, scenario.name, "bridge", {"n_trials": 1, "enqueue": [predicted]})
    point = _study(cfg, workspace, scenario, "bridge", "expensive", n_trials=1, enqueue=[predicted])
    if point.best_value is None:
        raise UserError(
            f"the expensive model failed at the bridge's prediction ({point.reason})",
            where=str(workspace.study_dir(scenario.name, "bridge")),
        )
    value = point.best_value
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "bridge_value": value,
        "bridge_expensive_runs": 1,
        "bridge_wall_s": float(row["cheap_wall_s"]) + point.wall_s,
    }
    result.update({f"pred.{n}": v for n, v in predicted.items()})
    result.update({f"pred_std.{n}": float(s) for n, s in zip(names, std, strict=True)})
    result.update(_attrs("bridge", point))
    k = refine_budget([float(s) for s in std], ranges, most, full_at)
    bounds = [_bounds(expensive_cfg.params[n]) for n in names]
    method = str(cfg.evaluate.get("refine_method", "pattern"))
    if k > 0 and method == "pooled":
        refined, runs_wall, estimate = _pooled_refine(cfg, workspace, scenario, point, bounds, k, weights)
        result.update(_attrs("refine", refined))  # the last run's figures: the estimate itself is never run
        result.update({f"refined.{n}": estimate[n] for n in names})
        result.update({"refine_value": refined.best_value, "refine_expensive_runs": 1 + k,
                       "refine_wall_s": float(row["cheap_wall_s"]) + point.wall_s + runs_wall})  # fmt: skip
        k = 0  # recorded: nothing more to pick below
    elif k >= 2 and method == "gauss_newton":  # one run: the pattern
        found = _gauss_newton_refine(cfg, workspace, scenario, predicted, std, bounds, k, curvature)
        refined, runs_wall, k, kept_step = found
    elif k > 0:
        kept_step = False
        # k more runs in a study of their own around the prediction, one at a time (a sampler given as
        # evaluate.refine_sampler decides each from the last); by default a pattern scaled by the uncertainty, in
        # the order evaluate.refine_order says
        sampler = _refine_sampler(cfg, predicted)
        points = [] if sampler is not None else refine_points(predicted, std, bounds, k, curvature)
        _fresh(workspace, scenario.name, "refine", {"n_trials": k, "enqueue": points, "sampler": sampler,
                                                    "from": predicted})  # fmt: skip
        pattern = _study(
            cfg, workspace, scenario, "refine", "expensive",
            n_trials=k, sampler=sampler, n_max_jobs=1, enqueue=points,
        )  # fmt: skip
        refined, runs_wall = pattern, pattern.wall_s
    if k > 0:
        better = kept_step or (refined.best_value is not None and refined.best_value < value)
        result.update(_attrs("refine", refined if better else point))
        result.update({f"refined.{n}": (refined.best_params if better else predicted)[n] for n in names})
        result.update(
            {
                "refine_value": refined.best_value if better else value,
                "refine_expensive_runs": 1 + k,
                "refine_wall_s": float(row["cheap_wall_s"]) + point.wall_s + runs_wall,
            }
        )
    gauss_newton_dir = workspace.study_dir(scenario.name, DIRECT_GN)
    if int(cfg.evaluate.get(DIRECT_GN) or 0) > 0 and (gauss_newton_dir / "result.json").is_file():
        second = StudyResult.load(gauss_newton_dir)
        if second.best_value is not None:
            result.update(_attrs(DIRECT_GN, second))
            result.update({f"{DIRECT_GN}.{n}": float(second.best_params[n]) for n in names})
            result.update({f"{DIRECT_GN}_value": second.best_value, f"{DIRECT_GN}_expensive_runs": second.n_trials,
                           f"{DIRECT_GN}_wall_s": second.wall_s})  # fmt: skip
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
    return result


def _gauss_newton_refine(
    cfg: DictConfig,
    workspace: Workspace,
    scenario: Scenario,
    predicted: dict[str, float],
    std: Any,
    bounds: list[tuple[float, float]],
    k: int,
    curvature: list[float] | None,
) -> tuple[StudyResult, float, int, bool]:
    """``evaluate.refine_method: gauss_newton``: k − 1 probes, at most one per parameter, each moved by the
    prediction's std or with ``evaluate.refine_scale: range`` by ``evaluate.refine_share`` of its range (study
    ``<scenario>/probe``, run in parallel), then one run where the Gauss–Newton step from the check run's and the
    probes' residuals puts the minimum (study ``<scenario>/refine``), held toward the prediction by a prior as wide
    as the probes move or (``evaluate.refine_prior: std``) as h's std. Returns the better of the two studies'
    results (``evaluate.refine_keep: step``: the step's, if it finished), their wall seconds together, the
    number of runs they made and whether the step's point is kept whatever the check run's loss."""
    cap = STEP_MAX_SHARE
    h_std = std
    if str(cfg.evaluate.get("refine_scale", "std")) == "range":  # the prediction is only the start
        cap = float(cfg.evaluate.get("refine_share", STEP_MAX_SHARE))
        std = [cap * (high - low) for low, high in bounds]
    prior = h_std if str(cfg.evaluate.get("refine_prior", "scale")) == "std" else std
    probes = probe_points(predicted, std, bounds, k - 1, curvature, max_share=cap)
    _fresh(workspace, scenario.name, "probe", {"n_trials": len(probes), "enqueue": probes, "from": predicted})
    probed = _study(cfg, workspace, scenario, "probe", "expensive", n_trials=len(probes), enqueue=probes)
    journal = open_journal(workspace.storage)
    runs = [t for role in ("bridge", "probe") for t in load_trials(journal, study_name(scenario.name, role))]
    if any(t.value is None or not isinstance(t.user_attrs.get("residuals"), list) for t in runs):
        raise UserError(
            "refine_method gauss_newton needs every check and probe run to finish with its residuals",
            where=str(workspace.study_dir(scenario.name, "probe")),
            hint="the expensive objective must report user_attrs.residuals (the loss cell by cell), or use "
            "evaluate.refine_method=pattern",
        )
    check, *around = runs
    around_runs = [(t.params, t.user_attrs["residuals"]) for t in around]
    step = gauss_newton_point(predicted, check.user_attrs["residuals"], around_runs, prior, bounds, cap)
    _fresh(workspace, scenario.name, "refine", {"n_trials": 1, "enqueue": [step], "from": predicted,
                                                "method": "gauss_newton", "probes": probes})  # fmt: skip
    stepped = _study(cfg, workspace, scenario, "refine", "expensive", n_trials=1, enqueue=[step])
    wall = probed.wall_s + stepped.wall_s
    if str(cfg.evaluate.get("refine_keep", "best")) == "step" and stepped.best_value is not None:
        return stepped, wall, len(probes) + 1, True
    finished = [s for s in (probed, stepped) if s.best_value is not None]
    best = min(finished, key=lambda s: math.inf if s.best_value is None else s.best_value, default=stepped)
    return best, wall, len(probes) + 1, False


def _pooled_refine(
    cfg: DictConfig,
    workspace: Workspace,
    scenario: Scenario,
    check: StudyResult,
    bounds: list[tuple[float, float]],
    k: int,
    weights: Any,
) -> tuple[StudyResult, float, dict[str, float]]:
    """``evaluate.refine_method: pooled``: k runs after the check run, run i (study ``<scenario>/refine-<i>``) on
    the scenario's replicate i (``context.replicate``: the objective's own independent noise, e.g. another
    simulator seed) at the point the pooled Jacobian model puts from every run before it
    (:func:`core.bridge.refine.pooled_search`). Returns the last run's study, the runs' wall seconds and the
    point the model puts after all of them (the result, never run itself)."""
    import numpy as np

    from core.config import locate

    features = np.asarray(locate(str(cfg.evaluate.jacobian_features))(scenario), dtype=float)
    jacobian = features @ np.asarray(weights, dtype=float)
    share = float(cfg.evaluate.get("refine_share", STEP_MAX_SHARE))
    studies: list[StudyResult] = []
    journal = open_journal(workspace.storage)  # opened once: it reads only what the runs append to it

    def evaluate(point: dict[str, float], replicate: int) -> tuple[float, Any]:
        study = check if replicate == 0 else _replicate_run(cfg, workspace, scenario, point, replicate)
        if replicate:
            studies.append(study)
        role = f"refine-{replicate}" if replicate else "bridge"
        trials = load_trials(journal, study_name(scenario.name, role))
        residuals = next((t.user_attrs.get("residuals") for t in trials if t.value is not None), None)
        if study.best_value is None or not isinstance(residuals, list) or len(residuals) != len(features):
            raise UserError(
                "refine_method pooled needs every run to finish with its residuals, one per row of "
                "evaluate.jacobian_features",
                where=str(workspace.study_dir(scenario.name, role)),
                hint="the expensive objective must report user_attrs.residuals (the loss cell by cell)",
            )
        return float(study.best_value), residuals

    start = {n: float(check.best_params[n]) for n in check.best_params}
    _, estimate = pooled_search(evaluate, start, bounds, 1 + k, jacobian, share, cap=share)
    return studies[-1], sum(s.wall_s for s in studies), estimate


def _replicate_run(
    cfg: DictConfig, workspace: Workspace, scenario: Scenario, point: dict[str, float], replicate: int
) -> StudyResult:
    """One expensive run at ``point`` on the scenario's replicate ``replicate`` (study ``<scenario>/refine-<i>``;
    the scenario file it reads, with ``context.replicate``, beside it)."""
    role = f"refine-{replicate}"
    variant = Scenario(scenario.name, scenario.split, scenario.seed, {**scenario.context, "replicate": replicate})
    _fresh(workspace, scenario.name, role, {"n_trials": 1, "enqueue": [point], "replicate": replicate})
    scenario_file = workspace.study_dir(scenario.name, role) / "scenario.json"
    write_atomic(scenario_file, variant.to_json())
    return _study(cfg, workspace, variant, role, "expensive", n_trials=1, enqueue=[point], scenario_file=scenario_file)


def _jacobian_weights(cfg: DictConfig, workspace: Workspace, names: list[str], log: Log, progress: bool) -> Any:
    """W of the Jacobian model J = F W (``evaluate.refine_method: pooled``): ``evaluate.jacobian_samples`` expensive
    runs per training scenario (the first ``evaluate.jacobian_scenarios`` of them when set; study
    ``<scenario>/jacobian``, on its calibration setting), drawn around its target
    θ (pairs.csv) with standard deviation ``evaluate.jacobian_spread`` of each range, fitted by
    :func:`core.bridge.refine.fit_jacobian`; saved with their cost in ``model/jacobian.json`` (offline cost)."""
    import numpy as np

    from core.config import locate

    if not cfg.evaluate.get("jacobian_features"):
        raise ConfigError(
            "evaluate.refine_method: pooled needs evaluate.jacobian_features (the rows of features per residual "
            "cell its Jacobian model reads)",
            where="evaluate.jacobian_features",
            hint="name a function f(scenario) -> list of rows, or use refine_method: gauss_newton",
        )
    features_of = locate(str(cfg.evaluate.jacobian_features))
    params = _model_config(cfg, "expensive").params
    bounds = [_bounds(params[n]) for n in names]
    widths = np.array([high - low for low, high in bounds])
    n, spread = int(cfg.evaluate.jacobian_samples), float(cfg.evaluate.jacobian_spread)
    train = [r for r in read_csv(workspace.pairs) if r["split"] == "train"]
    cap = cfg.evaluate.get("jacobian_scenarios")
    train = train if cap is None else train[: int(cap)]
    samples, runs, wall = [], 0, 0.0
    journal = None
    with _Bar(progress, "evaluate: offline runs for the refine's Jacobian", len(train)) as advance:
        for index, row in enumerate(train):
            scenario = Scenario.load(workspace.scenario_file(row["scenario"]))
            target = {m: float(row[f"theta.{m}"]) for m in names}
            points = offline_points(target, bounds, n, spread, [int(cfg.seed), index])
            _fresh(workspace, scenario.name, "jacobian", {"n_trials": n, "enqueue": points})
            study = _study(cfg, workspace, scenario, "jacobian", "expensive", n_trials=n, enqueue=points)
            journal = journal or open_journal(workspace.storage)
            done = [t for t in load_trials(journal, study_name(scenario.name, "jacobian"))
                    if t.value is not None and isinstance(t.user_attrs.get("residuals"), list)]  # fmt: skip
            runs, wall = runs + study.n_trials, wall + study.wall_s
            if len(done) >= 2:
                z = [[(t.params[m] - low) / w for m, (low, _), w in zip(names, bounds, widths, strict=True)]
                     for t in done]  # fmt: skip
                samples.append((features_of(scenario), z, [t.user_attrs["residuals"] for t in done]))
            advance()
    weights = fit_jacobian(samples)
    if weights is None:
        raise UserError(
            "no training scenario has two finished offline runs to fit the refine's Jacobian from",
            where=str(workspace.study_dir(train[0]["scenario"] if train else "?", "jacobian")),
        )
    write_atomic(workspace.model_dir / "jacobian.json", json.dumps(
        {"weights": np.asarray(weights).tolist(), "parameters": names, "runs": runs, "wall_s": wall,
         "scenarios": len(samples), "samples_per_scenario": n, "spread": spread}, indent=1) + "\n")  # fmt: skip
    log(f"evaluate: the refine's Jacobian from {runs} offline runs on {len(samples)} training scenarios")
    return weights


def _no_curvature_without_studies(cfg: DictConfig) -> None:
    """``evaluate.refine_order: curvature`` reads the training studies, which ``fit.targets: known`` never runs."""
    if known_targets(cfg) and str(cfg.evaluate.get("refine_order", "uncertainty")) == "curvature":
        raise ConfigError(
            "evaluate.refine_order: curvature reads the training scenarios' expensive studies, and with "
            "fit.targets: known there are none",
            where="evaluate.refine_order",
            hint="use refine_order: uncertainty (the least certain parameter first), or fit.targets: calibrated",
        )


def training_curvature(cfg: DictConfig, workspace: Workspace, names: Sequence[str]) -> list[float]:
    """The expensive loss's curvature per θ parameter (per squared share of its range), from the training
    scenarios' expensive studies (:func:`core.bridge.refine.loss_curvature`): what ``evaluate.refine_order:
    curvature`` ranks the refine steps by. Only training studies are read."""
    _no_curvature_without_studies(cfg)
    params = _model_config(cfg, "expensive").params
    studies = []
    journal = open_journal(workspace.storage)
    for row in read_csv(workspace.pairs):
        if row["split"] == "train":
            trials = load_trials(journal, study_name(row["scenario"], "expensive"))
            studies.append([(float(t.value), t.params) for t in trials if t.value is not None])
    curvature = loss_curvature(studies, {n: _bounds(params[n]) for n in names})
    return [curvature[n] for n in names]


def _fresh(workspace: Workspace, scenario: str, role: str, request: dict[str, Any]) -> None:
    """Make the study ``<scenario>/<role>`` one of ``request`` (its points and budget): a study left by an earlier
    evaluate with other points (h was refitted) or with no record of them is discarded, so that it runs afresh
    rather than resuming with stale trials; one with the same points is kept (resumed, or reused if finished)."""
    folder = workspace.study_dir(scenario, role)
    record = folder / "request.json"
    text = json.dumps(request, sort_keys=True, default=str)
    if record.is_file() and record.read_text(encoding="utf-8") == text:
        return
    if folder.exists() or workspace.storage.is_file():
        discard_study(workspace.storage, study_name(scenario, role), folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(record, text)


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

    from core.config import as_dict, locate

    node = cfg.evaluate.get("refine_sampler")
    if node is None:
        return None
    sampler = as_dict(node, where="evaluate.refine_sampler")
    if "x0" in inspect.signature(locate(str(sampler["_target_"]))).parameters:
        sampler.setdefault("x0", predicted)
    return sampler


def _bounds(spec: Any) -> tuple[float, float]:
    if OmegaConf.is_list(spec) or isinstance(spec, list | tuple):
        return float(spec[0]), float(spec[1])
    low, high = spec.get("low"), spec.get("high")
    return (float(low), float(high)) if low is not None and high is not None else (-math.inf, math.inf)


def _clip(point: dict[str, float], params: DictConfig) -> dict[str, float]:
    """Keep a predicted point inside the expensive model's search box."""
    clipped = {}
    for name, value in point.items():
        low, high = _bounds(params[name])
        clipped[name] = min(max(value, low), high)
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


# -- report -----------------------------------------------------------------------------------------------------


def report(cfg: DictConfig, workspace: Workspace, log: Log, progress: bool = True) -> dict[str, Any]:
    """Write ``report/report.md``, ``report/summary.json`` and the plots (see :mod:`core.bridge.report`)."""
    path = write_report(workspace, cfg)
    log(f"report: {path}")
    return {"report": str(path)}


_STAGE_FUNCTIONS: dict[str, Callable[[DictConfig, Workspace, Log, bool], dict[str, Any]]] = {
    "prepare": prepare,
    "optimize": optimize,
    "collect": collect,
    "fit": fit,
    "evaluate": evaluate,
    "report": report,
}
