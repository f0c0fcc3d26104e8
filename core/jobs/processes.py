"""Ending what we started: a process group gets SIGTERM, and SIGKILL if anything in it outlives a grace period.

Every local job element and every command trial runs in a process group of its own (``start_new_session``), so
the group holds the wrapper, the command and whatever the command started. Waiting for the group leader alone is
not enough — a child that ignores SIGTERM (``sh -c 'trap "" TERM; sleep 100'``) keeps running after its parent
died — so :func:`terminate_group` watches the whole group and escalates.

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


__all__ = ["DEFAULT_GRACE", "group_alive", "terminate_group"]
