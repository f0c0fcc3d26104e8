"""Trials as commands: each one a job of a core.jobs backend (local processes, Slurm, SGE, PBS).

Local jobs wake the runner when they end: the executor holds a pidfd of each job's process (Linux ≥ 5.3) and the
runner's :class:`~core.hpo.wakeup.Wakeup` waits on them with ``select``, so a finished trial is collected at once
and nothing spins. Scheduler backends are asked with one ``status`` query for all of this runner's jobs per poll,
at intervals that start short after a change and back off to ``jobs.poll_interval``.

A trial that is stopped (pruned, past ``timeout_per_trial``, interrupted) has its whole process group sent SIGTERM
and, after ``jobs.kill_grace`` seconds, SIGKILL; the failure reason says which ended it. When the runner exits,
any process group of its trials that is still alive is ended the same way.

Example:
    >>> import optuna, tempfile, time
    >>> from pathlib import Path
    >>> from core.hpo.settings import HpoSettings, load_hpo_config
    >>> from core.hpo.wakeup import Wakeup
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> cfg = load_hpo_config({"params": {"x": [0, 1]}, "command": ["sh", "-c", "echo 0.25 > $0", "{out_file}"]})
    >>> executor = JobExecutor(HpoSettings.from_config(cfg, run_dir), run_dir, Wakeup())
    >>> study = optuna.create_study()
    >>> flight = Flight(study.ask(), run_dir / "trials" / "000000", time.monotonic())
    >>> flight.trial_dir.mkdir(parents=True)
    >>> executor.launch(flight, {"x": 0.5}, owner="me")
    >>> ended = []
    >>> while not ended:
    ...     executor.wait(5.0)
    ...     ended = executor.poll([flight])
    >>> ended[0][1]
    TrialResult(values=[0.25], user_attrs={})
    >>> executor.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from core.errors import ConfigError, UserError
from core.hpo.command import render_command
from core.hpo.executor import Ended, next_deadline, timed_out
from core.hpo.outcomes import Failure, Flight, Outcome
from core.hpo.report import JOB_KEY
from core.hpo.results import ReportTail, ResultError, log_tail, read_result
from core.hpo.settings import HpoSettings
from core.hpo.wakeup import Wakeup
from core.jobs.processes import SIGKILL, end_groups, open_pidfd

if TYPE_CHECKING:
    import optuna

    from core.jobs import Backend, JobHandle, JobStatus

log = logging.getLogger(__name__)
REPORT_INTERVAL = 0.1  # seconds between reads of running trials' report files (intermediate values for pruners)
FIRST_QUERY = 1.0  # seconds: a scheduler's first poll after a change; then doubled up to jobs.poll_interval


class JobExecutor:
    """Command trials as jobs of ``settings.backend``. See the module docstring."""

    def __init__(self, settings: HpoSettings, run_dir: Path, wakeup: Wakeup) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.wakeup = wakeup
        self.backend = make_backend(settings)
        self.event_driven = self.backend.name == "local"  # its jobs are processes of this host
        self._flights: dict[int, Flight] = {}
        self._pidfds: dict[int, int] = {}
        self._groups: set[int] = set()  # process groups of local jobs this runner started or adopted
        self._interval = min(FIRST_QUERY, settings.poll_interval)
        self._next_query = 0.0
        self._to_cancel: list[JobHandle] = []  # stopped jobs whose backend is told after their outcome is recorded
        command = settings.command or []
        self._reports_expected = len(settings.directions) == 1 and any("{report_file}" in a for a in command)

    # ------------------------------------------------------------------ launching
    def launch(self, flight: Flight, values: dict[str, Any], owner: str) -> None:
        from core.jobs import JobSpec

        assert self.settings.command is not None
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
        name = self.settings.study_name.replace("/", "-")  # bridge studies are named <scenario>/<role>
        try:
            spec = JobSpec(
                command=argv,
                name=f"{name}-{flight.number}",
                log_path=trial_dir / "log.txt",
                cwd=self.settings.cwd.resolve() if self.settings.cwd else Path.cwd(),
                env={**spec_env, **env},
                **spec_fields,
            )
        except TypeError as exc:
            raise ConfigError(f"bad job spec: {exc}", where="jobs.spec", hint="see core.jobs.JobSpec") from None
        handle = self.backend.submit(spec)
        self._follow(flight, handle, trial_dir)
        job = {
            "backend": self.backend.name,
            "job_id": handle.job_id,
            "log_path": str(handle.log_paths[0]),
            "state_dir": str(handle.state_dir),
            "trial_dir": str(trial_dir),
            "runner": owner,  # the trial's owner tag, in the same write (each journal write costs an fsync)
        }
        flight.trial.storage.set_trial_system_attr(flight.trial._trial_id, JOB_KEY, job)

    def _follow(self, flight: Flight, handle: JobHandle, trial_dir: Path) -> None:
        flight.task = handle
        flight.report = ReportTail(trial_dir / "report.jsonl")
        self._flights[flight.number] = flight
        self._interval = min(FIRST_QUERY, self.settings.poll_interval)
        self._next_query = min(self._next_query, time.monotonic() + self._interval)
        self._watch(flight)

    def _watch(self, flight: Flight) -> None:
        """Open a pidfd on a local job's process (once the backend has started it)."""
        if not self.event_driven or flight.number in self._pidfds:
            return
        found = _job_process(flight.task)
        if found is None:
            return
        pid, start = found
        self._groups.add(pid)
        fd = open_pidfd(pid)
        if fd is None:
            return
        from core.jobs.state import pid_alive

        if not pid_alive(pid, start):  # it ended before the pidfd opened (or the pid is another process's now)
            os.close(fd)
            self.wakeup.set()
            return
        self._pidfds[flight.number] = fd

    # ------------------------------------------------------------------ polling and waiting
    def poll(self, flights: Sequence[Flight]) -> Ended:
        if not flights:
            return []
        now = time.monotonic()
        if not self.event_driven and now < self._next_query and next_deadline(flights, self._timeout, now) > 0:
            return []
        statuses = self.backend.status([f.task for f in flights])
        ended: Ended = []
        for flight, status in zip(flights, statuses, strict=True):
            outcome = self._check(flight, status)
            if outcome is not None:
                ended.append((flight, outcome))
        for flight, _ in ended:
            self._forget(flight)
        self._interval = FIRST_QUERY if ended else min(self._interval * 2, self.settings.poll_interval)
        self._next_query = time.monotonic() + min(self._interval, self.settings.poll_interval)
        return ended

    def _check(self, flight: Flight, status: JobStatus) -> Outcome | None:
        from core.jobs import JobState

        if not flight.running and status.state is not JobState.PENDING:
            flight.running = True
            flight.started = time.monotonic()
            self._watch(flight)
        if status.state.finished:
            self._feed_reports(flight)
            return self._outcome(flight, status)
        if status.state is JobState.RUNNING and self._feed_reports(flight):
            self._end([flight])
            return float(max(flight.reported_steps))
        if timed_out(flight, self._timeout, time.monotonic()):
            how = self._end([flight])[flight.number]
            return Failure(f"timeout: still running after {self._timeout:g} s; {how}", log_tail=_tail(flight))
        return None

    @property
    def _timeout(self) -> float | None:
        return self.settings.timeout_per_trial

    def wait(self, timeout: float) -> None:
        self._cancel_stopped()
        flights = list(self._flights.values())
        now = time.monotonic()
        timeout = min(timeout, next_deadline(flights, self._timeout, now))
        if not self.event_driven:
            self.wakeup.wait(min(timeout, max(0.0, self._next_query - now)))
            return
        for flight in flights:
            self._watch(flight)
        if any(f.number not in self._pidfds for f in flights):  # queued by the backend, or no pidfd here
            timeout = min(timeout, 0.05)
        if self._reports_expected or any(f.report and f.report.path.exists() for f in flights):
            timeout = min(timeout, REPORT_INTERVAL)
        self.wakeup.wait(timeout, self._pidfds.values())

    def _feed_reports(self, flight: Flight) -> bool:
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

    def _outcome(self, flight: Flight, status: JobStatus) -> Outcome:
        from core.jobs import JobState

        log_path = flight.task.log_paths[0]
        if status.state is JobState.COMPLETED:
            try:
                return read_result(flight.trial_dir / "result.json", log_path, len(self.settings.directions))
            except ResultError as exc:
                return Failure(f"bad result: {exc}", exit_code=0, log_tail=_tail(flight))
        if status.state is JobState.LOST:
            return Failure(f"job lost: {status.reason}", log_tail=_tail(flight), lost=True)
        if status.state is JobState.CANCELLED:
            return Failure("job cancelled outside this runner", log_tail=_tail(flight), lost=True)
        what = "walltime exceeded" if status.state is JobState.TIMEOUT else f"exit code {status.exit_code}"
        reason = f"{what}: {status.reason}" if status.reason and status.reason not in what else what
        return Failure(reason, exit_code=status.exit_code, log_tail=_tail(flight))

    # ------------------------------------------------------------------ adopting, stopping
    def adopt(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial) -> Flight | None:
        from core.jobs.state import load_handle

        job = frozen.system_attrs.get(JOB_KEY)
        if not isinstance(job, dict) or job.get("backend") != self.backend.name:
            return None
        try:
            handle = load_handle(Path(job["state_dir"]))
        except (UserError, KeyError, OSError):
            return None
        started = frozen.datetime_start.timestamp() if frozen.datetime_start else time.time()
        trial_dir = Path(job.get("trial_dir", handle.log_paths[0].parent))
        flight = Flight(trial, trial_dir, time.monotonic() - (time.time() - started), running=True)
        flight.reported_steps = set(frozen.intermediate_values)
        self._follow(flight, handle, trial_dir)
        self._next_query = 0.0  # look at it at once: it may have finished
        return flight

    def stop(self, flights: Sequence[Flight], reason: str) -> Ended:
        statuses: list[JobStatus | None] = [None] * len(flights)
        with contextlib.suppress(Exception):  # a scheduler that does not answer: stop them all
            statuses = list(self.backend.status([f.task for f in flights]))
        ended: Ended = []
        running = []
        for flight, status in zip(flights, statuses, strict=True):
            if status is not None and status.state.finished:
                ended.append((flight, self._outcome(flight, status)))
            else:
                running.append(flight)
        how = self._end(running)
        ended += [(f, Failure(f"{reason}; {how[f.number]}", lost=True)) for f in running]
        for flight, _ in ended:
            self._forget(flight)
        return ended

    def _end(self, flights: Sequence[Flight]) -> dict[int, str]:
        """Stop jobs: a local job's process group gets SIGTERM, then SIGKILL after the grace period."""
        grace = self.settings.kill_grace
        groups = {f.number: p for f in flights if (p := _job_pid(f.task)) is not None} if self.event_driven else {}
        ended_by = end_groups(groups.values(), grace)
        how = {}
        for flight in flights:
            signal_name = ended_by.get(groups.get(flight.number, -1))
            self._to_cancel.append(flight.task)
            if signal_name == SIGKILL:
                how[flight.number] = f"killed with SIGKILL after a {grace:g} s grace period"
            elif signal_name is not None:
                how[flight.number] = "stopped with SIGTERM"
            else:
                how[flight.number] = "job cancelled" if not self.event_driven else "stopped"
        return how

    def _cancel_stopped(self) -> None:
        """Tell the backend about the jobs stopped since the last call (a scheduler's cancel, a local job's state
        file: each may take a while, so it comes after the trials' outcomes were recorded)."""
        while self._to_cancel:
            handle = self._to_cancel.pop()
            try:
                self.backend.cancel(handle)
            except Exception as exc:  # the trial's outcome is recorded already; say it and go on
                log.warning("could not cancel job %s: %s", handle.job_id, exc)

    def _forget(self, flight: Flight) -> None:
        self._flights.pop(flight.number, None)
        fd = self._pidfds.pop(flight.number, None)
        if fd is not None:
            os.close(fd)
        pid = _job_pid(flight.task) if self.event_driven else None
        if pid is None:
            return
        from core.jobs.processes import group_alive, signal_group

        if group_alive(pid):  # the trial is over: so is anything it left running in its process group
            signal_group(pid, 15)  # (the group stays listed: what ignores SIGTERM is killed when the runner exits)
        else:
            self._groups.discard(pid)  # nothing left: the exit sweep need not look for it in /proc

    def close(self) -> None:
        """End the process groups of this runner's local trials that are still alive (SIGTERM, then SIGKILL)."""
        self._cancel_stopped()
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()
        if self._groups:
            how = end_groups(self._groups, self.settings.kill_grace)
            if how:
                log.info("ended %d leftover trial process group(s) on exit", len(how))


