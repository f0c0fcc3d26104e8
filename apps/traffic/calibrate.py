"""Direct calibration of one scenario: HPO of θ (or of the cheap model's ξ) against the observations Y.

Trials run in worker processes (SUMO allows one in-process simulation per process), ``n_jobs`` at a time; the
Optuna study lives in ``run_dir/study.db`` (SQLite), so an interrupted calibration resumes where it stopped and
``n_trials`` counts finished trials in all, not per invocation. A trial whose simulation fails or hangs is told
to Optuna as failed, with its error kept as a user attribute. The result compares the best θ with θ*
(parameter error, as a share of each parameter's range) and its count RMSE with the noise floor: the RMSE of
θ* itself, simulated with the calibration seed.

Example:
    >>> import tempfile
    >>> from apps.traffic.scenario import DetectorSpec, NetworkSpec, TrafficScenario
    >>> spec = TrafficScenario(network=NetworkSpec(size=3), detectors=DetectorSpec(count=4))
    >>> result = calibrate(spec, {"demand": [0.5, 1.6]}, model="cheap", n_trials=5, n_jobs=1,
    ...                    run_dir=tempfile.mkdtemp(), workdir=tempfile.mkdtemp(), progress=False)
    >>> result["n_complete"]
    5
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.scenario import THETA, TrafficScenario, build
from core.errors import ConfigError

MODELS = ("expensive", "mesoscopic", "cheap")


def search_space(params: Mapping[str, Any], model: str) -> dict[str, tuple[float, float]]:
    """``name: [low, high]`` checked against the model's parameters."""
    from apps.traffic.queue_model import XI

    known = XI if model == "cheap" else THETA
    space = {}
    for name, bounds in params.items():
        if name not in known:
            raise ConfigError(
                f"unknown {model} parameter {name!r}", where=f"params.{name}", hint=f"known: {', '.join(known)}"
            )
        low, high = (float(b) for b in bounds)
        if not low < high:
            raise ConfigError(f"empty range [{low}, {high}]", where=f"params.{name}")
        space[name] = (low, high)
    if not space:
        raise ConfigError("no parameter to calibrate", where="params")
    return space


