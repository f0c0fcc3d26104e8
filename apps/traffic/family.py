"""A family of traffic scenarios for the model bridge: train and test scenarios that differ in more than a seed.

Each scenario draws its own origin–destination routes, detector edges, demand level, peak time and peak height,
its own hidden θ* and, for random networks, its own network, from the ranges given (a two-element list is a
uniform range, a single value is fixed). Member ``i`` of the draw is always the same scenario: training scenarios
are members ``0 … n_train − 1`` and held-out ones start at member ``first_test_index`` (by default ``n_train``), so
fixing ``first_test_index`` lets the training set grow or shrink while the held-out set stays what it was.
:meth:`TrafficFamily.scenarios` builds every scenario, simulates its observations Y at θ* (microscopic SUMO
with the scenario's observation seed, or the mean of its ``observation_days`` days) and returns
:class:`core.bridge.scenario.Scenario` objects whose ``context`` carries everything an objective needs in another
process: ``traffic`` (the scenario), ``observed`` (Y) and ``workdir`` (where the built files are cached; rebuilt on
demand), and ``features``: Y's summary statistics (:data:`apps.traffic.scoring.SUMMARY_STATISTICS`), an input of h
with ``fit.feature_inputs``; a training scenario's context also carries ``known_params`` (its θ*: h's target with
``fit.targets: known``) and ``observation_wall_s`` and ``observation_runs`` (what simulating its Y took, one run
per observation day: that target's offline cost). Observations are cached too, so a second call costs nothing.

Example:
    >>> import tempfile
    >>> family = TrafficFamily(n_train=1, n_test=1, network={"size": 3}, detectors={"count": 4},
    ...                        workdir=tempfile.mkdtemp(), progress=False)
    >>> [(s.name, s.split) for s in family.scenarios()]
    [('train-000', 'train'), ('test-000', 'test')]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.scenario import THETA, TrafficScenario, build, check_theta, observation_seeds
from apps.traffic.simulator import DetectorSeries, RunInfo, mean_series, simulate
from core.errors import ConfigError

DEFAULT_THETA_RANGES = {"demand_scale": [0.8, 1.2], "speed_factor": [0.85, 1.15], "tau": [1.05, 1.9]}


class TrafficFamily:
    """``n_train`` + ``n_test`` scenarios drawn from ``seed``; ``n_jobs`` observation runs at once; the held-out
    scenarios are members ``first_test_index …`` of the draw (``None``: right after the training ones); each
    scenario's Y the mean of ``observation_days`` days (:class:`~apps.traffic.scenario.TrafficScenario`)."""

    def __init__(
        self,
        n_train: int = 8,
        n_test: int = 4,
        seed: int = 0,
        network: Mapping[str, Any] | None = None,
        demand: Mapping[str, Any] | None = None,
        detectors: Mapping[str, Any] | None = None,
        theta: Mapping[str, Any] | None = None,
        workdir: str | Path = "runs/traffic/scenarios",
        n_jobs: int = 2,
        timeout: float = 300.0,
        progress: bool = True,
        first_test_index: int | None = None,
        observation_days: int = 1,
    ) -> None:
        self.n_train = n_train
        self.observation_days = observation_days
        self.n_test = n_test
        self.first_test_index = first_test_index
        self.seed = seed
        self.network = dict(network or {})
        self.demand = dict(
            demand or {"vehicles_per_hour": [1300.0, 1800.0], "peak_time": [0.3, 0.7], "peak_amplitude": [0.3, 1.2]}
        )
        self.detectors = dict(detectors or {})
        self.theta = dict(theta or DEFAULT_THETA_RANGES)
        self.workdir = workdir
        self.n_jobs = n_jobs
        self.timeout = timeout
        self.progress = progress

    def specs(self) -> list[tuple[str, str, int, TrafficScenario]]:
        """(name, split, seed, scenario) of every member, without simulating anything."""
        check_theta(self.theta, "scenarios.theta")
        first_test = self.n_train if self.first_test_index is None else self.first_test_index
        if first_test < self.n_train:
            raise ConfigError(
                f"held-out members start at {first_test}, inside the {self.n_train} training ones",
                where="scenarios.first_test_index",
                hint=f"use at least {self.n_train}, or leave it unset",
            )
        members = [("train", k, k) for k in range(self.n_train)]
        members += [("test", j, first_test + j) for j in range(self.n_test)]
        out = []
        for split, number, index in members:
            rng = np.random.default_rng([self.seed, index])
            member_seed = self.seed * 1000 + index
            theta_star = {
                name: round(_draw(value, rng, f"scenarios.theta.{name}"), 4) for name, value in self.theta.items()
            }
            for name, value in theta_star.items():
                bounds = THETA[name]
                if not bounds.low <= value <= bounds.high:
                    raise ConfigError(
                        f"θ* {name}={value} outside [{bounds.low}, {bounds.high}]", where=f"scenarios.theta.{name}"
                    )
            demand = {k: _draw(v, rng, f"scenarios.demand.{k}") for k, v in self.demand.items()}
            demand.setdefault("seed", member_seed)
            detectors = {"seed": member_seed, **self.detectors}
            network = {k: _draw(v, rng, f"scenarios.network.{k}") for k, v in self.network.items()}
            if network.get("kind", "grid") in ("random", "spider"):
                network.setdefault("seed", member_seed)  # a network of its own per scenario
            for key in ("size", "lanes", "rings", "n_routes", "count", "seed"):
                for node in (network, demand, detectors):
                    if key in node and isinstance(node[key], float):
                        node[key] = round(node[key])
            name = f"{split}-{number:03d}"
            scenario = TrafficScenario.from_dict(
                {"name": name, "network": network, "demand": demand, "detectors": detectors, "theta_star": theta_star,
                 "observation_seed": 2 * member_seed + 1, "calibration_seed": 2 * member_seed + 2,
                 "observation_days": self.observation_days},
                where=f"scenarios[{name}]",
            )  # fmt: skip
            out.append((name, split, member_seed, scenario))
        return out

    def scenarios(self) -> list[Any]:
        """The bridge's scenarios, observations included (simulated once, then read from the cache)."""
        from apps.traffic.scoring import SUMMARY_STATISTICS, summary_statistics
        from core.bridge.scenario import Scenario

        specs = self.specs()
        workdir = Path(self.workdir).resolve()
        observed = self._observe([spec for *_, spec in specs], workdir)
        out = []
        for (name, split, seed, spec), y in zip(specs, observed, strict=True):
            series = y.to_dict()
            features = dict(zip(SUMMARY_STATISTICS, summary_statistics(series), strict=True))  # fit.feature_inputs
            context: dict[str, Any] = {
                "traffic": spec.to_dict(), "observed": series, "workdir": str(workdir), "features": features
            }  # fmt: skip
            if split == "train":  # simulated at a θ* the family drew: a known target (fit.targets: known)
                context["known_params"] = dict(spec.theta_star)
                context["observation_wall_s"] = y.run.wall_s if y.run is not None else None
                context["observation_runs"] = spec.observation_days
            out.append(Scenario(name, split, seed, context))  # type: ignore[arg-type]
        return out

    def _observe(self, specs: Sequence[TrafficScenario], workdir: Path) -> list[DetectorSeries]:
        results: list[DetectorSeries | None] = [None] * len(specs)

        def one(i: int) -> None:
            results[i] = observe(specs[i], workdir, timeout=self.timeout)

        with _progress(self.progress, len(specs)) as advance, ThreadPoolExecutor(max(1, self.n_jobs)) as pool:
            # threads: one simulation at a time runs in-process (libsumo), the others as SUMO child processes
            for future in [pool.submit(one, i) for i in range(len(specs))]:
                future.result()
                advance()
        return [r for r in results if r is not None]


