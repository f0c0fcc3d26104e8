"""The PBS backend end to end against fake ``qsub``/``qstat``/``qdel`` executables put on PATH by these tests:
PBS has no Debian package, so ``fake_pbs.py`` plays PBS Professional (it runs the rendered job scripts as real
local processes and answers ``qstat -x -f -F json -t`` as PBS Pro does). The rendered scripts themselves are
checked against golden files in test_templates.py."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from core.errors import DependencyError, UserError
from core.jobs import JobSpec, JobState, get_backend
from core.jobs.pbs import PBSBackend, pbs_state
from tests.core.jobs.fake_pbs import install_fake_pbs


@pytest.fixture
def pbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PBSBackend:
    for key, value in install_fake_pbs(tmp_path / "bin", tmp_path / "pbs-server").items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "pbs-site.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/pbs.yaml\npoll_interval: 0.1\nlost_after: 2\n")
    backend = get_backend("pbs", config)
    assert isinstance(backend, PBSBackend)
    return backend


def test_array_with_a_failing_element_and_its_logs(pbs: PBSBackend, tmp_path: Path) -> None:
    code = (
        "import os, sys; print('task', os.environ['TASK_INDEX']); sys.exit(3 if os.environ['TASK_INDEX'] == '2' else 0)"
    )
    spec = JobSpec([sys.executable, "-c", code], name="arr", n_tasks=3, log_path=tmp_path / "logs/arr.log")
    handle = pbs.submit(spec)
    assert handle.job_id.endswith("[].fake") and handle.n_array == 3
    before = pbs.queries
    [status] = pbs.wait([handle], timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert [(t.state, t.exit_code) for t in status.tasks] == [
        (JobState.COMPLETED, 0),
        (JobState.COMPLETED, 0),
        (JobState.FAILED, 3),
    ]
    assert [p.read_text() for p in handle.log_paths] == ["task 0\n", "task 1\n", "task 2\n"]
    assert pbs.queries > before


def test_one_qstat_per_status_round_for_many_jobs(pbs: PBSBackend, tmp_path: Path) -> None:
    handles = [pbs.submit(JobSpec(["true"], name=f"j{i}", log_path=tmp_path / f"{i}.log")) for i in range(5)]
    before = pbs.queries
    pbs.status(handles)
    assert pbs.queries - before == 1
    assert all(s.state is JobState.COMPLETED for s in pbs.wait(handles, timeout=60))


def test_qdel_reports_cancelled(pbs: PBSBackend, tmp_path: Path) -> None:
    handle = pbs.submit(JobSpec(["sleep", "60"], log_path=tmp_path / "s.log"))
    deadline = time.monotonic() + 20
    while pbs.status([handle])[0].state is not JobState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    pbs.cancel(handle)
    [status] = pbs.wait([handle], timeout=30)
    assert status.state is JobState.CANCELLED


def test_walltime_kill_reports_timeout(pbs: PBSBackend, tmp_path: Path) -> None:
    handle = pbs.submit(JobSpec(["sleep", "60"], walltime="00:00:01", log_path=tmp_path / "w.log"))
    [status] = pbs.wait([handle], timeout=30)
    assert status.state is JobState.TIMEOUT and "walltime" in status.reason


def test_unknown_job_is_lost_after_a_bounded_time(pbs: PBSBackend, tmp_path: Path) -> None:
    real = pbs.submit(JobSpec(["true"], log_path=tmp_path / "r.log"))
    pbs.wait([real], timeout=30)
    import shutil

    shutil.rmtree(Path(str(tmp_path / "pbs-server")))  # the server forgot the job; it left no exit file
    (real.state_dir / "0.exit").unlink()
    started = time.monotonic()
    [status] = pbs.wait([real], timeout=30)
    assert status.state is JobState.LOST and "no exit status" in status.reason
    assert time.monotonic() - started < 10


def test_rejected_submission_is_one_error(pbs: PBSBackend, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="qsub rejected the job: qsub: Unknown queue"):
        pbs.submit(JobSpec(["true"], options={"queue": "reject"}, log_path=tmp_path / "x.log"))


def test_missing_qsub_is_a_dependency_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyError, match="qsub not found"):
        get_backend("pbs").submit(JobSpec(["true"], log_path=tmp_path / "x.log"))


def test_pbs_states() -> None:
    assert pbs_state({"job_state": "Q"}).state is JobState.PENDING
    assert pbs_state({"job_state": "R"}).state is JobState.RUNNING
    assert pbs_state({"job_state": "F", "Exit_status": 0}).state is JobState.COMPLETED
    assert pbs_state({"job_state": "F", "Exit_status": 2}).exit_code == 2
    assert pbs_state({"job_state": "F", "Exit_status": -29}).state is JobState.TIMEOUT
    killed_at_limit = {
        "job_state": "F",
        "Exit_status": 271,
        "Resource_List": {"walltime": "00:10:00"},
        "resources_used": {"walltime": "00:10:01"},
    }
    assert pbs_state(killed_at_limit).state is JobState.TIMEOUT
    assert pbs_state({**killed_at_limit, "resources_used": {"walltime": "00:01:00"}}).state is JobState.CANCELLED
    assert pbs_state({"job_state": "F"}).state is JobState.CANCELLED  # deleted while queued


def test_grid_engines_qsub_is_refused_before_anything_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an SGE host `qsub` is Grid Engine's: the PBS backend says so instead of submitting an SGE job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    submitted = tmp_path / "submitted"
    qsub = bin_dir / "qsub"
    qsub.write_text(
        f'#!/bin/sh\nif [ "$1" = -help ]; then echo "SGE 8.1.9"; echo "usage: qsub [options]"; exit 0; fi\n'
        f"touch {submitted}; echo 'Your job 7 (\"x\") has been submitted'\n"
    )
    qsub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(UserError, match=r"qsub on this host is Grid Engine's \(SGE 8\.1\.9\), not PBS's"):
        get_backend("pbs").submit(JobSpec(["true"], log_path=tmp_path / "x.log"))
    assert not submitted.exists()
