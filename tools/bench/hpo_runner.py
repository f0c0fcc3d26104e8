"""Benchmark of the core.hpo study runner against ``aiaccel-hpo optimize`` (aiaccel from PyPI), same run, same
trial commands.

Figures (tools/bench/results/hpo_runner.json):
- ``overhead_ratio_vs_aiaccel_1_job`` / ``..._4_jobs``: per-trial overhead, ours over aiaccel's, with a trivial
  objective command (``sh`` writing a number), at 1 and 4 trials at once. Per-trial overhead is
  (wall time of N trials − wall time of 0 trials) / N, so each tool's start-up (imports, storage creation) is
  left out.
- ``idle_fraction_4_slots``: trial durations uniform in 0.1–1 s, 4 slots: 1 − (sum of the trials' own running
  time) / (4 × span from the first trial's start to the last one's end). Times are taken by the trial command
  itself. Also measured for aiaccel and for a synchronous batch runner (ask 4, run 4, wait for all, tell; the
  way Hydra's Optuna sweeper runs), as ``idle_fraction_4_slots_aiaccel`` and ``idle_fraction_4_slots_batch``.

Run: ``.venv/bin/python tools/bench/hpo_runner.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

N_OVERHEAD = 40
N_IDLE = 48
AIACCEL = str(Path(sys.executable).with_name("aiaccel-hpo"))
KAKEHASHI = [sys.executable, "-m", "core.cli"]
# the trivial objective: writes a number to the result file ($1), nothing else
TRIVIAL = ["sh", "-c", 'echo 0.5 > "$1"', "sh"]
# the uneven objective: sleeps $1 seconds, and appends its own start and end times to a shared file ($3)
TIMED = ["sh", "-c", 'a=$(date +%s.%N); sleep "$1"; b=$(date +%s.%N); echo "$a $b" >> "$3"; echo 0.5 > "$2"', "sh"]


def run_ours(folder: Path, n_trials: int, n_jobs: int, command: list[str], params: dict[str, object]) -> float:
    cfg = {
        "study": {"name": "bench", "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0}},
        "params": params,
        "command": command,
        "n_trials": n_trials,
        "n_max_jobs": n_jobs,
        "plots": False,
        "run_dir": str(folder),
    }
    path = folder.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    started = time.perf_counter()
    subprocess.run(
        [*KAKEHASHI, "hpo", "optimize", str(path), "--no-progress"], check=True, cwd=REPO, capture_output=True
    )
    return time.perf_counter() - started


def run_aiaccel(folder: Path, n_trials: int, n_jobs: int, command: list[str], params: dict[str, object]) -> float:
    folder.mkdir(parents=True)
    cfg = {
        "n_trials": n_trials,
        "n_max_jobs": n_jobs,
        "study": {
            "_target_": "optuna.create_study",
            "study_name": "bench",
            "storage": {"_target_": "optuna.storages.RDBStorage", "url": f"sqlite:///{folder}/optuna.db"},
            "load_if_exists": True,
            "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0},
        },
        "params": {"_convert_": "partial", "_target_": "aiaccel.hpo.optuna.hparams_manager.HparamsManager", **params},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    started = time.perf_counter()
    subprocess.run([AIACCEL, "optimize", f"--config={path}", *command], check=True, cwd=folder, capture_output=True)
    return time.perf_counter() - started


def run_batch(folder: Path, n_trials: int, n_jobs: int, command: list[str]) -> None:
    """A synchronous batch runner: ask n_jobs trials, run them, wait for all of them, tell, repeat."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    done = 0
    while done < n_trials:
        trials = [study.ask() for _ in range(min(n_jobs, n_trials - done))]
        processes = []
        for trial in trials:
            out = folder / f"{trial.number}.txt"
            d = trial.suggest_float("d", 0.1, 1.0)
            argv = [a.replace("{d}", repr(d)).replace("{out_file}", str(out)) for a in command]
            processes.append(subprocess.Popen(argv))
        for trial, process in zip(trials, processes, strict=True):
            process.wait()
            study.tell(trial, float((folder / f"{trial.number}.txt").read_text()))
        done += len(trials)


