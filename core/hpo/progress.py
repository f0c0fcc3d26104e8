"""What a person sees of a running study: a live progress line (rich, on stderr) and the closing summary.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> study.optimize(lambda t: t.number + 0.5, n_trials=3)
    >>> counts = Counts.of(study, study.trials)
    >>> summary("demo", counts, "runs/demo")
    'demo: 3 complete, 0 pruned, 0 failed; best 0.5 (trial 0); see runs/demo'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Counts:
    """Trials of the study by state, and the best value so far as text."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best: str = "-"

    @classmethod
    def of(cls, study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]) -> Counts:
        from optuna.trial import TrialState

        states = [t.state for t in trials]
        return cls(
            states.count(TrialState.COMPLETE),
            states.count(TrialState.PRUNED),
            states.count(TrialState.FAIL),
            states.count(TrialState.RUNNING),
            best_text(study, trials),
        )


def best_text(study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]) -> str:
    from optuna.trial import TrialState

    done = [t for t in trials if t.state is TrialState.COMPLETE and t.values]
    if not done:
        return "-"
    if len(study.directions) > 1:
        return f"{len(study.best_trials)} on the Pareto front"
    sign = -1.0 if study.directions[0].name == "MAXIMIZE" else 1.0
    best = min(done, key=lambda t: sign * t.values[0])
    return f"{best.values[0]:.6g} (trial {best.number})"


def summary(study_name: str, counts: Counts, run_dir: object) -> str:
    """The closing line of a run (the CLI prints it, with or without the progress line)."""
    return (
        f"{study_name}: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed; "
        f"best {counts.best}; see {run_dir}"
    )


@contextlib.contextmanager
def progress_line(study_name: str, n_trials: int, enabled: bool) -> Iterator[Callable[[Counts], None]]:
    """A live line ``NAME ━━━━ done/total running · failed · pruned · best`` while the block runs; ``update(counts)``
    redraws it. Disabled: ``update`` does nothing."""
    if not enabled:
        yield lambda counts: None
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.hpo.report import console

    columns = (
        TextColumn(f"[bold]{escape(study_name)}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(), transient=False) as bar:
        task = bar.add_task("trials", total=n_trials, detail="")

        def update(counts: Counts) -> None:
            final = counts.complete + counts.pruned + counts.failed
            detail = (
                f"running {counts.running} · failed {counts.failed} · pruned {counts.pruned} · "
                f"best {escape(counts.best)}"
            )
            bar.update(task, completed=min(final, n_trials), detail=detail)

        yield update
