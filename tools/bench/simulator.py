"""Benchmark: core.hpo.simulator against mfhpo-simulator (both of its engines), in one run.

Measures
  * engine overhead per evaluation (excluding sampler and objective: both driven by trivial ask/objective/tell,
    whose own cost is measured in a plain loop and subtracted) at P = 1, 4, 8, 32, 256 for 10,000 evaluations:
    ours, mfhpo's ask-and-tell engine, and mfhpo's file-based wrapper (called from P threads by Optuna's
    ``optimize(n_jobs=P)``, as its README does; fewer evaluations there, since each costs milliseconds);
  * total time of a simulated Optuna study with RandomSampler vs the plain ask/tell loop with the same sampler;
  * order agreement of both simulators with a real run (P threads sleeping the runtimes, scaled down);
  * time and memory at P = 10,000 with 10^6 evaluations (mfhpo's ask-and-tell: 10^5, scaled per evaluation).

Writes tools/bench/results/simulator.json.  Run: python tools/bench/simulator.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.hpo.simulator import Evaluation, run_events, simulate  # noqa: E402
from core.hpo.simulator.validate import run_threaded  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
console = Console()


# ---------------------------------------------------------------- trivial drivers (no sampler, no objective)
class TrivialDriver:
    """Runtimes from a list; one milestone per job."""

    def __init__(self, runtimes: list[float]) -> None:
        self.runtimes = runtimes

    def start(self, job: int, worker: int, now: float) -> tuple[float, float]:
        return 0.0, self.runtimes[job]

    def reach(self, job: int, now: float) -> None:
        return None

    def cut(self, job: int, now: float) -> None:
        pass


def plain_driver_loop(driver: TrivialDriver, n: int) -> float:
    began = time.perf_counter()
    for job in range(n):
        driver.start(job, 0, 0.0)
        driver.reach(job, 0.0)
    return time.perf_counter() - began


def ours_overhead(n_workers: int, n_evals: int, repeats: int = 7) -> float:
    runtimes = [random.Random(i).random() * 100 for i in range(n_evals)]
    totals, plains = [], []
    for _ in range(repeats):
        driver = TrivialDriver(runtimes)
        began = time.perf_counter()
        run_events(driver, n_workers, n_evals)
        totals.append(time.perf_counter() - began)
        plains.append(plain_driver_loop(driver, n_evals))
    return (min(totals) - min(plains)) / n_evals * 1e6


class TrivialOpt:
    """mfhpo's AbstractAskTellOptimizer with nothing inside; records the tell order."""

    def __init__(self) -> None:
        self.count = 0
        self.told: list[int] = []

    def ask(self) -> tuple[dict[str, Any], None, int]:
        self.count += 1
        return {"i": self.count - 1}, None, self.count - 1

    def tell(
        self,
        eval_config: dict[str, Any],
        results: dict[str, float],
        *,
        fidels: Any = None,
        config_id: int | None = None,
    ) -> None:
        self.told.append(eval_config["i"])


def mfhpo_ask_tell(runtimes: list[float], n_workers: int, n_evals: int, tmp: str) -> tuple[float, list[int]]:
    from benchmark_simulator import AbstractAskTellOptimizer, ObjectiveFuncWrapper

    AbstractAskTellOptimizer.register(TrivialOpt)

    def obj(eval_config: dict[str, Any], fidels: Any = None, seed: Any = None, **kw: Any) -> dict[str, float]:
        return {"loss": 0.0, "runtime": runtimes[eval_config["i"] % len(runtimes)]}

    wrapper = ObjectiveFuncWrapper(
        obj,
        ask_and_tell=True,
        n_workers=n_workers,
        n_evals=n_evals,
        n_actual_evals_in_opt=n_evals + n_workers,
        tmp_dir=tmp,
        save_dir_name=f"at-{n_workers}-{n_evals}-{time.perf_counter_ns()}",
        expensive_sampler=True,
    )
    opt = TrivialOpt()
    began = time.perf_counter()
    wrapper.simulate(opt)
    return time.perf_counter() - began, opt.told


