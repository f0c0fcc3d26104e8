"""Simulate an asynchronous Optuna study with P workers on a simulated clock.

The objective returns what a benchmark knows about a trial instead of running it: an :class:`Evaluation`
(values, runtime, intermediate reports), or a generator that yields :class:`Report` s and returns the
:class:`Evaluation` (so a pruned trial's later fidelities are never computed). The simulator writes each
intermediate value into the study at its simulated time and asks the study's pruner right then, so
``should_prune`` sees exactly what a real run would have seen; a pruned trial frees its worker at that time.
Results reach the sampler (``study.tell``) in simulated finish order, as in a real run with zero sampler cost.

Example:
    >>> import optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> def objective(trial):
    ...     x = trial.suggest_float("x", -5.0, 5.0)
    ...     return Evaluation(values=x * x, runtime=10.0 + abs(x))
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> result = simulate(study, objective, n_workers=4, n_trials=20)
    >>> len(study.trials), result.trials[0].worker, result.end_time > 50.0
    (20, 0, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Hashable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from core.errors import UserError
from core.hpo.simulator.engine import Schedule, run_events
from core.hpo.simulator.records import Evaluation, Report, SimulationResult, TrialRecord

if TYPE_CHECKING:
    import optuna

ObjectiveOutput = Evaluation | Generator[Report, None, Evaluation]
Objective = Callable[["optuna.Trial"], ObjectiveOutput]
SamplerCost = float | Callable[[int], float] | Literal["measured"]

_PRUNED = "PRUNED"


class Simulator:
    """One simulated run of ``study`` with ``n_workers`` workers; :meth:`run` does the work.

    Args:
        study: Any Optuna study (any sampler and pruner, single- or multi-objective, any storage).
        objective: ``trial -> Evaluation`` or a generator of :class:`Report` returning the :class:`Evaluation`.
            It must not call ``trial.report`` or ``trial.should_prune`` itself: the simulator does, on time.
        n_workers: Number of simulated workers.
        n_trials: Stop asking after this many trials (all of them run to their end).
        time_budget: Stop at this simulated time; trials running then end as ``FAIL`` with ``cut=True``.
        sampler_cost: Simulated seconds one ask takes: ``0.0`` (default, deterministic), a constant, a function of
            the number of results told so far, or ``"measured"`` (the real time of ``ask`` + the objective's
            suggest calls; not reproducible). The sampler serves one ask at a time.
        checkpoints: Charge a trial only the runtime beyond the best checkpoint of its
            ``Evaluation.checkpoint_key`` at a fidelity not above its own, finished before it was asked.
        catch: Exceptions from the objective that fail the trial (at the time of its last milestone) instead of
            stopping the simulation, like ``catch`` of ``Study.optimize``.
        record_in_study: Also store ``worker``, ``start``, ``end`` and ``sampler_time`` as the user attribute
            ``simulation`` of every finished trial (they are always in the returned records and the CSV).
        on_tell: Called with the record of every trial when its result reaches the sampler (e.g. for progress).
    """

    def __init__(
        self,
        study: optuna.Study,
        objective: Objective,
        n_workers: int,
        n_trials: int | None = None,
        time_budget: float | None = None,
        sampler_cost: SamplerCost = 0.0,
        checkpoints: bool = False,
        catch: tuple[type[Exception], ...] = (),
        record_in_study: bool = False,
        on_tell: Callable[[TrialRecord], None] | None = None,
    ) -> None:
        self.study = study
        self.objective = objective
        self.n_workers = n_workers
        self.n_trials = n_trials
        self.time_budget = time_budget
        self.sampler_cost = sampler_cost
        self.checkpoints = checkpoints
        self.catch = catch
        self.record_in_study = record_in_study
        self.on_tell = on_tell
        self.schedule = Schedule()
        self.records: list[TrialRecord] = []
        self._trials: list[optuna.Trial] = []
        self._steps: list[Iterator[Report] | None] = []
        self._finals: list[Evaluation | None] = []
        self._pending: list[Report | Evaluation | BaseException | str] = []
        self._elapsed: list[float] = []
        self._offset: list[float] = []
        self._order: list[int] = []
        self._n_told = 0
        self._saved: dict[Hashable, list[tuple[float, float, float]]] = {}

    @property
    def now(self) -> float:
        """The simulated clock (seconds): the time of the event being handled."""
        return self.schedule.now

    def run(self) -> SimulationResult:
        """Simulate to the end and return the records; no trial is left RUNNING, even on an error."""
        _check_arguments(self.n_workers, self.n_trials, self.time_budget, self.sampler_cost)
        wall = time.perf_counter()
        try:
            run_events(self, self.n_workers, self.n_trials, self.time_budget, self.schedule)
        except BaseException:
            self._fail_running()
            raise
        return SimulationResult(
            trials=self.records,
            order=self._order,
            n_workers=self.n_workers,
            directions=[d.name.lower() for d in self.study.directions],
            end_time=self.schedule.now,
            wall_seconds=time.perf_counter() - wall,
        )

    # -- the engine's driver -------------------------------------------------------------------------------

    def start(self, job: int, worker: int, now: float) -> tuple[float, float] | None:
        measured = self.sampler_cost == "measured"
        began = time.perf_counter() if measured else 0.0
        trial = self.study.ask()
        record = TrialRecord(number=trial.number, worker=worker, asked=now)
        self.records.append(record)
        self._trials.append(trial)
        self._elapsed.append(0.0)
        self._offset.append(0.0)
        try:
            output = self.objective(trial)
        except Exception as exc:
            self._steps.append(None)
            self._finals.append(None)
            self._pending.append(self._failure(exc))
        else:
            if isinstance(output, Evaluation):
                self._steps.append(iter(output.reports))
                self._finals.append(output)
                if self.checkpoints and output.checkpoint_key is not None:
                    self._offset[job] = self._resume_offset(output, now)
            elif isinstance(output, Generator):
                self._steps.append(output)
                self._finals.append(None)
            else:
                raise UserError(
                    f"the objective returned {type(output).__name__}",
                    where=f"trial {trial.number}",
                    hint="return an Evaluation, or yield Report(...) and return an Evaluation",
                )
            self._pending.append("")
        first = self._advance(job) if self._pending[job] == "" else 0.0
        if measured:
            cost = time.perf_counter() - began
        elif callable(self.sampler_cost):
            cost = float(self.sampler_cost(self._n_told))
        else:
            cost = float(self.sampler_cost)
        record.sampler_time = cost
        record.start = now + cost
        return cost, first

    def reach(self, job: int, now: float) -> float | None:
        milestone = self._pending[job]
        trial = self._trials[job]
        if type(milestone) is Report:
            trial.report(milestone.value, milestone.step)
            self.records[job].reports.append((milestone.step, milestone.value, now))
            if trial.should_prune():
                self._tell(job, now, _PRUNED)
                return None
            return self._advance(job)
        assert not isinstance(milestone, Report)
        self._tell(job, now, milestone)
        return None

    def cut(self, job: int, now: float) -> None:
        record = self.records[job]
        record.cut = True
        if math.isnan(record.start):
            record.start = now
        self._tell(job, now, "FAIL")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _advance(self, job: int) -> float:
        """Fetch the job's next milestone; return its elapsed time since the job's start (after resume)."""
        steps = self._steps[job]
        assert steps is not None
        try:
            item = next(steps)
        except StopIteration as stop:
            final = self._finals[job] if self._finals[job] is not None else stop.value
            if not isinstance(final, Evaluation):
                raise UserError(
                    f"the objective's generator returned {type(final).__name__}",
                    where=f"trial {self._trials[job].number}",
                    hint="end the generator with `return Evaluation(values=..., runtime=...)`",
                ) from None
            self._pending[job] = final
            return self._at(job, final.runtime)
        except Exception as exc:
            self._pending[job] = self._failure(exc)
            return self._at(job, self._elapsed[job])
        if type(item) is not Report:
            raise UserError(
                f"the objective yielded {type(item).__name__}",
                where=f"trial {self._trials[job].number}",
                hint="yield Report(step=..., value=..., elapsed=...)",
            )
        self._pending[job] = item
        return self._at(job, item.elapsed)

    def _failure(self, exc: Exception) -> BaseException | str:
        """How an exception from the objective ends its trial: pruned, failed (``catch``), or re-raised."""
        import optuna

        if isinstance(exc, optuna.TrialPruned):
            return _PRUNED
        if isinstance(exc, self.catch):
            return exc
        raise exc

    def _at(self, job: int, elapsed: float) -> float:
        if not elapsed >= self._elapsed[job]:
            raise UserError(
                f"simulated times go backwards: {elapsed} after {self._elapsed[job]}",
                where=f"trial {self._trials[job].number}",
                hint="Report.elapsed and Evaluation.runtime count from the trial's start and never decrease",
            )
        self._elapsed[job] = elapsed
        return max(0.0, elapsed - self._offset[job])

    def _resume_offset(self, evaluation: Evaluation, now: float) -> float:
        best: tuple[float, float] | None = None
        for fidelity, runtime, ready in self._saved.get(evaluation.checkpoint_key, ()):
            if ready <= now and (evaluation.fidelity is None or fidelity <= evaluation.fidelity):
                best = max(best, (fidelity, runtime)) if best is not None else (fidelity, runtime)
        return min(best[1], evaluation.runtime) if best is not None else 0.0

    def _tell(self, job: int, now: float, outcome: Evaluation | BaseException | str) -> None:
        import optuna

        trial = self._trials[job]
        record = self.records[job]
        record.end = now
        if self.record_in_study:
            trial.set_user_attr(
                "simulation",
                {"worker": record.worker, "start": record.start, "end": now, "sampler_time": record.sampler_time},
            )
        state = optuna.trial.TrialState
        record.params = trial.params
        if isinstance(outcome, Evaluation):
            store_attrs(trial, outcome)
            values = outcome.value_tuple()
            told, told_values = _tell(self.study, trial, values[0] if len(values) == 1 else list(values), None)
            if self.checkpoints and outcome.checkpoint_key is not None and told == state.COMPLETE:
                fidelity = outcome.fidelity if outcome.fidelity is not None else math.inf
                self._saved.setdefault(outcome.checkpoint_key, []).append((fidelity, outcome.runtime, now))
                record.charged_runtime = outcome.runtime - self._offset[job]
        elif outcome == _PRUNED:
            told, told_values = _tell(self.study, trial, None, state.PRUNED)
        else:
            told, told_values = _tell(self.study, trial, None, state.FAIL)
        record.state = told.name
        record.values = tuple(told_values) if told_values is not None else None
        self._order.append(record.number)
        self._n_told += 1
        self._pending[job] = ""
        self._steps[job] = None
        if self.on_tell is not None:
            self.on_tell(record)

    def _fail_running(self) -> None:
        import optuna

        for trial, record in zip(self._trials, self.records, strict=True):
            if record.state == "RUNNING":
                record.state = "FAIL"
                record.end = self.schedule.now
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _tell(
    study: optuna.Study, trial: optuna.Trial, values: float | list[float] | None, state: optuna.trial.TrialState | None
) -> tuple[optuna.trial.TrialState, list[float] | None]:
    """``study.tell`` without the deep copy of the finished trial it returns (half of its cost), when available."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # pragma: no cover - a future Optuna without it: the public call
        frozen = study.tell(trial, values, state=state)
        return frozen.state, frozen.values
    result: Any = _tell_with_warning(study, trial, values, state)
    if isinstance(result, tuple):  # (state, values, message) in Optuna 4 and 5
        return result[0], result[1]
    frozen = study._storage.get_trial(trial._trial_id)  # pragma: no cover - older Optuna
    return frozen.state, frozen.values  # pragma: no cover


