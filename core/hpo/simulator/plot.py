"""Best-so-far against simulated wall time, for several methods and worker counts (matplotlib PNG).

Example:
    >>> import pathlib, tempfile
    >>> from core.hpo.simulator.records import SimulationResult, TrialRecord
    >>> run = SimulationResult([TrialRecord(0, 0, 0.0, 0.0, 5.0, state="COMPLETE", values=(2.0,))], [0], 1,
    ...                        ["minimize"], 5.0)
    >>> path = plot_best_so_far({"random, 1 worker": [run]}, pathlib.Path(tempfile.mkdtemp()) / "best.png")
    >>> path.stat().st_size > 0
    True
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import UserError
from core.files import atomic_path
from core.hpo.simulator.records import SimulationResult


def best_at(result: SimulationResult, times: Sequence[float], objective: int = 0) -> list[float]:
    """The best value known at each of ``times`` (NaN before the first result)."""
    events, best = result.best_so_far(objective)
    out = []
    for t in times:
        i = bisect.bisect_right(events, t)
        out.append(best[i - 1] if i else float("nan"))
    return out


def plot_best_so_far(
    curves: Mapping[str, Sequence[SimulationResult]],
    path: str | Path,
    title: str | None = None,
    objective: int = 0,
    log_time: bool = True,
) -> Path:
    """Plot, per label, the median best-so-far over its runs (seeds) and the band between the best and worst run.

    Writes the PNG atomically and returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = [run for group in curves.values() for run in group]
    if not runs:
        raise UserError("nothing to plot", hint="run at least one simulation")
    if any(len(run.directions) <= objective for run in runs):
        raise UserError(f"the runs have no objective {objective}", where="objective")
    first_times = [t[0] for run in runs for t in [run.best_so_far(objective)[0]] if t]
    end = max(run.end_time for run in runs)
    start = max(min(first_times, default=1.0), end * 1e-6) if log_time else 0.0
    if end <= start:
        end = start * 10 if start > 0 else 1.0
    grid = np.geomspace(start, end, 400) if log_time and start > 0 else np.linspace(0.0, end, 400)
    figure, axes = plt.subplots(figsize=(7.0, 4.5))
    for label, group in curves.items():
        values = np.array([best_at(run, grid.tolist(), objective) for run in group], dtype=np.float64)
        finite = ~np.isnan(values).all(axis=0)
        if not finite.any():
            continue
        with np.errstate(all="ignore"):
            median = np.nanmedian(values[:, finite], axis=0)
            low = np.nanmin(values[:, finite], axis=0)
            high = np.nanmax(values[:, finite], axis=0)
        (line,) = axes.step(grid[finite], median, where="post", label=f"{label} (n={len(group)})")
        if len(group) > 1:
            axes.fill_between(grid[finite], low, high, step="post", alpha=0.15, color=line.get_color())
    if log_time:
        axes.set_xscale("log")
    axes.set_xlabel("simulated wall time (s)")
    direction = runs[0].directions[objective]
    axes.set_ylabel(f"best value so far ({direction})")
    axes.set_title(title or "best so far (median over seeds, band: best to worst seed)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as temporary:
            figure.savefig(temporary, dpi=120)
    finally:
        plt.close(figure)
    return target


__all__ = ["best_at", "plot_best_so_far"]
