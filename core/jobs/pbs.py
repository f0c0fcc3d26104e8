"""The ``pbs`` backend (PBS Professional / OpenPBS): ``qsub`` to submit, one ``qstat -x -f -F json -t`` per
status round (finished jobs included), ``qdel`` to cancel.

Example (on a PBS login node):
    >>> from core.jobs import JobSpec, get_backend
    >>> backend = get_backend("pbs", "site.yaml")  # doctest: +SKIP
    >>> spec = JobSpec(["python", "train.py"], walltime="1:00:00", log_path=Path("train.log"))
    >>> handle = backend.submit(spec)  # doctest: +SKIP
    >>> backend.wait([handle])[0].state  # doctest: +SKIP
    <JobState.COMPLETED: 'completed'>
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.jobs.base import JobHandle, JobState
from core.jobs.scheduler import Key, SchedulerState, ScriptBackend
from core.jobs.state import state_of_exit_code
from core.jobs.template import walltime_seconds

_JOB_ID = re.compile(r"^(?P<seq>\d+)(?P<array>\[(?P<index>\d*)\])?(?P<server>\..*)?$")
# the first line of Grid Engine's `qsub -help`: "SGE 8.1.9", "GE 2011.11", "UGE 8.6.4", "OGS/GE 2011.11p1"
_GRID_ENGINE_BANNER = re.compile(r"^\s*(?:[SU]?GE|OGS/GE|Grid Engine)\b")
# PBS's code for "killed for exceeding its walltime" (JOB_EXEC_KILL_WALLTIME)
_KILLED_WALLTIME = -29


def pbs_state(job: Mapping[str, Any]) -> SchedulerState:
    """One job's (or subjob's) ``qstat -f -F json`` record as a :class:`SchedulerState`."""
    code = str(job.get("job_state", ""))
    if code in ("Q", "H", "W", "T", "M"):
        return SchedulerState(JobState.PENDING)
    if code not in ("F", "X"):
        return SchedulerState(JobState.RUNNING)
    exit_status = job.get("Exit_status")
    if exit_status is None:  # finished without running: deleted while queued
        return SchedulerState(JobState.CANCELLED, None, "deleted before it ran (qdel)")
    status = int(exit_status)
    used = _seconds(job.get("resources_used", {}).get("walltime")) or 0
    limit = _seconds(job.get("Resource_List", {}).get("walltime"))
    if status == _KILLED_WALLTIME or (status >= 256 and limit is not None and used >= limit):
        return SchedulerState(JobState.TIMEOUT, None, "walltime exceeded")
    if status >= 256:
        return SchedulerState(JobState.CANCELLED, status - 256 + 128, f"killed by signal {status - 256} (qdel)")
    if status < 0:
        return SchedulerState(JobState.FAILED, None, f"PBS could not run the job (Exit_status {status})")
    return SchedulerState(state_of_exit_code(status), status)


class PBSBackend(ScriptBackend):
    """PBS Professional through its command-line tools (see the module docstring)."""

    name = "pbs"
    directive_prefix = "#PBS"

    def _first(self) -> int:
        return int(self.config.get("element", {}).get("first", 0))

    def _run_submit(self, script: Path, cwd: Path) -> str:
        self._refuse_grid_engine_qsub()
        return super()._run_submit(script, cwd)

    def _refuse_grid_engine_qsub(self) -> None:
        """Grid Engine also calls its tool ``qsub``: refuse before submitting a PBS script to the wrong scheduler."""
        if getattr(self, "_qsub_checked", False):
            return
        qsub = self.config.strings("submit")[0]
        probe = self.run_tool([qsub, "-help"], check=False, timeout=30)
        first = (probe.stdout or probe.stderr).strip().splitlines()[:1]
        if first and _GRID_ENGINE_BANNER.match(first[0]):
            raise UserError(
                f"{qsub} on this host is Grid Engine's ({first[0].strip()}), not PBS's",
                where=self.config.where,
                hint="use kakehashi job sge (or get_backend('sge')) here",
            )
        self._qsub_checked = True

    def parse_job_id(self, output: str, script: Path) -> str:
        job_id = output.strip().splitlines()[-1].strip() if output.strip() else ""
        if _JOB_ID.match(job_id) is None:
            raise UserError(f"qsub printed no job id: {output.strip()[:200]!r}", where=str(script))
        return job_id

    def query(self, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        ids = sorted({h.job_id for h in handles})
        result = self.run_tool([*self.config.strings("status"), *ids], check=False)
        if result.returncode != 0 and not result.stdout.strip():
            if "Unknown Job Id" in result.stderr or "Job has finished" in result.stderr:
                return {}
            raise UserError(f"qstat failed: {result.stderr.strip()[:300]}", where=self.config.where)
        try:
            jobs: dict[str, Any] = json.loads(result.stdout or "{}").get("Jobs", {}) or {}
        except json.JSONDecodeError as exc:
            raise UserError(f"unreadable qstat -F json output: {exc}", where=self.config.where) from None
        by_seq = {_sequence(h.job_id): h for h in handles}
        states: dict[Key, SchedulerState] = {}
        for name, record in jobs.items():
            match = _JOB_ID.match(name)
            if match is None or match["seq"] not in by_seq:
                continue
            handle = by_seq[match["seq"]]
            info = pbs_state(record)
            if match["array"] is None:
                for element in range(handle.n_array):
                    states.setdefault((handle.job_id, element), info)
            elif match["index"]:
                states[(handle.job_id, int(match["index"]) - self._first())] = info
        return states

    def already_finished(self, output: str) -> bool:
        return "Unknown Job Id" in output or "Job has finished" in output or "Request invalid for state" in output


def _seconds(walltime: Any) -> int | None:
    try:
        return walltime_seconds(str(walltime)) if walltime else None
    except UserError:
        return None


def _sequence(job_id: str) -> str:
    match = _JOB_ID.match(job_id)
    return match["seq"] if match else job_id


__all__ = ["PBSBackend", "pbs_state"]
