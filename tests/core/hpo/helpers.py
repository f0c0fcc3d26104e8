"""Shared pieces of the runner tests: configs for the example objective, runner subprocesses, storage reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

REPO = Path(__file__).resolve().parents[3]


def objective_command(sleep: float = 0.0, steps: int = 0, extra: tuple[str, ...] = ()) -> list[str]:
    """The example objective as a trial command; every call appends its trial number to <run_dir>/calls.txt."""
    command = ["{python}", "-m", "core.hpo.example_objective", "--x", "{x}", "--y", "{y}", "--out", "{out_file}"]
    command += ["--record", "{run_dir}/calls.txt", "--tag", "{trial_number}", "--sleep", str(sleep)]
    if steps:
        command += ["--steps", str(steps), "--report", "{report_file}"]
    return [*command, *extra]


def config(run_dir: Path, n_trials: int, n_max_jobs: int = 2, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "study": {"name": "t", "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0}},
        "params": {"x": [-2.0, 2.0], "y": [-1.0, 3.0]},
        "command": objective_command(),
        "n_trials": n_trials,
        "n_max_jobs": n_max_jobs,
        "plots": False,
        "run_dir": str(run_dir),
        "jobs": {"cwd": str(REPO)},
    }
    cfg.update(extra)
    return cfg


def calls(run_dir: Path) -> list[int]:
    path = run_dir / "calls.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def load(run_dir: Path, storage: str | None = None, name: str = "t") -> optuna.Study:
    if storage is None:
        backend = optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal"))
        return optuna.load_study(study_name=name, storage=optuna.storages.journal.JournalStorage(backend))
    return optuna.load_study(study_name=name, storage=storage)


def states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def write_yaml(path: Path, cfg: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def start_runner(cfg_file: Path, *overrides: str) -> subprocess.Popen[bytes]:
    """A runner as its own process (``kakehashi hpo optimize``), as a user would start it."""
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "hpo", "optimize", str(cfg_file), *overrides, "--no-progress"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive_jobs(run_dir: Path) -> int:
    """How many trial jobs still have a process group (zombies that init has not reaped yet count)."""
    alive = 0
    for pid_file in run_dir.glob("trials/*/.kakehashi/*/0.pid"):
        try:
            os.killpg(int(pid_file.read_text().split()[0]), 0)
            alive += 1
        except ProcessLookupError:
            pass
    return alive


def kill_jobs(run_dir: Path) -> int:
    """SIGKILL the process groups of every trial job still running (as a node crash would); return how many."""
    killed = 0
    for pid_file in run_dir.glob("trials/*/.kakehashi/*/0.pid"):
        if (pid_file.parent / "0.exit").exists():
            continue
        pid = int(pid_file.read_text().split()[0])
        try:
            os.killpg(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed
