"""The discrepancy d(Y, f(θ)) between observed and simulated detector series, and the calibration objectives.

:func:`discrepancy` compares two :class:`~apps.traffic.simulator.DetectorSeries` cell by cell (detector ×
interval): the RMSE of counts, the RMSE of mean speeds (over cells where vehicles were observed; a simulated
cell with no vehicle counts as speed 0, since nothing got through), and the share of cells whose GEH statistic
is below 5 (GEH = sqrt(2 (M − C)² / (M + C)) on flows in vehicles per hour, the usual acceptance test). The
scalar ``loss`` a calibration minimizes is the sum of the two RMSEs, each divided by the observed mean, so
counts and speeds weigh alike whatever their units.

The objectives the model bridge (and ``kakehashi traffic calibrate``) call take a scenario and parameters:
:func:`expensive` runs microscopic SUMO with θ, :func:`mesoscopic` SUMO's mesoscopic model (and
:func:`mesoscopic_signals` the same with signals modelled), :func:`cheap` the
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
    >>> round(fit.count_rmse, 3), round(fit.speed_rmse, 3), fit.geh_share, round(fit.loss, 4)
    (1.414, 0.707, 1.0, 0.0767)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.simulator import DetectorSeries


@dataclass(frozen=True)
class Fit:
    """How well simulated series match observed ones (see the module docstring). ``flagged`` says why the
    simulation behind it is not faithful (collisions, mass teleports; "" when it is)."""

    loss: float
    count_rmse: float
    speed_rmse: float
    geh_share: float
    occupancy_rmse: float = math.nan
    queue_rmse: float = math.nan
    teleports: int = 0
    collisions: int = 0
    flagged: str = ""
    residuals: tuple[float, ...] = field(default=(), repr=False, compare=False)  # see :func:`residuals`

    def to_dict(self) -> dict[str, Any]:
        """The figures, without the residual vector."""
        figures = asdict(self)
        figures.pop("residuals")
        return figures


# the smallest scale each term is divided by (its unit's "one"), so a quiet detector does not blow a term up
SCALE_FLOORS = {"count": 1.0, "speed": 1.0, "occupancy": 1.0, "queue": 7.5}
# the weight of each term in the loss: occupancy and queue length swing with the seed once queues spill back (one
# spillback more or less), so they count a quarter; counts and speeds carry the rest (see `traffic identify`)
TERM_WEIGHTS = {"count": 1.0, "speed": 1.0, "occupancy": 0.25, "queue": 0.25}


def geh(model_per_hour: np.ndarray, observed_per_hour: np.ndarray) -> np.ndarray:
    """The GEH statistic of two hourly flows (0 where both are 0)."""
    total = model_per_hour + observed_per_hour
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.sqrt(2.0 * (model_per_hour - observed_per_hour) ** 2 / total)
    return np.where(total > 0, value, 0.0)


def _kinds(observed: DetectorSeries, simulated: DetectorSeries) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per kind of observation both series measure: (observed, simulated as compared, mask of the cells compared).
    A simulated cell with no vehicle counts as speed 0 (nothing got through)."""
    if observed.detectors != simulated.detectors or observed.counts.shape != simulated.counts.shape:
        raise ValueError("observed and simulated series differ in detectors or intervals")
    pairs = {
        "count": (observed.counts, simulated.counts, False),
        "speed": (observed.speeds, simulated.speeds, True),
        "occupancy": (observed.occupancy, simulated.occupancy, False),
        "queue": (observed.queue, simulated.queue, False),
    }
    kinds = {}
    for kind, (seen_values, model_values, empty_is_zero) in pairs.items():
        if seen_values is None or model_values is None:
            continue
        seen = ~np.isnan(seen_values)
        model = np.nan_to_num(model_values, nan=0.0) if empty_is_zero else model_values
        if not empty_is_zero:
            seen &= ~np.isnan(model_values)
        if seen.any():
            kinds[kind] = (seen_values, model, seen)
    return kinds


