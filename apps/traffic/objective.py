"""The discrepancy d(Y, f(θ)) between observed and simulated detector series, and the calibration objectives.

:func:`discrepancy` compares two :class:`~apps.traffic.simulator.DetectorSeries` cell by cell (detector ×
interval): the RMSE of counts, the RMSE of mean speeds (over cells where vehicles were observed; a simulated
cell with no vehicle counts as speed 0, since nothing got through), and the share of cells whose GEH statistic
is below 5 (GEH = sqrt(2 (M − C)² / (M + C)) on flows in vehicles per hour, the usual acceptance test). The
scalar ``loss`` a calibration minimizes is the sum of the two RMSEs, each divided by the observed mean, so
counts and speeds weigh alike whatever their units.

The objectives the model bridge (and ``kakehashi traffic calibrate``) call take a scenario and parameters:
:func:`expensive` runs microscopic SUMO with θ, :func:`mesoscopic` SUMO's mesoscopic model, :func:`cheap` the
numpy link queue model with ξ. Each returns the HPO runner's result, ``{"value": loss, "user_attrs": {...}}``
with ``count_rmse``, ``speed_rmse`` and ``geh_share``, so the bridge's evaluation carries them per study.
A scenario is a bridge scenario whose ``context`` holds ``traffic`` (a
:class:`~apps.traffic.scenario.TrafficScenario` as a dict), ``observed`` (Y as a dict) and ``workdir``, as
:class:`apps.traffic.family.TrafficFamily` makes them.

Example:
    >>> import numpy as np
    >>> from apps.traffic.simulator import DetectorSeries
    >>> y = DetectorSeries(["a"], 300.0, np.array([[10.0, 20.0]]), np.array([[12.0, 10.0]]))
    >>> f = DetectorSeries(["a"], 300.0, np.array([[12.0, 20.0]]), np.array([[11.0, 10.0]]))
    >>> fit = discrepancy(y, f)
    >>> round(fit.count_rmse, 3), round(fit.speed_rmse, 3), fit.geh_share
    (1.414, 0.707, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.simulator import DetectorSeries


@dataclass(frozen=True)
class Fit:
    """How well simulated series match observed ones (see the module docstring)."""

    loss: float
    count_rmse: float
    speed_rmse: float
    geh_share: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def geh(model_per_hour: np.ndarray, observed_per_hour: np.ndarray) -> np.ndarray:
    """The GEH statistic of two hourly flows (0 where both are 0)."""
    total = model_per_hour + observed_per_hour
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.sqrt(2.0 * (model_per_hour - observed_per_hour) ** 2 / total)
    return np.where(total > 0, value, 0.0)


def discrepancy(observed: DetectorSeries, simulated: DetectorSeries) -> Fit:
    """d(Y, f(θ)); both series must have the same detectors and intervals."""
    if observed.detectors != simulated.detectors or observed.counts.shape != simulated.counts.shape:
        raise ValueError("observed and simulated series differ in detectors or intervals")
    count_rmse = float(np.sqrt(np.mean((observed.counts - simulated.counts) ** 2)))
    seen = ~np.isnan(observed.speeds)
    model_speeds = np.nan_to_num(simulated.speeds, nan=0.0)
    speed_rmse = float(np.sqrt(np.mean((observed.speeds[seen] - model_speeds[seen]) ** 2))) if seen.any() else 0.0
    per_hour = 3600.0 / observed.interval
    geh_share = float(np.mean(geh(simulated.counts * per_hour, observed.counts * per_hour) < 5.0))
    mean_count = max(float(observed.counts.mean()), 1e-9)
    mean_speed = max(float(np.nanmean(observed.speeds)), 1e-9) if seen.any() else 1.0
    loss = count_rmse / mean_count + speed_rmse / mean_speed
    return Fit(loss=loss, count_rmse=count_rmse, speed_rmse=speed_rmse, geh_share=geh_share)


# ---------------------------------------------------------------------------------------- objectives (callables)


def unpack_scenario(scenario: Any) -> tuple[Any, Any, DetectorSeries]:
    """A bridge scenario (or its context) → (TrafficScenario, BuiltScenario rebuilt if gone, observations Y)."""
    from apps.traffic.scenario import TrafficScenario, build

    context = scenario.context if hasattr(scenario, "context") else scenario
    spec = TrafficScenario.from_dict(context["traffic"])
    built = build(spec, Path(context.get("workdir", "runs/traffic/scenarios")))
    return spec, built, DetectorSeries.from_dict(context["observed"])


def evaluate_sumo(
    scenario: Any,
    params: Mapping[str, float],
    *,
    mesoscopic: bool = False,
    seed: int | None = None,
    backend: str = "auto",
    timeout: float = 300.0,
) -> Fit:
    """Simulate θ = ``params`` on the scenario (seed: its calibration seed) and compare with its observations."""
    from apps.traffic.simulator import simulate

    spec, built, observed = unpack_scenario(scenario)
    run_seed = spec.calibration_seed if seed is None else seed
    series = simulate(built, spec, params, run_seed, backend=backend, mesoscopic=mesoscopic, timeout=timeout)
    return discrepancy(observed, series)


def evaluate_cheap(scenario: Any, params: Mapping[str, float]) -> Fit:
    """Run the link queue model with ξ = ``params`` on the scenario and compare with its observations."""
    from apps.traffic.queue_model import LinkQueueModel

    spec, built, observed = unpack_scenario(scenario)
    return discrepancy(observed, LinkQueueModel(built, spec).simulate(params))


def expensive(scenario: Any, params: Mapping[str, float]) -> dict[str, Any]:
    """f: microscopic SUMO's loss at θ (the bridge's expensive objective), with the fit's figures as user attrs.

    Runs in the HPO runner's threads, so SUMO runs as a child process (traci): libsumo holds the interpreter
    lock while it simulates, which would stall every other thread of the runner (the cheap model's studies,
    the runner's own loop) for the whole run. ``python -m apps.traffic.trial`` is the command form, with
    libsumo in a process of its own.
    """
    return runner_result(evaluate_sumo(scenario, params, backend="traci"))


def mesoscopic(scenario: Any, params: Mapping[str, float]) -> dict[str, Any]:
    """SUMO's mesoscopic model's loss at θ (a cheaper SUMO, usable as the bridge's cheap objective)."""
    return runner_result(evaluate_sumo(scenario, params, mesoscopic=True, backend="traci"))


def cheap(scenario: Any, params: Mapping[str, float]) -> dict[str, Any]:
    """g: the numpy link queue model's loss at ξ (the bridge's cheap objective)."""
    return runner_result(evaluate_cheap(scenario, params))


def runner_result(fit: Fit) -> dict[str, Any]:
    """The HPO runner's result protocol: the loss as value, the other figures as user attributes."""
    figures = fit.to_dict()
    return {"value": _finite(figures.pop("loss")), "user_attrs": figures}


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"objective is not finite: {value}")
    return value