def mfhpo_ask_tell_overhead(n_workers: int, n_evals: int, tmp: str) -> float:
    runtimes = [random.Random(i).random() * 100 for i in range(n_evals + n_workers)]
    total = min(mfhpo_ask_tell(runtimes, n_workers, n_evals, tmp)[0] for _ in range(2))
    opt = TrivialOpt()
    began = time.perf_counter()  # the same trivial calls it makes, in a plain loop
    for _ in range(n_evals + n_workers - 1):
        config, _, _ = opt.ask()
        result = {"loss": 0.0, "runtime": runtimes[config["i"]]}
        opt.tell(config, result)
    plain = time.perf_counter() - began
    return (total - plain) / n_evals * 1e6


def mfhpo_wrapper_overhead(n_workers: int, n_evals: int, tmp: str) -> float:
    from benchmark_simulator import ObjectiveFuncWrapper

    rng = random.Random(0)

    def obj(eval_config: dict[str, Any], fidels: Any = None, seed: Any = None, **kw: Any) -> dict[str, float]:
        return {"loss": eval_config["x"], "runtime": rng.random() * 100}

    n_calls = n_evals + n_workers
    wrapper = ObjectiveFuncWrapper(
        obj,
        n_workers=n_workers,
        n_evals=n_evals,
        n_actual_evals_in_opt=n_calls,
        tmp_dir=tmp,
        save_dir_name=f"wr-{n_workers}-{time.perf_counter_ns()}",
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    began = time.perf_counter()
    study.optimize(lambda t: wrapper({"x": t.suggest_float("x", 0, 1)})["loss"], n_trials=n_calls, n_jobs=n_workers)
    total = time.perf_counter() - began
    plain = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    began = time.perf_counter()
    plain.optimize(lambda t: obj({"x": t.suggest_float("x", 0, 1)})["loss"], n_trials=n_calls)
    return (total - (time.perf_counter() - began)) / n_evals * 1e6


# ---------------------------------------------------------------- a real sampler in the loop
class OptunaAskTell:
    """mfhpo's AbstractAskTellOptimizer around an Optuna study with RandomSampler (a real sampler in the loop)."""

    def __init__(self) -> None:
        self.study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        self.trials: dict[int, optuna.Trial] = {}

    def ask(self) -> tuple[dict[str, Any], None, int]:
        trial = self.study.ask()
        self.trials[trial.number] = trial
        config = {"x": trial.suggest_float("x", 0.0, 1.0), "y": trial.suggest_float("y", 0.0, 1.0), "n": trial.number}
        return config, None, trial.number

    def tell(
        self,
        eval_config: dict[str, Any],
        results: dict[str, float],
        *,
        fidels: Any = None,
        config_id: int | None = None,
    ) -> None:
        self.study.tell(self.trials.pop(eval_config["n"]), results["loss"])


def real_sampler_seconds(kind: str, n_workers: int, n_evals: int, tmp: str) -> float:
    """Wall seconds for ``n_evals`` evaluations of ``random_objective`` with Optuna's RandomSampler asked each time:
    ``plain`` (a serial ask/tell loop, no simulation), ``ours`` (core.hpo.simulator) or ``mfhpo`` (its
    ask-and-tell engine, exact-order mode, the sampler's measured ask time included as it does by default)."""
    gc.collect()
    if kind == "plain":
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        began = time.perf_counter()
        for _ in range(n_evals):
            trial = study.ask()
            study.tell(trial, random_objective(trial).values)
        return time.perf_counter() - began
    if kind == "ours":
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        began = time.perf_counter()
        simulate(study, random_objective, n_workers, n_evals)
        return time.perf_counter() - began
    from benchmark_simulator import AbstractAskTellOptimizer, ObjectiveFuncWrapper

    AbstractAskTellOptimizer.register(OptunaAskTell)

    def obj(eval_config: dict[str, Any], fidels: Any = None, seed: Any = None, **kw: Any) -> dict[str, float]:
        x, y = eval_config["x"], eval_config["y"]
        return {"loss": (x - 0.3) ** 2 + y, "runtime": 10.0 + 90.0 * y}

    wrapper = ObjectiveFuncWrapper(
        obj,
        ask_and_tell=True,
        n_workers=n_workers,
        n_evals=n_evals,
        n_actual_evals_in_opt=n_evals + n_workers,
        tmp_dir=tmp,
        save_dir_name=f"rs-{n_workers}-{n_evals}-{time.perf_counter_ns()}",
        expensive_sampler=True,
    )
    began = time.perf_counter()
    wrapper.simulate(OptunaAskTell())
    return time.perf_counter() - began


def real_sampler(n_workers: int, n_evals: int, tmp: str, repeats: int = 5) -> dict[str, float]:
    """µs per evaluation with a real sampler in the loop, interleaved repeats, medians."""
    seen: dict[str, list[float]] = {"ours": [], "plain": [], "mfhpo": []}
    for r in range(repeats):
        order = list(seen)[r % 3 :] + list(seen)[: r % 3]
        for kind in order:
            seen[kind].append(real_sampler_seconds(kind, n_workers, n_evals, tmp) / n_evals * 1e6)
    return {kind: float(np.median(values)) for kind, values in seen.items()}


# ---------------------------------------------------------------- vs plain Optuna ask/tell
def random_objective(trial: optuna.Trial) -> Evaluation:
    x = trial.suggest_float("x", 0.0, 1.0)
    y = trial.suggest_float("y", 0.0, 1.0)
    return Evaluation(values=(x - 0.3) ** 2 + y, runtime=10.0 + 90.0 * y)


def plain_ask_tell(n_trials: int) -> float:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    began = time.process_time()
    for _ in range(n_trials):
        trial = study.ask()
        evaluation = random_objective(trial)
        study.tell(trial, evaluation.values)
    return time.process_time() - began


def simulated_ask_tell(n_trials: int, n_workers: int, record: bool) -> float:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    began = time.process_time()
    simulate(study, random_objective, n_workers, n_trials, record_in_study=record)
    return time.process_time() - began


def extra_fraction(n_trials: int, n_workers: int, record: bool, repeats: int = 7) -> float:
    """CPU time (this process only: the machine is shared) of the simulation over the plain loop, best of each."""
    plain, ours = [], []
    for _ in range(repeats):  # interleaved
        gc.collect()
        plain.append(plain_ask_tell(n_trials))
        gc.collect()
        ours.append(simulated_ask_tell(n_trials, n_workers, record))
    return min(ours) / min(plain) - 1.0


# ---------------------------------------------------------------- order agreement with a real-sleep run
def order_agreement(n_workers: int, n_trials: int, time_scale: float, tmp: str) -> dict[str, float]:
    """Distinct integer runtimes, redrawn until no two results end at the same simulated second."""
    rng = random.Random(7)

    def objective(trial: optuna.Trial) -> Evaluation:
        trial.suggest_float("x", 0.0, 1.0)
        return Evaluation(values=0.0, runtime=runtimes[trial.number])

    while True:
        runtimes = [float(r) for r in rng.sample(range(20, 400), n_trials)]
        ours = simulate(optuna.create_study(), objective, n_workers, n_trials)
        ends = [t.end for t in ours.trials]
        if len(set(ends)) == len(ends):
            break
    real = run_threaded(optuna.create_study(), objective, n_workers, n_trials, time_scale)
    _, theirs = mfhpo_ask_tell(runtimes, n_workers, n_trials, tmp)

    def agreement(order: list[int]) -> float:
        return sum(a == b for a, b in zip(order, real.order, strict=False)) / len(real.order)

    return {"ours": agreement(ours.order), "mfhpo": agreement(theirs)}


# ---------------------------------------------------------------- scale
def scale_ours(n_workers: int, n_evals: int) -> dict[str, float]:
    runtimes = np.random.default_rng(0).random(n_evals).tolist()
    driver = TrivialDriver(runtimes)
    gc.collect()
    began = time.perf_counter()
    run_events(driver, n_workers, n_evals)
    seconds = time.perf_counter() - began
    tracemalloc.start()
    run_events(TrivialDriver(runtimes), n_workers, n_evals)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "peak_mib": peak / 2**20}


