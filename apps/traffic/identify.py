"""Is θ identifiable from the observations? The loss landscape around θ* against SUMO's seed noise.

For one scenario, :func:`landscape` simulates θ* with several SUMO seeds (none of them the observation seed) and
scores each against the observations Y: the spread of those losses is the *seed noise* — how much the loss moves
when nothing but the random draws of the simulation change. Then it moves one parameter at a time by ±10, 25 and
50% of its search range (the others stay at θ*), simulates with the same seeds, and reports the mean loss
increase in units of that noise (a *z* score). A parameter is identifiable at a step when z ≥ 2 on both sides:
a calibration can tell θ* from θ* moved that far. A step that would leave the parameter's valid range (tau below
the step length, a bound of :data:`apps.traffic.scenario.THETA`) is not simulated.

Example:
    >>> import tempfile
    >>> from apps.traffic.scenario import DemandSpec, DetectorSpec, NetworkSpec, TrafficScenario
    >>> spec = TrafficScenario(network=NetworkSpec(size=3), demand=DemandSpec(duration=600),
    ...                        detectors=DetectorSpec(count=4, interval=150))
    >>> table = landscape(spec, {"demand_scale": [0.6, 1.4]}, workdir=tempfile.mkdtemp(), seeds=(11, 12),
    ...                   steps=(-0.5,), n_jobs=1)
    >>> table.rows[0].parameter, table.rows[0].step, table.rows[0].z > 0
    ('demand_scale', -0.5, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.scenario import THETA, TrafficScenario

log = logging.getLogger(__name__)
STEPS = (-0.5, -0.25, -0.1, 0.1, 0.25, 0.5)
IDENTIFIABLE_Z = 2.0


@dataclass
class Row:
    """One parameter moved by ``step`` × its range: the mean loss, its increase over θ*'s in seed-noise units."""

    parameter: str
    step: float
    value: float
    loss: float
    z: float


@dataclass
class Landscape:
    """The table of :func:`landscape`: θ*'s loss per seed (the noise) and one row per parameter and step."""

    scenario: str
    theta_star: dict[str, float]
    seeds: list[int]
    losses_at_star: list[float]
    rows: list[Row] = field(default_factory=list)
    flagged_runs: int = 0

    @property
    def noise(self) -> float:
        """The seed noise: the standard deviation of θ*'s loss over the seeds."""
        return float(np.std(self.losses_at_star, ddof=1)) if len(self.losses_at_star) > 1 else math.nan

    def identifiable(self, step: float) -> dict[str, bool]:
        """Per parameter: is z ≥ 2 at +step and at −step (where both were simulated; one side if only one was)?"""
        out: dict[str, bool] = {}
        for row in self.rows:
            if abs(abs(row.step) - step) < 1e-9 and not math.isnan(row.z):
                out[row.parameter] = out.get(row.parameter, True) and row.z >= IDENTIFIABLE_Z
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["noise"] = self.noise
        data["identifiable_at"] = {f"{s:g}": self.identifiable(s) for s in sorted({abs(r.step) for r in self.rows})}
        return data


def landscape(
    scenario: TrafficScenario,
    space: Mapping[str, Sequence[float]],
    *,
    workdir: str | Path,
    seeds: Sequence[int] = (101, 102, 103, 104),
    steps: Sequence[float] = STEPS,
    n_jobs: int = 2,
    timeout: float = 300.0,
    progress: Callable[[], None] | None = None,
) -> Landscape:
    """The loss landscape of ``scenario`` around θ* along each parameter of ``space`` (name: [low, high])."""
    from apps.traffic.family import observe
    from apps.traffic.objective import discrepancy
    from apps.traffic.scenario import build, check_physics
    from apps.traffic.simulator import simulate

    check_physics(dict(space), scenario.step_length, "params")
    built = build(scenario, workdir)
    observed = observe(scenario, workdir, timeout=timeout)
    star = {k: float(v) for k, v in scenario.theta_star.items()}
    if scenario.observation_seed in seeds:
        raise ValueError("the noise seeds must differ from the observation seed")
    points: list[tuple[str, float, dict[str, float]]] = [("*", 0.0, star)]
    for name, (low, high) in ((n, (float(b[0]), float(b[1]))) for n, b in space.items()):
        for step in steps:
            value = star.get(name, THETA[name].default) + step * (high - low)
            if THETA[name].low - 1e-9 <= value <= THETA[name].high + 1e-9 and value >= _floor(name, scenario):
                points.append((name, step, {**star, name: value}))
    jobs = [(i, seed) for i in range(len(points)) for seed in seeds]
    losses = np.full((len(points), len(seeds)), math.nan)
    flagged = 0

    def one(job: tuple[int, int]) -> tuple[int, int, float, str]:
        i, seed = job
        series = simulate(built, scenario, points[i][2], seed, backend="traci", timeout=timeout)
        return i, seed, discrepancy(observed, series).loss, series.run.flagged if series.run else ""

    with ThreadPoolExecutor(max(1, n_jobs)) as pool:
        for i, seed, loss, flag in pool.map(one, jobs):
            losses[i, list(seeds).index(seed)] = loss
            flagged += bool(flag)
            if progress is not None:
                progress()
    table = Landscape(scenario.name, star, list(seeds), [float(v) for v in losses[0]], flagged_runs=flagged)
    noise = table.noise
    for (name, step, theta), row in zip(points[1:], losses[1:], strict=True):
        increase = float(np.mean(row - losses[0]))  # paired by seed
        table.rows.append(
            Row(name, step, theta[name], float(np.mean(row)), increase / noise if noise > 0 else math.inf)
        )
    return table


def _floor(name: str, scenario: TrafficScenario) -> float:
    return scenario.step_length if name == "tau" else -math.inf


def plot(table: Landscape, path: Path) -> None:
    """One panel per parameter: mean loss against the step, θ*'s loss and its ±2 noise band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.files import atomic_path

    names = list(dict.fromkeys(r.parameter for r in table.rows))
    figure, axes = plt.subplots(1, max(1, len(names)), figsize=(4 * max(1, len(names)), 3.4), squeeze=False)
    centre = float(np.mean(table.losses_at_star))
    for axis, name in zip(axes[0], names, strict=False):
        rows = sorted((r for r in table.rows if r.parameter == name), key=lambda r: r.step)
        axis.plot([0.0] + [r.step for r in rows], [centre] + [r.loss for r in rows], "o", color="C0")
        axis.axhspan(centre - 2 * table.noise, centre + 2 * table.noise, color="gray", alpha=0.25,
                     label="θ* ± 2 × seed noise")  # fmt: skip
        axis.axvline(0.0, color="k", linestyle=":", label="θ*")
        axis.set_xlabel(f"{name}: step (share of its search range)")
        axis.set_ylabel("loss against the observations")
        axis.legend(fontsize=7)
    figure.suptitle(f"{table.scenario}: loss around θ* ({len(table.seeds)} SUMO seeds per point)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
