"""The ``local`` backend: each job (each array element) runs as a child process of this one.

Every element runs in its own process group: ``cancel`` and a walltime send SIGTERM to the whole group and
SIGKILL after ``kill_grace`` seconds (default 5) if anything in it is left, and the status says which. At most
``max_parallel`` run at a time (default: the number of CPUs); the rest wait as ``PENDING`` and start as slots
free up, from a small background thread or from the next ``submit``/``status``/``wait`` call. A ``/bin/sh``
wrapper writes the command's exit code into the state directory, so another process (``kakehashi job status``)
can read the result.
``status`` never blocks: it polls child processes and reads files. A ``walltime`` is enforced here too.

Example:
    >>> import tempfile
    >>> from core.jobs import JobSpec, get_backend
    >>> backend = get_backend("local")
    >>> log = Path(tempfile.mkdtemp()) / "hello.log"
    >>> handle = backend.submit(JobSpec(["sh", "-c", "echo hi; exit 3"], name="hello", log_path=log))
    >>> status = backend.wait([handle], timeout=30)[0]
    >>> status.state.value, status.exit_code, log.read_text()
    ('failed', 3, 'hi\\n')
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import UserError
from core.files import write_atomic
from core.jobs.base import JobHandle, JobSpec, JobState, JobStatus, TaskStatus
from core.jobs.common import BackendBase
from core.jobs.processes import DEFAULT_GRACE, terminate_group
from core.jobs.ranks import task_environment
from core.jobs.state import (
    aggregate,
    exit_file,
    is_cancelled,
    mark_cancelled,
    pid_alive,
    process_start_time,
    read_exit_code,
    read_exit_codes,
    read_handle_record,
    save_handle,
    state_of_exit_code,
)
from core.jobs.template import BackendConfig, render_argv, spec_fields, walltime_seconds

# Runs "$@" and leaves its exit code in the file named by $1, as one line written by one write(2): a reader takes
# the code only once the line is whole (read_exit_code), so no temporary file and no `mv` process are needed (that
# saved 1.5 ms per job of the 2.9 ms the wrapper cost). The script is constant: every value reaches it as an
# argument, never as shell text.
_WRAPPER = 'f=$1; shift; "$@"; rc=$?; printf "%s\\n" "$rc" > "$f"; exit "$rc"'

Key = tuple[str, int]  # (job id, element)


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    deadline: float | None
    log: IO[bytes]


@dataclass(frozen=True)
class _Final:
    state: JobState
    exit_code: int | None
    reason: str = ""


class LocalBackend(BackendBase):
    """Child processes with a concurrency limit. See the module docstring."""

    name = "local"
    default_poll_interval = 0.1

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        limit = config.get("max_parallel") or os.cpu_count() or 1
        if int(limit) < 1:
            raise UserError("max_parallel must be at least 1", where=f"{config.where}:max_parallel")
        self.max_parallel = int(limit)
        self.kill_grace = config.float("kill_grace", DEFAULT_GRACE)
        if self.kill_grace < 0:
            raise UserError("kill_grace must be at least 0 seconds", where=f"{config.where}:kill_grace")
        self._lock = threading.RLock()
        self._queue: deque[tuple[JobHandle, int, list[str], dict[str, str]]] = deque()
        self._running: dict[Key, _Running] = {}
        self._final: dict[Key, _Final] = {}
        self._pumping: threading.Thread | None = None
        self._wake = threading.Event()
        self._dirs: dict[str, Path] = {}

    # ------------------------------------------------------------------ submit
    def submit(self, spec: JobSpec) -> JobHandle:
        cwd = Path(spec.cwd).resolve() if spec.cwd is not None else Path.cwd()
        if (
            isinstance(spec.command, list)
            and spec.command
            and shutil.which(spec.command[0], path=self._path(spec)) is None
            and not (cwd / spec.command[0]).is_file()
        ):
            raise UserError(
                f"command not found: {spec.command[0]!r}", where=f"job {spec.name}", hint="check the program and PATH"
            )
        layout = self.layout(spec)
        handle = JobHandle(
            backend=self.name,
            job_id=layout.state_dir.name,
            spec=spec,
            n_array=layout.n_array,
            log_paths=layout.log_paths,
            state_dir=layout.state_dir,
        )
        n_array, state_dir = layout.n_array, layout.state_dir
        argv = self._argv(spec, n_array, state_dir)
        base_env = {**os.environ, **{str(k): str(v) for k, v in self.config.get("env", {}).items()}, **spec.env}
        base_env["KAKEHASHI_JOB_ID"] = handle.job_id
        save_handle(handle, {"backend_config": self.config.data}, durable=False)  # a host crash ends local jobs too
        with self._lock:
            for element in range(n_array):
                env = {**base_env, **task_environment(element, spec.n_tasks, spec.n_tasks_per_proc)}
                env["KAKEHASHI_ARRAY_ELEMENT"] = str(element)
                self._queue.append((handle, element, argv, env))
            self._pump()
            self._ensure_pump_thread()
        return handle

    def _path(self, spec: JobSpec) -> str | None:
        return spec.env.get("PATH") or self.config.get("env", {}).get("PATH") or os.environ.get("PATH")

    def _argv(self, spec: JobSpec, n_array: int, state_dir: Path) -> list[str]:
        fields = spec_fields(spec, self.config, n_array, state_dir)
        mode = self.config.mode(spec.mode)
        launcher = render_argv(self.config.strings("launcher", mode), fields, f"{self.config.where}:modes.{spec.mode}")
        return [*launcher, *spec.command]

    # ------------------------------------------------------------------ the pump
    def _pump(self) -> None:
        """Reap finished children, enforce walltimes, start queued elements while slots are free."""
        now = time.monotonic()
        for key, run in list(self._running.items()):
            code = run.process.poll()
            if code is None and run.deadline is not None and now >= run.deadline:
                write_atomic(self._state_dir_of(key) / f"{key[1]}.timeout", "walltime exceeded\n")
                self._kill(run.process, self._state_dir_of(key), key[1])
                code = run.process.wait()
            if code is None:
                continue
            run.log.close()
            del self._running[key]
            self._final[key] = self._classify(self._state_dir_of(key), key[1], code)
        while self._queue and len(self._running) < self.max_parallel:
            handle, element, argv, env = self._queue.popleft()
            key = (handle.job_id, element)
            if is_cancelled(handle.state_dir):
                self._final[key] = _Final(JobState.CANCELLED, None, "cancelled before it started")
                continue
            self._start(handle, element, argv, env)

    def _state_dir_of(self, key: Key) -> Path:
        return self._dirs[key[0]]

    def _start(self, handle: JobHandle, element: int, argv: list[str], env: dict[str, str]) -> None:
        key = (handle.job_id, element)
        self._dirs[handle.job_id] = handle.state_dir
        log_path = handle.log_paths[element]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "wb")  # noqa: SIM115 - closed when the child is reaped
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", _WRAPPER, "sh", str(exit_file(handle.state_dir, element)), *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=handle.spec.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            log.close()
            self._final[key] = _Final(JobState.FAILED, None, f"could not start: {exc}")
            return
        pid_record = f"{process.pid} {process_start_time(process.pid)}\n"
        write_atomic(handle.state_dir / f"{element}.pid", pid_record, fsync=False)
        seconds = walltime_seconds(handle.spec.walltime)
        deadline = None if seconds is None else time.monotonic() + seconds
        self._running[key] = _Running(process, deadline, log)

    def _kill(self, process: subprocess.Popen[bytes], state_dir: Path, element: int) -> None:
        """End the element's whole process group; record how (SIGTERM, or SIGKILL after the grace period)."""
        how = terminate_group(process.pid, self.kill_grace, leader=process)
        if how:
            write_atomic(_ended_by_file(state_dir, element), how + "\n")

    @staticmethod
    def _classify(state_dir: Path, element: int, returncode: int) -> _Final:
        how = _ended_by(state_dir, element)
        if (state_dir / f"{element}.timeout").exists():
            return _Final(JobState.TIMEOUT, None, _with_how("walltime exceeded", how))
        if returncode < 0 or is_cancelled(state_dir):
            if is_cancelled(state_dir):
                return _Final(JobState.CANCELLED, None, _with_how("cancelled", how))
            return _Final(JobState.FAILED, 128 - returncode, f"killed by signal {-returncode}")
        return _Final(state_of_exit_code(returncode), returncode)

    def _ensure_pump_thread(self) -> None:
        if self._pumping is not None and self._pumping.is_alive():
            return
        if not self._queue and not any(r.deadline is not None for r in self._running.values()):
            return
        self._pumping = threading.Thread(target=self._pump_loop, name="kakehashi-local-jobs", daemon=True)
        self._pumping.start()

    def _pump_loop(self) -> None:
        while True:
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            with self._lock:
                self._pump()
                if not self._queue and not any(r.deadline is not None for r in self._running.values()):
                    self._pumping = None
                    return

    # ------------------------------------------------------------------ status, wait, cancel
    def status(self, handles: Sequence[JobHandle]) -> list[JobStatus]:
        with self._lock:
            self._pump()
            return [self._status_of(handle) for handle in handles]

    def _status_of(self, handle: JobHandle) -> JobStatus:
        queued = {element for h, element, _, _ in self._queue if h.job_id == handle.job_id}
        foreign: dict[int, tuple[JobState, int | None, str]] | None = None
        tasks = []
        reasons = []
        for element in range(handle.n_array):
            key = (handle.job_id, element)
            if key in self._final:
                final = self._final[key]
                state, code, reason = final.state, final.exit_code, final.reason
            elif key in self._running:
                state, code, reason = JobState.RUNNING, None, ""
            elif element in queued:
                state, code, reason = JobState.PENDING, None, ""
            else:
                if foreign is None:
                    foreign = self._read_foreign(handle)
                state, code, reason = foreign[element]
            if reason:
                reasons.append(f"element {element}: {reason}" if handle.n_array > 1 else reason)
            tasks.append(TaskStatus(element, state, code, handle.log_paths[element]))
        return aggregate(handle, tasks, "; ".join(reasons))

    def _read_foreign(self, handle: JobHandle) -> dict[int, tuple[JobState, int | None, str]]:
        """States of a job this backend object did not start: from its state directory alone."""
        codes = read_exit_codes(handle.state_dir)
        cancelled = is_cancelled(handle.state_dir)
        try:
            submitter = read_handle_record(handle.state_dir).get("submitter", {})
        except UserError:
            submitter = {}
        submitter_alive = bool(submitter.get("pid")) and pid_alive(int(submitter["pid"]))
        result: dict[int, tuple[JobState, int | None, str]] = {}
        for element in range(handle.n_array):
            how = _ended_by(handle.state_dir, element)
            if (handle.state_dir / f"{element}.timeout").exists():
                result[element] = (JobState.TIMEOUT, None, _with_how("walltime exceeded", how))
            elif cancelled and (element not in codes or codes[element] != 0):
                result[element] = (JobState.CANCELLED, None, _with_how("cancelled", how))
            elif element in codes:
                code = codes[element]
                result[element] = (state_of_exit_code(code), code, "")
            else:
                result[element] = self._read_pid(handle, element, submitter_alive)
        return result

    @staticmethod
    def _read_pid(handle: JobHandle, element: int, submitter_alive: bool) -> tuple[JobState, int | None, str]:
        try:
            pid_text, _, started = (handle.state_dir / f"{element}.pid").read_text(encoding="utf-8").partition(" ")
        except FileNotFoundError:
            if submitter_alive:
                return JobState.PENDING, None, ""
            return JobState.LOST, None, "the submitting process exited before starting it"
        if pid_alive(int(pid_text), started.strip()):
            return JobState.RUNNING, None, ""
        if (code := read_exit_code(handle.state_dir, element)) is not None:  # it finished between the two reads
            return state_of_exit_code(code), code, ""
        return JobState.LOST, None, "its process is gone and left no exit status"

    def cancel(self, handle: JobHandle) -> None:
        mark_cancelled(handle.state_dir)
        with self._lock:
            for key, run in list(self._running.items()):
                if key[0] == handle.job_id:
                    self._kill(run.process, handle.state_dir, key[1])
            self._pump()
        if not any(key[0] == handle.job_id for key in self._final):
            self._cancel_foreign(handle)

    def _cancel_foreign(self, handle: JobHandle) -> None:
        for element in range(handle.n_array):
            try:
                pid_text, _, started = (handle.state_dir / f"{element}.pid").read_text(encoding="utf-8").partition(" ")
            except FileNotFoundError:
                continue
            if pid_alive(int(pid_text), started.strip()):
                how = terminate_group(int(pid_text), self.kill_grace)
                if how:
                    write_atomic(_ended_by_file(handle.state_dir, element), how + "\n")


def _ended_by_file(state_dir: Path, element: int) -> Path:
    return state_dir / f"{element}.signal"


def _ended_by(state_dir: Path, element: int) -> str:
    try:
        return _ended_by_file(state_dir, element).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _with_how(reason: str, how: str) -> str:
    return f"{reason} ({how})" if how else reason


__all__ = ["LocalBackend"]
