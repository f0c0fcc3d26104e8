"""The job layer's vocabulary: what to run (``JobSpec``), what was submitted (``JobHandle``), where it stands
(``JobStatus``), and the ``Backend`` protocol every scheduler implements.

Every backend answers ``status`` for many jobs with one scheduler query, never one per job.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Mode = Literal["cpu", "gpu", "mpi", "train"]


class JobState(enum.Enum):
    """Where a job (or one array task) stands. The last five are final."""

    PENDING = "pending"  # submitted, waiting in the queue
    RUNNING = "running"
    COMPLETED = "completed"  # exit code 0
    FAILED = "failed"  # non-zero exit code, or the scheduler reports a failure
    CANCELLED = "cancelled"  # scancel / qdel / cancel()
    TIMEOUT = "timeout"  # hit its walltime
    LOST = "lost"  # vanished from the queue without leaving an exit status

    @property
    def finished(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class JobSpec:
    """What to run and with which resources. ``command`` is an argv list: never a shell string built from values.

    Array jobs: ``n_tasks > 1`` runs ``ceil(n_tasks / n_tasks_per_proc)`` array elements; each sees
    ``TASK_INDEX`` (first task index of its slice), ``TASK_STEPSIZE`` (``n_tasks_per_proc``) and ``TASK_COUNT``
    (``n_tasks``) in its environment (see ``core.jobs.split_tasks``).

    Example:
        >>> spec = JobSpec(["python", "train.py", "lr=0.1"], name="train", log_path=Path("logs/train.log"))
        >>> spec.mode, spec.n_tasks
        ('cpu', 1)
    """

    command: Sequence[str]
    name: str = "job"
    log_path: Path | None = None  # stdout+stderr; arrays write one file per element next to it
    mode: Mode = "cpu"
    walltime: str | None = None  # "[D-]HH:MM:SS"
    n_gpus: int = 0
    n_nodes: int = 1
    n_procs: int = 1  # MPI ranks (mpi) or processes per node (train)
    n_tasks: int = 1
    n_tasks_per_proc: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # site values for the backend's YAML template


@dataclass(frozen=True)
class JobHandle:
    """A submitted job. ``job_id`` is the scheduler's id (the pid's record id for ``local``)."""

    backend: str
    job_id: str
    spec: JobSpec
    n_array: int  # number of array elements (1: not an array)
    log_paths: tuple[Path, ...]  # one per array element, in element order
    state_dir: Path  # where the job leaves its exit-code files


@dataclass(frozen=True)
class TaskStatus:
    """One array element's state."""

    index: int  # array element, 0-based
    state: JobState
    exit_code: int | None
    log_path: Path


@dataclass(frozen=True)
class JobStatus:
    """A job's state; for arrays the aggregate of its elements (the first failure wins) plus each element."""

    handle: JobHandle
    state: JobState
    exit_code: int | None  # for arrays: the first non-zero exit code, else 0 once all finished
    tasks: tuple[TaskStatus, ...]
    reason: str = ""  # e.g. "walltime exceeded", "not in the queue and no exit status after 60 s"


ProgressCallback = Callable[[Sequence[JobStatus]], None]


@runtime_checkable
class Backend(Protocol):
    """A job scheduler. ``get_backend(name)`` returns one."""

    name: str

    def submit(self, spec: JobSpec) -> JobHandle:
        """Submit ``spec``; raise ``UserError`` if the scheduler is absent or rejects it."""
        ...

    def status(self, handles: Sequence[JobHandle]) -> list[JobStatus]:
        """States of ``handles``, in order, from one scheduler query."""
        ...

    def cancel(self, handle: JobHandle) -> None:
        """Cancel a job (all its array elements). Cancelling a finished job does nothing."""
        ...

    def wait(
        self,
        handles: Sequence[JobHandle],
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[JobStatus]:
        """Block until every job is finished or ``timeout`` seconds passed; return the last states."""
        ...


def poll_until_finished(
    backend: Backend,
    handles: Sequence[JobHandle],
    timeout: float | None,
    on_progress: ProgressCallback | None,
    interval: float,
) -> list[JobStatus]:
    """The shared ``wait``: poll ``status`` (one query per round) until all finished or the timeout passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        statuses = backend.status(handles)
        if on_progress is not None:
            on_progress(statuses)
        if all(s.state.finished for s in statuses):
            return statuses
        if deadline is not None and time.monotonic() >= deadline:
            return statuses
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
