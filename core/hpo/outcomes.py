"""What a trial came to, and how it is written into the study: told, retried, or superseded.

An :data:`Outcome` is a :class:`~core.hpo.results.TrialResult` (COMPLETE), a float (PRUNED at that step) or a
:class:`Failure`. :func:`record` writes one into the storage; :func:`budget` counts what the study has spent.

The budget (``n_trials``) counts COMPLETE, PRUNED and RUNNING trials and FAIL trials that are final; a FAIL that
was retried, or whose runner died or was interrupted, is marked superseded and does not count.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> record(study, trial, Failure("exit code 3", exit_code=3), max_retries=1, retry_lost=True)
    False
    >>> [t.state.name for t in study.trials], budget(study.trials)
    (['FAIL', 'WAITING'], (0, 0, 0))
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hpo.results import ReportTail, TrialResult

if TYPE_CHECKING:
    import optuna

SUPERSEDED_KEY = "kakehashi:superseded"  # trial system attr: this FAIL does not count (retried or lost)


@dataclass
class Failure:
    """Why a trial failed. ``lost`` failures (dead runner, Ctrl-C) are not the objective's fault: they do not count
    towards ``n_trials`` and are re-run when ``retry_lost`` is set."""

    reason: str
    exit_code: int | None = None
    log_tail: str = ""
    lost: bool = False


Outcome = TrialResult | Failure | float  # a float: PRUNED (the step it was pruned at)


@dataclass
class Flight:
    """A trial this runner has running. ``task`` belongs to the executor that runs it (a job handle, a thread's
    outcome box); the runner never looks inside."""

    trial: optuna.Trial
    trial_dir: Path
    started: float  # monotonic time it started running (a job: when its backend first reported it running)
    running: bool = False  # the executor saw it start: ``timeout_per_trial`` counts from ``started``
    task: Any = None
    report: ReportTail | None = None
    reported_steps: set[int] = field(default_factory=set)

    @property
    def number(self) -> int:
        return int(self.trial.number)


def record(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, max_retries: int, retry_lost: bool) -> bool:
    """Tell ``outcome`` for ``trial`` (re-queuing it with the same params when it should be retried).

    Returns:
        True if the sampler asked the study to stop (``Study.stop``, e.g. a grid or brute-force sampler that has
        exhausted its space): the runner then starts no more trials.
    """
    from optuna.trial import TrialState

    storage = study._storage
    tid = trial._trial_id
    if isinstance(outcome, TrialResult):
        for key, value in outcome.user_attrs.items():
            storage.set_trial_user_attr(tid, str(key), value)
        return _tell(study, trial, values=outcome.values)
    if isinstance(outcome, float):
        return _tell(study, trial, state=TrialState.PRUNED)
    frozen = storage.get_trial(tid)
    attempt = int(frozen.user_attrs.get("attempt", 0))
    retry = (outcome.lost and retry_lost) or (not outcome.lost and attempt < max_retries)
    storage.set_trial_user_attr(tid, "failure", outcome.reason)
    if outcome.exit_code is not None:
        storage.set_trial_user_attr(tid, "exit_code", outcome.exit_code)
    if outcome.log_tail:
        storage.set_trial_user_attr(tid, "log_tail", outcome.log_tail)
    if retry or outcome.lost:
        storage.set_trial_system_attr(tid, SUPERSEDED_KEY, True)
    stop = _tell(study, trial, state=TrialState.FAIL)
    if retry and not stop:
        attrs = {"retry_of": trial.number, "attempt": attempt + (0 if outcome.lost else 1)}
        with quiet_optuna_warnings():
            study.enqueue_trial(dict(frozen.params), user_attrs=attrs, skip_if_exists=False)
    return stop


def _tell(study: optuna.Study, trial: optuna.Trial, **kwargs: Any) -> bool:
    """``study.tell``, inside the frame where a sampler's ``Study.stop`` is allowed (as in ``study.optimize``)."""
    local = study._thread_local
    previous = local.in_optimize_loop
    local.in_optimize_loop = True
    study._stop_flag = False
    try:
        study.tell(trial, **kwargs)
    finally:
        local.in_optimize_loop = previous
    return bool(study._stop_flag)


def budget(trials: Sequence[optuna.trial.FrozenTrial]) -> tuple[int, int, int]:
    """(used, final, running): trials that count towards ``n_trials``, those of them finished, and RUNNING ones."""
    from optuna.trial import TrialState

    used = final = running = 0
    for t in trials:
        if t.state is TrialState.RUNNING:
            used += 1
            running += 1
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state is TrialState.FAIL and not t.system_attrs.get(SUPERSEDED_KEY)
        ):
            used += 1
            final += 1
    return used, final, running


@contextlib.contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Optuna's notes that are not news to this runner, and only those: experimental features (metric names,
    matplotlib plots) and fixed parameters of enqueued trials (retries and initial points)."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ExperimentalWarning)
        warnings.filterwarnings("ignore", message=r".*([Ff]ixed param|enqueued)", category=UserWarning)
        yield
