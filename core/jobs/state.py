"""A job's state directory: what a job leaves behind so its status survives the process that submitted it.

Layout of ``handle.state_dir``::

    handle.json        the handle (backend, job id, spec, log paths), written at submission
    <element>.exit     the element's exit code and a newline, written by the job itself when its command returns
                       (atomically by scheduler jobs; in one write by local ones: a line without its newline is unread)
    <element>.pid      local backend: "<pid> <start time>" of the element's process
    <element>.timeout  local backend: the element hit its walltime
    <element>.signal   local backend: how it was ended ("SIGTERM" or "SIGKILL after 5 s ...")
    <element>.started  scheduler backends: the job script began (tells "deleted while queued" from "ran, lost")
    cancelled          cancel() was called
    job.sh             scheduler backends: the rendered job script

Every submission is also indexed under ``$KAKEHASHI_JOBS_HOME`` (default ``~/.kakehashi/jobs``) as
``<backend>/<job id>``, a file holding the state directory, so ``kakehashi job status ID`` finds it.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_exit_code(folder, 0, 3)
    >>> read_exit_code(folder, 0), read_exit_code(folder, 1)
    (3, None)
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.files import write_atomic
from core.jobs.base import JobHandle, JobSpec, JobState, JobStatus, TaskStatus

HANDLE_FILE = "handle.json"
CANCELLED_FILE = "cancelled"


def jobs_home() -> Path:
    """Where submissions are indexed by backend and job id."""
    return Path(os.environ.get("KAKEHASHI_JOBS_HOME") or Path.home() / ".kakehashi" / "jobs").expanduser()


def new_state_dir(root: Path, name: str) -> Path:
    """Create a fresh, unique state directory for a job called ``name`` under ``root``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "job"
    folder = root / f"{safe}.{time.strftime('%Y%m%d-%H%M%S')}.{secrets.token_hex(3)}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def element_log_paths(log_path: Path, n_array: int) -> tuple[Path, ...]:
    """One log per array element next to ``log_path`` (``train.log`` → ``train.0.log``, ...)."""
    if n_array == 1:
        return (log_path,)
    return tuple(log_path.with_name(f"{log_path.stem}.{i}{log_path.suffix}") for i in range(n_array))


def exit_file(state_dir: Path, element: int) -> Path:
    return state_dir / f"{element}.exit"


def write_exit_code(state_dir: Path, element: int, code: int) -> None:
    write_atomic(exit_file(state_dir, element), f"{code}\n")


def read_exit_code(state_dir: Path, element: int) -> int | None:
    """The element's exit code, or ``None`` if it has not written one (yet): a line not ended by its newline is
    still being written.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = exit_file(folder, 0).write_text("1")
    >>> read_exit_code(folder, 0) is None
    True
    >>> _ = exit_file(folder, 0).write_text("137\\n")
    >>> read_exit_code(folder, 0)
    137
    """
    try:
        text = exit_file(state_dir, element).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text.endswith("\n"):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_exit_codes(state_dir: Path) -> dict[int, int]:
    """Every exit code the job's elements wrote, by element: one directory listing, not one stat per element."""
    codes: dict[int, int] = {}
    try:
        names = os.listdir(state_dir)
    except FileNotFoundError:
        return codes
    for name in names:
        stem, dot, ext = name.partition(".")
        if dot and ext == "exit" and stem.isdigit():
            code = read_exit_code(state_dir, int(stem))
            if code is not None:
                codes[int(stem)] = code
    return codes


def state_of_exit_code(code: int) -> JobState:
    """COMPLETED for exit code 0, FAILED for any other: the one rule every backend applies to an exit file."""
    return JobState.COMPLETED if code == 0 else JobState.FAILED


def mark_cancelled(state_dir: Path) -> None:
    write_atomic(state_dir / CANCELLED_FILE, f"{time.time()}\n")


def is_cancelled(state_dir: Path) -> bool:
    return (state_dir / CANCELLED_FILE).exists()


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["command"] = list(spec.command)
    data["log_path"] = None if spec.log_path is None else str(spec.log_path)
    data["cwd"] = None if spec.cwd is None else str(spec.cwd)
    data["env"] = dict(spec.env)
    data["options"] = json.loads(json.dumps(dict(spec.options), default=str))
    return data


def spec_from_dict(data: dict[str, Any]) -> JobSpec:
    data = dict(data)
    data["log_path"] = None if data.get("log_path") is None else Path(data["log_path"])
    data["cwd"] = None if data.get("cwd") is None else Path(data["cwd"])
    return JobSpec(**data)


