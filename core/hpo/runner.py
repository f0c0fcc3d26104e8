"""The study runner: an asynchronous ask/tell loop over trials that are commands (jobs of any core.jobs backend)
or Python callables, safe to run as several processes on one storage, and to kill at any moment.

The loop, each round: the executor reports the trials that ended (one status query for all of this runner's jobs;
running ones have their intermediate values fed to the pruner and are stopped if pruned or past
``timeout_per_trial``), their outcomes are told; the heartbeat is refreshed; when a slot is free (or every second),
under the storage's :class:`~core.hpo.storage.BudgetLock`, dead runners' trials are taken over
(:mod:`core.hpo.takeover`), the budget is counted (:func:`core.hpo.outcomes.budget`) and new trials are asked for the
free slots. The round's journal records are written at once and flushed to disk together at its end
(:meth:`~core.hpo.storage.OpenedStorage.grouped_sync`): a killed runner loses none of them, and the flushes (a few
ms each) are not paid one by one between a trial's end and the next one's start. Then the runner sleeps until a
trial ends or a signal comes (:mod:`core.hpo.wakeup`): nothing spins.

What runs a trial is a :class:`~core.hpo.executor.TrialExecutor`: :class:`~core.hpo.job_executor.JobExecutor` for
commands, :class:`~core.hpo.executor.ThreadExecutor` for callables.

Example:
    >>> import tempfile
    >>> def objective(trial):
    ...     return (trial.params["x"] - 0.3) ** 2
    >>> result = optimize({"params": {"x": [0, 1]}, "n_trials": 8, "n_max_jobs": 2, "plots": False},
    ...                   objective=objective, run_dir=tempfile.mkdtemp(), progress=False)
    >>> result.n_complete, result.n_failed
    (8, 0)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from core.errors import ConfigError, UserError
from core.hpo.command import unknown_placeholders
from core.hpo.executor import ThreadExecutor, TrialExecutor
from core.hpo.liveness import RUNNER_PREFIX, RunnerRecord, owner_of, runner_records
from core.hpo.outcomes import SUPERSEDED_KEY, Failure, Flight, Outcome, budget, quiet_optuna_warnings, record
from core.hpo.params import suggest
from core.hpo.progress import Counts, progress_line, summary
from core.hpo.settings import HpoSettings, load_hpo_config
from core.hpo.storage import OpenedStorage, open_storage
from core.hpo.wakeup import StopSignals, Wakeup

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)
ENQUEUED_KEY = "kakehashi:enqueued"  # study system attr: the config's initial points were enqueued
SYNC_INTERVAL = 1.0  # seconds between budget/liveness checks when no slot was freed
INTERRUPTED = "interrupted: the runner was stopped (Ctrl-C or SIGTERM)"

Objective = Callable[["optuna.Trial"], Any]
__all__ = ["SUPERSEDED_KEY", "Failure", "OptimizeResult", "StudyRunner", "optimize"]


@dataclass
class OptimizeResult:
    """What a run did, and the study in its storage (``study.trials``, ``study.best_trials``)."""

    study: optuna.Study
    run_dir: Path
    n_complete: int
    n_pruned: int
    n_failed: int
    n_trials: int
    interrupted: bool = False
    summary: str = ""  # the closing line: counts, best value, run directory


def optimize(
    config: str | Path | Mapping[str, Any] | DictConfig,
    overrides: tuple[str, ...] | list[str] = (),
    objective: Objective | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Run (or resume) the study of ``config`` until it holds ``n_trials`` trials; write the run directory.

    Args:
        config: A YAML file, a dict or a ``DictConfig``; merged over ``core/hpo/config/default.yaml``.
        overrides: Dotlist overrides (``n_trials=50``).
        objective: A Python callable ``f(trial) -> value | [values] | {"value": ...}`` instead of a command; the
            config's parameters are suggested first (read them as ``trial.params``), and it may report
            intermediate values and raise ``optuna.TrialPruned``. Runs in threads, ``n_max_jobs`` at once.
        run_dir: Overrides the config's ``run_dir``.
        progress: Show a live progress line (rich) on stderr.

    Raises:
        UserError: For config mistakes, and when the study cannot run at all (e.g. the command is not found).
        KeyboardInterrupt: After Ctrl-C (or SIGTERM), once running trials were stopped and recorded.
    """
    cfg = load_hpo_config(config, list(overrides))
    settings = HpoSettings.from_config(cfg, run_dir, has_objective=objective is not None)
    return StudyRunner(settings, objective=objective, progress=progress).run()


