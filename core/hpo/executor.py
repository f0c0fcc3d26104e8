"""The seam between the study runner and what runs a trial: a :class:`TrialExecutor` launches a trial, reports the
ones that ended (finished, pruned, past ``timeout_per_trial``), sleeps until one may have, and stops the rest.

Two implementations: :class:`ThreadExecutor` runs a Python callable in a thread (here), and
:class:`~core.hpo.job_executor.JobExecutor` runs a command as a job of a core.jobs backend. The runner's loop is the
same for both: ask → :meth:`~TrialExecutor.launch` → :meth:`~TrialExecutor.wait` / :meth:`~TrialExecutor.poll` →
tell.

Example:
    >>> import optuna, time
    >>> from pathlib import Path
    >>> from core.hpo.wakeup import Wakeup
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> executor = ThreadExecutor(lambda t: 0.5, n_objectives=1, timeout=None, wakeup=Wakeup())
    >>> flight = Flight(trial, Path("."), time.monotonic())
    >>> executor.launch(flight, {}, owner="me")
    >>> executor.wait(10.0)
    >>> [(f.number, outcome) for f, outcome in executor.poll([flight])]
    [(0, TrialResult(values=[0.5], user_attrs={}))]
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from core.hpo.liveness import RUNNER_KEY
from core.hpo.outcomes import Failure, Flight, Outcome
from core.hpo.results import ResultError, parse_result_text
from core.hpo.wakeup import Wakeup

if TYPE_CHECKING:
    import optuna

Objective = Callable[["optuna.Trial"], Any]
Ended = list[tuple[Flight, Outcome]]


class TrialExecutor(Protocol):
    """What runs the trials of one runner."""

    def launch(self, flight: Flight, values: dict[str, Any], owner: str) -> None:
        """Start ``flight`` with its suggested ``values``, and tag the trial as runner ``owner``'s in the storage.
        Raises ``UserError`` if it cannot start at all."""

    def poll(self, flights: Sequence[Flight]) -> Ended:
        """The flights that ended since the last call, with their outcomes; stops pruned and timed-out ones."""

    def wait(self, timeout: float) -> None:
        """Sleep until a flight may have ended (or anything woke the runner), at most ``timeout`` seconds."""

    def adopt(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial) -> Flight | None:
        """A running trial of a dead runner, if this executor can follow it (its job still exists)."""

    def stop(self, flights: Sequence[Flight], reason: str) -> Ended:
        """Stop every flight (Ctrl-C): those that had finished keep their outcome, the others fail with ``reason``."""

    def close(self) -> None:
        """Leave nothing running: end whatever this executor started that is still alive."""


def timed_out(flight: Flight, limit: float | None, now: float) -> bool:
    return limit is not None and flight.running and now - flight.started > limit


def next_deadline(flights: Sequence[Flight], limit: float | None, now: float) -> float:
    """Seconds until the first running flight reaches ``limit`` (inf without one)."""
    if limit is None:
        return float("inf")
    waits = [flight.started + limit - now for flight in flights if flight.running]
    return max(0.0, min(waits)) if waits else float("inf")


class ThreadExecutor:
    """Python callables ``f(trial)``, each in a daemon thread that wakes the runner when it returns.

    A thread cannot be stopped from outside: a trial past ``timeout`` (or interrupted) is recorded as failed and
    its thread is left to finish on its own; its result is then ignored."""

    def __init__(self, objective: Objective, n_objectives: int, timeout: float | None, wakeup: Wakeup) -> None:
        self.objective = objective
        self.n_objectives = n_objectives
        self.timeout = timeout
        self.wakeup = wakeup
        self._running: list[Flight] = []

    def launch(self, flight: Flight, values: dict[str, Any], owner: str) -> None:
        flight.trial.storage.set_trial_system_attr(flight.trial._trial_id, RUNNER_KEY, owner)
        box: list[Outcome] = []
        flight.task = box
        flight.running = True
        self._running.append(flight)
        thread = threading.Thread(target=self._run, args=(flight.trial, box), name=f"trial-{flight.number}")
        thread.daemon = True
        thread.start()

    def _run(self, trial: optuna.Trial, box: list[Outcome]) -> None:
        box.append(call_objective(self.objective, trial, self.n_objectives))
        self.wakeup.set()

    def poll(self, flights: Sequence[Flight]) -> Ended:
        now = time.monotonic()
        ended: Ended = []
        for flight in flights:
            if flight.task:
                ended.append((flight, flight.task[0]))
            elif timed_out(flight, self.timeout, now):
                ended.append((flight, Failure(f"timeout after {self.timeout:g} s (the thread could not be stopped)")))
        self._forget(f for f, _ in ended)
        return ended

    def wait(self, timeout: float) -> None:
        if any(flight.task for flight in self._running):
            return
        self.wakeup.wait(min(timeout, next_deadline(self._running, self.timeout, time.monotonic())))

    def adopt(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial) -> Flight | None:
        return None  # a thread dies with its runner

    def stop(self, flights: Sequence[Flight], reason: str) -> Ended:
        ended: Ended = [(f, f.task[0] if f.task else Failure(reason, lost=True)) for f in flights]
        self._forget(flights)
        return ended

    def close(self) -> None:
        self._running.clear()

    def _forget(self, flights: Any) -> None:
        gone = {id(f) for f in flights}
        self._running = [f for f in self._running if id(f) not in gone]


def call_objective(objective: Objective, trial: optuna.Trial, n_objectives: int) -> Outcome:
    """Run a Python objective and turn what it returned (or raised) into an outcome."""
    import optuna

    try:
        value = objective(trial)
        if isinstance(value, dict | str):
            return parse_result_text(json.dumps(value) if isinstance(value, dict) else value, n_objectives)
        numbers = list(value) if isinstance(value, list | tuple) else [value]
        return parse_result_text(json.dumps([float(v) for v in numbers]), n_objectives)
    except optuna.TrialPruned:
        steps = trial.storage.get_trial(trial._trial_id).intermediate_values
        return float(max(steps)) if steps else 0.0
    except ResultError as exc:
        return Failure(f"bad result: {exc}")
    except (TypeError, ValueError) as exc:
        return Failure(f"bad result: {type(exc).__name__}: {exc}")
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc))[-2000:]
        return Failure(f"{type(exc).__name__}: {exc}", log_tail=tb)
