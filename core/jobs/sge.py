"""The ``sge`` backend (Son of Grid Engine, Univa/Altair Grid Engine): ``qsub -terse`` to submit, one
``qstat -xml`` per status round, ``qacct`` for jobs that left the queue without an exit status (killed by ``qdel``
or ``h_rt``), ``qdel`` to cancel.

Example (on an SGE login node):
    >>> from core.jobs import JobSpec, get_backend
    >>> backend = get_backend("sge", "site.yaml")  # doctest: +SKIP
    >>> spec = JobSpec(["python", "train.py"], walltime="1:00:00", log_path=Path("train.log"))
    >>> handle = backend.submit(spec)  # doctest: +SKIP
    >>> backend.wait([handle])[0].state  # doctest: +SKIP
    <JobState.COMPLETED: 'completed'>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from core.errors import UserError
from core.jobs.base import JobHandle, JobState
from core.jobs.scheduler import Key, SchedulerState, ScriptBackend


def sge_state(code: str) -> SchedulerState:
    """A qstat state (``qw``, ``r``, ``Eqw``, ``dr``, ...) as a :class:`SchedulerState`."""
    if "E" in code:
        return SchedulerState(JobState.FAILED, None, f"in error state {code} (see qstat -j)")
    if any(c in code for c in "rtRsST") or "d" in code:
        return SchedulerState(JobState.RUNNING)
    return SchedulerState(JobState.PENDING)


def qacct_state(failed: str, exit_status: int | None) -> SchedulerState:
    """A qacct record's ``failed`` and ``exit_status`` as a final :class:`SchedulerState`."""
    number = failed.split(":")[0].strip()
    if number == "37" or "h_rt" in failed:
        return SchedulerState(JobState.TIMEOUT, exit_status, "walltime exceeded (h_rt)")
    if number == "100" and exit_status is not None and exit_status >= 128:
        return SchedulerState(JobState.CANCELLED, exit_status, f"killed by signal {exit_status - 128} (qdel)")
    if number not in ("", "0"):
        return SchedulerState(JobState.FAILED, exit_status, f"SGE failure {failed}")
    if exit_status == 0:
        return SchedulerState(JobState.COMPLETED, 0)
    return SchedulerState(JobState.FAILED, exit_status, "")


class SGEBackend(ScriptBackend):
    """Grid Engine through its command-line tools (see the module docstring)."""

    name = "sge"
    directive_prefix = "#$"

    def _first(self) -> int:
        return int(self.config.get("element", {}).get("first", 1))

    def parse_job_id(self, output: str, script: Path) -> str:
        # -terse prints "<id>" or, for arrays, "<id>.<first>-<last>:<step>"
        text = output.strip().splitlines()[-1] if output.strip() else ""
        job_id = text.split(".")[0]
        if not job_id.isdigit():
            raise UserError(f"qsub printed no job id: {output.strip()[:200]!r}", where=str(script))
        return job_id

    def query(self, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        result = self.run_tool(self.config.strings("status"))
        return self._parse(result.stdout, handles)

    def _parse(self, text: str, handles: Sequence[JobHandle]) -> dict[Key, SchedulerState]:
        arrays = {h.job_id: h.n_array for h in handles}
        states: dict[Key, SchedulerState] = {}
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise UserError(f"unreadable qstat -xml output: {exc}", where=self.config.where) from None
        for job in root.iter("job_list"):
            job_id = (job.findtext("JB_job_number") or "").strip()
            if job_id not in arrays:
                continue
            info = sge_state((job.findtext("state") or "").strip())
            tasks = (job.findtext("tasks") or "").strip()
            for element in self._elements(tasks, arrays[job_id]):
                states[(job_id, element)] = info
        return states

    def _elements(self, tasks: str, n_array: int) -> list[int]:
        """Elements named by a qstat ``tasks`` field: ``3``, ``1-4:1``, ``5,7``; all of them when empty."""
        if not tasks:
            return list(range(n_array))
        elements: list[int] = []
        for part in tasks.split(","):
            span, _, step = part.partition(":")
            first, _, last = span.partition("-")
            if not first.isdigit():
                continue
            numbers = range(int(first), int(last or first) + 1, int(step or 1))
            elements += [n - self._first() for n in numbers]
        return elements

    def accounting(self, missing: Sequence[tuple[JobHandle, int]]) -> dict[Key, SchedulerState]:
        argv = self.config.strings("accounting")
        found: dict[Key, SchedulerState] = {}
        if not argv:
            return found
        for job_id in sorted({h.job_id for h, _ in missing}):
            try:
                result = self.run_tool([*argv, job_id], check=False)
            except UserError:
                return found
            for record in result.stdout.split("=" * 20):
                fields = {}
                for line in record.splitlines():
                    key, _, value = line.partition(" ")
                    fields[key.strip()] = value.strip()
                if fields.get("jobnumber") != job_id:
                    continue
                task = fields.get("taskid", "undefined")
                element = int(task) - self._first() if task.isdigit() else 0
                status = fields.get("exit_status", "").split()[0] if fields.get("exit_status") else ""
                found[(job_id, element)] = qacct_state(
                    fields.get("failed", "0"), int(status) if status.lstrip("-").isdigit() else None
                )
        return found

    def already_finished(self, output: str) -> bool:
        return "does not exist" in output


__all__ = ["SGEBackend", "qacct_state", "sge_state"]
