"""Ending a trial's processes for good: the whole process group gets SIGTERM, and whatever is still there after a
grace period gets SIGKILL (a trial that traps SIGTERM, or a child the wrapper left behind).

A local job runs in a process group of its own whose id is the pid of its wrapper (core.jobs' local backend).
Members are found in ``/proc`` (Linux); zombies waiting to be reaped do not count as alive.

Example:
    >>> import subprocess, sys
    >>> child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 30"], start_new_session=True)
    >>> import time; time.sleep(0.2)
    >>> list(end_groups([child.pid], grace=0.3).values())
    ['SIGKILL']
    >>> child.wait()
    -9
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

SIGTERM, SIGKILL = "SIGTERM", "SIGKILL"


def live_groups() -> dict[int, list[int]]:
    """Live (not zombie) processes by process group, from one pass over ``/proc``."""
    groups: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[0] not in ("Z", "X"):
            groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``."""
    return live_groups().get(pgid, [])


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def end_groups(pgids: Iterable[int], grace: float) -> dict[int, str]:
    """SIGTERM every group of ``pgids`` that has live members, wait up to ``grace`` seconds for them to go, then
    SIGKILL what is left. Returns, for each group that was alive, the signal that ended it."""
    groups = live_groups()
    alive = [pgid for pgid in dict.fromkeys(pgids) if pgid in groups]
    for pgid in alive:
        signal_group(pgid, signal.SIGTERM)
    how = dict.fromkeys(alive, SIGTERM)
    deadline = time.monotonic() + grace
    remaining = list(alive)
    delay = 0.005
    while remaining and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)
        groups = live_groups()
        remaining = [pgid for pgid in remaining if pgid in groups]
    for pgid in remaining:
        signal_group(pgid, signal.SIGKILL)
        how[pgid] = SIGKILL
    return how


def open_pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once the process exits), or None where the kernel or Python has none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd
