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
  the trial command itself. The same for aiaccel, for a synchronous batch runner (ask 4, run 4, wait for all,
  tell: the way Hydra's Optuna sweeper runs) and for the floor: ``_bare``, plain threads that start the same
  command with the same durations (``subprocess.Popen`` + ``wait``, no storage, no sampler). Medians over repeats.
- ``idle_fraction_4_slots_refill`` (and ``_aiaccel``, ``_batch``, ``_bare``; ``_loaded``): the same, counted only
  up to the last trial's start, while trials remained to be started. The rest of the whole-run fraction is the
  drain at the end (the last trials finish one by one and nothing is left to start), which no runner can fill
  and which shrinks as runs get longer.
- ``load_average`` / ``load_average_loaded`` (and ``..._end``): the 1-minute load average at the start and at the
  end of each phase (at the start of the loaded phase it has not yet caught up with the busy processes). The
  machine is shared: the first phase runs on the machine as found (other users' processes, no busy processes of ours),
  which is not a quiet machine unless its load average says so.

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


def run_in_threads(argvs: list[list[str]], n_jobs: int) -> None:
    """Run the commands ``n_jobs`` at once, each thread starting the next one as soon as its last one exits."""
    pending = iter(argvs)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                argv = next(pending, None)
            if argv is None:
                return
            subprocess.run(argv, check=True, env=ENV)

    threads = [threading.Thread(target=worker) for _ in range(n_jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_bare(folder: Path, n_trials: int, n_jobs: int, command: list[str]) -> float:
    """The floor: the same command N times, n_jobs at once, started and awaited by plain threads."""
    folder.mkdir(parents=True)
    argvs = [[*command, str(folder / f"{number}.txt")] for number in range(n_trials)]
    started = time.perf_counter()
    run_in_threads(argvs, n_jobs)
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


def run_bare_timed(folder: Path, durations: list[float], n_jobs: int, times: Path) -> None:
    """The floor of the idle fraction: the trial command with the given durations, ``n_jobs`` plain threads each
    starting the next one as soon as its last one exits."""
    folder.mkdir(parents=True)
    run_in_threads([[*TIMED, repr(d), str(folder / f"{n}.txt"), str(times)] for n, d in enumerate(durations)], n_jobs)


def sampled_durations(n_trials: int) -> list[float]:
    """The durations the runners' seeded RandomSampler gives parameter d in [0.1, 1], in trial order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [study.ask().suggest_float("d", 0.1, 1.0) for _ in range(n_trials)]


def idle_fraction(times_file: Path, slots: int, refill: bool = False) -> float:
    """1 − busy slot time / available slot time, from the first start to the last end (``refill``: to the last
    start, counting only the running time before it)."""
    spans = [tuple(map(float, line.split())) for line in times_file.read_text().splitlines() if line.strip()]
    first = min(a for a, _ in spans)
    last = max(a for a, _ in spans) if refill else max(b for _, b in spans)
    busy = sum(min(b, last) - a for a, b in spans)
    return 1.0 - busy / (slots * (last - first))


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
    names = ["ours", "aiaccel", "batch", "bare"]
    fractions: dict[str, list[float]] = {name: [] for name in names}
    refill: dict[str, list[float]] = {name: [] for name in names}
    params: dict[str, object] = {"d": [0.1, 1.0]}
    durations = sampled_durations(n_trials)
    for repeat in range(repeats):
        folder = root / f"idle-{repeat}"
        folder.mkdir(parents=True)
        order = list(names)
        random.Random(repeat).shuffle(order)
        for name in order:
            times = folder / f"{name}-times.txt"
            if name == "ours":
                run_ours(folder / "ours", n_trials, 4, [*TIMED, "{d}", "{out_file}", str(times)], params)
            elif name == "aiaccel":
                run_aiaccel(folder / "aiaccel", n_trials, 4, [*TIMED, "{d}", "{out_filename}", str(times)], params)
            elif name == "batch":
                run_batch(folder / "batch", n_trials, 4, [*TIMED, "{d}", "{out_file}", str(times)])
            else:
                run_bare_timed(folder / "bare", durations, 4, times)
            fractions[name].append(idle_fraction(times, 4))
            refill[name].append(idle_fraction(times, 4, refill=True))
        say(
            f"  idle, repeat {repeat + 1}/{repeats} (whole run / until the last start): "
            + ", ".join(f"{k} {v[-1]:.1%} / {refill[k][-1]:.1%}" for k, v in fractions.items())
        )
    medians = {name: statistics.median(values) for name, values in fractions.items()}
    return medians | {f"{name}_refill": statistics.median(values) for name, values in refill.items()}


README = REPO / "core" / "hpo" / "README.md"
BEGIN, END = "<!-- figures: tools/bench/results/hpo_runner.json -->", "<!-- /figures -->"


def figures_table(results: dict[str, object]) -> str:
    """The Figures table of core/hpo/README.md, from the results JSON (the README's only source of numbers)."""
    r = results

    def ms(key: str) -> str:
        return f"{float(r[key]):.1f} ms"  # type: ignore[arg-type]

    def pct(key: str) -> str:
        return f"{float(r[key]) * 100:.1f} %"  # type: ignore[arg-type]

    # quiet: the 1-minute load average stayed under one runnable process per two cores through the first phase
    first_phase_load = max(float(r["load_average"]), float(r["load_average_end"]))  # type: ignore[arg-type]
    quiet = first_phase_load < 0.5 * float(r["cores"])  # type: ignore[arg-type]
    lines = [
        f"aiaccel-hpo {r['aiaccel_version']}, optuna {r['optuna_version']}, {r['cores']} cores, medians of "
        f"{r['repeats']} interleaved repeats of {r['trials_per_run']} trials (idle fractions: "
        f"{r['idle_repeats']} repeats of {r['idle_trials_per_run']} trials). Both phases ran on a shared machine; "
        f"1-minute load average at the start and end of the first phase {r['load_average']} and "
        f"{r['load_average_end']} (the machine as found, no busy processes of ours: "
        f"{'quiet' if quiet else 'not quiet, other work was running'}), of the second "
        f"{r['load_average_loaded']} and {r['load_average_loaded_end']} (one busy process per core added).",
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
        for part, what in (("", "whole run"), ("_refill", "until the last trial's start")):
            key = f"idle_fraction_4_slots{part}{suffix}"

            def idle(who: str, part: str = part, suffix: str = suffix) -> str:
                return pct(f"idle_fraction_4_slots{part}_{who}{suffix}")

            lines.append(
                f"| slot idle fraction, 4 slots, trials of 0.1–1 s, {what}{label} | {pct(key)} | {idle('aiaccel')} "
                f"(batch runner: {idle('batch')}; floor, plain threads: {idle('bare')}) | | `{key}` |"
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
    parser.add_argument("--idle-repeats", type=int, default=5, help="repeats of the idle-fraction runs")
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
            label = f"with {cores} busy processes" if loaded else "machine as found, no busy processes of ours"
            with saturated(cores) if loaded else contextlib.nullcontext():
                results[f"load_average{suffix}"] = round(os.getloadavg()[0], 2)
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
                results[f"load_average{suffix}_end"] = round(os.getloadavg()[0], 2)
                for part in ("", "_refill"):
                    results[f"idle_fraction_4_slots{part}{suffix}"] = round(fractions["ours" + part], 4)
                    for who in ("aiaccel", "batch", "bare"):
                        results[f"idle_fraction_4_slots{part}_{who}{suffix}"] = round(fractions[who + part], 4)
                    rows.append(
                        (
                            f"slot idle fraction{' until the last start' if part else ''}, 4 slots, {label}",
                            f"{fractions['ours' + part]:.1%}",
                            f"{fractions['aiaccel' + part]:.1%} (batch {fractions['batch' + part]:.1%}, "
                            f"floor {fractions['bare' + part]:.1%})",
                            f"{fractions['ours' + part] / fractions['aiaccel' + part]:.2f}×",
                        )
                    )
    results["repeats"] = args.repeats
    results["trials_per_run"] = args.trials
    results["idle_repeats"] = args.idle_repeats
    results["idle_trials_per_run"] = args.idle_trials
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
