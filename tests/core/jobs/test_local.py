"""The local backend with real child processes: exit codes, the concurrency limit, cancel of a process tree,
walltime, arrays with a failing element, wait with a timeout, and status read back by another process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import UserError
from core.jobs import JobHandle, JobSpec, JobState, get_backend
from core.jobs.local import LocalBackend
from core.jobs.state import find_handle, load_handle
from core.jobs.template import load_backend_config

PY = sys.executable


def local(tmp_path: Path, **values: object) -> LocalBackend:
    lines = ["_base_: ${pkg:core.jobs.config}/local.yaml", "poll_interval: 0.02"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in values.items()]
    config = tmp_path / "local-site.yaml"
    config.write_text("\n".join(lines) + "\n")
    backend = get_backend("local", config)
    assert isinstance(backend, LocalBackend)
    return backend


def _gone(pid: int, within: float = 5.0) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return True
        if fields[0] in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_exit_code_log_and_environment(tmp_path: Path) -> None:
    backend = local(tmp_path)
    code = "import os, sys; print('hi', os.environ['GREETING'], os.getcwd()); sys.exit(3)"
    spec = JobSpec([PY, "-c", code], name="three", log_path=tmp_path / "logs/three.log", env={"GREETING": "a b'c"})
    handle = backend.submit(spec)
    [status] = backend.wait([handle], timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert handle.log_paths == (tmp_path / "logs/three.log",)
    assert handle.log_paths[0].read_text() == f"hi a b'c {os.getcwd()}\n"
    assert (handle.state_dir / "0.exit").read_text() == "3\n"  # left by the job itself


def test_arguments_reach_the_command_verbatim(tmp_path: Path) -> None:
    tricky = ["$HOME", "a b", "'quoted'", '"dq"', "; rm -rf /", "`id`", "*", "\\", "line\nbreak", ""]
    out = tmp_path / "argv.json"
    code = "import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], 'w'))"
    backend = local(tmp_path)
    handle = backend.submit(JobSpec([PY, "-c", code, str(out), *tricky], log_path=tmp_path / "a.log", cwd=tmp_path))
    assert backend.wait([handle], timeout=60)[0].state is JobState.COMPLETED
    assert json.loads(out.read_text()) == tricky


def test_concurrency_limit_queues_the_rest_as_pending(tmp_path: Path) -> None:
    backend = local(tmp_path, max_parallel=2)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    code = "import sys, time; t0 = time.time(); time.sleep(0.6); open(sys.argv[1], 'w').write(f'{t0} {time.time()}')"
    handles = [
        backend.submit(JobSpec([PY, "-c", code, str(stamps / str(i))], name=f"j{i}", log_path=tmp_path / f"{i}.log"))
        for i in range(5)
    ]
    first = backend.status(handles)
    assert [s.state for s in first].count(JobState.RUNNING) == 2
    assert [s.state for s in first].count(JobState.PENDING) == 3
    final = backend.wait(handles, timeout=60)
    assert all(s.state is JobState.COMPLETED for s in final)
    intervals = [tuple(map(float, (stamps / str(i)).read_text().split())) for i in range(5)]
    # at no moment did more than two jobs run
    for start, _ in intervals:
        assert sum(1 for s, e in intervals if s <= start < e) <= 2


def test_queued_jobs_start_without_polling(tmp_path: Path) -> None:
    backend = local(tmp_path, max_parallel=1)
    marker = tmp_path / "second-ran"
    first = backend.submit(JobSpec(["sleep", "0.2"], log_path=tmp_path / "1.log"))
    second = backend.submit(JobSpec(["touch", str(marker)], log_path=tmp_path / "2.log"))
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # no status() call: the background starter must start the queued job
    assert marker.exists()
    assert [s.state for s in backend.wait([first, second], timeout=30)] == [JobState.COMPLETED] * 2


def test_cancel_kills_the_whole_process_tree(tmp_path: Path) -> None:
    backend = local(tmp_path)
    child_pid = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {child_pid}; wait"
    handle = backend.submit(JobSpec(["sh", "-c", script], log_path=tmp_path / "tree.log"))
    deadline = time.monotonic() + 20
    while not child_pid.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = int(child_pid.read_text())
    assert backend.status([handle])[0].state is JobState.RUNNING
    backend.cancel(handle)
    [status] = backend.wait([handle], timeout=20)
    assert status.state is JobState.CANCELLED
    assert _gone(grandchild)
    backend.cancel(handle)  # cancelling a finished job does nothing
    assert backend.status([handle])[0].state is JobState.CANCELLED


def test_cancel_of_a_queued_job_never_starts_it(tmp_path: Path) -> None:
    backend = local(tmp_path, max_parallel=1)
    blocker = backend.submit(JobSpec(["sleep", "0.5"], log_path=tmp_path / "b.log"))
    marker = tmp_path / "ran"
    queued = backend.submit(JobSpec(["touch", str(marker)], log_path=tmp_path / "q.log"))
    backend.cancel(queued)
    states = [s.state for s in backend.wait([blocker, queued], timeout=30)]
    assert states == [JobState.COMPLETED, JobState.CANCELLED]
    assert not marker.exists()


def test_walltime_is_reported_as_timeout(tmp_path: Path) -> None:
    backend = local(tmp_path)
    handle = backend.submit(JobSpec(["sleep", "60"], walltime="00:00:01", log_path=tmp_path / "w.log"))
    started = time.monotonic()
    [status] = backend.wait([handle], timeout=30)
    assert status.state is JobState.TIMEOUT
    assert "walltime" in status.reason
    assert time.monotonic() - started < 15


def test_wait_with_a_timeout_returns_unfinished_states(tmp_path: Path) -> None:
    backend = local(tmp_path)
    handle = backend.submit(JobSpec(["sleep", "60"], log_path=tmp_path / "s.log"))
    started = time.monotonic()
    [status] = backend.wait([handle], timeout=0.5)
    elapsed = time.monotonic() - started
    assert status.state is JobState.RUNNING
    assert 0.5 <= elapsed < 5
    backend.cancel(handle)


def test_killed_from_outside_is_a_failure_with_the_signal(tmp_path: Path) -> None:
    backend = local(tmp_path)
    handle = backend.submit(JobSpec(["sleep", "60"], log_path=tmp_path / "k.log"))
    pid = int((handle.state_dir / "0.pid").read_text().split()[0])
    os.killpg(pid, signal.SIGKILL)
    [status] = backend.wait([handle], timeout=20)
    assert (status.state, status.exit_code) == (JobState.FAILED, 137)
    assert "signal 9" in status.reason


def test_array_with_one_failing_element(tmp_path: Path) -> None:
    backend = local(tmp_path, max_parallel=2)
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import json, os, sys; from core.jobs import split_tasks; "
        "items = list('abcde'); mine = split_tasks(items); "
        "env = {k: os.environ[k] for k in ('TASK_INDEX', 'TASK_STEPSIZE', 'TASK_COUNT')}; "
        "json.dump({'env': env, 'mine': mine}, open(sys.argv[1] + '/' + env['TASK_INDEX'], 'w')); "
        "print('element', os.environ['KAKEHASHI_ARRAY_ELEMENT']); "
        "sys.exit(5 if env['TASK_INDEX'] == '2' else 0)"
    )
    spec = JobSpec([PY, "-c", code, str(out)], name="arr", n_tasks=5, n_tasks_per_proc=2, log_path=tmp_path / "a.log")
    handle = backend.submit(spec)
    assert handle.n_array == 3
    assert handle.log_paths == tuple(tmp_path / f"a.{i}.log" for i in range(3))
    [status] = backend.wait([handle], timeout=60)
    assert (status.state, status.exit_code) == (JobState.FAILED, 5)
    assert [(t.index, t.state, t.exit_code) for t in status.tasks] == [
        (0, JobState.COMPLETED, 0),
        (1, JobState.FAILED, 5),
        (2, JobState.COMPLETED, 0),
    ]
    assert status.tasks[1].log_path.read_text() == "element 1\n"
    results = {int(p.name): json.loads(p.read_text()) for p in out.iterdir()}
    assert {i: r["mine"] for i, r in results.items()} == {0: ["a", "b"], 2: ["c", "d"], 4: ["e"]}
    assert all(r["env"]["TASK_STEPSIZE"] == "2" and r["env"]["TASK_COUNT"] == "5" for r in results.values())


def test_status_is_read_back_by_another_process(tmp_path: Path) -> None:
    """A process submits and exits; this one finds the job by id and reads its result from the state dir."""
    go = tmp_path / "go"  # the job runs until the test says so: no race with a loaded machine's clock
    script = f"while [ ! -e {go} ]; do sleep 0.05; done; exit 4"
    code = (
        "import sys; from pathlib import Path; from core.jobs import JobSpec, get_backend; "
        "b = get_backend('local', sys.argv[1]); "
        "h = b.submit(JobSpec(['sh', '-c', sys.argv[3]], name='orphan', log_path=Path(sys.argv[2]))); "
        "print(h.job_id)"
    )
    config = tmp_path / "c.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/local.yaml\n")
    job_id = subprocess.run(
        [PY, "-c", code, str(config), str(tmp_path / "o.log"), script], capture_output=True, text=True, check=True
    ).stdout.strip()
    handle = find_handle(job_id)
    assert handle.job_id == job_id and handle.spec.command == ["sh", "-c", script]
    backend = local(tmp_path)
    assert backend.status([handle])[0].state is JobState.RUNNING
    go.touch()
    [status] = backend.wait([handle], timeout=30)
    assert (status.state, status.exit_code) == (JobState.FAILED, 4)
    assert load_handle(handle.state_dir) == handle


def test_elements_never_started_by_a_dead_submitter_are_lost(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from core.jobs import JobSpec, get_backend; "
        "b = get_backend('local', sys.argv[1]); "
        "h = b.submit(JobSpec(['true'], n_tasks=3, log_path=Path(sys.argv[2]))); print(h.state_dir)"
    )
    config = tmp_path / "c.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/local.yaml\nmax_parallel: 1\n")
    out = subprocess.run([PY, "-c", code, str(config), str(tmp_path / "l.log")], capture_output=True, text=True)
    handle = load_handle(Path(out.stdout.strip()))
    [status] = local(tmp_path).wait([handle], timeout=20)
    assert [t.state for t in status.tasks] == [JobState.COMPLETED, JobState.LOST, JobState.LOST]
    assert status.state is JobState.LOST and "submitting process exited" in status.reason


def test_foreign_cancel_kills_the_running_job(tmp_path: Path) -> None:
    first = local(tmp_path)
    handle = first.submit(JobSpec(["sleep", "60"], log_path=tmp_path / "f.log"))
    other = local(tmp_path)
    other.cancel(handle)
    assert first.wait([handle], timeout=20)[0].state is JobState.CANCELLED
    assert other.status([handle])[0].state is JobState.CANCELLED


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (JobSpec("echo hi"), "argv"),  # type: ignore[arg-type]
        (JobSpec(["no-such-program-kh"]), "command not found"),
        (JobSpec(["true"], walltime="ten minutes"), "walltime"),
        (JobSpec(["true"], n_tasks=0), "n_tasks"),
        (JobSpec(["true"], env={"BAD NAME": "x"}), "environment variable"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path: Path, spec: JobSpec, message: str) -> None:
    with pytest.raises(UserError, match=message):
        local(tmp_path).submit(spec)


def test_config_for_another_backend_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/slurm.yaml\n")
    with pytest.raises(UserError, match="for backend 'slurm'"):
        load_backend_config("local", config)


def test_train_mode_gives_each_rank_its_ddp_environment(tmp_path: Path) -> None:
    out = tmp_path / "ranks"
    out.mkdir()
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
    code = (
        f"import json, os, sys; env = {{k: os.environ[k] for k in {keys!r}}}; "
        "json.dump(env, open(sys.argv[1] + '/' + os.environ['RANK'], 'w'))"
    )
    backend = local(tmp_path)
    handle = backend.submit(JobSpec([PY, "-c", code, str(out)], mode="train", n_procs=2, log_path=tmp_path / "t.log"))
    assert backend.wait([handle], timeout=60)[0].state is JobState.COMPLETED
    ranks = [json.loads((out / str(r)).read_text()) for r in range(2)]
    assert [(r["RANK"], r["LOCAL_RANK"], r["WORLD_SIZE"], r["NODE_RANK"]) for r in ranks] == [
        ("0", "0", "2", "0"),
        ("1", "1", "2", "0"),
    ]
    assert ranks[0]["MASTER_ADDR"] == ranks[1]["MASTER_ADDR"] == "127.0.0.1"
    assert ranks[0]["MASTER_PORT"] == ranks[1]["MASTER_PORT"]


def test_train_mode_reports_the_failing_rank_code(tmp_path: Path) -> None:
    code = "import os, sys, time; sys.exit(7) if os.environ['RANK'] == '1' else time.sleep(60)"
    backend = local(tmp_path)
    handle = backend.submit(JobSpec([PY, "-c", code], mode="train", n_procs=2, log_path=tmp_path / "t.log"))
    [status] = backend.wait([handle], timeout=30)  # rank 0 is stopped once rank 1 failed
    assert (status.state, status.exit_code) == (JobState.FAILED, 7)


@pytest.mark.mpi
def test_mpi_mode_runs_n_ranks(tmp_path: Path, mpi: None) -> None:
    code = (
        "import os, sys; rank, size = os.environ['OMPI_COMM_WORLD_RANK'], os.environ['OMPI_COMM_WORLD_SIZE']; "
        "open(os.path.join(sys.argv[1], rank), 'w').write(f'rank {rank} of {size}')"
    )
    out = tmp_path / "ranks"
    out.mkdir()
    backend = local(tmp_path)
    handle = backend.submit(JobSpec([PY, "-c", code, str(out)], mode="mpi", n_procs=3, log_path=tmp_path / "m.log"))
    [status] = backend.wait([handle], timeout=120)
    log = handle.log_paths[0].read_text()
    assert status.state is JobState.COMPLETED, log
    assert sorted(p.read_text() for p in out.iterdir()) == [f"rank {i} of 3" for i in range(3)]


def _start_stubborn(backend: LocalBackend, tmp_path: Path, **spec: object) -> tuple[JobHandle, int]:
    """A job whose child ignores SIGTERM (its wrapper does not): returns the handle and the child's pid."""
    child_pid = tmp_path / "stubborn.pid"
    script = f"sh -c 'trap \"\" TERM; echo $$ > {child_pid}; while :; do sleep 0.1; done' & wait"
    handle = backend.submit(JobSpec(["sh", "-c", script], log_path=tmp_path / "stubborn.log", **spec))  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while not (child_pid.exists() and child_pid.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return handle, int(child_pid.read_text())


@pytest.mark.parametrize("who", ["owner", "another process"])
def test_cancel_kills_a_child_that_ignores_sigterm_after_the_grace_period(tmp_path: Path, who: str) -> None:
    backend = local(tmp_path, kill_grace=0.5)
    handle, child = _start_stubborn(backend, tmp_path)
    (backend if who == "owner" else local(tmp_path, kill_grace=0.5)).cancel(handle)
    [status] = backend.wait([handle], timeout=20)
    assert status.state is JobState.CANCELLED
    assert "SIGKILL after 0.5 s" in status.reason, status.reason
    assert _gone(child), "the child that ignored SIGTERM outlived the cancel"


def test_walltime_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    backend = local(tmp_path, kill_grace=0.5)
    handle, child = _start_stubborn(backend, tmp_path, walltime="0:00:01")
    [status] = backend.wait([handle], timeout=30)
    assert status.state is JobState.TIMEOUT and "SIGKILL after 0.5 s" in status.reason, status.reason
    assert _gone(child)


def test_a_job_that_obeys_sigterm_says_so(tmp_path: Path) -> None:
    backend = local(tmp_path, kill_grace=10)
    handle = backend.submit(JobSpec(["sleep", "60"], log_path=tmp_path / "s.log"))
    assert backend.status([handle])[0].state in (JobState.RUNNING, JobState.PENDING)
    started = time.monotonic()
    backend.cancel(handle)
    [status] = backend.wait([handle], timeout=20)
    assert status.state is JobState.CANCELLED and status.reason == "cancelled (SIGTERM)"
    assert time.monotonic() - started < 5  # no grace period is spent on a group that is already gone


def test_negative_kill_grace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="kill_grace"):
        local(tmp_path, kill_grace=-1)