def scale_mfhpo(n_workers: int, n_evals: int, tmp: str) -> dict[str, float]:
    runtimes = np.random.default_rng(0).random(n_evals + n_workers).tolist()
    gc.collect()
    seconds, _ = mfhpo_ask_tell(runtimes, n_workers, n_evals, tmp)
    tracemalloc.start()
    mfhpo_ask_tell(runtimes, n_workers, min(n_evals, 20_000), tmp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "peak_mib_20k_evals": peak / 2**20}


def real_sampler_figures(n_workers: int, n_evals: int, tmp: str) -> dict[str, Any]:
    us = real_sampler(n_workers, n_evals, tmp)
    return {
        "real_sampler_us_per_eval_ours": round(us["ours"], 1),
        "real_sampler_us_per_eval_plain_ask_tell": round(us["plain"], 1),
        "real_sampler_us_per_eval_mfhpo_ask_tell": round(us["mfhpo"], 1),
        "real_sampler_ratio_mfhpo_ask_tell_over_ours": round(us["mfhpo"] / us["ours"], 2),
        "real_sampler_workers": n_workers,
        "real_sampler_evals": n_evals,
    }


def real_sampler_main(out: Path, quick: bool) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    tmp = tempfile.mkdtemp(prefix="bench-simulator-")
    try:
        figures = real_sampler_figures(n_workers=8, n_evals=1_000 if quick else 3_000, tmp=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    results.update(figures)
    table = Table("with Optuna RandomSampler asked each time (P = 8)", "µs per evaluation")
    table.add_row("ours (core.hpo.simulator)", f"{figures['real_sampler_us_per_eval_ours']:.1f}")
    table.add_row("plain ask/tell loop (no simulation)", f"{figures['real_sampler_us_per_eval_plain_ask_tell']:.1f}")
    table.add_row("mfhpo-simulator ask-and-tell", f"{figures['real_sampler_us_per_eval_mfhpo_ask_tell']:.1f}")
    console.print(table)
    console.print(
        f"mfhpo ask-and-tell / ours: {figures['real_sampler_ratio_mfhpo_ask_tell_over_ours']}× "
        "(the large ratios in the overhead table are against its file wrapper, its slowest mode)"
    )
    from core.files import write_atomic

    write_atomic(out, json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "tools" / "bench" / "results" / "simulator.json")
    parser.add_argument(
        "--real-sampler-only",
        action="store_true",
        help="measure only the real-sampler comparison and merge it into an existing --out",
    )
    args = parser.parse_args()
    if args.real_sampler_only:
        real_sampler_main(args.out, args.quick)
        return
    import importlib.metadata as md
    import warnings

    warnings.filterwarnings("ignore")
    quick = args.quick
    n_evals = 2_000 if quick else 10_000
    workers = [1, 4, 8, 32, 256]
    wrapper_evals = {1: 100, 4: 100, 8: 100, 32: 64, 256: 0} if quick else {1: 300, 4: 300, 8: 200, 32: 100, 256: 0}
    tmp = tempfile.mkdtemp(prefix="bench-simulator-")
    results: dict[str, Any] = {}
    try:
        ours, at, wr = {}, {}, {}
        for p in workers:
            with console.status(f"overhead at P={p}"):
                ours[str(p)] = round(ours_overhead(p, n_evals), 3)
                at[str(p)] = round(mfhpo_ask_tell_overhead(p, n_evals, tmp), 3)
                wr[str(p)] = round(mfhpo_wrapper_overhead(p, wrapper_evals[p], tmp), 1) if wrapper_evals[p] else None
        results["overhead_us_per_eval_ours"] = ours
        results["overhead_us_per_eval_mfhpo_ask_tell"] = at
        results["overhead_us_per_eval_mfhpo_wrapper"] = wr
        results["mfhpo_wrapper_evals_per_p"] = {str(p): wrapper_evals[p] for p in workers}
        results["overhead_ratio_mfhpo_wrapper_over_ours"] = {
            str(p): round(wr[str(p)] / ours[str(p)], 1) for p in workers if wr[str(p)] is not None
        }
        results["overhead_ratio_mfhpo_ask_tell_over_ours"] = {
            str(p): round(at[str(p)] / ours[str(p)], 2) for p in workers
        }
        with console.status("vs plain ask/tell"):
            trials = 1_000 if quick else 3_000
            results["extra_fraction_vs_plain_ask_tell"] = round(extra_fraction(trials, 8, record=False), 4)
            results["extra_fraction_vs_plain_ask_tell_with_study_attrs"] = round(extra_fraction(trials, 8, True), 4)
        with console.status("order agreement with a real-sleep run"):
            agreement = order_agreement(n_workers=8, n_trials=32 if quick else 64, time_scale=5e-3, tmp=tmp)
        results["order_agreement_ours"] = agreement["ours"]
        results["order_agreement_mfhpo"] = agreement["mfhpo"]
        with console.status("scale: P = 10,000"):
            big = 100_000 if quick else 1_000_000
            ours_big = scale_ours(10_000, big)
            theirs_big = scale_mfhpo(10_000, big // 10, tmp)
        results["scale_p10000_evals_ours"] = big
        results["scale_p10000_seconds_ours"] = round(ours_big["seconds"], 2)
        results["scale_p10000_us_per_eval_ours"] = round(ours_big["seconds"] / big * 1e6, 2)
        results["scale_p10000_peak_mib_ours"] = round(ours_big["peak_mib"], 1)
        results["scale_p10000_evals_mfhpo_ask_tell"] = big // 10
        results["scale_p10000_us_per_eval_mfhpo_ask_tell"] = round(theirs_big["seconds"] / (big // 10) * 1e6, 2)
        results["scale_p10000_peak_mib_mfhpo_ask_tell_20k_evals"] = round(theirs_big["peak_mib_20k_evals"], 1)
        results["scale_p10000_ratio_mfhpo_over_ours_per_eval"] = round(
            results["scale_p10000_us_per_eval_mfhpo_ask_tell"] / results["scale_p10000_us_per_eval_ours"], 1
        )
        with console.status("a real sampler in the loop"):
            results.update(real_sampler_figures(n_workers=8, n_evals=1_000 if quick else 3_000, tmp=tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["peer_versions"] = {"mfhpo-simulator": md.version("mfhpo-simulator"), "optuna": optuna.__version__}
    results["cpu_count"] = os.cpu_count()
    results["n_evals_overhead"] = n_evals

    table = Table(
        "P",
        "ours µs/eval",
        "mfhpo ask-tell µs/eval",
        "mfhpo wrapper µs/eval",
        "wrapper / ours",
        title="engine overhead only (trivial sampler); the wrapper is mfhpo's slowest mode",
    )
    for p in workers:
        key = str(p)
        table.add_row(
            key,
            f"{ours[key]:.2f}",
            f"{at[key]:.2f}",
            f"{wr[key]:.0f}" if wr[key] else "-",
            f"{results['overhead_ratio_mfhpo_wrapper_over_ours'].get(key, '-')}",
        )
    console.print(table)
    summary = Table("figure", "value")
    for key, value in results.items():
        if not isinstance(value, dict):
            summary.add_row(key, str(value))
    console.print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