def make_backend(settings: HpoSettings) -> Backend:
    """The trials' job backend. The local backend runs ``n_max_jobs`` processes at once unless told otherwise, and
    ends a cancelled job with the study's ``jobs.kill_grace``."""
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
    if settings.backend == "local":  # n_max_jobs processes at once, and the study's grace for its own cancels
        extra: dict[str, Any] = {"kill_grace": settings.kill_grace}
        if cfg.get("max_parallel") is None:
            extra["max_parallel"] = settings.n_max_jobs
        merged = OmegaConf.merge(cfg, extra)
        assert isinstance(merged, DictConfig)
        cfg = merged
    return get_backend(settings.backend, cfg)


def _job_process(handle: JobHandle) -> tuple[int, str] | None:
    """(pid, start time) of a local job's wrapper process, from the pid file its backend writes at start."""
    try:
        text = (handle.state_dir / "0.pid").read_text(encoding="utf-8")
    except OSError:
        return None
    pid, _, start = text.partition(" ")
    return (int(pid), start.strip()) if pid.strip().isdigit() else None


def _job_pid(handle: JobHandle) -> int | None:
    found = _job_process(handle)
    return None if found is None else found[0]


def _tail(flight: Flight) -> str:
    return log_tail(flight.task.log_paths[0] if flight.task is not None else None)
