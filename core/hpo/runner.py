"""The study runner: an asynchronous ask/tell loop over trials that are commands (jobs of any core.jobs backend)
or Python callables, safe to run as several processes on one storage, and to kill at any moment.

The loop, each round:

1. one ``backend.status`` query for all of this runner's command trials; finished ones are read and told,
   running ones have their new intermediate values (``report_file``) fed to the pruner and are stopped if pruned
   or past ``timeout_per_trial``;
2. the runner's heartbeat is refreshed in the storage every ``heartbeat_interval`` seconds;
3. when a slot is free (or every second), under the storage's :class:`~core.hpo.storage.BudgetLock`: RUNNING
   trials of dead runners are taken over (a job still running is adopted, a finished one is collected, a vanished
   one FAILs as lost and is re-queued), the budget is counted, and new trials are asked for the free slots.

The budget (``n_trials``) counts COMPLETE, PRUNED and RUNNING trials and FAIL trials that are final; a FAIL that
was retried, or whose runner died or was interrupted, is marked superseded and does not count.

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

import contextlib
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from core.errors import ConfigError, UserError
from core.hpo.command import render_command, unknown_placeholders
from core.hpo.liveness import RUNNER_KEY, RUNNER_PREFIX, RunnerRecord, runner_records
from core.hpo.params import distributions, suggest
from core.hpo.report import JOB_KEY
from core.hpo.results import ReportTail, ResultError, TrialResult, log_tail, parse_result_text, read_result
from core.hpo.settings import HpoSettings, load_hpo_config
from core.hpo.storage import OpenedStorage, open_storage

if TYPE_CHECKING:
    import optuna

    from core.jobs import Backend, JobHandle, JobStatus

SUPERSEDED_KEY = "kakehashi:superseded"  # trial system attr: this FAIL does not count (retried or lost)
ENQUEUED_KEY = "kakehashi:enqueued"  # study system attr: the config's initial points were enqueued
SYNC_INTERVAL = 1.0  # seconds between budget/liveness checks when no slot was freed

Objective = Callable[["optuna.Trial"], Any]


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
class _InFlight:
    trial: optuna.Trial
    started: float  # monotonic time it started running (submission until a backend reports RUNNING)
    trial_dir: Path
    handle: JobHandle | None = None
    report: ReportTail | None = None
    reported_steps: set[int] = field(default_factory=set)
    running_seen: bool = False
    thread: threading.Thread | None = None
    outcome: list[Outcome] = field(default_factory=list)  # filled by a callable's thread

    @property
    def number(self) -> int:
        return int(self.trial.number)


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
        self.inflight: dict[int, _InFlight] = {}
        self._pending: list[tuple[_InFlight, Outcome]] = []
        self.me = RunnerRecord.current()
        self.run_dir = settings.run_dir.resolve()
        self.interrupted = False
        self._last_sync = 0.0
        self._last_heartbeat = 0.0
        self._slot_freed = True
        self._done_counts: tuple[int, int, int, int] = (0, 0, 0, 0)  # complete, pruned, failed, running (study)
        self._budget_state: tuple[int, int, int] = (0, 0, 0)  # used, final, running: at the last sync
        self._best: str = "-"

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        import optuna

        from core.config import instantiate, save_run_config

        s = self.settings
        if self.objective is None and s.command is None:
            node = s.cfg.get("objective")
            self.objective = instantiate(node)
            if not callable(self.objective):
                raise ConfigError("objective must build a callable(trial)", where="objective", hint="_partial_: true")
        if self.objective is not None and s.command is not None:
            raise ConfigError("set either command or objective, not both", where="config")
        if s.command is not None:
            unknown = unknown_placeholders(s.command, [p.name for p in s.space])
            if unknown:
                self._say(f"[yellow]note:[/] {{{unknown[0]}}} in the command names no parameter; it stays as written")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        save_run_config(s.cfg, self.run_dir)
        self.opened: OpenedStorage = open_storage(s.storage, self.run_dir, s.study_name)
        if not self.opened.lock.shared:
            self._say(
                f"[yellow]note:[/] a {self.opened.kind} storage has no cross-process lock here: "
                "run one runner on it (journal files, SQLite and PostgreSQL allow several)"
            )
        sampler = self._make_sampler()
        pruner = instantiate(s.cfg.study.pruner) if s.cfg.study.get("pruner") else None
        try:
            self.study = optuna.create_study(
                storage=self.opened.storage,
                study_name=s.study_name,
                directions=[d for d in s.directions if d in ("minimize", "maximize")],  # type: ignore[misc]
                sampler=sampler,
                pruner=pruner,
                load_if_exists=s.load_if_exists,
            )
        except optuna.exceptions.DuplicatedStudyError:
            raise UserError(
                f"study {s.study_name!r} exists in the storage",
                where=self.opened.location,
                hint="set study.load_if_exists=true to resume it, or pick another study.name",
            ) from None
        existing = [d.name.lower() for d in self.study.directions]
        if existing != s.directions:
            raise ConfigError(
                f"the stored study optimizes {existing}, the config says {s.directions}",
                where="study.directions",
                hint="use another study.name for a different problem",
            )
        if s.metric_names and self.study.metric_names != s.metric_names:
            with _quiet_optuna_warnings():
                self.study.set_metric_names(s.metric_names)
        self.storage = self.opened.storage
        self.study_id = self.study._study_id
        self.backend: Backend | None = None
        if s.command is not None:
            self.backend = _make_backend(s)

    # ------------------------------------------------------------------ the loop
    def _make_sampler(self) -> Any:
        """The configured sampler; one that takes a ``search_space`` (NelderMeadSampler) gets the config's params,
        so it need not spend trials discovering them."""
        import inspect

        from core.config import instantiate, locate

        node = self.settings.cfg.study.get("sampler")
        if not node:
            return None
        target = node.get("_target_")
        takes_space = False
        if isinstance(target, str) and "search_space" not in node:
            with contextlib.suppress(ImportError, AttributeError, TypeError, ValueError):
                takes_space = "search_space" in inspect.signature(locate(target)).parameters
        if takes_space:
            space = distributions(self.settings.space)
            if space:
                return instantiate(node, search_space=space)
        return instantiate(node)

    def run(self) -> OptimizeResult:
        self._setup()
        previous = _install_sigterm()
        try:
            with self._progress() as update:
                try:
                    self._heartbeat(force=True)
                    while True:
                        busy = self._poll()
                        self._flush()  # record outcomes before refilling: the next ask sees every finished trial
                        self._heartbeat()
                        if self._slot_freed or time.monotonic() - self._last_sync >= SYNC_INTERVAL:
                            busy |= self._sync_and_fill()
                        self._flush()
                        update()
                        if self._finished():
                            break
                        if not busy:
                            time.sleep(self.settings.poll_interval)
                except KeyboardInterrupt:
                    self.interrupted = True
                    with _ignoring_signals():
                        self._stop_all()
                    update()
        finally:
            _restore_sigterm(previous)
            with contextlib.suppress(Exception):
                self._flush()  # e.g. a submission that failed before a UserError stopped the study
            with contextlib.suppress(Exception):
                self._mark_exited()
            self.opened.lock.close()
        self._write_outputs()
        if self.interrupted:
            raise KeyboardInterrupt
        complete, pruned, failed, _ = self._done_counts
        return OptimizeResult(
            self.study, self.run_dir, complete, pruned, failed, self.settings.n_trials, interrupted=self.interrupted
        )

    def _finished(self) -> bool:
        """Nothing of this runner in flight, and the budget spent (by finished trials, with wait_for_others)."""
        if self.inflight or self._slot_freed or self._pending:
            return False
        used, final, running = self._budget_state
        if used < self.settings.n_trials:
            return False
        return not self.settings.wait_for_others or final >= self.settings.n_trials or running == 0

    # ------------------------------------------------------------------ polling own trials
    def _poll(self) -> bool:
        """Check every own trial once; True if something finished."""
        progressed = False
        commands = [f for f in self.inflight.values() if f.handle is not None]
        if commands:
            assert self.backend is not None
            statuses = self.backend.status([f.handle for f in commands if f.handle is not None])
            for flight, status in zip(commands, statuses, strict=True):
                progressed |= self._poll_command(flight, status)
        for flight in [f for f in self.inflight.values() if f.thread is not None]:
            progressed |= self._poll_callable(flight)
        return progressed

    def _poll_command(self, flight: _InFlight, status: JobStatus) -> bool:
        from core.jobs import JobState

        if not flight.running_seen and status.state is not JobState.PENDING:
            flight.running_seen = True
            flight.started = time.monotonic()
        if status.state.finished:
            self._feed_reports(flight)
            self._finish(flight, self._command_outcome(flight, status))
            return True
        if status.state is JobState.RUNNING and self._feed_reports(flight):
            assert self.backend is not None and flight.handle is not None
            self.backend.cancel(flight.handle)
            self._finish(flight, float(max(flight.reported_steps)))
            return True
        if self._timed_out(flight):
            assert self.backend is not None and flight.handle is not None
            self.backend.cancel(flight.handle)
            limit = self.settings.timeout_per_trial
            self._finish(flight, Failure(f"timeout: still running after {limit:g} s", log_tail=_tail(flight)))
            return True
        return False

    def _poll_callable(self, flight: _InFlight) -> bool:
        if flight.outcome:
            self._finish(flight, flight.outcome[0])
            return True
        if self._timed_out(flight):
            limit = self.settings.timeout_per_trial
            self._finish(flight, Failure(f"timeout after {limit:g} s (the thread could not be stopped)"))
            return True
        return False

    def _timed_out(self, flight: _InFlight) -> bool:
        limit = self.settings.timeout_per_trial
        started = flight.running_seen or flight.thread is not None
        return limit is not None and started and time.monotonic() - flight.started > limit

    def _feed_reports(self, flight: _InFlight) -> bool:
        """Report new intermediate values to Optuna; True if the pruner says stop."""
        if flight.report is None or len(self.settings.directions) > 1:
            return False
        new = [(step, value) for step, value in flight.report.read() if step not in flight.reported_steps]
        if not new:
            return False
        for step, value in new:
            flight.trial.report(value, step)
            flight.reported_steps.add(step)
        return bool(flight.trial.should_prune())

    def _command_outcome(self, flight: _InFlight, status: JobStatus) -> Outcome:
        from core.jobs import JobState

        n_objectives = len(self.settings.directions)
        out_file = flight.trial_dir / "result.json"
        log_path = flight.handle.log_paths[0] if flight.handle is not None else None
        if status.state is JobState.COMPLETED:
            try:
                return read_result(out_file, log_path, n_objectives)
            except ResultError as exc:
                return Failure(f"bad result: {exc}", exit_code=0, log_tail=_tail(flight))
        if status.state is JobState.LOST:
            return Failure(f"job lost: {status.reason}", log_tail=_tail(flight), lost=True)
        if status.state is JobState.CANCELLED:
            return Failure("job cancelled outside this runner", log_tail=_tail(flight), lost=True)
        what = "walltime exceeded" if status.state is JobState.TIMEOUT else f"exit code {status.exit_code}"
        reason = f"{what}: {status.reason}" if status.reason and status.reason not in what else what
        return Failure(reason, exit_code=status.exit_code, log_tail=_tail(flight))

    # ------------------------------------------------------------------ finishing a trial
    def _finish(self, flight: _InFlight, outcome: Outcome) -> None:
        """Free the trial's slot; its outcome is recorded by :meth:`_flush` before the slot is refilled, so the
        sampler's next ask sees it (a serial run then makes the same decisions as ``study.optimize``)."""
        self.inflight.pop(flight.number, None)
        self._pending.append((flight, outcome))
        self._slot_freed = True

    def _flush(self) -> None:
        """Record the outcomes of finished trials (under the budget lock: counting and retries stay consistent)."""
        if not self._pending:
            return
        with self.opened.lock:
            while self._pending:
                flight, outcome = self._pending.pop(0)
                self._record(flight.trial, outcome, flight)

    def _record(self, trial: optuna.Trial, outcome: Outcome, flight: _InFlight | None) -> None:
        from optuna.trial import TrialState

        frozen = self.storage.get_trial(trial._trial_id)
        owner = frozen.system_attrs.get(RUNNER_KEY)
        if frozen.state is not TrialState.RUNNING or owner != self.me.runner_id:
            where = f" (see {flight.trial_dir})" if flight is not None else ""
            self._say(
                f"[yellow]trial {trial.number} was taken over by runner {owner} while it ran here; "
                f"this runner's outcome is not recorded{where}[/]"
            )
            return
        tid = trial._trial_id
        if isinstance(outcome, TrialResult):
            for key, value in outcome.user_attrs.items():
                self.storage.set_trial_user_attr(tid, str(key), value)
            self.study.tell(trial, outcome.values)
            return
        if isinstance(outcome, float):
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        attempt = int(frozen.user_attrs.get("attempt", 0))
        retry = (outcome.lost and self.settings.retry_lost) or (
            not outcome.lost and attempt < self.settings.max_retries
        )
        self.storage.set_trial_user_attr(tid, "failure", outcome.reason)
        if outcome.exit_code is not None:
            self.storage.set_trial_user_attr(tid, "exit_code", outcome.exit_code)
        if outcome.log_tail:
            self.storage.set_trial_user_attr(tid, "log_tail", outcome.log_tail)
        if retry or outcome.lost:
            self.storage.set_trial_system_attr(tid, SUPERSEDED_KEY, True)
        self.study.tell(trial, state=TrialState.FAIL)
        if retry:
            attrs = {"retry_of": trial.number, "attempt": attempt + (0 if outcome.lost else 1)}
            with _quiet_optuna_warnings():
                self.study.enqueue_trial(dict(frozen.params), user_attrs=attrs, skip_if_exists=False)

    # ------------------------------------------------------------------ budget, liveness, asking
    def _all_trials(self) -> list[optuna.trial.FrozenTrial]:
        trials: list[optuna.trial.FrozenTrial] = self.storage.get_all_trials(self.study_id, deepcopy=False)
        return trials

    def _sync_and_fill(self) -> bool:
        self._last_sync = time.monotonic()
        self._slot_freed = False
        asked: list[optuna.Trial] = []
        with self.opened.lock:
            self._enqueue_initial_points()
            self._take_over_dead_runners()  # may adopt running jobs: they take slots of this runner
            trials = self._all_trials()
            self._budget_state = _budget(trials)
            self._update_counts(trials)
            used = self._budget_state[0]
            n_ask = min(self.settings.n_max_jobs - len(self.inflight), self.settings.n_trials - used)
            for _ in range(max(0, n_ask)):
                with _quiet_optuna_warnings():
                    trial = self.study.ask()
                self.storage.set_trial_system_attr(trial._trial_id, RUNNER_KEY, self.me.runner_id)
                asked.append(trial)
        for trial in asked:
            self._start(trial)
        return bool(asked)

    def _enqueue_initial_points(self) -> None:
        if not self.settings.enqueue:
            return
        if self.storage.get_study_system_attrs(self.study_id).get(ENQUEUED_KEY):
            return
        with _quiet_optuna_warnings():
            for point in self.settings.enqueue:
                self.study.enqueue_trial(point, user_attrs={"enqueued": True})
        self.storage.set_study_system_attr(self.study_id, ENQUEUED_KEY, True)

    def _take_over_dead_runners(self) -> None:
        from optuna.trial import TrialState

        trials = self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if not trials:
            return
        records = runner_records(self.storage.get_study_system_attrs(self.study_id))
        now = time.time()
        for frozen in trials:
            owner = frozen.system_attrs.get(RUNNER_KEY)
            if owner == self.me.runner_id:
                continue
            record = records.get(owner) if isinstance(owner, str) else None
            if record is None:  # not (yet) tagged: a runner that died inside ask, or a foreign Optuna process
                started = frozen.datetime_start.timestamp() if frozen.datetime_start else now
                if now - started <= self.settings.grace:
                    continue
            elif not record.is_dead(now, self.settings.grace, self.me):
                continue
            self._take_over(frozen, owner)

    def _take_over(self, frozen: optuna.trial.FrozenTrial, owner: Any) -> None:
        """A dead runner's RUNNING trial: adopt its job if it still runs, collect it if it finished, else FAIL."""
        import optuna

        self.storage.set_trial_system_attr(frozen._trial_id, RUNNER_KEY, self.me.runner_id)
        trial = optuna.Trial(self.study, frozen._trial_id)
        job = frozen.system_attrs.get(JOB_KEY)
        flight = self._adopt(trial, frozen, job) if isinstance(job, dict) else None
        if flight is None:
            self._say(f"trial {frozen.number}: its runner {owner} is gone; recorded as FAIL (lost)")
            self._record(trial, Failure(f"lost: runner {owner} died while it ran", lost=True), None)
            self._slot_freed = True
            return
        assert self.backend is not None and flight.handle is not None
        status = self.backend.status([flight.handle])[0]
        if status.state.finished:
            self._feed_reports(flight)
            self._record(trial, self._command_outcome(flight, status), flight)
            self._say(f"trial {frozen.number}: its runner {owner} is gone; collected its finished job")
        else:
            self.inflight[flight.number] = flight
            self._say(f"trial {frozen.number}: its runner {owner} is gone; adopted its running job")

    def _adopt(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial, job: dict[str, Any]) -> _InFlight | None:
        from core.jobs.state import load_handle

        if self.backend is None or job.get("backend") != self.backend.name:
            return None
        try:
            handle = load_handle(Path(job["state_dir"]))
        except (UserError, KeyError, OSError):
            return None
        started = frozen.datetime_start.timestamp() if frozen.datetime_start else time.time()
        trial_dir = Path(job.get("trial_dir", handle.log_paths[0].parent))
        flight = _InFlight(trial, time.monotonic() - (time.time() - started), trial_dir, handle=handle)
        flight.running_seen = True
        flight.report = ReportTail(trial_dir / "report.jsonl")
        flight.reported_steps = set(frozen.intermediate_values)
        return flight

    # ------------------------------------------------------------------ starting a trial
    def _start(self, trial: optuna.Trial) -> None:
        trial_dir = self.run_dir / "trials" / f"{trial.number:06d}"
        flight = _InFlight(trial, time.monotonic(), trial_dir)
        self.inflight[trial.number] = flight
        try:
            values = suggest(trial, self.settings.space)
        except Exception as exc:  # a parameter the sampler cannot fill: record it, do not stop the study
            self._finish(flight, Failure(f"suggest failed: {type(exc).__name__}: {exc}"))
            return
        trial_dir.mkdir(parents=True, exist_ok=True)
        if self.objective is not None:
            flight.thread = threading.Thread(
                target=_call_objective,
                args=(self.objective, trial, len(self.settings.directions), flight.outcome),
                name=f"trial-{trial.number}",
                daemon=True,
            )
            flight.thread.start()
            return
        self._submit(flight, values)

    def _submit(self, flight: _InFlight, values: dict[str, Any]) -> None:
        from core.jobs import JobSpec

        assert self.backend is not None and self.settings.command is not None
        trial_dir = flight.trial_dir
        files = {
            "trial_number": flight.number,
            "out_file": str(trial_dir / "result.json"),
            "report_file": str(trial_dir / "report.jsonl"),
            "trial_dir": str(trial_dir),
            "run_dir": str(self.run_dir),
        }
        for stale in ("result.json", "report.jsonl"):  # a trial number is used once, but be safe on reruns
            (trial_dir / stale).unlink(missing_ok=True)
        argv = render_command(self.settings.command, {**values, **files, "python": sys.executable})
        env = {f"KAKEHASHI_{k.upper()}": str(v) for k, v in files.items()}
        env["KAKEHASHI_PARAMS"] = json.dumps(values, default=str)
        spec_fields = dict(self.settings.job_spec)
        spec_env = {str(k): str(v) for k, v in (spec_fields.pop("env", None) or {}).items()}
        try:
            spec = JobSpec(
                command=argv,
                name=f"{self.settings.study_name}-{flight.number}",
                log_path=trial_dir / "log.txt",
                cwd=self.settings.cwd.resolve() if self.settings.cwd else Path.cwd(),
                env={**spec_env, **env},
                **spec_fields,
            )
        except TypeError as exc:
            self._finish(flight, Failure(f"bad jobs.spec: {exc}", lost=True))
            raise ConfigError(f"bad job spec: {exc}", where="jobs.spec", hint="see core.jobs.JobSpec") from None
        try:
            flight.handle = self.backend.submit(spec)
        except UserError as exc:
            self._finish(flight, Failure(f"submission failed: {exc.line()}", lost=True))
            raise
        flight.report = ReportTail(trial_dir / "report.jsonl")
        job = {
            "backend": self.backend.name,
            "job_id": flight.handle.job_id,
            "log_path": str(flight.handle.log_paths[0]),
            "state_dir": str(flight.handle.state_dir),
            "trial_dir": str(trial_dir),
        }
        self.storage.set_trial_system_attr(flight.trial._trial_id, JOB_KEY, job)  # one write: each costs an fsync

    # ------------------------------------------------------------------ stopping
    def _stop_all(self) -> None:
        """Ctrl-C: collect trials that just finished, stop the others and record them as interrupted."""
        flights = list(self.inflight.values())  # trials already in self._pending keep their outcome
        commands = [f for f in flights if f.handle is not None]
        statuses: dict[int, JobStatus] = {}
        if commands and self.backend is not None:
            with contextlib.suppress(Exception):
                for flight, status in zip(
                    commands, self.backend.status([f.handle for f in commands if f.handle]), strict=True
                ):
                    statuses[flight.number] = status
        for flight in flights:
            final = statuses.get(flight.number)
            if final is not None and final.state.finished:
                outcome = self._command_outcome(flight, final)
            else:
                if flight.handle is not None and self.backend is not None:
                    with contextlib.suppress(Exception):
                        self.backend.cancel(flight.handle)
                outcome = Failure("interrupted: the runner was stopped (Ctrl-C or SIGTERM)", lost=True)
            self._finish(flight, outcome)
        while self._pending:
            flight, outcome = self._pending[0]
            try:
                self._flush()
            except Exception as exc:  # keep recording the others
                self._pending.pop(0)
                self._say(f"[red]could not record trial {flight.number}: {exc}[/]")
        self._say(f"interrupted: {len(flights)} running trials stopped and recorded; run the same command to resume")

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.settings.heartbeat_interval:
            return
        self._last_heartbeat = now
        self.me.heartbeat = time.time()
        self.storage.set_study_system_attr(self.study_id, RUNNER_PREFIX + self.me.runner_id, self.me.to_attr())

    def _mark_exited(self) -> None:
        self.me.exited = True
        self._heartbeat(force=True)

    # ------------------------------------------------------------------ output
    def _update_counts(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        from optuna.trial import TrialState

        states = [t.state for t in trials]
        failed = sum(1 for t in trials if t.state is TrialState.FAIL)
        self._done_counts = (
            states.count(TrialState.COMPLETE),
            states.count(TrialState.PRUNED),
            failed,
            states.count(TrialState.RUNNING),
        )
        self._best = _best_text(self.study, trials)

    @contextlib.contextmanager
    def _progress(self) -> Iterator[Callable[[], None]]:
        if not self.show_progress:
            yield lambda: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from core.hpo.report import console

        columns = (
            TextColumn(f"[bold]{self.settings.study_name}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console(), transient=False) as bar:
            task = bar.add_task("trials", total=self.settings.n_trials, detail="")

            def update() -> None:
                complete, pruned, failed, running = self._done_counts
                final = complete + pruned + failed
                detail = f"running {running} · failed {failed} · pruned {pruned} · best {self._best}"
                bar.update(task, completed=min(final, self.settings.n_trials), detail=detail)

            yield update

    def _write_outputs(self) -> None:
        from core.hpo.report import write_report

        self._update_counts(self._all_trials())
        try:
            write_report(self.study, self.run_dir, plots=self.settings.plots and not self.interrupted)
        except OSError as exc:
            raise UserError(f"cannot write the run directory: {exc}", where=str(self.run_dir)) from None
        if self.show_progress:
            complete, pruned, failed, _ = self._done_counts
            self._say(
                f"{self.settings.study_name}: {complete} complete, {pruned} pruned, {failed} failed; "
                f"best {self._best}; see {self.run_dir}"
            )

    def _say(self, text: str) -> None:
        from core.hpo.report import console

        console().print(text)


# ---------------------------------------------------------------------- helpers


def _make_backend(settings: HpoSettings) -> Backend:
    """The trials' job backend. The local backend runs ``n_max_jobs`` processes at once unless told otherwise."""
    from omegaconf import OmegaConf

    from core.config import load_config
    from core.jobs import get_backend
    from core.jobs.template import bundled_config

    node = settings.backend_config
    if node is None:
        cfg = load_config(bundled_config(settings.backend))
    elif isinstance(node, DictConfig):
        cfg = node
    else:
        cfg = load_config(str(node))
    if settings.backend == "local" and cfg.get("max_parallel") is None:
        merged = OmegaConf.merge(cfg, {"max_parallel": settings.n_max_jobs})
        assert isinstance(merged, DictConfig)
        cfg = merged
    return get_backend(settings.backend, cfg)


def _budget(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int, int]:
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


def _best_text(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> str:
    from optuna.trial import TrialState

    done = [t for t in trials if t.state is TrialState.COMPLETE and t.values]
    if not done:
        return "-"
    if len(study.directions) > 1:
        return f"{len(study.best_trials)} on the Pareto front"
    sign = -1.0 if study.directions[0].name == "MAXIMIZE" else 1.0
    best = min(done, key=lambda t: sign * t.values[0])
    return f"{best.values[0]:.6g} (trial {best.number})"


def _tail(flight: _InFlight) -> str:
    return log_tail(flight.handle.log_paths[0] if flight.handle is not None else None)


def _call_objective(objective: Objective, trial: optuna.Trial, n_objectives: int, out: list[Outcome]) -> None:
    """Run a Python objective in a thread and leave its outcome in ``out``."""
    import optuna

    try:
        value = objective(trial)
        if isinstance(value, dict | str):
            out.append(parse_result_text(json.dumps(value) if isinstance(value, dict) else value, n_objectives))
        else:
            numbers = list(value) if isinstance(value, list | tuple) else [value]
            out.append(parse_result_text(json.dumps([float(v) for v in numbers]), n_objectives))
    except optuna.TrialPruned:
        steps = trial.storage.get_trial(trial._trial_id).intermediate_values
        out.append(float(max(steps)) if steps else 0.0)
    except ResultError as exc:
        out.append(Failure(f"bad result: {exc}"))
    except (TypeError, ValueError) as exc:
        out.append(Failure(f"bad result: {type(exc).__name__}: {exc}"))
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc))[-2000:]
        out.append(Failure(f"{type(exc).__name__}: {exc}", log_tail=tb))


def _install_sigterm() -> Any:
    """SIGTERM (scancel, qdel, kill) stops the runner like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _ignoring_signals() -> Iterator[None]:
    """While recording an interruption, a second Ctrl-C does not cut the records short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for s, handler in zip((signal.SIGINT, signal.SIGTERM), previous, strict=True):
            signal.signal(s, handler)


@contextlib.contextmanager
def _quiet_optuna_warnings() -> Iterator[None]:
    """``enqueue_trial`` and ``ask`` warn that they are experimental / that fixed params exist; not news here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


__all__ = ["Failure", "OptimizeResult", "StudyRunner", "optimize"]
