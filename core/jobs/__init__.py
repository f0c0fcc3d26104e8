"""core.jobs: one job layer over local processes, Slurm, SGE and PBS (see README.md).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from core.jobs import JobSpec, get_backend
    >>> backend = get_backend("local")
    >>> spec = JobSpec(["python3", "-c", "print('hello')"], name="hello", log_path=Path(tempfile.mkdtemp()) / "h.log")
    >>> [status.state.value for status in backend.wait([backend.submit(spec)], timeout=60)]
    ['completed']
"""

from core.jobs.base import Backend, JobHandle, JobSpec, JobState, JobStatus, Mode, TaskStatus
from core.jobs.ranks import get_local_rank, get_rank, get_world_size, split_tasks
from core.jobs.registry import backend_names, get_backend

__all__ = [
    "Backend",
    "JobHandle",
    "JobSpec",
    "JobState",
    "JobStatus",
    "Mode",
    "TaskStatus",
    "backend_names",
    "get_backend",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "split_tasks",
]
