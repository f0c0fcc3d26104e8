"""Run a simulation config: every method × worker count × seed on one benchmark, with CSV, summary and plot.

The config (YAML, see ``examples/branin.yaml``)::

    benchmark: {_target_: core.hpo.benchmarks.MFBranin}
    methods:                       # label -> sampler (and optional pruner), each an Optuna _target_
      random: {sampler: {_target_: optuna.samplers.RandomSampler}}
      tpe+median: {sampler: {_target_: optuna.samplers.TPESampler}, pruner: {_target_: optuna.pruners.MedianPruner}}
    n_workers: [1, 4, 16]          # an int or a list
    n_trials: 100                  # and/or time_budget (simulated seconds)
    time_budget: null
    seeds: [0, 1, 2]               # each run's sampler gets seed=<seed>
    report_fidelities: null        # default: every fidelity of the benchmark below the full one
    fidelity_param: null           # a name: the sampler picks the fidelity (then checkpoints: true makes sense)
    checkpoints: false
    sampler_cost: 0.0              # seconds per ask, or "measured"
    storage: null                  # an Optuna storage URL; studies are named <label>-w<P>-s<seed>

The run directory gets ``trials.csv`` (one row per trial of every run), ``summary.json``, ``best_so_far.png``,
``merged_config.yaml`` and ``provenance.json``.

Example:
    >>> import tempfile
    >>> from core.config import load_config, package_dir
    >>> cfg = load_config(package_dir("core.hpo.simulator") / "examples" / "branin.yaml",
    ...                   ["n_trials=12", "seeds=[0]", "n_workers=[2]"])
    >>> summary = run_config(cfg, tempfile.mkdtemp(), progress=False)
    >>> [(run["label"], run["n_trials"]) for run in summary["runs"]]
    [('random', 12), ('tpe', 12), ('tpe+median', 12)]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from core.errors import ConfigError
from core.hpo.simulator.records import SimulationResult, TrialRecord

_KNOWN_KEYS = {
    "benchmark",
    "methods",
    "n_workers",
    "n_trials",
    "time_budget",
    "seeds",
    "report_fidelities",
    "fidelity_param",
    "checkpoints",
    "sampler_cost",
    "storage",
}


def run_config(cfg: DictConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run every method × worker count × seed of ``cfg``; write the run directory; return the summary."""
    import optuna

    from core.config import instantiate, save_run_config
    from core.hpo.simulator.objectives import benchmark_objective
    from core.hpo.simulator.plot import plot_best_so_far
    from core.hpo.simulator.study import Simulator

    _check(cfg)
    run = Path(run_dir)
    save_run_config(cfg, run)
    benchmark = instantiate(cfg.benchmark)
    report = OmegaConf.to_container(cfg.report_fidelities) if cfg.get("report_fidelities") is not None else None
    objective = benchmark_objective(benchmark, report, cfg.get("fidelity_param"))  # type: ignore[arg-type]
    workers = _int_list(cfg.n_workers, "n_workers")
    seeds = _int_list(cfg.get("seeds", [0]), "seeds")
    n_trials = cfg.get("n_trials")
    budget = cfg.get("time_budget")
    sampler_cost = cfg.get("sampler_cost", 0.0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = [(label, p, seed) for label in cfg.methods for p in workers for seed in seeds]
    results: dict[tuple[str, int], list[SimulationResult]] = {}
    rows: list[str] = []
    runs: list[dict[str, Any]] = []
    with _Progress(progress, len(plan)) as bar:
        for label, n_workers, seed in plan:
            method = cfg.methods[label]
            where = f"methods.{label}"
            if "sampler" not in method:
                raise ConfigError("a method needs a sampler", where=where, hint="add sampler: {_target_: ...}")
            sampler = instantiate(method.sampler, seed=seed)
            # no pruner means none: Optuna's default would be a MedianPruner
            pruner = instantiate(method.pruner) if method.get("pruner") is not None else optuna.pruners.NopPruner()
            study = optuna.create_study(
                storage=cfg.get("storage"),
                study_name=f"{label}-w{n_workers}-s{seed}",
                sampler=sampler,
                pruner=pruner,
                directions=list(benchmark.directions),
                load_if_exists=False,
            )
            bar.start(f"{label} · {n_workers} workers · seed {seed}", n_trials)
            result = Simulator(
                study,
                objective,
                n_workers,
                n_trials=n_trials,
                time_budget=budget,
                sampler_cost=sampler_cost,
                checkpoints=bool(cfg.get("checkpoints", False)),
                record_in_study=cfg.get("storage") is not None,
                on_tell=bar.tell,
            ).run()
            results.setdefault((label, n_workers), []).append(result)
            lines = result.to_csv_text().splitlines()
            if not rows:
                rows.append("method,n_workers,seed," + lines[0])
            rows.extend(f"{_csv_cell(label)},{n_workers},{seed},{line}" for line in lines[1:])
            runs.append(_summary(label, n_workers, seed, result))
            bar.done()
    from core.files import write_atomic

    write_atomic(run / "trials.csv", "\n".join(rows) + "\n")
    summary = {"benchmark": getattr(benchmark, "name", type(benchmark).__name__), "runs": runs}
    write_atomic(run / "summary.json", json.dumps(summary, indent=2) + "\n")
    if len(benchmark.directions) == 1:
        curves = {f"{label}, {p} workers": group for (label, p), group in results.items()}
        plot_best_so_far(curves, run / "best_so_far.png", title=f"{summary['benchmark']}: best so far")
    return summary


def _summary(label: str, n_workers: int, seed: int, result: SimulationResult) -> dict[str, Any]:
    states = [t.state for t in result.trials]
    _, best = result.best_so_far() if len(result.directions) == 1 else ([], [])
    return {
        "label": label,
        "n_workers": n_workers,
        "seed": seed,
        "n_trials": len(result.trials),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "best": best[-1] if best else None,
        "end_time": result.end_time,
        "wall_seconds": round(result.wall_seconds, 3),
    }


def _check(cfg: DictConfig) -> None:
    unknown = sorted(set(cfg) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}", where=unknown[0], hint=f"known keys: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    for key in ("benchmark", "methods", "n_workers"):
        if cfg.get(key) is None:
            raise ConfigError(f"missing key {key!r}", where=key, hint="see core/hpo/simulator/examples/branin.yaml")
    if not isinstance(cfg.methods, DictConfig) or not cfg.methods:
        raise ConfigError("methods must map labels to {sampler, pruner}", where="methods")
    if cfg.get("n_trials") is None and cfg.get("time_budget") is None:
        raise ConfigError("the runs have no end", where="n_trials, time_budget", hint="set n_trials or time_budget")


def _int_list(value: Any, key: str) -> list[int]:
    items = list(value) if isinstance(value, ListConfig | list) else [value]
    if not items or not all(isinstance(v, int) and v >= 0 for v in items):
        raise ConfigError(f"{key} must be an integer or a list of integers, got {value}", where=key)
    return [int(v) for v in items]


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


class _Progress:
    """Runs done / total, and the current run's trials told and best value (rich, on stderr)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._runs: Any = None
        self._trials: Any = None
        self._best: float | None = None
        self.tell: Callable[[TrialRecord], None] | None = self._tell if enabled else None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[best]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._runs = self._progress.add_task("runs", total=self.total, best="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, description: str, n_trials: int | None) -> None:
        if self._progress is not None:
            self._best = None
            self._trials = self._progress.add_task(description, total=n_trials, best="")

    def _tell(self, record: TrialRecord) -> None:
        if record.state == "COMPLETE" and record.values and (self._best is None or record.values[0] < self._best):
            self._best = record.values[0]
        self._progress.update(self._trials, advance=1, best=f"best {self._best:.6g}" if self._best is not None else "")

    def done(self) -> None:
        if self._progress is not None:
            self._progress.remove_task(self._trials)
            self._progress.advance(self._runs)


__all__ = ["run_config"]