def discrepancy(observed: DetectorSeries, simulated: DetectorSeries) -> Fit:
    """d(Y, f(θ)); both series must have the same detectors and intervals.

    Each kind of observation (counts, speeds, occupancy, queue length) gives an RMSE over the cells where it was
    observed; the loss is the weighted mean (:data:`TERM_WEIGHTS`) over the kinds both series measure of
    RMSE / max(RMS of the observed values, a floor of one unit), so every term is a relative error and none
    dominates by its units. A simulated cell with no vehicle counts as speed 0 (nothing got through).
    """
    kinds = _kinds(observed, simulated)
    rmse, scale = {}, {}
    for kind, (seen_values, model, seen) in kinds.items():
        rmse[kind] = float(np.sqrt(np.mean((seen_values[seen] - model[seen]) ** 2)))
        scale[kind] = max(float(np.sqrt(np.mean(seen_values[seen] ** 2))), SCALE_FLOORS[kind])
    total_weight = sum(TERM_WEIGHTS[k] for k in kinds)
    per_hour = 3600.0 / observed.interval
    geh_share = float(np.mean(geh(simulated.counts * per_hour, observed.counts * per_hour) < 5.0))
    run = simulated.run
    return Fit(
        loss=float(sum(TERM_WEIGHTS[k] * rmse[k] / scale[k] for k in kinds) / total_weight),
        count_rmse=rmse.get("count", math.nan),
        speed_rmse=rmse.get("speed", 0.0),
        geh_share=geh_share,
        occupancy_rmse=rmse.get("occupancy", math.nan),
        queue_rmse=rmse.get("queue", math.nan),
        teleports=run.teleports if run else 0,
        collisions=run.collisions if run else 0,
        flagged=run.flagged if run else "",
        residuals=tuple(residuals(observed, simulated, kinds)),
    )


def residuals(
    observed: DetectorSeries,
    simulated: DetectorSeries,
    kinds: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> list[float]:
    """The loss cell by cell, for a Gauss–Newton refine step (:func:`core.bridge.refine.gauss_newton_point`): per
    observed cell, (simulated − observed) × weight / (scale × √cells × total weight), with the loss's weights and
    scales, so the squared norm is Σ_k (w_k RMSE_k / scale_k)² / W², the squared-term twin of the loss. One entry
    per observed cell of every kind, in a fixed order for a scenario (a cell the run did not measure is 0).

    >>> y = DetectorSeries(["a"], 300.0, np.array([[10.0, 20.0]]), np.array([[12.0, 10.0]]))
    >>> f = DetectorSeries(["a"], 300.0, np.array([[12.0, 20.0]]), np.array([[11.0, 10.0]]))
    >>> [round(r, 4) for r in residuals(y, f)]
    [0.0447, 0.0, -0.032, 0.0]
    """
    kinds = _kinds(observed, simulated) if kinds is None else kinds
    total_weight = sum(TERM_WEIGHTS[k] for k in kinds)
    out: list[float] = []
    for kind, (seen_values, model, seen) in kinds.items():
        cells = ~np.isnan(seen_values)  # fixed by Y: the same entries whatever the run measured
        scale = max(float(np.sqrt(np.mean(seen_values[seen] ** 2))), SCALE_FLOORS[kind])
        factor = TERM_WEIGHTS[kind] / (scale * math.sqrt(int(cells.sum())) * total_weight)
        difference = np.where(seen, np.nan_to_num(model, nan=0.0) - np.nan_to_num(seen_values, nan=0.0), 0.0)
        out += [round(float(v) * factor, 6) for v in difference[cells]]
    return out


def cell_features(scenario: Any) -> list[list[float]]:
    """Per residual cell of a scenario (in :func:`residuals`' order), what the refine's Jacobian model J = F W reads
    (``evaluate.refine_method: pooled``, :func:`core.bridge.refine.fit_jacobian`): for the cell's kind of
    observation, the observed value in the residual's units (observed × the cell's factor) and the factor itself,
    each also times the observed occupancy of the same detector and interval (a share: how congested it is); zero
    for the other kinds. So a parameter moves a cell by an amount proportional to what was observed there, plus a
    constant, both allowed to change with congestion; W (16 features × θ) is learned on the training scenarios.

    >>> y = DetectorSeries(["a"], 300.0, np.array([[10.0, 20.0]]), np.array([[12.0, 10.0]]))
    >>> [[round(v, 4) for v in row[:4]] for row in cell_features({"observed": y.to_dict()})]
    [[0.2236, 0.0224, 0.0, 0.0], [0.4472, 0.0224, 0.0, 0.0], [0.0, 0.0, 0.3841, 0.032], [0.0, 0.0, 0.3201, 0.032]]
    """
    context = scenario.context if hasattr(scenario, "context") else scenario
    observed = DetectorSeries.from_dict(context["observed"])
    kinds = _kinds(observed, observed)
    total_weight = sum(TERM_WEIGHTS[k] for k in kinds)
    occupancy = np.nan_to_num(np.asarray(observed.occupancy, dtype=float)) / 100.0
    width = 2 * len(SCALE_FLOORS)
    rows: list[list[float]] = []
    for kind, (seen_values, _, seen) in kinds.items():
        index = list(SCALE_FLOORS).index(kind)  # a kind's columns are the same in every scenario
        cells = ~np.isnan(seen_values)
        scale = max(float(np.sqrt(np.mean(seen_values[seen] ** 2))), SCALE_FLOORS[kind])
        factor = TERM_WEIGHTS[kind] / (scale * math.sqrt(int(cells.sum())) * total_weight)
        for value, state in zip(seen_values[cells], occupancy[cells], strict=True):
            row = [0.0] * (2 * width)
            row[2 * index], row[2 * index + 1] = float(value) * factor, factor
            row[width + 2 * index], row[width + 2 * index + 1] = float(value) * factor * state, factor * state
            rows.append(row)
    return rows


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
    junction_control: bool = False,
    seed: int | None = None,
    backend: str = "auto",
    timeout: float = 300.0,
) -> Fit:
    """Simulate θ = ``params`` on the scenario and compare with its observations. The SUMO seed is ``seed``, or the
    scenario's calibration seed, or for a replicate k ≥ 1 (``context.replicate``: the bridge's pooled refine runs
    each on one) :func:`replicate_seed`."""
    from apps.traffic.simulator import simulate

    spec, built, observed = unpack_scenario(scenario)
    context = scenario.context if hasattr(scenario, "context") else scenario
    run_seed = replicate_seed(spec.calibration_seed, int(context.get("replicate") or 0)) if seed is None else seed
    series = simulate(
        built, spec, params, run_seed, backend=backend, mesoscopic=mesoscopic, junction_control=junction_control,
        timeout=timeout,
    )  # fmt: skip
    return discrepancy(observed, series)


