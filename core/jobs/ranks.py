"""Where this process stands inside a job: its array slice (``split_tasks``) and its rank among parallel processes.

Array jobs export ``TASK_INDEX`` (first task of this element's slice), ``TASK_STEPSIZE`` (tasks per element) and
``TASK_COUNT`` (all tasks) to every element, on every backend. Ranks come from whichever launcher started the
process: torchrun (``RANK``/``WORLD_SIZE``), OpenMPI (``OMPI_COMM_WORLD_*``), MVAPICH (``MV2_COMM_WORLD_*``),
PMI (``PMI_RANK``/``PMI_SIZE``, also Intel MPI and MPICH) or Slurm (``SLURM_PROCID``/``SLURM_NTASKS``).

Example:
    >>> split_tasks(list(range(10)), environ={"TASK_INDEX": "3", "TASK_STEPSIZE": "3", "TASK_COUNT": "10"})
    [3, 4, 5]
    >>> split_tasks([1, 2, 3], environ={})  # outside an array: everything
    [1, 2, 3]
    >>> get_rank({"OMPI_COMM_WORLD_RANK": "2"}), get_world_size({"OMPI_COMM_WORLD_SIZE": "4"})
    (2, 4)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

# (rank, world size, local rank) variables of each launcher, most specific first: torchrun sets RANK inside an
# srun or mpirun allocation, MPI libraries set theirs inside a Slurm step.
_LAUNCHERS: tuple[tuple[str, str, str], ...] = (
    ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK"),
    ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _first_int(environ: Mapping[str, str], names: Sequence[str], default: int) -> int:
    for name in names:
        if environ.get(name, "").strip().lstrip("-").isdigit():
            return int(environ[name])
    return default


def get_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's global rank (0 when not launched in parallel)."""
    return _first_int(_env(environ), [launcher[0] for launcher in _LAUNCHERS], 0)


def get_world_size(environ: Mapping[str, str] | None = None) -> int:
    """How many processes run in parallel (1 when not launched in parallel)."""
    env = _env(environ)
    for rank, size, _ in _LAUNCHERS:
        if rank in env and env.get(size, "").isdigit():
            return int(env[size])
    return _first_int(env, [launcher[1] for launcher in _LAUNCHERS], 1)


def get_local_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank on its node (0 when not launched in parallel)."""
    env = _env(environ)
    for rank, _, local in _LAUNCHERS:
        if rank in env and env.get(local, "").isdigit():
            return int(env[local])
    return _first_int(env, [launcher[2] for launcher in _LAUNCHERS], 0)


def task_environment(element: int, n_tasks: int, n_tasks_per_proc: int) -> dict[str, str]:
    """``TASK_INDEX``, ``TASK_STEPSIZE`` and ``TASK_COUNT`` of array element ``element`` (0-based)."""
    return {
        "TASK_INDEX": str(element * n_tasks_per_proc),
        "TASK_STEPSIZE": str(n_tasks_per_proc),
        "TASK_COUNT": str(n_tasks),
    }


def n_array_elements(n_tasks: int, n_tasks_per_proc: int) -> int:
    """Array elements that ``n_tasks`` tasks need at ``n_tasks_per_proc`` tasks each."""
    return max(1, math.ceil(n_tasks / n_tasks_per_proc))


def split_tasks(items: Sequence[T], environ: Mapping[str, str] | None = None) -> list[T]:
    """The items this array element works on; all of them outside an array.

    When ``len(items) == TASK_COUNT`` the element gets ``items[TASK_INDEX : TASK_INDEX + TASK_STEPSIZE]``.
    Otherwise the items are cut into as many contiguous, near-equal parts as the job has elements and the
    element gets its part, so every item is processed exactly once whatever the list's length.
    """
    env = _env(environ)
    try:
        index = int(env["TASK_INDEX"])
        step = int(env.get("TASK_STEPSIZE", "1"))
        count = int(env.get("TASK_COUNT", str(len(items))))
    except (KeyError, ValueError):
        return list(items)
    if step < 1 or count < 1:
        return list(items)
    if len(items) == count:
        return list(items[index : index + step])
    n_elements = n_array_elements(count, step)
    element = min(index // step, n_elements - 1)
    base, extra = divmod(len(items), n_elements)
    start = element * base + min(element, extra)
    return list(items[start : start + base + (1 if element < extra else 0)])


__all__ = [
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "n_array_elements",
    "split_tasks",
    "task_environment",
]