def test_job_status_exits_with_the_code_of_a_job_that_failed(tmp_path: Path) -> None:
    from core.cli import main

    log = tmp_path / "st.log"
    assert main(["job", "local", "cpu", str(log), "--", "sh", "-c", "exit 3"]) == 3
    [state_dir] = (tmp_path / ".kakehashi").iterdir()
    assert main(["job", "status", str(state_dir)]) == 3
    assert main(["job", "local", "cpu", str(tmp_path / "ok.log"), "--", "true"]) == 0
    ok_dir = next(p for p in (tmp_path / ".kakehashi").iterdir() if p != state_dir)
    assert main(["job", "status", str(ok_dir)]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--timeout", "-1"],
        ["--timeout", "nan"],
        ["--n-tasks", "0"],
        ["--n-procs", "-2"],
        ["--n-gpus", "-1"],
    ],
)
def test_out_of_range_job_options_are_one_error_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    with pytest.raises(SystemExit) as info:
        main(["job", "local", "cpu", *argv, str(tmp_path / "x.log"), "--", "true"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument"), err


def test_a_log_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="the log path is a directory"):
        local(tmp_path).submit(JobSpec(["true"], log_path=tmp_path))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("poll_intervall: 0.5", "did you mean poll_interval"),
        ("kill_grace: -3", "-3.0 is below the minimum 0"),
        ("max_parallel: many", "max_parallel"),
        ("modes: {cpu: {launcher: [a], launchr: [b]}}", "did you mean modes.cpu.launcher"),
    ],
)
def test_backend_config_mistakes_are_one_line_naming_the_key(tmp_path: Path, line: str, fragment: str) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(f"_base_: ${{pkg:core.jobs.config}}/local.yaml\n{line}\n")
    with pytest.raises(UserError, match=re.escape(fragment)) as info:
        get_backend("local", config)
    assert str(config) in str(info.value) and "\n" not in str(info.value)


def test_an_option_no_template_uses_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown option 'bogus': no template of the local backend uses it"):
        local(tmp_path).submit(JobSpec(["true"], options={"bogus": "1"}, log_path=tmp_path / "o.log"))
    slurm = get_backend("slurm")
    assert {"partition", "account"} <= slurm.known_options()  # type: ignore[attr-defined]
    assert "walltime" not in slurm.known_options()  # type: ignore[attr-defined]  # a spec field, not an option