def calibrate(
    scenario: TrafficScenario,
    params: Mapping[str, Any],
    *,
    model: str = "expensive",
    n_trials: int = 50,
    n_jobs: int = 2,
    sampler: Any = None,
    run_dir: str | Path = "runs/traffic/calibrate",
    workdir: str | Path = "runs/traffic/scenarios",
    timeout: float = 300.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Calibrate ``model`` on ``scenario``; returns (and writes to ``run_dir/result.json``) the figures."""
    import optuna

    from apps.traffic.family import observe
    from apps.traffic.objective import discrepancy
    from apps.traffic.simulator import simulate
    from core.config.provenance import write_atomic

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}", where="model", hint=f"one of {', '.join(MODELS)}")
    space = search_space(params, model)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir).resolve()
    built = build(scenario, workdir)
    observed = observe(scenario, workdir, timeout=timeout)
    context = {"traffic": scenario.to_dict(), "observed": observed.to_dict(), "workdir": str(workdir)}

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"traffic-{model}", storage=f"sqlite:///{run / 'study.db'}", load_if_exists=True,
        direction="minimize", sampler=sampler or optuna.samplers.TPESampler(seed=0),
    )  # fmt: skip
    started = time.perf_counter()
    _run_study(study, context, space, model, n_trials, n_jobs, timeout, progress)
    wall = time.perf_counter() - started

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        errors = {str(t.user_attrs.get("error")) for t in study.trials if t.user_attrs.get("error")}
        raise RuntimeError("every trial failed: " + "; ".join(sorted(errors))[:500])
    best = study.best_trial
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "model": model,
        "n_complete": len(complete),
        "n_failed": sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials),
        "wall_s": round(wall, 3),
        "best_params": dict(best.params),
        "best_loss": float(best.value) if best.value is not None else None,
        "best_fit": dict(best.user_attrs.get("fit", {})),
        "convergence": [float(v) for v in np.minimum.accumulate([float(t.value or 0.0) for t in complete])],
    }
    if model != "cheap":
        # the noise floor: θ* itself, simulated with the seed the trials used
        floor = discrepancy(
            observed,
            simulate(
                built,
                scenario,
                scenario.theta_star,
                scenario.calibration_seed,
                mesoscopic=model == "mesoscopic",
                timeout=timeout,
            ),
        )
        best_series = simulate(
            built, scenario, best.params, scenario.calibration_seed, mesoscopic=model == "mesoscopic", timeout=timeout
        )
        result["theta_star"] = dict(scenario.theta_star)
        result["parameter_error"] = {
            name: abs(best.params[name] - scenario.theta_star[name]) / (high - low)
            for name, (low, high) in space.items() if name in scenario.theta_star
        }  # fmt: skip
        result["noise_floor"] = floor.to_dict()
        result["count_rmse_over_noise_floor"] = float(best.user_attrs["fit"]["count_rmse"]) / floor.count_rmse
        _plot(run, observed, best_series, result)
    write_atomic(run / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def _trial(context: Mapping[str, Any], params: Mapping[str, float], model: str, timeout: float) -> dict[str, float]:
    """One trial, in a worker process: the fit of the model at ``params``."""
    from apps.traffic.objective import evaluate_cheap, evaluate_sumo

    if model == "cheap":
        return evaluate_cheap(context, params).to_dict()
    return evaluate_sumo(context, params, mesoscopic=model == "mesoscopic", timeout=timeout).to_dict()


def _run_study(
    study: Any,
    context: Mapping[str, Any],
    space: Mapping[str, tuple[float, float]],
    model: str,
    n_trials: int,
    n_jobs: int,
    timeout: float,
    progress: bool,
) -> None:
    """Ask, run in worker processes, tell — until ``n_trials`` trials have finished (complete or failed)."""
    import optuna
    from rich.progress import Progress

    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL}
    for stale in study.trials:  # a previous run killed mid-trial: those trials never finished
        if stale.state == optuna.trial.TrialState.RUNNING:
            study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
    done = sum(t.state in finished for t in study.trials)
    running: dict[Future[dict[str, float]], Any] = {}
    bar = Progress(disable=not progress)
    task = bar.add_task(f"calibrating ({model})", total=n_trials, completed=done)
    with bar, ProcessPoolExecutor(max(1, n_jobs), mp_context=get_context("spawn")) as pool:
        while done + len(running) < n_trials or running:
            while done + len(running) < n_trials and len(running) < max(1, n_jobs):
                trial = study.ask()
                values = {name: trial.suggest_float(name, low, high) for name, (low, high) in space.items()}
                running[pool.submit(_trial, dict(context), values, model, timeout)] = trial
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ready:
                trial = running.pop(future)
                try:
                    fit = future.result()
                except Exception as exc:  # a failed or hung simulation fails the trial, not the study
                    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    trial.set_user_attr("fit", fit)
                    study.tell(trial, fit["loss"])
                done += 1
                best = _best_value(study)
                bar.update(task, completed=done, description=f"calibrating ({model}) best {best:.4g}")


def _best_value(study: Any) -> float:
    try:
        return float(study.best_value)
    except ValueError:
        return float("nan")


def _plot(run: Path, observed: Any, simulated: Any, result: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(result["convergence"], label="best loss so far")
    left.axhline(result["noise_floor"]["loss"], color="gray", linestyle="--", label="noise floor (θ*, other seed)")
    left.set_xlabel("trial")
    left.set_ylabel("loss")
    left.legend()
    left.set_title("convergence")
    totals_observed, totals_simulated = observed.counts.sum(axis=1), simulated.counts.sum(axis=1)
    right.scatter(totals_observed, totals_simulated)
    top = float(max(totals_observed.max(), totals_simulated.max())) * 1.05
    right.plot([0, top], [0, top], color="gray", linestyle="--")
    right.set_xlabel("observed vehicles per detector")
    right.set_ylabel("simulated at best θ")
    right.set_title("counts per detector")
    figure.tight_layout()
    figure.savefig(run / "calibration.png", dpi=100)
    plt.close(figure)
