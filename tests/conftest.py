"""Suite-wide rules. Under CI=true a test that needs a real service (Slurm, SGE, PostgreSQL, ROS, SUMO, MPI)
may not skip: the skip is turned into a failure, so CI can't pass by not testing."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

SERVICE_MARKERS = ("slurm", "sge", "postgres", "ros", "sumo", "mpi")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() != "true" or not report.skipped:
        return
    needed = [m for m in SERVICE_MARKERS if item.get_closest_marker(m)]
    if needed:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, but CI must provide {', '.join(needed)}: {report.longrepr}"