REPLICATE_SEED_OFFSET = 300_007  # replicate k's seed: calibration seed + offset + k (no fresh or observation seed)


def replicate_seed(calibration_seed: int, replicate: int) -> int:
    """SUMO's seed for replicate ``replicate`` of a scenario: its calibration seed for 0, else an independent one.

    >>> replicate_seed(12, 0), replicate_seed(12, 2)
    (12, 300021)
    """
    return calibration_seed if replicate == 0 else calibration_seed + REPLICATE_SEED_OFFSET + replicate


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


def mesoscopic_signals(scenario: Any, params: Mapping[str, float]) -> dict[str, Any]:
    """The mesoscopic model's loss at θ with signals and priorities holding vehicles back (junction control).

    Its loop speeds include the waits at signals, so its best θ is not microscopic SUMO's: a cheap model for the
    bridge (h maps its θ̂ to SUMO's), not a calibrator of θ itself. On congested networks its θ̂ tracks θ*
    better than the plain mesoscopic model's (apps/traffic/EXPERIMENTS.md)."""
    return runner_result(evaluate_sumo(scenario, params, mesoscopic=True, junction_control=True, backend="traci"))


def cheap(scenario: Any, params: Mapping[str, float]) -> dict[str, Any]:
    """g: the numpy link queue model's loss at ξ (the bridge's cheap objective)."""
    return runner_result(evaluate_cheap(scenario, params))


def runner_result(fit: Fit) -> dict[str, Any]:
    """The HPO runner's result protocol: the loss as value, the other figures as user attributes (NaN ones,
    figures a model does not measure, left out). A flagged run keeps its loss but carries ``flagged``."""
    figures = fit.to_dict()
    value = _finite(figures.pop("loss"))
    attrs = {k: v for k, v in figures.items() if not (isinstance(v, float) and math.isnan(v))}
    if not attrs.get("flagged"):
        attrs.pop("flagged", None)
    if fit.residuals:  # the loss cell by cell: what a Gauss–Newton refine step fits
        attrs["residuals"] = list(fit.residuals)
    return {"value": value, "user_attrs": attrs}


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"objective is not finite: {value}")
    return value
