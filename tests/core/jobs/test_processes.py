"""core.jobs.processes: finding and ending process groups."""

from __future__ import annotations

import os
import subprocess
import sys

from core.jobs.processes import end_groups, group_members, live_groups


def test_live_groups_reads_every_group_at_once_and_end_groups_ends_them() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        pgid = os.getpgid(child.pid)
        gone = 2**22 + 7  # above the default pid_max: no such group
        assert live_groups([pgid, gone]) == {pgid}
        assert group_members(pgid) == [child.pid]
        assert end_groups([pgid, pgid, gone], grace=5.0) == {pgid: "SIGTERM"}
        child.wait(timeout=5)
        assert live_groups([pgid]) == set()
    finally:
        child.kill()
        child.wait()