def observe(scenario: TrafficScenario, workdir: str | Path, timeout: float = 300.0) -> DetectorSeries:
    """Y: the detector series of θ* with the observation seed, or with ``observation_days`` > 1 the mean of that
    many days' runs (:func:`~apps.traffic.simulator.mean_series`), cached next to the built scenario."""
    from core.files import write_atomic

    built = build(scenario, workdir)
    days = [scenario.observation_days] if scenario.observation_days > 1 else []  # one day: the tag as it always was
    tag = json.dumps([dict(sorted(scenario.theta_star.items())), scenario.observation_seed, *days], sort_keys=True)
    digest = hashlib.sha1(tag.encode()).hexdigest()[:12]
    path = built.folder / f"observed-{digest}.json"
    run_path = built.folder / f"observation-run-{digest}.json"  # what the run cost and did (absent in older caches)
    if path.is_file():
        series = DetectorSeries.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if run_path.is_file():
            info = json.loads(run_path.read_text(encoding="utf-8"))
            series.run = RunInfo(**{**info, "warning_lines": tuple(info.get("warning_lines", ()))})
        return series
    runs = [
        simulate(built, scenario, scenario.theta_star, seed, timeout=timeout) for seed in observation_seeds(scenario)
    ]
    series = runs[0] if len(runs) == 1 else mean_series(runs)
    if series.run is not None:
        write_atomic(run_path, json.dumps(dataclasses.asdict(series.run)) + "\n")
    write_atomic(path, json.dumps(series.to_dict()) + "\n")
    return series


def _draw(value: Any, rng: np.random.Generator, where: str) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2 or not all(isinstance(v, int | float) for v in value):
            raise ConfigError("a range must be [low, high]", where=where)
        return float(rng.uniform(float(value[0]), float(value[1])))
    return value


class _progress:
    """A rich progress bar over the scenarios (or nothing when ``enabled`` is false)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda: None
        from rich.progress import Progress

        self.bar = Progress(transient=False)
        self.bar.start()
        task = self.bar.add_task("observing scenarios (SUMO at θ*)", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
