"""What the Slurm, SGE and PBS backends share: the job script, submission, and how a status is decided.

The job script is rendered from the backend's YAML template: scheduler directives (``#SBATCH``, ``#$``, ``#PBS``)
from ``directives``, ``array_directives`` and the mode's ``directives``; the site's ``setup`` lines; then a fixed
body that sets the array variables, sends output to the element's log, runs the mode's launcher and the command
(every argv element quoted with ``shlex.quote``) and writes the exit code atomically into the state directory.

A status combines one scheduler query for all handles with the exit files: an exit file decides between
COMPLETED and FAILED; the scheduler decides CANCELLED and TIMEOUT; a job that is neither in the queue nor left an
exit status is looked up in the accounting (``sacct``, ``qacct``, ``qstat -x``) and, failing that, reported LOST
once it has been missing for ``lost_after`` seconds.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import DependencyError, UserError
from core.files import write_atomic
from core.jobs.base import JobHandle, JobSpec, JobState, JobStatus, TaskStatus
from core.jobs.common import BackendBase
from core.jobs.state import (
    aggregate,
    is_cancelled,
    mark_cancelled,
    read_exit_codes,
    read_handle_record,
    save_handle,
    state_of_exit_code,
)
from core.jobs.template import BackendConfig, render_argv, render_lines, spec_fields

Key = tuple[str, int]  # (job id, array element)


@dataclass(frozen=True)
class SchedulerState:
    """What the scheduler says about one element: a state, and for final states an exit code and a reason."""

    state: JobState
    exit_code: int | None = None
    reason: str = ""


class ScriptBackend(BackendBase):
    """Base of the scheduler backends: subclasses parse ids and query the queue and the accounting."""

    name = ""
    directive_prefix = ""
    default_poll_interval = 2.0

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.lost_after = config.float("lost_after", 60.0)
        self._missing_since: dict[Key, float] = {}
        self._seen_queued: dict[Key, JobState] = {}  # state each element last had in the queue, as seen here
        self.queries = 0  # scheduler status queries made (the benchmark counts them)

    # ------------------------------------------------------------------ rendering
    def render(self, spec: JobSpec, n_array: int, state_dir: Path, log_path: Path) -> str:
        """The job script of ``spec``; arrays log to ``<stem>.<element><suffix>`` next to ``log_path``."""
        cfg, where = self.config, self.config.where
        fields = spec_fields(spec, cfg, n_array, state_dir)
        mode = cfg.mode(spec.mode)
        directives = render_lines(cfg.strings("directives"), fields, f"{where}:directives")
        if n_array > 1:
            directives += render_lines(cfg.strings("array_directives"), fields, f"{where}:array_directives")
        directives += render_lines(cfg.strings("directives", mode), fields, f"{where}:modes.{spec.mode}.directives")
        launcher = render_argv(cfg.strings("launcher", mode), fields, f"{where}:modes.{spec.mode}.launcher")
        element = cfg.get("element", {})
        variable, first = str(element.get("variable", "")), int(element.get("first", 0))
        # the submitter's variables the scheduler would not pass on (SGE and PBS start jobs with a bare PATH); set
        # before the site's setup lines, so that a `module load` there still extends them
        exported = {name: os.environ[name] for name in cfg.get("export_env", []) if name in os.environ}
        env = {**{str(k): str(v) for k, v in cfg.get("env", {}).items()}, **spec.env}
        q = shlex.quote
        lines = [f"#!{cfg.get('shell', '/bin/bash')}"]
        lines += [f"{self.directive_prefix} {d}" for d in directives]
        lines += [
            f"# rendered by kakehashi for job {q(spec.name)}",
            f"case ${{{variable}:-}} in ''|*[!0-9]*) KH_ELEMENT=0 ;; *) KH_ELEMENT=$(( {variable} - {first} )) ;; esac"
            if variable
            else "KH_ELEMENT=0",
            f"KH_STATE={q(str(state_dir))}",
            ': >"$KH_STATE/$KH_ELEMENT.started"',
            f"export TASK_INDEX=$(( KH_ELEMENT * {spec.n_tasks_per_proc} ))",
            f"export TASK_STEPSIZE={spec.n_tasks_per_proc} TASK_COUNT={spec.n_tasks}",
            f"export KAKEHASHI_JOB_ID=${{{cfg.get('job_id_variable', 'JOB_ID')}:-}}",
            "export KAKEHASHI_ARRAY_ELEMENT=$KH_ELEMENT",
        ]
        if n_array > 1:
            stem, suffix = log_path.parent / f"{log_path.stem}.", log_path.suffix
            lines.append(f'exec >{q(str(stem))}"$KH_ELEMENT"{q(suffix) if suffix else ""} 2>&1')
        else:
            lines.append(f"exec >{q(str(log_path))} 2>&1")
        lines += [f"export {k}={q(v)}" for k, v in exported.items()]
        lines += [str(line) for line in cfg.get("setup", [])]
        lines += [f"export {k}={q(v)}" for k, v in env.items()]
        lines.append(f"cd {q(str(spec.cwd or Path.cwd()))} || exit 1")
        lines.append(" ".join(q(arg) for arg in [*launcher, *spec.command]))
        lines += [
            "kh_rc=$?",
            'printf \'%s\\n\' "$kh_rc" >"$KH_STATE/$KH_ELEMENT.exit.tmp" && '
            'mv -f "$KH_STATE/$KH_ELEMENT.exit.tmp" "$KH_STATE/$KH_ELEMENT.exit"',
            'exit "$kh_rc"',
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ submit
    def submit(self, spec: JobSpec) -> JobHandle:
        layout = self.layout(spec)
        spec = replace(spec, cwd=layout.cwd)
        layout.log_path.parent.mkdir(parents=True, exist_ok=True)
        script = layout.state_dir / "job.sh"
        write_atomic(script, self.render(spec, layout.n_array, layout.state_dir, layout.log_path))
        script.chmod(0o755)
        job_id = self.parse_job_id(self._run_submit(script, layout.cwd), script)
        handle = JobHandle(self.name, job_id, spec, layout.n_array, layout.log_paths, layout.state_dir)
        save_handle(handle, {"backend_config": self.config.data})
        return handle

    def _run_submit(self, script: Path, cwd: Path) -> str:
        argv = [*self.config.strings("submit"), str(script)]
        result = self.run_tool(argv, cwd=cwd, check=False)
        if result.returncode != 0:
            message = (
                result.stderr.strip() or result.stdout.strip() or f"exit status {result.returncode}"
            ).splitlines()
            raise UserError(
                f"{argv[0]} rejected the job: {message[-1]}",
                where=str(script),
                hint=f"check the directives in {script}, or the site config {self.config.where}",
            )
        return result.stdout

    def run_tool(
        self, argv: Sequence[str], cwd: Path | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command; a missing one is a ``DependencyError``."""
        if shutil.which(argv[0]) is None:
            raise DependencyError(
                f"{argv[0]} not found: is {self.name} installed here?",
                where=self.config.where,
                hint=f"run on a {self.name} login node, put {argv[0]} on PATH, or use another backend",
            )
        try:
            result = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"{argv[0]} did not answer within {timeout:.0f} s", hint="is the scheduler up?") from None
        if check and result.returncode != 0:
            raise UserError(f"{' '.join(argv[:2])} failed: {result.stderr.strip()[:300]}", where=self.config.where)
        return result

    def parse_job_id(self, output: str, script: Path) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ status
    def query(self, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        """One scheduler query: the state of every element of ``handles`` the scheduler still knows."""
        raise NotImplementedError

    def _query_patiently(self, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        """``query``, retried a few times: a scheduler busy for a moment must not end a long ``wait``."""
        retries = int(self.config.get("query_retries", 3))
        for attempt in range(retries + 1):
            self.queries += 1
            try:
                return self.query(handles)
            except DependencyError:
                raise
            except UserError:
                if attempt == retries:
                    raise
                time.sleep(min(2.0**attempt, 10.0))
        raise AssertionError("unreachable")

    def accounting(self, missing: Sequence[tuple[JobHandle, int]]) -> dict[Key, SchedulerState]:
        """Final states of elements gone from the queue without an exit file (default: no accounting)."""
        return {}

    def status(self, handles: Sequence[JobHandle]) -> list[JobStatus]:
        queued = self._query_patiently(handles) if handles else {}
        decided: dict[Key, tuple[JobState, int | None, str]] = {}
        missing: list[tuple[JobHandle, int]] = []
        for handle in handles:
            codes = read_exit_codes(handle.state_dir)
            cancelled = is_cancelled(handle.state_dir)
            for element in range(handle.n_array):
                key = (handle.job_id, element)
                if key in queued:
                    self._seen_queued[key] = queued[key].state
                result = decide(queued.get(key), codes.get(element), cancelled)
                if result is None:
                    missing.append((handle, element))
                else:
                    decided[key] = result
        if missing:
            found = self.accounting(missing)
            now = time.time()
            for handle, element in missing:
                key = (handle.job_id, element)
                if key in found:
                    info = found[key]
                    decided[key] = (info.state, info.exit_code, info.reason)
                    continue
                # seen queued by this process: it just left, give the accounting lost_after to catch up;
                # never seen (another process asks): it has been missing since its submission at the latest
                first = now if key in self._seen_queued else _submitted_at(handle, now)
                since = self._missing_since.setdefault(key, first)
                started = (handle.state_dir / f"{element}.started").exists()
                if now - since >= self.lost_after and not started and self._seen_queued.get(key) is JobState.PENDING:
                    # a job deleted before it started leaves no accounting record (SGE, PBS): not lost, removed;
                    # one that began (its script left a mark) and vanished without an exit status is lost, even if
                    # this process only ever saw it pending (it can run and end between two polls)
                    reason = "removed from the queue before it started (qdel?)"
                    decided[key] = (JobState.CANCELLED, None, reason)
                elif now - since >= self.lost_after:
                    reason = f"not in the queue and no exit status after {self.lost_after:.0f} s"
                    decided[key] = (JobState.LOST, None, reason)
                else:
                    decided[key] = (JobState.RUNNING, None, "")
        statuses = []
        for handle in handles:
            tasks, reasons = [], []
            for element in range(handle.n_array):
                state, code, reason = decided[(handle.job_id, element)]
                if reason:
                    reasons.append(f"element {element}: {reason}" if handle.n_array > 1 else reason)
                tasks.append(TaskStatus(element, state, code, handle.log_paths[element]))
            statuses.append(aggregate(handle, tasks, "; ".join(reasons)))
        return statuses

    def cancel(self, handle: JobHandle) -> None:
        mark_cancelled(handle.state_dir)
        argv = [a.format(job_id=handle.job_id) for a in self.config.strings("cancel")]
        result = self.run_tool(argv, check=False)
        said = f"{result.stdout}\n{result.stderr}".strip()
        if result.returncode != 0 and not self.already_finished(said):
            raise UserError(f"{argv[0]} failed: {said[:300]}", where=f"job {handle.job_id}")

    def already_finished(self, output: str) -> bool:
        """Whether a failed cancel command only says the job is gone (cancelling a finished job does nothing)."""
        return False


def decide(
    queued: SchedulerState | None, exit_code: int | None, cancelled: bool
) -> tuple[JobState, int | None, str] | None:
    """An element's state from the scheduler's word and its exit file; ``None``: gone without a trace."""
    if queued is not None and queued.state in (JobState.CANCELLED, JobState.TIMEOUT, JobState.LOST):
        return queued.state, exit_code if exit_code is not None else queued.exit_code, queued.reason
    if exit_code is not None:
        if cancelled and exit_code != 0:
            return JobState.CANCELLED, exit_code, "cancelled"
        return state_of_exit_code(exit_code), exit_code, ""
    if queued is not None and queued.state is JobState.FAILED:
        return JobState.FAILED, queued.exit_code, queued.reason or "the job script failed before the command ended"
    if queued is not None and queued.state is not JobState.COMPLETED:
        return queued.state, None, queued.reason
    if cancelled and queued is None:
        return JobState.CANCELLED, None, "cancelled"
    return None  # finished by the scheduler's word but no exit file (yet), or gone from the queue


def _submitted_at(handle: JobHandle, default: float) -> float:
    try:
        return float(read_handle_record(handle.state_dir).get("submitted_at", default))
    except (UserError, TypeError, ValueError):
        return default


def user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER", "")


def split_array_id(text: str, separator: str) -> tuple[str, int | None]:
    """``"123_4"`` → ``("123", 4)``; ``"123"`` → ``("123", None)``."""
    head, sep, tail = text.partition(separator)
    return (head, int(tail)) if sep and tail.isdigit() else (text, None)


def map_states(table: Mapping[str, JobState], code: str) -> JobState:
    return table.get(code, JobState.RUNNING)


__all__ = ["SchedulerState", "ScriptBackend", "decide", "split_array_id", "user_name"]
