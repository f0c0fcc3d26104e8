"""Benchmark of core.jobs against the bare scheduler commands, on the local Slurm cluster (tools/ci/slurm-up.sh).

Figures (tools/bench/results/jobs.json):
- ``overhead_ratio_vs_sbatch``: submit-to-finish time of a 100-task array of ``true`` through ``SlurmBackend``
  (submit, then ``wait`` polling every ``poll_interval``) over bare ``sbatch --wait --array=0-99``, same run.
- ``status_queries_per_poll_100_jobs``: scheduler commands (squeue/sacct/scontrol) one ``status`` call runs for 100
  separate jobs, counted at the process level; a per-job query loop (``squeue -j ID`` each) would run 100.
- ``local_overhead_ratio_vs_popen``: 100 ``true`` jobs through the local backend (2 at a time) over a plain
  ``subprocess.Popen`` loop with the same limit.

Run: ``source /tmp/kakehashi-slurm/env.sh && .venv/bin/python tools/bench/jobs.py`` (the env file is read by itself
when SLURM_CONF is unset).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from core.jobs import JobSpec, get_backend  # noqa: E402

N = 100
SCHEDULER_TOOLS = {"squeue", "sacct", "scontrol", "sinfo"}


def _slurm_env() -> None:
    if os.environ.get("SLURM_CONF"):
        return
    env_file = Path(os.environ.get("KAKEHASHI_SLURM_DIR", "/tmp/kakehashi-slurm")) / "env.sh"
    if not env_file.is_file():
        sys.exit(f"no Slurm cluster: run tools/ci/slurm-up.sh first ({env_file} is missing)")
    out = subprocess.run(["bash", "-c", f'set -a; . "{env_file}"; env -0'], capture_output=True, check=True).stdout
    for item in out.decode().split("\0"):
        key, _, value = item.partition("=")
        if key.startswith(("SLURM", "KAKEHASHI")):
            os.environ[key] = value


def bare_sbatch(folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["sbatch", "--wait", f"--array=0-{N - 1}", "--output=/dev/null", "--job-name=bare", "--wrap", "true"],
        check=True,
        capture_output=True,
        cwd=folder,
    )
    return time.perf_counter() - started


def ours_slurm(folder: Path) -> tuple[float, str]:
    backend = get_backend("slurm")
    started = time.perf_counter()
    handle = backend.submit(JobSpec(["true"], name="ours", n_tasks=N, log_path=folder / "ours.log"))
    [status] = backend.wait([handle], timeout=900)
    elapsed = time.perf_counter() - started
    return elapsed, status.state.value


def status_queries(folder: Path) -> tuple[int, int]:
    backend = get_backend("slurm")
    handles = [backend.submit(JobSpec(["true"], name=f"q{i}", log_path=folder / f"q{i}.log")) for i in range(N)]
    calls: list[str] = []
    real_run = subprocess.run

    def counting_run(argv: list[str], *args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(Path(str(argv[0])).name)
        return real_run(argv, *args, **kwargs)  # type: ignore[call-overload, no-any-return]

    with mock.patch("subprocess.run", counting_run):
        statuses = backend.status(handles)
    queries = sum(1 for c in calls if c in SCHEDULER_TOOLS)
    backend.wait(handles, timeout=900)
    return queries, len(statuses)


def local_ours(folder: Path) -> float:
    config = folder / "local.yaml"
    config.write_text("_base_: ${pkg:core.jobs.config}/local.yaml\nmax_parallel: 2\npoll_interval: 0.01\n")
    backend = get_backend("local", config)
    started = time.perf_counter()
    handles = [backend.submit(JobSpec(["true"], name=f"l{i}", log_path=folder / f"l{i}.log")) for i in range(N)]
    backend.wait(handles, timeout=300)
    return time.perf_counter() - started


def local_popen(folder: Path) -> float:
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    for i in range(N):
        while len(running) >= 2:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.001)
        with open(folder / f"p{i}.log", "wb") as log:
            running.append(subprocess.Popen(["true"], stdout=log, stderr=subprocess.STDOUT))
    for process in running:
        process.wait()
    return time.perf_counter() - started


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def main() -> None:
    _slurm_env()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("KAKEHASHI_JOBS_HOME", str(folder / "index"))
        console.print(f"[bold]bare sbatch --wait, {N}-task array[/bold]")
        bare = bare_sbatch(folder)
        console.print(f"[bold]core.jobs slurm, {N}-task array[/bold]")
        ours, state = ours_slurm(folder)
        console.print(f"[bold]status of {N} separate jobs[/bold]")
        queries, n_statuses = status_queries(folder)
        console.print("[bold]local backend vs Popen loop[/bold]")
        local = local_ours(folder)
        popen = local_popen(folder)
    slurm_version = subprocess.run(["sbatch", "--version"], capture_output=True, text=True).stdout.strip()
    results = {
        "overhead_ratio_vs_sbatch": round(ours / bare, 3),
        "ours_array_seconds": round(ours, 2),
        "sbatch_wait_array_seconds": round(bare, 2),
        "ours_array_state": state,
        "status_queries_per_poll_100_jobs": queries,
        "per_job_query_loop_queries_per_poll_100_jobs": N,
        "statuses_returned": n_statuses,
        "local_overhead_ratio_vs_popen": round(local / popen, 3),
        "slurm_version": slurm_version,
        "aiaccel_version": _version("aiaccel"),
        "cores": os.cpu_count() or 0,
    }
    table = Table("figure", "core.jobs", "peer", "ratio")
    table.add_row(
        f"{N}-task array of true, submit→finish (s)", f"{ours:.2f}", f"{bare:.2f} (sbatch --wait)", f"{ours / bare:.2f}"
    )
    table.add_row(
        f"scheduler queries per status poll, {N} jobs", str(queries), f"{N} (squeue -j per job)", f"{queries / N:.2f}"
    )
    table.add_row(
        f"{N} local `true` jobs, 2 at a time (s)", f"{local:.2f}", f"{popen:.2f} (Popen loop)", f"{local / popen:.2f}"
    )
    console.print(table)
    out = REPO / "tools" / "bench" / "results" / "jobs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
