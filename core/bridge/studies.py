"""One per-scenario calibration study, and single evaluations, for the bridge pipeline.

Every study of a workspace lives in one Optuna storage (the workspace's ``studies.journal``) under the name
``<scenario>/<role>``, so a killed study resumes and ``optuna-dashboard`` shows the whole bridge; its folder holds
the HPO runner's files and, once finished, ``result.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.bridge.scenario import Scenario
from core.files import write_atomic


@dataclass
class StudyResult:
    """What the bridge keeps of a study: the best point, its cost, and every trial's value in order."""

    best_params: dict[str, Any]
    best_value: float | None
    n_trials: int
    n_failed: int
    wall_s: float
    history: list[float] = field(default_factory=list)  # value per trial in trial order; nan for failures
    reason: str = ""
    best_user_attrs: dict[str, Any] = field(default_factory=dict)  # what the objective reported beside the value

    def save(self, folder: Path) -> None:
        write_atomic(folder / "result.json", json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> StudyResult:
        data = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        return cls(**data)


def run_study(
    folder: Path,
    model: DictConfig,
    scenario: Scenario,
    scenario_file: Path,
    n_trials: int | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    sampler: Any = None,
    n_max_jobs: int | None = None,
    storage: Path | None = None,
    name: str = "study",
    save: bool = True,
) -> StudyResult:
    """Calibrate ``model`` on ``scenario`` with the HPO runner (resuming the study in ``folder``) and save
    ``result.json``. ``n_trials`` (default: the model's) is the study's total, so a resumed study only tops up.
    ``storage`` (a journal file shared by many studies; default: one in ``folder``) holds the study as ``name``.

    The model's ``objective`` (a dotted path of ``f(scenario, params)``) runs in the runner's threads; its
    ``command`` (an argv template with ``{scenario_file}`` and the runner's placeholders) runs as jobs of the
    model's job backend, ``n_max_jobs`` at once. Either may report other metrics of a run as ``user_attrs``
    (``{"value": v, "user_attrs": {"count_rmse": ...}}``); the best trial's are kept in ``best_user_attrs``.
    ``save`` False leaves ``result.json`` unwritten (a study that more batches will extend).
    """
    from omegaconf import OmegaConf

    from core.config import as_dict, locate
    from core.hpo import optimize

    spec = as_dict(model, where="models")
    if OmegaConf.is_config(sampler):
        sampler = as_dict(sampler, where="sampler")
    config = study_config(
        spec,
        scenario_file=scenario_file,
        n_trials=n_trials,
        n_max_jobs=n_max_jobs,
        enqueue=enqueue,
        sampler=sampler,
        storage=storage,
        name=name,
    )
    objective = None
    if not spec.get("command"):
        function = locate(str(spec["objective"]))

        def objective(trial: Any) -> Any:
            # a number, or {"value": v, "user_attrs": {...}} to keep other metrics of the run
            return function(scenario, dict(trial.params))

    result = optimize(config, objective=objective, run_dir=folder, progress=False)
    return _summarize(result.study, folder, maximize=spec.get("direction") == "maximize", save=save)


def run_gauss_newton_study(
    folder: Path,
    model: DictConfig,
    scenario: Scenario,
    scenario_file: Path,
    budget: int,
    storage: Path,
    name: str,
) -> StudyResult:
    """Calibrate ``model`` on ``scenario`` by Gauss–Newton rounds from the centre of its parameters' ranges
    (:func:`core.bridge.refine.gauss_newton_search`, ``budget`` runs in all) and save ``result.json``.

    Each batch the search asks for (a round's probes, then its step) is enqueued in the study ``name`` of the
    journal ``storage`` and run by the HPO runner, ``n_max_jobs`` at once, through the model's job backend, so a
    killed calibration resumes: a point the study has already run is read back, not run again. The model's
    objective must report ``user_attrs.residuals`` (the loss cell by cell); ``result.json`` is written once the
    search has ended, so a study without it is unfinished."""
    import optuna
    from optuna.trial import TrialState

    from core.bridge.refine import gauss_newton_search
    from core.errors import UserError
    from core.hpo.outcomes import budget as used_budget
    from core.hpo.storage import open_storage

    def key(point: Mapping[str, Any]) -> str:
        return json.dumps({k: round(float(v), 9) for k, v in point.items()}, sort_keys=True)

    def trials() -> list[Any]:
        opened = open_storage(str(storage), storage.parent, study_name=name)
        try:
            return list(optuna.load_study(study_name=name, storage=opened.storage).trials)
        except KeyError:  # not created yet
            return []

    def evaluate(points: list[dict[str, float]]) -> list[tuple[float, Sequence[float] | None]]:
        existing = trials()
        present = {key(t.params) for t in existing if t.state != TrialState.FAIL}
        missing = [p for p in points if key(p) not in present]
        if missing:
            if existing:  # the runner enqueues only a new study's points: later batches go in as waiting trials
                opened = open_storage(str(storage), storage.parent, study_name=name)
                study = optuna.load_study(study_name=name, storage=opened.storage)
                for point in missing:
                    study.enqueue_trial(point, user_attrs={"enqueued": True})
            waiting = sum(t.state == TrialState.WAITING for t in existing)
            run_study(folder, model, scenario, scenario_file, n_trials=used_budget(existing)[0] + waiting
                      + len(missing), enqueue=[] if existing else missing, storage=storage, name=name,
                      save=False)  # fmt: skip
        done = {key(t.params): t for t in trials() if t.state == TrialState.COMPLETE}
        out: list[tuple[float, Sequence[float] | None]] = []
        for point in points:
            trial = done.get(key(point))
            residuals = trial.user_attrs.get("residuals") if trial is not None else None
            if trial is not None and not isinstance(residuals, list):
                raise UserError(
                    "a Gauss–Newton calibration needs the objective to report user_attrs.residuals",
                    where=str(folder),
                    hint="report the loss cell by cell as residuals, or calibrate with the model's sampler",
                )
            out.append((float(trial.value), residuals) if trial is not None else (math.inf, None))
        return out

    bounds = [float_range(model.params[n], str(n)) for n in model.params]
    start = {str(n): round((low + high) / 2, 12) for n, (low, high) in zip(model.params, bounds, strict=True)}
    gauss_newton_search(evaluate, start, bounds, budget)
    opened = open_storage(str(storage), storage.parent, study_name=name)
    study = optuna.load_study(study_name=name, storage=opened.storage)
    return _summarize(study, folder, maximize=False)


def float_range(spec: Any, name: str) -> tuple[float, float]:
    """A parameter's [low, high] (a list, or a mapping with low and high): what a Gauss–Newton search moves in."""
    from omegaconf import OmegaConf

    from core.errors import ConfigError

    node = OmegaConf.to_container(spec, resolve=True) if OmegaConf.is_config(spec) else spec
    if isinstance(node, list | tuple) and len(node) == 2:
        return float(node[0]), float(node[1])
    is_float = isinstance(node, dict) and node.get("type", "float") == "float" and not node.get("log")
    if is_float and isinstance(node, dict) and node.get("low") is not None and node.get("high") is not None:
        return float(node["low"]), float(node["high"])
    raise ConfigError(
        f"parameter {name!r} is not a float range: a Gauss–Newton calibration moves float parameters only",
        where=f"params.{name}",
    )


def study_config(
    spec: Mapping[Any, Any],
    scenario_file: Path | str = "{scenario_file}",
    n_trials: int | None = None,
    n_max_jobs: int | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    sampler: Any = None,
    storage: Path | None = None,
    name: str = "study",
) -> dict[str, Any]:
    """The HPO config (:mod:`core.hpo`) of one study of a model section ``spec`` (a plain mapping): the one place
    where a bridge model becomes a study, for running it and for checking it when the config loads."""
    config: dict[str, Any] = {
        "study": {
            "name": name,
            "directions": [spec.get("direction", "minimize")],
            "storage": str(storage.resolve()) if storage is not None else None,
        },
        "params": spec["params"],
        "n_trials": n_trials if n_trials is not None else spec["n_trials"],
        "n_max_jobs": n_max_jobs if n_max_jobs is not None else spec.get("n_max_jobs", 1),
        "enqueue": [dict(point) for point in enqueue],
        "jobs": spec.get("jobs") or {"backend": "local"},
        "plots": False,
    }
    chosen_sampler = sampler if sampler is not None else spec.get("sampler")
    if chosen_sampler is not None:
        config["study"]["sampler"] = chosen_sampler
    if spec.get("command"):
        command, path = spec["command"], str(scenario_file)
        if isinstance(command, str):  # one string, split by core.hpo like a shell would
            config["command"] = command.replace("{scenario_file}", path)
        else:
            config["command"] = [str(a).replace("{scenario_file}", path) for a in command]
    return config


def hpo_problems(model: DictConfig) -> list[tuple[str, str, str | None]]:
    """The model section's problems as :mod:`core.hpo` sees its study (parameter ranges, the jobs node, ...):
    ``(key in the section, message, hint)``, for the bridge's schema."""

    from core.config import as_dict
    from core.errors import ConfigError
    from core.hpo.settings import HpoSettings, load_hpo_config
    from core.jobs.registry import backend_names

    spec = as_dict(model, where="models")
    jobs = spec.get("jobs") or {}
    if not isinstance(jobs, dict):
        return [("jobs", f"{jobs!r} is not a mapping", "e.g. {backend: slurm, spec: {walltime: '1:00:00'}}")]
    try:
        HpoSettings.from_config(load_hpo_config(study_config(spec)), has_objective=True)
    except ConfigError as exc:
        key = re.sub(r"^config(: )?", "", exc.where or "")
        key = re.sub(r"^study\.directions(\[\d+\])?", "direction", key).removeprefix("study.")
        return [(key, exc.what, exc.hint)]
    backend = str(jobs.get("backend", "local"))
    known = backend_names()
    if backend not in known:
        return [("jobs.backend", f"unknown job backend {backend!r}", f"one of {', '.join(known)}")]
    return []


def _summarize(study: Any, folder: Path, maximize: bool, save: bool = True) -> StudyResult:
    from optuna.trial import TrialState

    trials = sorted((t for t in study.trials if t.state.is_finished()), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = (max if maximize else min)(complete, key=lambda t: t.value) if complete else None
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    reasons = [str(t.user_attrs.get("failure", "")) for t in trials if t.state == TrialState.FAIL]
    result = StudyResult(
        best_params=dict(best.params) if best else {},
        best_value=float(best.value) if best else None,
        n_trials=len(trials),
        n_failed=len(trials) - len(complete),
        wall_s=round((max(ends) - min(starts)).total_seconds(), 4) if starts and ends else 0.0,
        history=[float(t.value) if t.state == TrialState.COMPLETE else math.nan for t in trials],
        reason="" if best else (reasons[0] if reasons else "no trial finished"),
        best_user_attrs={k: v for k, v in best.user_attrs.items() if isinstance(v, int | float | str)} if best else {},
    )
    if save:
        result.save(folder)
    return result


def open_journal(path: Path) -> Any:
    """The bridge's study journal at ``path``, opened read-only through core.hpo's storage rules; open it once and
    pass it to :func:`load_trials` for every study (each opening replays the whole journal)."""
    from core.hpo.storage import open_storage

    return open_storage(str(path), path.parent, read_only=True).storage


def load_trials(storage: Any, name: str) -> list[Any]:
    """The finished trials of the study ``name`` in ``storage`` (from :func:`open_journal`), in trial order."""
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    return sorted((t for t in study.trials if t.state.is_finished()), key=lambda t: t.number)


def top_k_params(trials: Sequence[Any], k: int, maximize: bool = False) -> dict[str, Any]:
    """The mean parameters of the ``k`` best complete trials (fewer if fewer finished); a parameter that is not a
    number (categorical) takes the best trial's value. Empty when no trial completed.

    >>> from types import SimpleNamespace as T
    >>> from optuna.trial import TrialState
    >>> done = TrialState.COMPLETE
    >>> trials = [T(state=done, value=v, params={"a": a, "c": c}) for v, a, c in [(3, 9.0, "x"), (1, 1.0, "y"),
    ...           (2, 2.0, "z")]]
    >>> top_k_params(trials, 2)
    {'a': 1.5, 'c': 'y'}
    """
    from optuna.trial import TrialState

    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = sorted(complete, key=lambda t: -t.value if maximize else t.value)[: max(1, k)]
    if not best:
        return {}
    out: dict[str, Any] = {}
    for name, value in best[0].params.items():
        values = [t.params.get(name) for t in best]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        mean = sum(values) / len(values) if numeric else value
        out[name] = round(mean) if numeric and all(isinstance(v, int) for v in values) else mean
    return out


def discard_study(storage: Path, name: str, folder: Path) -> None:
    """Delete the study ``name`` from the journal ``storage`` and its folder, so that it is run afresh."""
    import shutil

    import optuna

    from core.hpo.storage import open_storage

    if storage.is_file():
        opened = open_storage(str(storage), storage.parent, study_name=name)
        with contextlib.suppress(KeyError):  # not in the storage (its runner never started)
            optuna.delete_study(study_name=name, storage=opened.storage)
    shutil.rmtree(folder, ignore_errors=True)
