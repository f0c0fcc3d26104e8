"""Benchmark of the core.hpo study runner against ``aiaccel-hpo optimize`` (aiaccel from PyPI), same run, same
trial commands, interleaved A/B, medians of several repeats, on the machine as it is and with its cores saturated.

Figures (tools/bench/results/hpo_runner.json):
- ``overhead_ratio_vs_aiaccel_1_job`` / ``_4_jobs`` (``..._loaded``: with one busy process per core started for
  the measurement): per-trial overhead beyond the command, ours over aiaccel's. A tool's per-trial time is
  (wall time of N trials − wall time of 0 trials) / N, so start-up (imports, storage creation) is left out; the
  overhead beyond the command subtracts the per-trial time of a bare loop that runs the same command with the same
  parallelism and nothing else (``subprocess.Popen`` + ``wait`` in threads). Each repeat runs the five
  measurements (ours 0 / N, aiaccel 0 / N, bare N) in a shuffled order; the figures are medians over repeats.
- ``idle_fraction_4_slots`` (and ``_loaded``): trial durations uniform in 0.1–1 s, 4 slots: 1 − (sum of the
  trials' own running time) / (4 × span from the first trial's start to the last one's end); times are taken by
  the trial command itself. The same for aiaccel and for a synchronous batch runner (ask 4, run 4, wait for all,
  tell: the way Hydra's Optuna sweeper runs). Medians over repeats.
- ``load_average_quiet`` / ``_loaded``: the 1-minute load average at the start of each phase (the machine is
  shared: "quiet" means no busy processes of ours, not an idle machine).

Run: ``.venv/bin/python tools/bench/hpo_runner.py`` (≈ 10 minutes on 2 cores; ``--repeats 9 --trials 80`` for a
fuller run, ``--quick`` for a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

AIACCEL = str(Path(sys.executable).with_name("aiaccel-hpo"))
KAKEHASHI = [sys.executable, "-m", "core.cli"]
# the trivial objective: writes a number to the result file ($1), nothing else
TRIVIAL = ["sh", "-c", 'echo 0.5 > "$1"', "sh"]
# the uneven objective: sleeps $1 seconds, and appends its own start and end times to a shared file ($3)
TIMED = ["sh", "-c", 'a=$(date +%s.%N); sleep "$1"; b=$(date +%s.%N); echo "$a $b" >> "$3"; echo 0.5 > "$2"', "sh"]
OURS_TRIVIAL, AIACCEL_TRIVIAL = [*TRIVIAL, "{out_file}"], [*TRIVIAL, "{out_filename}"]
SPACE: dict[str, object] = {"x": [0.0, 1.0]}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


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
    argv = [*KAKEHASHI, "hpo", "optimize", str(path), "--no-progress"]
    subprocess.run(argv, check=True, cwd=REPO, capture_output=True, env=ENV)
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
    argv = [AIACCEL, "optimize", f"--config={path}", *command]
    subprocess.run(argv, check=True, cwd=folder, capture_output=True, env=ENV)
    return time.perf_counter() - started


def run_bare(folder: Path, n_trials: int, n_jobs: int, command: list[str]) -> float:
    """The floor: the same command N times, n_jobs at once, started and awaited by plain threads."""
    folder.mkdir(parents=True)
    counter = iter(range(n_trials))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            subprocess.run([*command, str(folder / f"{number}.txt")], check=True, env=ENV)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(n_jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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


@contextlib.contextmanager
def saturated(n: int) -> Iterator[None]:
    """``n`` busy processes (one per core) for the duration of the block."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0)
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def overhead(root: Path, n_jobs: int, n_trials: int, repeats: int, say: Callable[[str], None]) -> dict[str, float]:
    """Median per-trial overhead beyond the command (seconds) of ours and aiaccel's, and of the bare loop."""
    per: dict[str, list[float]] = {"ours": [], "aiaccel": [], "bare": []}
    rng = random.Random(n_jobs)
    for repeat in range(repeats):
        folder = root / f"overhead-{n_jobs}-{repeat}"
        folder.mkdir(parents=True)
        steps: dict[str, Callable[[Path], float]] = {
            "ours-0": lambda f: run_ours(f / "o0", 0, n_jobs, OURS_TRIVIAL, SPACE),
            "ours-n": lambda f: run_ours(f / "on", n_trials, n_jobs, OURS_TRIVIAL, SPACE),
            "aiaccel-0": lambda f: run_aiaccel(f / "a0", 0, n_jobs, AIACCEL_TRIVIAL, SPACE),
            "aiaccel-n": lambda f: run_aiaccel(f / "an", n_trials, n_jobs, AIACCEL_TRIVIAL, SPACE),
            "bare-n": lambda f: run_bare(f / "b", n_trials, n_jobs, TRIVIAL),
        }
        order = list(steps)
        rng.shuffle(order)
        took = {name: steps[name](folder) for name in order}
        bare = took["bare-n"] / n_trials
        per["bare"].append(bare)
        per["ours"].append((took["ours-n"] - took["ours-0"]) / n_trials - bare)
        per["aiaccel"].append((took["aiaccel-n"] - took["aiaccel-0"]) / n_trials - bare)
        say(
            f"  {n_jobs} job(s), repeat {repeat + 1}/{repeats}: overhead ours {per['ours'][-1] * 1000:.1f} ms, "
            f"aiaccel {per['aiaccel'][-1] * 1000:.1f} ms (bare command {bare * 1000:.1f} ms)"
        )
    return {name: statistics.median(values) for name, values in per.items()}


