"""Ending what we started: a process group gets SIGTERM, and SIGKILL if anything in it outlives a grace period.

Every local job element and every command trial runs in a process group of its own (``start_new_session``), so
the group holds the wrapper, the command and whatever the command started. Waiting for the group leader alone is
not enough — a child that ignores SIGTERM (``sh -c 'trap "" TERM; sleep 100'``) keeps running after its parent
died — so :func:`terminate_group` watches the whole group and escalates.

:func:`end_groups` does the same for several groups at once (a runner stopping its trials), reading group members
from ``/proc`` so that a zombie waiting for another parent to reap it does not count as alive.

Example:
    >>> import subprocess
    >>> script = "trap '' TERM; echo ready; sleep 30"
    >>> child = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    >>> child.stdout.readline()
    'ready\\n'
    >>> terminate_group(child.pid, grace=0.5, leader=child)
    'SIGKILL after 0.5 s (it ignored SIGTERM)'
    >>> group_alive(child.pid)
    False
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_GRACE = 5.0  # seconds between SIGTERM and SIGKILL unless a config says otherwise


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still exists (a zombie leader not yet reaped counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(leader: subprocess.Popen[Any] | None) -> None:
    if leader is not None:
        leader.poll()  # a dead leader stays a zombie in the group until its parent (us) waits for it


def terminate_group(pgid: int, grace: float = DEFAULT_GRACE, leader: subprocess.Popen[Any] | None = None) -> str:
    """Send SIGTERM to process group ``pgid``; if any member is left after ``grace`` seconds, SIGKILL the group.

    Args:
        pgid: The group id (the pid of a process started with ``start_new_session=True``).
        grace: Seconds the group gets to exit after SIGTERM.
        leader: The group leader, when it is our child: it is reaped while waiting, and after the kill.

    Returns:
        How it ended, for a status reason: ``""`` (nothing was running), ``"SIGTERM"``, or
        ``"SIGKILL after <grace> s (it ignored SIGTERM)"``.
    """
    _reap(leader)
    if not group_alive(pgid):
        return ""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + max(grace, 0.0)
    pause = 0.005
    while time.monotonic() < deadline:
        _reap(leader)
        if not group_alive(pgid):
            return "SIGTERM"
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if leader is not None:
        leader.wait()
    end = time.monotonic() + 5.0  # SIGKILL cannot be ignored; give the kernel a moment to tear the group down
    while group_alive(pgid) and time.monotonic() < end:
        time.sleep(0.01)
    return f"SIGKILL after {grace:g} s (it ignored SIGTERM)"


SIGTERM, SIGKILL = "SIGTERM", "SIGKILL"


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``, read from ``/proc`` (Linux)."""
    return [pid for pid, group in _live_processes() if group == pgid]


def live_groups(pgids: Iterable[int]) -> set[int]:
    """Those of ``pgids`` that still have a live (not zombie) member: one read of ``/proc`` for all of them."""
    wanted = set(pgids)
    return {group for _, group in _live_processes() if group in wanted}


def _live_processes() -> list[tuple[int, int]]:
    """(pid, process group) of every live process, from ``/proc/<pid>/stat``; empty where there is no ``/proc``."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[2])))
    return found


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to group ``pgid``; a group that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def end_groups(pgids: Iterable[int], grace: float) -> dict[int, str]:
    """SIGTERM every group of ``pgids`` that has live members, wait up to ``grace`` seconds for them to go, then
    SIGKILL what is left. Returns, for each group that was alive, the signal that ended it (``SIGTERM`` or
    ``SIGKILL``)."""
    unique = list(dict.fromkeys(pgids))
    live = live_groups(unique)
    alive = [pgid for pgid in unique if pgid in live]
    for pgid in alive:
        signal_group(pgid, signal.SIGTERM)
    how = dict.fromkeys(alive, SIGTERM)
    deadline = time.monotonic() + grace
    remaining = list(alive)
    delay = 0.005
    while remaining and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)
        live = live_groups(remaining)
        remaining = [pgid for pgid in remaining if pgid in live]
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


__all__ = [
    "DEFAULT_GRACE",
    "SIGKILL",
    "SIGTERM",
    "end_groups",
    "group_alive",
    "group_members",
    "open_pidfd",
    "signal_group",
    "terminate_group",
]
