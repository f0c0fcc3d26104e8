"""Which runner owns a RUNNING trial, and whether that runner is still alive.

Optuna's own heartbeat works only inside ``study.optimize``; an ask/tell runner has to judge staleness itself.
Each runner records itself in the study's system attrs under ``kakehashi:runner:<id>`` (host, pid, the pid's
start time, a heartbeat timestamp) and refreshes the heartbeat every ``heartbeat_interval`` seconds; each trial it
asks carries ``kakehashi:runner = <id>`` (a command trial carries it in its job record, written
once). A runner is dead when

* it said it exited, or
* it ran on this host and its pid is gone, or now belongs to another process (start time differs), or
* its last heartbeat is older than ``grace`` seconds (any host).

Example:
    >>> me = RunnerRecord.current()
    >>> me.is_dead(now=me.heartbeat, grace=60, observer=me)
    False
    >>> gone = RunnerRecord("old", me.host, pid=2**22 + 7, pid_start="1", heartbeat=me.heartbeat)
    >>> gone.is_dead(now=me.heartbeat, grace=60, observer=me)
    True
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from core.jobs.state import pid_alive, process_start_time

RUNNER_KEY = "kakehashi:runner"  # trial system attr: id of the runner that owns the trial
RUNNER_PREFIX = "kakehashi:runner:"  # study system attr prefix: one record per runner


@dataclass
class RunnerRecord:
    runner_id: str
    host: str
    pid: int
    pid_start: str
    heartbeat: float
    exited: bool = False

    @classmethod
    def current(cls) -> RunnerRecord:
        pid = os.getpid()
        host = socket.gethostname()
        return cls(f"{host}-{pid}-{uuid.uuid4().hex[:8]}", host, pid, process_start_time(pid), time.time())

    @classmethod
    def from_attr(cls, runner_id: str, value: Any) -> RunnerRecord | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                runner_id,
                str(value["host"]),
                int(value["pid"]),
                str(value.get("pid_start", "")),
                float(value["heartbeat"]),
                bool(value.get("exited", False)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_attr(self) -> dict[str, Any]:
        data = asdict(self)
        del data["runner_id"]
        return data

    def is_dead(self, now: float, grace: float, observer: RunnerRecord) -> bool:
        if self.runner_id == observer.runner_id:
            return False
        if self.exited:
            return True
        if self.host == observer.host:
            if self.pid == observer.pid:  # a pid of this host that is this process: the record is an old run's
                return True
            if not pid_alive(self.pid, self.pid_start):
                return True
        return now - self.heartbeat > grace


def owner_of(system_attrs: dict[str, Any]) -> str | None:
    """The runner that owns a trial: its tag, or (a command trial, tagged in the same write as its job) the
    runner named in its job record. None: not yet tagged (just asked)."""
    from core.hpo.report import JOB_KEY

    owner = system_attrs.get(RUNNER_KEY)
    if owner is None and isinstance(job := system_attrs.get(JOB_KEY), dict):
        owner = job.get("runner")
    return owner if isinstance(owner, str) else None


def runner_records(study_system_attrs: dict[str, Any]) -> dict[str, RunnerRecord]:
    """Every runner record of a study, by runner id."""
    records = {}
    for key, value in study_system_attrs.items():
        if key.startswith(RUNNER_PREFIX):
            record = RunnerRecord.from_attr(key[len(RUNNER_PREFIX) :], value)
            if record is not None:
                records[record.runner_id] = record
    return records
