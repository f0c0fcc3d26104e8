"""Direct calibration of one scenario: HPO of θ (or of the cheap model's ξ) against the observations Y.

The study is a study of the HPO runner (:func:`core.hpo.optimize`): trials run in its threads, ``n_jobs`` at a
time, each SUMO run a child process driven through traci; the Optuna study lives in
``run_dir/study.db`` (SQLite), so an interrupted calibration resumes where it stopped and ``n_trials`` counts
finished trials in all, not per invocation (the runner's own files, trials.csv and best.yaml, are in
``run_dir/hpo``). A trial whose simulation fails or hangs is recorded as failed, with its error in the
``failure`` user attribute. The result compares the best θ with θ*
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
    sampler: Mapping[str, Any] | None = None,
    run_dir: str | Path = "runs/traffic/calibrate",
    workdir: str | Path = "runs/traffic/scenarios",
    timeout: float = 300.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Calibrate ``model`` on ``scenario``; returns (and writes to ``run_dir/result.json``) the figures.

    ``sampler`` is a config node (``{"_target_": "optuna.samplers.TPESampler", "seed": 0}``; default: TPE, seed 0).
    """
    from optuna.trial import TrialState

    from apps.traffic.family import observe
    from apps.traffic.objective import discrepancy
    from apps.traffic.simulator import simulate
    from core.files import write_atomic
    from core.hpo import optimize

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}", where="model", hint=f"one of {', '.join(MODELS)}")
    space = search_space(params, model)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir).resolve()
    built = build(scenario, workdir)
    observed = observe(scenario, workdir, timeout=timeout)
    context = {"traffic": scenario.to_dict(), "observed": observed.to_dict(), "workdir": str(workdir)}
    config = {
        "study": {
            "name": f"traffic-{model}",
            "storage": f"sqlite:///{(run / 'study.db').resolve()}",
            "sampler": dict(sampler) if sampler is not None else {"_target_": "optuna.samplers.TPESampler", "seed": 0},
        },
        "params": {name: [low, high] for name, (low, high) in space.items()},
        "n_trials": n_trials,
        "n_max_jobs": max(1, n_jobs),
        "plots": False,
    }

    def objective(trial: Any) -> dict[str, Any]:
        return _trial(context, dict(trial.params), model, timeout)

    started = time.perf_counter()
    study = optimize(config, objective=objective, run_dir=run / "hpo", progress=progress).study
    wall = time.perf_counter() - started

    trials = sorted(study.trials, key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        errors = {str(t.user_attrs.get("failure")) for t in trials if t.user_attrs.get("failure")}
        raise RuntimeError("every trial failed: " + "; ".join(sorted(errors))[:500])
    best = min(complete, key=lambda t: float(t.value or 0.0))
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "model": model,
        "n_complete": len(complete),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "wall_s": round(wall, 3),
        "best_params": dict(best.params),
        "best_loss": float(best.value) if best.value is not None else None,
        "best_fit": {"loss": float(best.value or 0.0), **{k: best.user_attrs[k] for k in FIT_ATTRS}},
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
        result["count_rmse_over_noise_floor"] = float(result["best_fit"]["count_rmse"]) / floor.count_rmse
        _plot(run, observed, best_series, result)
    write_atomic(run / "result.json", json.dumps(result, indent=2) + "\n")
    return result


FIT_ATTRS = ("count_rmse", "speed_rmse", "geh_share")


def _trial(context: Mapping[str, Any], params: Mapping[str, float], model: str, timeout: float) -> dict[str, Any]:
    """One trial, in one of the runner's threads: the model's loss at ``params``, its fit as user attributes.

    Threads, not processes (a trial process of its own costs ~0.8 s of CPU to start, more than half a SUMO run
    here): SUMO runs as a traci child process, since libsumo would hold the interpreter lock.
    """
    from apps.traffic.objective import evaluate_cheap, evaluate_sumo, runner_result

    if model == "cheap":
        return runner_result(evaluate_cheap(context, params))
    fit = evaluate_sumo(context, params, mesoscopic=model == "mesoscopic", backend="traci", timeout=timeout)
    return runner_result(fit)


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