def idle(root: Path, n_trials: int, repeats: int, say: Callable[[str], None]) -> dict[str, float]:
    fractions: dict[str, list[float]] = {"ours": [], "aiaccel": [], "batch": []}
    params = {"d": [0.1, 1.0]}
    for repeat in range(repeats):
        folder = root / f"idle-{repeat}"
        folder.mkdir(parents=True)
        order = ["ours", "aiaccel", "batch"]
        random.Random(repeat).shuffle(order)
        for name in order:
            times = folder / f"{name}-times.txt"
            if name == "ours":
                run_ours(folder / "ours", n_trials, 4, [*TIMED, "{d}", "{out_file}", str(times)], params)
            elif name == "aiaccel":
                run_aiaccel(folder / "aiaccel", n_trials, 4, [*TIMED, "{d}", "{out_filename}", str(times)], params)
            else:
                run_batch(folder / "batch", n_trials, 4, [*TIMED, "{d}", "{out_file}", str(times)])
            fractions[name].append(idle_fraction(times, 4))
        say(f"  idle, repeat {repeat + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1%}" for k, v in fractions.items()))
    return {name: statistics.median(values) for name, values in fractions.items()}


README = REPO / "core" / "hpo" / "README.md"
BEGIN, END = "<!-- figures: tools/bench/results/hpo_runner.json -->", "<!-- /figures -->"


def figures_table(results: dict[str, object]) -> str:
    """The Figures table of core/hpo/README.md, from the results JSON (the README's only source of numbers)."""
    r = results

    def ms(key: str) -> str:
        return f"{float(r[key]):.1f} ms"  # type: ignore[arg-type]

    def pct(key: str) -> str:
        return f"{float(r[key]) * 100:.1f} %"  # type: ignore[arg-type]

    lines = [
        f"aiaccel-hpo {r['aiaccel_version']}, optuna {r['optuna_version']}, {r['cores']} cores, medians of "
        f"{r['repeats']} interleaved repeats of {r['trials_per_run']} trials; load average at the start "
        f"{r['load_average_quiet']} (no busy processes of ours) and {r['load_average_loaded']} (one busy process "
        "per core added).",
        "",
        "| figure | kakehashi | aiaccel-hpo | ours / aiaccel | JSON key |",
        "|---|---|---|---|---|",
    ]
    for suffix, label in (("", ""), ("_loaded", ", cores saturated")):
        for jobs in ("1_job", "4_jobs"):
            key = f"{jobs}{suffix}"
            lines.append(
                f"| per-trial overhead beyond the command, {jobs.replace('_', ' ')} at once{label} "
                f"| {ms('overhead_ms_ours_' + key)} | {ms('overhead_ms_aiaccel_' + key)} "
                f"| {float(r['overhead_ratio_vs_aiaccel_' + key]):.2f}× "  # type: ignore[arg-type]
                f"| `overhead_ratio_vs_aiaccel_{key}` |"
            )
        lines.append(
            f"| slot idle fraction, 4 slots, trials of 0.1–1 s{label} | {pct('idle_fraction_4_slots' + suffix)} "
            f"| {pct('idle_fraction_4_slots_aiaccel' + suffix)} (batch runner: "
            f"{pct('idle_fraction_4_slots_batch' + suffix)}) | | `idle_fraction_4_slots{suffix}` |"
        )
    return "\n".join(lines)


