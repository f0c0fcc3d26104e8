"""The ``slurm`` backend: ``sbatch --parsable`` to submit, one ``squeue`` per status round, ``sacct`` when the
cluster keeps accounting, ``scancel`` to cancel.

Example (on a Slurm login node):
    >>> from core.jobs import JobSpec, get_backend
    >>> backend = get_backend("slurm")  # doctest: +SKIP
    >>> spec = JobSpec(["python", "train.py"], walltime="1:00:00", log_path=Path("train.log"))
    >>> handle = backend.submit(spec)  # doctest: +SKIP
    >>> backend.wait([handle])[0].state  # doctest: +SKIP
    <JobState.COMPLETED: 'completed'>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.errors import UserError
from core.jobs.base import JobHandle, JobState
from core.jobs.scheduler import Key, SchedulerState, ScriptBackend, split_array_id

# squeue's and sacct's job states (https://slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES)
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "DEADLINE": JobState.TIMEOUT,
    "TIMEOUT": JobState.TIMEOUT,
    "NODE_FAIL": JobState.LOST,
    "PREEMPTED": JobState.LOST,
    "REVOKED": JobState.LOST,
}
_REASONS = {
    JobState.TIMEOUT: "walltime exceeded",
    JobState.CANCELLED: "cancelled (scancel)",
    JobState.LOST: "node failure or preemption",
}


def slurm_state(text: str) -> SchedulerState:
    """A squeue/sacct state word (``CANCELLED by 0`` included) as a :class:`SchedulerState`."""
    word = text.split()[0].rstrip("+") if text.strip() else ""
    state = SLURM_STATES.get(word, JobState.RUNNING)
    reason = _REASONS.get(state, "")
    if word == "OUT_OF_MEMORY":
        reason = "out of memory"
    return SchedulerState(state, None, reason)


class SlurmBackend(ScriptBackend):
    """Slurm through its command-line tools (see the module docstring)."""

    name = "slurm"
    directive_prefix = "#SBATCH"

    def parse_job_id(self, output: str, script: Path) -> str:
        # --parsable prints "<id>" or "<id>;<cluster>"
        job_id = output.strip().splitlines()[-1].split(";")[0] if output.strip() else ""
        if not job_id.isdigit():
            raise UserError(f"sbatch printed no job id: {output.strip()[:200]!r}", where=str(script))
        return job_id

    def query(self, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        ids = sorted({h.job_id for h in handles})
        argv = [*self.config.strings("status"), f"--jobs={','.join(ids)}"]
        result = self.run_tool(argv, check=False)
        if result.returncode != 0 and "Invalid job id" not in result.stderr:
            raise UserError(f"squeue failed: {result.stderr.strip()[:300]}", where=self.config.where)
        return self._parse(result.stdout, handles)

    @staticmethod
    def _parse(text: str, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        arrays = {h.job_id: h.n_array for h in handles}
        states: dict[Key, SchedulerState] = {}
        for line in text.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 2:
                continue
            job_id, element = split_array_id(parts[0], "_")
            if job_id not in arrays:
                continue
            info = slurm_state(parts[1])
            if element is None and arrays[job_id] > 1 and "[" in parts[0]:
                continue  # a compressed range of pending elements; --array normally expands them
            if element is None:
                for e in range(arrays[job_id]):
                    states.setdefault((job_id, e), info)
            else:
                states[(job_id, element)] = info
        return states

    def accounting(self, missing: Sequence[tuple[JobHandle, int]]) -> dict[Key, SchedulerState]:
        argv = self.config.strings("accounting")
        if not argv:
            return {}
        ids = sorted({h.job_id for h, _ in missing})
        try:
            result = self.run_tool([*argv, f"--jobs={','.join(ids)}"], check=False)
        except UserError:
            return {}
        if result.returncode != 0:
            return {}  # no accounting on this cluster: missing jobs become LOST after lost_after
        arrays = {h.job_id: h.n_array for h, _ in missing}
        found: dict[Key, SchedulerState] = {}
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) < 3:
                continue
            job_id, element = split_array_id(parts[0], "_")
            if job_id not in arrays or "." in parts[0]:
                continue
            info = slurm_state(parts[1])
            if not info.state.finished:
                continue
            code = parts[2].split(":")[0]
            info = SchedulerState(info.state, int(code) if code.isdigit() else None, info.reason)
            for e in range(arrays[job_id]) if element is None else [element]:
                found[(job_id, e)] = info
        return found

    def already_finished(self, output: str) -> bool:
        return "already completing or completed" in output or "Invalid job id" in output


__all__ = ["SLURM_STATES", "SlurmBackend", "slurm_state"]
