"""The Slurm and SGE backends against the real local clusters (tools/ci/slurm-up.sh, tools/ci/sge-up.sh):
exit codes, arrays with a failing element, argument quoting, cancel by us and by the scheduler's own command,
walltime, a job that vanishes, a rejected submission, mpi and train modes, and the CLI's exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.errors import DependencyError, UserError
from core.files import write_atomic
from core.jobs import JobHandle, JobSpec, JobState, get_backend
from core.jobs.scheduler import ScriptBackend
from core.jobs.state import save_handle
from tests.core.jobs.conftest import REPO, read_env_file

PY = sys.executable
SCHEDULERS = [pytest.param("slurm", marks=pytest.mark.slurm), pytest.param("sge", marks=pytest.mark.sge)]
KILL = {"slurm": "scancel", "sge": "qdel"}
WALLTIME = {"slurm": "00:01:00", "sge": "00:00:10"}  # Slurm checks limits every 30 s: killed after 60-90 s


def fast_backend(name: str, folder: Path, **values: object) -> ScriptBackend:
    """The bundled template, polled quickly; where the test cluster differs from the default, the site file says so."""
    lines = [f"_base_: ${{pkg:core.jobs.config}}/{name}.yaml", "poll_interval: 0.3", "lost_after: 3"]
    if name == "sge":  # the test cluster's parallel environment
        lines.append("options: {parallel_environment: '${oc.env:KAKEHASHI_SGE_PE}'}")
    lines += [f"{k}: {json.dumps(v)}" for k, v in values.items()]
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}-site.yaml"
    config.write_text("\n".join(lines) + "\n")
    backend = get_backend(name, config)
    assert isinstance(backend, ScriptBackend)
    return backend


@pytest.fixture
def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> ScriptBackend:
    request.getfixturevalue(request.param)  # the cluster's environment, or a skip
    return fast_backend(request.param, tmp_path)


@dataclass
class EarlyJob:
    backend: ScriptBackend
    handle: JobHandle
    submitted: float


@pytest.fixture(scope="module")
def walltime_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, EarlyJob]]:
    """One job per cluster that overruns its walltime, submitted when the module starts: Slurm needs 60-90 s to
    kill it, which then overlaps the other tests instead of adding to them."""
    jobs: dict[str, EarlyJob] = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, folder in (("slurm", "KAKEHASHI_SLURM_DIR"), ("sge", "KAKEHASHI_SGE_DIR")):
            env_file = Path(os.environ.get(folder, f"/tmp/kakehashi-{name}")) / "env.sh"
            if not env_file.is_file():
                continue
            for key, value in read_env_file(env_file).items():
                patch.setenv(key, value)
            try:
                backend = fast_backend(name, tmp_path_factory.mktemp(f"walltime-{name}"))
                log = tmp_path_factory.mktemp(f"walltime-log-{name}") / "w.log"
                handle = backend.submit(
                    JobSpec(["sleep", "300"], name="overrun", walltime=WALLTIME[name], log_path=log)
                )
            except UserError:
                continue  # the cluster is not answering; the test that needs it skips or fails on its own
            jobs[name] = EarlyJob(backend, handle, time.monotonic())
        yield jobs
        for job in jobs.values():
            if not job.backend.status([job.handle])[0].state.finished:
                job.backend.cancel(job.handle)


@pytest.fixture(autouse=True)
def _submit_walltime_jobs_first(walltime_jobs: dict[str, EarlyJob]) -> None:
    pass


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_array_exit_codes_logs_and_arguments(scheduler: ScriptBackend, tmp_path: Path) -> None:
    tricky = ["$HOME", "a b", "'q'", '"dq"', "; exit 9", "`id`", "*", "\\", ""]
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import json, os, sys; from core.jobs import split_tasks; "
        "env = {k: os.environ[k] for k in ('TASK_INDEX', 'TASK_STEPSIZE', 'TASK_COUNT', 'KAKEHASHI_JOB_ID')}; "
        "json.dump({'env': env, 'mine': split_tasks(list('abcde')), 'argv': sys.argv[2:]}, "
        "open(sys.argv[1] + '/' + env['TASK_INDEX'], 'w')); "
        "print('element', os.environ['KAKEHASHI_ARRAY_ELEMENT']); sys.exit(3 if env['TASK_INDEX'] == '2' else 0)"
    )
    spec = JobSpec(
        [PY, "-c", code, str(out), *tricky], name="arr", n_tasks=5, n_tasks_per_proc=2, log_path=tmp_path / "a.log"
    )
    handle = scheduler.submit(spec)
    assert handle.n_array == 3 and handle.log_paths[2] == tmp_path / "a.2.log"
    before = scheduler.queries
    first = scheduler.status([handle])
    assert scheduler.queries - before == 1  # one scheduler query for the whole array
    assert first[0].state in (JobState.PENDING, JobState.RUNNING, JobState.FAILED)
    [status] = scheduler.wait([handle], timeout=120)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3), status
    assert [(t.index, t.state, t.exit_code) for t in status.tasks] == [
        (0, JobState.COMPLETED, 0),
        (1, JobState.FAILED, 3),
        (2, JobState.COMPLETED, 0),
    ]
    assert status.tasks[1].log_path.read_text() == "element 1\n"
    results = {int(p.name): json.loads(p.read_text()) for p in out.iterdir()}
    assert {i: r["mine"] for i, r in results.items()} == {0: ["a", "b"], 2: ["c", "d"], 4: ["e"]}
    assert all(r["argv"] == tricky for r in results.values())
    assert {r["env"]["KAKEHASHI_JOB_ID"] for r in results.values()} <= {handle.job_id, *(str(i) for i in range(10**6))}


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_cancel_ours_and_the_schedulers_own(scheduler: ScriptBackend, tmp_path: Path) -> None:
    ours = scheduler.submit(JobSpec(["sleep", "120"], name="ours", log_path=tmp_path / "o.log"))
    theirs = scheduler.submit(JobSpec(["sleep", "120"], name="theirs", log_path=tmp_path / "t.log"))
    started = time.monotonic()
    statuses = scheduler.wait([ours, theirs], timeout=1.5)
    assert time.monotonic() - started >= 1.5
    assert not any(s.state.finished for s in statuses)  # wait with a timeout returns, the jobs go on
    scheduler.cancel(ours)
    subprocess.run([KILL[scheduler.name], theirs.job_id], check=True, capture_output=True)
    final = scheduler.wait([ours, theirs], timeout=60)
    assert [s.state for s in final] == [JobState.CANCELLED, JobState.CANCELLED], final
    scheduler.cancel(ours)  # cancelling a finished job does nothing


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_a_job_that_vanished_is_lost_after_a_bounded_time(scheduler: ScriptBackend, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ghost = JobHandle(scheduler.name, "987654", JobSpec(["true"]), 1, (tmp_path / "g.log",), state_dir)
    save_handle(ghost)  # submitted now; the scheduler has never heard of it and no exit file will come
    started = time.monotonic()
    [status] = scheduler.wait([ghost], timeout=30)
    assert status.state is JobState.LOST and "no exit status after 3 s" in status.reason
    assert 2.5 <= time.monotonic() - started < 15


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_rejected_submission_is_one_error(scheduler: ScriptBackend, tmp_path: Path) -> None:
    option = {"slurm": {"partition": "no-such-partition"}, "sge": {"queue": "no-such-queue"}}[scheduler.name]
    with pytest.raises(UserError, match="rejected the job"):
        scheduler.submit(JobSpec(["true"], options=option, log_path=tmp_path / "x.log"))


@pytest.mark.parametrize("name", ["slurm", "sge"])
def test_missing_scheduler_is_a_dependency_error(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyError, match="not found"):
        get_backend(name).submit(JobSpec(["true"], log_path=tmp_path / "x.log"))


@pytest.mark.mpi
@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_mpi_mode(scheduler: ScriptBackend, tmp_path: Path, mpi: None) -> None:
    code = (
        "import os, sys; rank, size = os.environ['OMPI_COMM_WORLD_RANK'], os.environ['OMPI_COMM_WORLD_SIZE']; "
        "open(os.path.join(sys.argv[1], rank), 'w').write(f'rank {rank} of {size}')"
    )
    out = tmp_path / "ranks"
    out.mkdir()
    env = {k: "1" for k in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")}
    spec = JobSpec([PY, "-c", code, str(out)], name="mpi", mode="mpi", n_procs=2, env=env, log_path=tmp_path / "m.log")
    handle = scheduler.submit(spec)
    [status] = scheduler.wait([handle], timeout=120)
    log = handle.log_paths[0].read_text()
    assert status.state is JobState.COMPLETED, log
    assert sorted(p.read_text() for p in out.iterdir()) == ["rank 0 of 2", "rank 1 of 2"]


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_train_mode_exports_the_ddp_environment(
    scheduler: ScriptBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if scheduler.name == "sge":  # ranks come from mpirun there
        request_mpi(monkeypatch)
    out = tmp_path / "ranks"
    out.mkdir()
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
    code = (
        f"import json, os, sys; env = {{k: os.environ[k] for k in {keys!r}}}; "
        "json.dump(env, open(sys.argv[1] + '/' + os.environ['RANK'], 'w'))"
    )
    env = {k: "1" for k in ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")}
    spec = JobSpec(
        [PY, "-c", code, str(out)], name="ddp", mode="train", n_procs=2, env=env, log_path=tmp_path / "t.log"
    )
    handle = scheduler.submit(spec)
    [status] = scheduler.wait([handle], timeout=120)
    assert status.state is JobState.COMPLETED, handle.log_paths[0].read_text()
    ranks = [json.loads((out / str(r)).read_text()) for r in range(2)]
    assert [(r["RANK"], r["LOCAL_RANK"], r["WORLD_SIZE"], r["NODE_RANK"]) for r in ranks] == [
        ("0", "0", "2", "0"),
        ("1", "1", "2", "0"),
    ]
    assert ranks[0]["MASTER_ADDR"] == ranks[1]["MASTER_ADDR"] and ranks[0]["MASTER_PORT"] == ranks[1]["MASTER_PORT"]


def request_mpi(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if shutil.which("mpirun") is None:
        pytest.skip("mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev)")


@pytest.mark.slurm
def test_cli_exits_with_the_jobs_code_and_reads_status_back(slurm: dict[str, str], tmp_path: Path) -> None:
    config = fast_backend("slurm", tmp_path / "cfg").config.where
    kakehashi = [PY, "-m", "core.cli", "job"]
    run = subprocess.run(
        [*kakehashi, "slurm", "cpu", "--config", config, str(tmp_path / "c.log"), "--", "sh", "-c", "echo out; exit 3"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert run.returncode == 3, run.stderr
    job_id = run.stdout.split("job ")[1].split()[0]
    status = subprocess.run([*kakehashi, "status", job_id], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert status.returncode == 3 and "failed" in status.stdout and job_id in status.stdout  # the job's own code
    logs = subprocess.run([*kakehashi, "logs", job_id], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert logs.stdout == "out\n"


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_walltime_is_reported_as_timeout(scheduler: ScriptBackend, walltime_jobs: dict[str, EarlyJob]) -> None:
    if scheduler.name not in walltime_jobs:
        pytest.fail(f"the {scheduler.name} walltime job was not submitted at module start")
    job = walltime_jobs[scheduler.name]
    [status] = job.backend.wait([job.handle], timeout=150)
    assert status.state is JobState.TIMEOUT, status
    assert "walltime" in status.reason
    assert time.monotonic() - job.submitted >= 9


def test_no_exit_file_written_means_not_completed(tmp_path: Path) -> None:
    """The rule behind every scheduler status: an exit file decides, a missing one never reads as success."""
    from core.jobs.scheduler import SchedulerState, decide

    assert decide(SchedulerState(JobState.COMPLETED), None, False) is None  # finished by word only: look further
    assert decide(None, 0, False) == (JobState.COMPLETED, 0, "")
    assert decide(None, 3, False) == (JobState.FAILED, 3, "")
    assert decide(SchedulerState(JobState.TIMEOUT, None, "walltime exceeded"), 143, False)[0] is JobState.TIMEOUT
    assert decide(SchedulerState(JobState.RUNNING), None, True) == (JobState.RUNNING, None, "")
    assert decide(None, None, True) == (JobState.CANCELLED, None, "cancelled")
    write_atomic(tmp_path / "x", "1")


@pytest.mark.parametrize("scheduler", SCHEDULERS, indirect=True)
def test_a_program_on_the_submitters_path_is_found_in_the_job(scheduler: ScriptBackend, tmp_path: Path) -> None:
    """`kakehashi` lives in the virtual environment's bin folder, on the submitter's PATH only: SGE starts jobs
    with a bare PATH unless the script carries it (export_env)."""
    tool = Path(PY).parent / "kakehashi"
    assert tool.is_file()
    log = tmp_path / "path.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
        handle = scheduler.submit(JobSpec(["kakehashi", "--version"], log_path=log))
    [status] = scheduler.wait([handle], timeout=120)
    assert status.state is JobState.COMPLETED, log.read_text() if log.exists() else status.reason
    assert log.read_text().startswith("kakehashi ")