def write_readme(results: dict[str, object]) -> None:
    from core.files import write_atomic

    text = README.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    write_atomic(README, f"{head}{BEGIN}\n{figures_table(results)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per figure (medians)")
    parser.add_argument("--trials", type=int, default=40, help="trials per overhead run")
    parser.add_argument("--idle-trials", type=int, default=32, help="trials per idle-fraction run")
    parser.add_argument("--idle-repeats", type=int, default=3, help="repeats of the idle-fraction runs")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 repeats, few trials; no JSON written")
    parser.add_argument("--readme", action="store_true", help="only rewrite core/hpo/README.md's table from the JSON")
    args = parser.parse_args()
    out = REPO / "tools" / "bench" / "results" / "hpo_runner.json"
    if args.readme:
        write_readme(json.loads(out.read_text()))
        return
    if args.quick:
        args.repeats, args.trials, args.idle_trials, args.idle_repeats = 2, 8, 8, 1
    console = Console()
    cores = os.cpu_count() or 1
    results: dict[str, object] = {}
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-bench-") as tmp:
        root = Path(tmp)
        for loaded in (False, True):
            suffix = "_loaded" if loaded else ""
            label = f"with {cores} busy processes" if loaded else "no busy processes of ours"
            with saturated(cores) if loaded else contextlib.nullcontext():
                results[f"load_average{suffix or '_quiet'}"] = round(os.getloadavg()[0], 2)
                console.print(f"[bold]{label}[/] (load average {os.getloadavg()[0]:.1f} on {cores} cores)")
                for n_jobs in (1, 4):
                    medians = overhead(root / f"l{int(loaded)}", n_jobs, args.trials, args.repeats, console.print)
                    ratio = medians["ours"] / medians["aiaccel"]
                    key = f"{n_jobs}_job{'s' if n_jobs > 1 else ''}{suffix}"
                    results[f"overhead_ratio_vs_aiaccel_{key}"] = round(ratio, 3)
                    results[f"overhead_ms_ours_{key}"] = round(medians["ours"] * 1000, 2)
                    results[f"overhead_ms_aiaccel_{key}"] = round(medians["aiaccel"] * 1000, 2)
                    results[f"command_ms_bare_{key}"] = round(medians["bare"] * 1000, 2)
                    rows.append(
                        (
                            f"per-trial overhead beyond the command, {n_jobs} at once, {label} (ms)",
                            f"{medians['ours'] * 1000:.1f}",
                            f"{medians['aiaccel'] * 1000:.1f}",
                            f"{ratio:.2f}×",
                        )
                    )
                fractions = idle(root / f"i{int(loaded)}", args.idle_trials, args.idle_repeats, console.print)
                results[f"idle_fraction_4_slots{suffix}"] = round(fractions["ours"], 4)
                results[f"idle_fraction_4_slots_aiaccel{suffix}"] = round(fractions["aiaccel"], 4)
                results[f"idle_fraction_4_slots_batch{suffix}"] = round(fractions["batch"], 4)
                rows.append(
                    (
                        f"slot idle fraction, 4 slots, 0.1–1 s trials, {label}",
                        f"{fractions['ours']:.1%}",
                        f"{fractions['aiaccel']:.1%} (batch: {fractions['batch']:.1%})",
                        f"{fractions['ours'] / fractions['aiaccel']:.2f}×",
                    )
                )
    results["repeats"] = args.repeats
    results["trials_per_run"] = args.trials
    results["aiaccel_version"] = version("aiaccel")
    results["optuna_version"] = version("optuna")
    results["cores"] = cores
    table = Table("figure", "kakehashi", "aiaccel-hpo", "ours / aiaccel", title="hpo runner (medians)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.quick:
        console.print(json.dumps(results, indent=2))
        return
    from core.files import write_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(results, indent=2) + "\n")
    write_readme(results)
    console.print(f"wrote {out} and the table of {README.relative_to(REPO)}")


if __name__ == "__main__":
    main()