def idle_fraction(times_file: Path, slots: int) -> float:
    spans = [tuple(map(float, line.split())) for line in times_file.read_text().splitlines() if line.strip()]
    busy = sum(b - a for a, b in spans)
    span = max(b for _, b in spans) - min(a for a, _ in spans)
    return 1.0 - busy / (slots * span)


def main() -> None:
    console = Console()
    results: dict[str, object] = {}
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        root = Path(tmp)
        params_ours: dict[str, object] = {"x": [0.0, 1.0]}
        params_aiaccel: dict[str, object] = {"x": [0.0, 1.0]}
        for n_jobs in (1, 4):
            per_trial = {}
            for name, runner, out in (
                ("ours", run_ours, "{out_file}"),
                ("aiaccel", run_aiaccel, "{out_filename}"),
            ):
                params = params_ours if name == "ours" else params_aiaccel
                console.print(f"overhead: {name}, {n_jobs} at once")
                start = runner(root / f"{name}-{n_jobs}-0", 0, n_jobs, [*TRIVIAL, out], params)
                full = runner(root / f"{name}-{n_jobs}-n", N_OVERHEAD, n_jobs, [*TRIVIAL, out], params)
                per_trial[name] = (full - start) / N_OVERHEAD
            ratio = per_trial["ours"] / per_trial["aiaccel"]
            results[f"overhead_ratio_vs_aiaccel_{n_jobs}_job{'s' if n_jobs > 1 else ''}"] = round(ratio, 3)
            results[f"per_trial_ms_ours_{n_jobs}"] = round(per_trial["ours"] * 1000, 1)
            results[f"per_trial_ms_aiaccel_{n_jobs}"] = round(per_trial["aiaccel"] * 1000, 1)
            rows.append(
                (
                    f"per-trial overhead, {n_jobs} at once (ms)",
                    f"{per_trial['ours'] * 1000:.0f}",
                    f"{per_trial['aiaccel'] * 1000:.0f}",
                    f"{ratio:.2f}×",
                )
            )

        idle = {}
        params = {"d": [0.1, 1.0]}
        console.print("idle fraction: ours")
        times = root / "ours-times.txt"
        run_ours(root / "ours-idle", N_IDLE, 4, [*TIMED, "{d}", "{out_file}", str(times)], params)
        idle["ours"] = idle_fraction(times, 4)
        console.print("idle fraction: aiaccel")
        times = root / "aiaccel-times.txt"
        run_aiaccel(root / "aiaccel-idle", N_IDLE, 4, [*TIMED, "{d}", "{out_filename}", str(times)], params)
        idle["aiaccel"] = idle_fraction(times, 4)
        console.print("idle fraction: synchronous batches")
        times = root / "batch-times.txt"
        run_batch(root / "batch-idle", N_IDLE, 4, [*TIMED, "{d}", "{out_file}", str(times)])
        idle["batch"] = idle_fraction(times, 4)
        results["idle_fraction_4_slots"] = round(idle["ours"], 4)
        results["idle_fraction_4_slots_aiaccel"] = round(idle["aiaccel"], 4)
        results["idle_fraction_4_slots_batch"] = round(idle["batch"], 4)
        results["idle_ratio_vs_batch"] = round(idle["ours"] / idle["batch"], 3)
        rows.append(
            (
                "slot idle fraction, 4 slots, 0.1–1 s trials",
                f"{idle['ours']:.1%}",
                f"{idle['aiaccel']:.1%} (batch: {idle['batch']:.1%})",
                f"{idle['ours'] / idle['aiaccel']:.2f}×",
            )
        )

    results["aiaccel_version"] = version("aiaccel")
    results["optuna_version"] = version("optuna")
    results["cores"] = os.cpu_count() or 1
    table = Table("figure", "kakehashi", "aiaccel-hpo", "ours / aiaccel", title="hpo runner")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    out = REPO / "tools" / "bench" / "results" / "hpo_runner.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