class StudyRunner:
    """One runner process of a study. See the module docstring; :func:`optimize` is the usual entry point."""

    def __init__(self, settings: HpoSettings, objective: Objective | None = None, progress: bool = True) -> None:
        self.settings = settings
        self.objective = objective
        self.show_progress = progress
        self.inflight: dict[int, Flight] = {}
        self.me = RunnerRecord.current()
        self.run_dir = settings.run_dir.resolve()
        self.wakeup = Wakeup()
        self.interrupted = False
        self.sampler_stopped = False  # the sampler called Study.stop: no new trials
        self.counts = Counts()
        self._last_sync = 0.0
        self._last_heartbeat = 0.0
        self._slot_freed = True
        self._budget_state: tuple[int, int, int] = (0, 0, 0)  # used, final, running: at the last sync

    # ------------------------------------------------------------------ the loop
    def run(self) -> OptimizeResult:
        self._setup()
        stop = StopSignals(self.wakeup)
        try:
            with stop, progress_line(self.settings.study_name, self.settings.n_trials, self.show_progress) as show:
                try:
                    self._loop(stop, show)
                except KeyboardInterrupt:  # a second Ctrl-C, or one before the loop could take it as a request
                    stop.requested = True
                if stop.requested:
                    self.interrupted = True
                    with stop.ignored():
                        self._stop_all()
                    show(self.counts)
        finally:
            self._close()
        return self._finish_run()

    def _loop(self, stop: StopSignals, show: Callable[[Counts], None]) -> None:
        self._heartbeat(force=True)
        while not stop.requested:
            with self.opened.grouped_sync():  # the round's records reach the disk together, before the sleep
                self._record(self.executor.poll(list(self.inflight.values())))
                self._heartbeat()
                if self._slot_freed or time.monotonic() - self._last_sync >= SYNC_INTERVAL:
                    self._sync_and_fill()
            show(self.counts)
            if self._finished():
                return
            self.executor.wait(self._idle_timeout())

    def _idle_timeout(self) -> float:
        now = time.monotonic()
        sync = self._last_sync + SYNC_INTERVAL - now
        heartbeat = self._last_heartbeat + self.settings.heartbeat_interval - now
        return max(0.0, min(sync, heartbeat))

    def _finished(self) -> bool:
        """Nothing of this runner in flight, and the budget spent (by finished trials, with wait_for_others) or the
        sampler stopped the study."""
        if self.inflight or self._slot_freed:
            return False
        if self.sampler_stopped:
            return True
        used, final, running = self._budget_state
        if used < self.settings.n_trials:
            return False
        return not self.settings.wait_for_others or final >= self.settings.n_trials or running == 0

    # ------------------------------------------------------------------ asking and launching
    def _sync_and_fill(self) -> None:
        self._last_sync = time.monotonic()
        self._slot_freed = False
        asked: list[optuna.Trial] = []
        with self.opened.lock:
            self._enqueue_initial_points()
            from core.hpo.takeover import take_over

            adopted, lost = take_over(self.study, self.me, self.settings.grace, self.executor)
            self.inflight.update((flight.number, flight) for flight in adopted)  # they take this runner's slots
            for trial, failure in lost:
                self._tell(trial, failure)
            trials = self._all_trials()
            self._budget_state = budget(trials)
            self.counts = Counts.of(self.study, trials)
            n_ask = min(self.settings.n_max_jobs - len(self.inflight), self.settings.n_trials - self._budget_state[0])
            for _ in range(max(0, n_ask) if not self.sampler_stopped else 0):
                with quiet_optuna_warnings():
                    asked.append(self.study.ask())  # tagged as this runner's when it is launched (one write)
        for trial in asked:
            self._launch(trial)

    def _launch(self, trial: optuna.Trial) -> None:
        flight = Flight(trial, self.run_dir / "trials" / f"{trial.number:06d}", time.monotonic())
        self.inflight[flight.number] = flight
        try:
            values = suggest(trial, self.settings.space)
        except Exception as exc:  # a parameter the sampler cannot fill: record it, do not stop the study
            self._record([(flight, Failure(f"suggest failed: {type(exc).__name__}: {exc}"))])
            return
        flight.trial_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.executor.launch(flight, values, self.me.runner_id)
        except UserError as exc:  # the study cannot run at all (command not found, bad job spec): stop here
            self._record([(flight, Failure(f"could not start: {exc.line()}", lost=True))])
            raise

    def _enqueue_initial_points(self) -> None:
        if not self.settings.enqueue:
            return
        if self.storage.get_study_system_attrs(self.study_id).get(ENQUEUED_KEY):
            return
        with quiet_optuna_warnings():
            for point in self.settings.enqueue:
                self.study.enqueue_trial(point, user_attrs={"enqueued": True})
        self.storage.set_study_system_attr(self.study_id, ENQUEUED_KEY, True)

    # ------------------------------------------------------------------ telling
    def _record(self, ended: list[tuple[Flight, Outcome]]) -> None:
        """Tell the outcomes of ended trials (under the budget lock: counting and retries stay consistent) and free
        their slots, so the sampler's next ask sees every finished trial."""
        if not ended:
            return
        with self.opened.lock:
            for flight, outcome in ended:
                self.inflight.pop(flight.number, None)
                self._tell(flight.trial, outcome, flight)
        self._slot_freed = True

    def _tell(self, trial: optuna.Trial, outcome: Outcome, flight: Flight | None = None) -> None:
        from optuna.trial import TrialState

        frozen = self.storage.get_trial(trial._trial_id)
        owner = owner_of(frozen.system_attrs)  # None: asked here, not launched; a take-over would have tagged it
        if frozen.state is not TrialState.RUNNING or owner not in (None, self.me.runner_id):
            where = f" (see {flight.trial_dir})" if flight is not None else ""
            log.warning(
                "trial %d was taken over by runner %s while it ran here; this runner's outcome is not recorded%s",
                trial.number,
                owner,
                where,
            )
            return
        if record(self.study, trial, outcome, self.settings.max_retries, self.settings.retry_lost):
            if not self.sampler_stopped:
                log.warning("the sampler stopped the study (Study.stop): no new trials; finishing the running ones")
            self.sampler_stopped = True

    def _all_trials(self) -> list[optuna.trial.FrozenTrial]:
        trials: list[optuna.trial.FrozenTrial] = self.storage.get_all_trials(self.study_id, deepcopy=False)
        return trials

    # ------------------------------------------------------------------ stopping
    def _stop_all(self) -> None:
        """Ctrl-C: collect trials that just finished, stop the others and record them as interrupted."""
        flights = list(self.inflight.values())
        ended = self.executor.stop(flights, INTERRUPTED)
        with self.opened.lock:
            for flight, outcome in ended:
                self.inflight.pop(flight.number, None)
                try:
                    self._tell(flight.trial, outcome, flight)
                except Exception as exc:  # keep recording the others
                    log.error("could not record trial %d: %s", flight.number, exc)
        log.warning("interrupted: %d running trials stopped and recorded; run the same command to resume", len(flights))

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.settings.heartbeat_interval:
            return
        self._last_heartbeat = now
        self.me.heartbeat = time.time()
        self.storage.set_study_system_attr(self.study_id, RUNNER_PREFIX + self.me.runner_id, self.me.to_attr())

    def _close(self) -> None:
        """Whatever happened: no trial process of this runner left behind, the runner marked as exited."""
        try:
            self.executor.close()
            self.me.exited = True
            self._heartbeat(force=True)
        except Exception as exc:  # the storage may be what failed
            log.warning("could not mark this runner as exited: %s", exc)
        finally:
            self.opened.lock.close()
            self.wakeup.close()

    def _finish_run(self) -> OptimizeResult:
        from core.hpo.report import write_report

        self.counts = Counts.of(self.study, self._all_trials())
        try:
            write_report(self.study, self.run_dir, plots=self.settings.plots and not self.interrupted)
        except OSError as exc:
            raise UserError(f"cannot write the run directory: {exc}", where=str(self.run_dir)) from None
        line = summary(self.settings.study_name, self.counts, self.run_dir)
        log.info("%s", line)
        if self.interrupted:
            raise KeyboardInterrupt
        c = self.counts
        return OptimizeResult(
            self.study, self.run_dir, c.complete, c.pruned, c.failed, self.settings.n_trials, False, line
        )

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        import optuna

        from core.config import instantiate, save_run_config

        s = self.settings
        if self.objective is None and s.command is None:
            self.objective = instantiate(s.cfg.get("objective"))
            if not callable(self.objective):
                raise ConfigError("objective must build a callable(trial)", where="objective", hint="_partial_: true")
        if self.objective is not None and s.command is not None:
            raise ConfigError("set either command or objective, not both", where="config")
        if s.command is not None:
            unknown = unknown_placeholders(s.command, [p.name for p in s.space])
            if unknown:
                log.warning("note: {%s} in the command names no parameter; it stays as written", unknown[0])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.opened: OpenedStorage = open_storage(s.storage, self.run_dir, s.study_name)
        save_run_config(s.cfg, self.run_dir)
        if not self.opened.lock.shared:
            log.warning(
                "note: a %s storage has no cross-process lock here: run one runner on it "
                "(journal files, SQLite and PostgreSQL allow several)",
                self.opened.kind,
            )
        self.study = self._create_study()
        self.storage = self.opened.storage
        self.study_id = self.study._study_id
        self.executor = self._make_executor()

    def _create_study(self) -> optuna.Study:
        import optuna

        from core.config import instantiate
        from core.hpo.sampling import make_sampler

        s = self.settings
        pruner = instantiate(s.cfg.study.pruner) if s.cfg.study.get("pruner") else None
        try:
            study = optuna.create_study(
                storage=self.opened.storage,
                study_name=s.study_name,
                directions=[d for d in s.directions if d in ("minimize", "maximize")],  # type: ignore[misc]
                sampler=optuna.samplers.RandomSampler(),  # replaced below, once this runner's seed is known
                pruner=pruner,
                load_if_exists=s.load_if_exists,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise UserError(
                f"study {s.study_name!r} exists in the storage",
                where=self.opened.location,
                hint="set study.load_if_exists=true to resume it, or pick another study.name",
            ) from None
        existing = [d.name.lower() for d in study.directions]
        if existing != s.directions:
            raise ConfigError(
                f"the stored study optimizes {existing}, the config says {s.directions}",
                where="study.directions",
                hint="use another study.name for a different problem",
            )
        if s.metric_names and study.metric_names != s.metric_names:
            with quiet_optuna_warnings():
                study.set_metric_names(s.metric_names)
        with self.opened.lock:  # the runners of a study count themselves: each gets a seed of its own
            ordinal = len(runner_records(study._storage.get_study_system_attrs(study._study_id)))
            self.me.heartbeat = time.time()
            study._storage.set_study_system_attr(study._study_id, RUNNER_PREFIX + self.me.runner_id, self.me.to_attr())
        sampler = make_sampler(s, ordinal)
        if sampler is not None:
            study.sampler = sampler
        else:
            study.sampler = optuna.samplers.TPESampler()
        return study

    def _make_executor(self) -> TrialExecutor:
        if self.objective is not None:
            return ThreadExecutor(
                self.objective, len(self.settings.directions), self.settings.timeout_per_trial, self.wakeup
            )
        from core.hpo.job_executor import JobExecutor

        return JobExecutor(self.settings, self.run_dir, self.wakeup)