def save_handle(handle: JobHandle, extra: dict[str, Any] | None = None, durable: bool = True) -> None:
    """Write ``handle.json`` and index the job under :func:`jobs_home`.

    ``durable=False`` skips the flush to disk: right for a local job, which a crash of this host ends anyway,
    and worth it there (each fsync costs milliseconds, per job); a scheduler's job outlives its submitter's host.
    """
    data = {
        "backend": handle.backend,
        "job_id": handle.job_id,
        "spec": spec_to_dict(handle.spec),
        "n_array": handle.n_array,
        "log_paths": [str(p) for p in handle.log_paths],
        "state_dir": str(handle.state_dir),
        "submitted_at": time.time(),
        "submitter": {"host": socket.gethostname(), "pid": os.getpid()},
        **(extra or {}),
    }
    write_atomic(handle.state_dir / HANDLE_FILE, json.dumps(data, indent=2) + "\n", fsync=durable)
    index = jobs_home() / handle.backend / handle.job_id
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(index, f"{handle.state_dir.resolve()}\n", fsync=durable)
    except OSError:
        pass  # the index is a convenience for the CLI; the state directory is the record


def read_handle_record(state_dir: Path) -> dict[str, Any]:
    """The raw ``handle.json`` of a state directory."""
    try:
        data: dict[str, Any] = json.loads((state_dir / HANDLE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            "no job state here", where=str(state_dir), hint="pass a job id or a job's state directory"
        ) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"unreadable job record: {exc}", where=str(state_dir / HANDLE_FILE)) from None
    return data


def load_handle(state_dir: Path) -> JobHandle:
    """The handle saved in ``state_dir`` by :func:`save_handle`."""
    data = read_handle_record(state_dir)
    return JobHandle(
        backend=data["backend"],
        job_id=data["job_id"],
        spec=spec_from_dict(data["spec"]),
        n_array=int(data["n_array"]),
        log_paths=tuple(Path(p) for p in data["log_paths"]),
        state_dir=Path(data["state_dir"]),
    )


def find_handle(ref: str, backend: str | None = None) -> JobHandle:
    """A handle from a job id (looked up in the index), a state directory or its ``handle.json``."""
    path = Path(ref).expanduser()
    if path.name == HANDLE_FILE and path.is_file():
        return load_handle(path.parent)
    if (path / HANDLE_FILE).is_file():
        return load_handle(path)
    home = jobs_home()
    backends = [backend] if backend else sorted(p.name for p in home.glob("*") if p.is_dir())
    found = [home / b / ref for b in backends if (home / b / ref).is_file()]
    if not found:
        raise UserError(
            f"no job {ref!r} submitted from this account",
            where=str(home),
            hint="pass the job's state directory (printed at submission) or its id as printed",
        )
    if len(found) > 1:
        raise UserError(
            f"job id {ref!r} exists on several backends: {', '.join(p.parent.name for p in found)}",
            hint="add --backend NAME",
        )
    return load_handle(Path(found[0].read_text(encoding="utf-8").strip()))


def aggregate(handle: JobHandle, tasks: Sequence[TaskStatus], reason: str = "") -> JobStatus:
    """A job's state from its elements': running while any runs, then the first failure in element order wins."""
    states = [t.state for t in tasks]
    if any(not s.finished for s in states):
        state = JobState.RUNNING if any(s is not JobState.PENDING for s in states) else JobState.PENDING
        return JobStatus(handle, state, None, tuple(tasks), reason)
    bad = next((t for t in tasks if t.state is not JobState.COMPLETED), None)
    if bad is None:
        return JobStatus(handle, JobState.COMPLETED, 0, tuple(tasks), reason)
    code = next((t.exit_code for t in tasks if t.exit_code not in (None, 0)), None)
    return JobStatus(handle, bad.state, code, tuple(tasks), reason)


__all__ = [
    "aggregate",
    "element_log_paths",
    "find_handle",
    "is_cancelled",
    "jobs_home",
    "load_handle",
    "mark_cancelled",
    "new_state_dir",
    "read_exit_code",
    "read_exit_codes",
    "read_handle_record",
    "save_handle",
    "write_exit_code",
]


def process_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (a guard against recycled pids); empty where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def pid_alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` runs, and is the one that started at ``started`` (when given and readable)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    now = process_start_time(pid)
    return not started or not now or now == started