def store_attrs(trial: optuna.Trial, evaluation: Evaluation) -> None:
    """Store an evaluation's user attributes and constraints on ``trial`` (when it finishes, not before).

    Constraints go through ``Trial.set_constraint`` (named "0", "1", ...), which Optuna's samplers read; they are
    also the user attribute ``constraints``, for ``constraints_func=lambda t: t.user_attrs["constraints"]``
    on Optuna versions without ``set_constraint``.
    """
    for key, value in evaluation.user_attrs.items():
        trial.set_user_attr(key, value)
    if evaluation.constraints is not None:
        constraints = [float(c) for c in evaluation.constraints]
        trial.set_user_attr("constraints", constraints)
        if hasattr(trial, "set_constraint"):
            for index, value in enumerate(constraints):
                trial.set_constraint(str(index), value)


def simulate(
    study: optuna.Study,
    objective: Objective,
    n_workers: int,
    n_trials: int | None = None,
    time_budget: float | None = None,
    **options: Any,
) -> SimulationResult:
    """Simulate ``study`` with ``n_workers`` workers; see :class:`Simulator` for ``options``."""
    return Simulator(study, objective, n_workers, n_trials, time_budget, **options).run()


def _check_arguments(n_workers: int, n_trials: int | None, time_budget: float | None, cost: SamplerCost) -> None:
    if not isinstance(n_workers, int) or n_workers < 1:
        raise UserError(f"n_workers must be a positive integer, got {n_workers!r}", where="n_workers")
    if n_trials is None and time_budget is None:
        raise UserError("the run has no end", where="n_trials, time_budget", hint="give n_trials, time_budget or both")
    if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 0):
        raise UserError(f"n_trials must be a non-negative integer, got {n_trials!r}", where="n_trials")
    if time_budget is not None and not time_budget >= 0:
        raise UserError(f"time_budget must be a non-negative number, got {time_budget!r}", where="time_budget")
    if isinstance(cost, str) and cost != "measured":
        raise UserError(
            f"unknown sampler_cost {cost!r}", where="sampler_cost", hint="a number, a function or 'measured'"
        )
    if isinstance(cost, int | float) and not cost >= 0:
        raise UserError(f"sampler_cost must be >= 0, got {cost!r}", where="sampler_cost")


__all__ = ["Objective", "ObjectiveOutput", "SamplerCost", "Simulator", "simulate", "store_attrs"]
