"""The run directory's tables and plots, from the study in its storage: ``trials.csv``, ``best.yaml`` and PNG plots.

``kakehashi hpo report RUN_DIR`` regenerates them at any time (also while runners work on the study).

Example:
    >>> import optuna, tempfile, pathlib
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=5)
    >>> run_dir = pathlib.Path(tempfile.mkdtemp())
    >>> written = write_report(study, run_dir, plots=False)
    >>> sorted(p.name for p in written)
    ['best.yaml', 'trials.csv']
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.files import write_atomic

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

# user attrs the runner writes, in the order trials.csv shows them
RUNNER_ATTRS = ("exit_code", "failure", "retry_of", "attempt")
JOB_KEY = "kakehashi:job"  # trial system attr of a command trial: {backend, job_id, log_path, state_dir, trial_dir}


@cache
def console() -> Console:
    """The console of progress lines and notes (stderr, so stdout stays for results)."""
    from rich.console import Console

    return Console(stderr=True)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, values, params, duration and the runner's attributes."""
    trials = study.get_trials(deepcopy=False)
    names = study.metric_names or (
        ["value"] if len(study.directions) == 1 else [f"value_{i}" for i in range(len(study.directions))]
    )
    param_names = sorted({name for t in trials for name in t.params})
    extra = sorted({k for t in trials for k in t.user_attrs if k not in RUNNER_ATTRS and k != "log_tail"})
    rows = []
    for t in trials:
        duration = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            duration = round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for i, name in enumerate(names):
            row[name] = t.values[i] if t.values is not None and i < len(t.values) else None
        for name in param_names:
            row[f"params_{name}"] = t.params.get(name)
        job = t.system_attrs.get(JOB_KEY) or {}
        row["duration_s"] = duration
        for key in RUNNER_ATTRS:
            row[key] = t.user_attrs.get(key)
        row["log_path"] = job.get("log_path")
        row["job_id"] = job.get("job_id")
        for key in extra:
            row[f"user_attrs_{key}"] = t.user_attrs.get(key)
        rows.append(row)
    return rows


def best_summary(study: optuna.Study) -> dict[str, Any]:
    """The best trial (one objective) or the Pareto set (several), as plain data for ``best.yaml``."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    directions = [d.name.lower() for d in study.directions]
    summary: dict[str, Any] = {"study": study.study_name, "directions": directions, "n_complete": len(complete)}
    if not complete:
        summary["best"] = None
        return summary
    if len(directions) == 1:
        best = study.best_trial
        summary["best"] = {"trial": best.number, "value": best.value, "params": dict(best.params)}
    else:
        summary["pareto_front"] = [
            {"trial": t.number, "values": list(t.values), "params": dict(t.params)}
            for t in sorted(study.best_trials, key=lambda t: t.number)
        ]
    return summary


def write_report(study: optuna.Study, run_dir: Path, plots: bool = True) -> list[Path]:
    """Write ``trials.csv``, ``best.yaml`` and (with ``plots``) ``plots/*.png`` into ``run_dir``; return the
    paths written. Each file is written atomically; a plot that cannot be drawn is skipped."""
    run_dir.mkdir(parents=True, exist_ok=True)
    written = [run_dir / "trials.csv", run_dir / "best.yaml"]
    rows = trial_rows(study)
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["number", "state"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(written[0], buffer.getvalue())
    write_atomic(written[1], yaml.safe_dump(_plain(best_summary(study)), sort_keys=False))
    if plots:
        written += write_plots(study, run_dir / "plots")
    return written


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimization history, parallel coordinates, parameter importances, and the Pareto front for two
    objectives, as PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    n_objectives = len(study.directions)
    names = study.metric_names or [f"objective {i}" for i in range(n_objectives)]
    plots: list[tuple[str, Any]] = []
    for i in range(n_objectives):
        suffix = "" if n_objectives == 1 else f"_{i}"
        target = None if n_objectives == 1 else (lambda t, i=i: t.values[i])
        tname = "Objective Value" if n_objectives == 1 else names[i]
        plots.append(
            (
                f"optimization_history{suffix}",
                lambda t=target, n=tname: ovm.plot_optimization_history(study, target=t, target_name=n),
            )
        )
        if len({name for t in complete for name in t.params}) > 0:
            plots.append(
                (
                    f"parallel_coordinate{suffix}",
                    lambda t=target, n=tname: ovm.plot_parallel_coordinate(study, target=t, target_name=n),
                )
            )
            plots.append(
                (
                    f"param_importances{suffix}",
                    lambda t=target, n=tname: ovm.plot_param_importances(study, target=t, target_name=n),
                )
            )
    if n_objectives == 2:
        plots.append(("pareto_front", lambda: ovm.plot_pareto_front(study, target_names=names)))
    written = []
    for name, draw in plots:
        path = folder / f"{name}.png"
        try:
            with quiet_plot_warnings():
                axes = draw()
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(8, 5)
            temporary = path.with_name(f".{path.name}.tmp.png")
            figure.savefig(temporary, dpi=100, bbox_inches="tight")
            temporary.replace(path)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            continue  # e.g. importances of a parameter that never varied: nothing to draw
        finally:
            plt.close("all")
    return written


@contextlib.contextmanager
def quiet_plot_warnings() -> Iterator[None]:
    """Optuna's matplotlib plots are experimental and say so on every call; importances of a study with few trials
    and matplotlib's layout notes are not the reader's concern. Other warnings pass."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        warnings.filterwarnings("ignore", message=r".*(tight_layout|[Ll]ayout|constant|same value).*")
        warnings.filterwarnings("ignore", message=r"PedAnovaImportanceEvaluator computes", category=UserWarning)
        yield


def load_run_study(run_dir: Path, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """The study of a run directory: its storage and study name from ``merged_config.yaml`` unless given."""
    import optuna
    from omegaconf import OmegaConf

    from core.config import as_dict
    from core.errors import UserError
    from core.hpo.storage import open_storage

    merged = run_dir / "merged_config.yaml"
    cfg: dict[str, Any] = {}
    if merged.is_file():
        cfg = as_dict(OmegaConf.load(merged), where=str(merged), resolve=False)
    elif storage is None:
        raise UserError("no merged_config.yaml here", where=str(run_dir), hint="pass an HPO run directory or --storage")
    study_cfg = cfg.get("study") or {}
    spec = storage if storage is not None else study_cfg.get("storage")
    opened = open_storage(spec, run_dir, study_name or study_cfg.get("name") or "hpo", read_only=True)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(opened.storage)]
    except Exception as exc:  # e.g. a database without Optuna's tables (read-only verbs do not create them)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read the storage: {first}", where=opened.location) from None
    name = study_name or study_cfg.get("name") or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise UserError(
            f"no study {name!r} in the storage",
            where=opened.location,
            hint=f"studies there: {', '.join(names) or 'none'}",
        )
    return optuna.load_study(study_name=name, storage=opened.storage)


def _plain(value: Any) -> Any:
    """Numbers and containers that ``yaml.safe_dump`` writes readably (inf and nan as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value
