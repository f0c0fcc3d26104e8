"""Benchmark: audio QA from event-level vs frame-level features of a SED transformer, against question-only and
majority-answer baselines; the SED's event F1 on held-out soundscapes.

Every step goes through the app's own configs (make-data, train-sed, train-qa through core.train) in a workspace
folder; a step whose output exists is not redone, so an interrupted run resumes.

1. make-data: train / val / test soundscapes from different seeds (the test clips are never seen in training);
2. train-sed, then its event-based F1 (200 ms collar) on the test clips by ``sed_eval``;
3. train-qa on the frozen SED's event-level features, on its frame-level features, and on no audio at all
   (question only), each with ``--seeds`` training seeds; exact match per question type on the test questions;
4. the majority answer of each type (from the training questions) on the test questions, and the answers read off
   the SED's detected events by each template's meaning (``apps.audioqa.rules``: no language model);
5. the paired difference event − frame per test question (mean over seeds) with a 95% bootstrap interval.

    python tools/bench/audioqa.py                 # the CPU size (about 20 CPU minutes; see the app's README)
    python tools/bench/audioqa.py --full          # 3,000 training clips and longer training (hours on 2 cores)

Writes tools/bench/results/audioqa.json: ``sed_event_f1`` (and precision, recall, our own F1 as a check),
``qa_acc_{event,frame,question_only,majority,rules_on_sed_events}`` overall (the mean of the six type accuracies)
and per type (``..._<type>``), with ``_std`` (sample standard deviation over seeds) and ``_min`` / ``_max``;
``qa_event_minus_frame`` overall and per type with ``_ci95_low`` / ``_ci95_high``; ``train_minutes_total`` (CPU
minutes of the SED training plus one event-level QA training: what "both models train within 30 minutes" asks),
``train_wall_minutes_total`` (the same in wall time), ``bench_cpu_minutes`` and ``bench_wall_minutes`` (everything);
the sizes, versions and the core count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results") / "audioqa.json"
CONFIG = ROOT / "apps" / "audioqa" / "config"
TYPES = ("existence", "counting", "order", "timing", "duration", "loudness")
KINDS = {"event": "event", "frame": "frame", "question_only": "none"}

SIZES = {
    "cpu": {"train": 1000, "val": 100, "test": 250, "qa_per_clip": 1.0, "sed_epochs": 20, "qa_epochs": 20},
    "full": {"train": 3000, "val": 300, "test": 500, "qa_per_clip": 1.0, "sed_epochs": 60, "qa_epochs": 40},
}


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (make-data's writer processes)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed(step: dict[str, float], name: str, fn: Any) -> Any:
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    step[f"{name}_wall_s"] = time.perf_counter() - wall
    step[f"{name}_cpu_s"] = _cpu() - cpu
    return out


def _load_or(path: Path, make: Any) -> Any:
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.write_text(json.dumps(value, indent=2) + "\n")
    return value


def _decoders(sed_run: Path, data: Path) -> dict[str, Any]:
    """The decoder chosen on the validation clips (written to the SED run) and, per source, its best settings there."""
    from apps.audioqa.evaluate import select_decoder

    best, scores = select_decoder(sed_run, data, "val")
    by_source = {
        source: max((k for k in scores if k.startswith(source + "/")), key=lambda k: scores[k])
        for source in ("queries", "refined", "frames")
    }
    return {"chosen": asdict(best), "val_f1": scores, "best_per_source": by_source}


def _decoder_of(setting: str) -> Any:
    from apps.audioqa.sed import Decoder

    source, *values = setting.split("/")
    if source == "queries":
        return Decoder(source, float(values[0]))
    if source == "frames":
        return Decoder(source, 0.5, float(values[0]))
    return Decoder(source, float(values[0]), float(values[1]))


def _evaluate_run(run: Path) -> None:
    """One pass of a QA run over the test questions: ``bench_correct.json`` (per question) and ``bench_eval.json``
    (per type and overall, as :func:`apps.audioqa.evaluate.evaluate_qa` computes them)."""
    import torch

    from apps.audioqa.qa import accuracy_by_type
    from apps.audioqa.scenes import QUESTION_TYPES
    from core.config import instantiate
    from core.train import load_run
    from core.train.run import load_run_config

    task = load_run(run)
    dataset = instantiate(load_run_config(run).datamodule).split("test")
    correct: list[float] = []
    kinds: list[int] = []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(dataset, batch_size=256, shuffle=False):
            correct += task.correct(batch).tolist()
            kinds += batch["type"].tolist()
    by_type: dict[int, list[float]] = {}
    for k, ok in zip(kinds, correct, strict=True):
        by_type.setdefault(k, []).append(ok)
    scores: dict[str, Any] = accuracy_by_type(by_type)
    scores["micro"] = sum(correct) / len(correct)
    scores["n_questions"] = {QUESTION_TYPES[k]: len(v) for k, v in sorted(by_type.items())}
    (run / "bench_correct.json").write_text(json.dumps(correct))
    (run / "bench_eval.json").write_text(json.dumps(scores, indent=2) + "\n")


def _evaluate_parallel(runs: list[Path], jobs: int) -> None:
    """:func:`_evaluate_run` of each run in its own process, ``jobs`` at a time."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pending = list(runs)
    running: list[subprocess.Popen[bytes]] = []
    while pending or running:
        while pending and len(running) < jobs:
            argv = [sys.executable, str(Path(__file__).resolve()), "--eval-run", str(pending.pop(0))]
            running.append(subprocess.Popen(argv, cwd=ROOT, env=env))
        running[0].wait()
        if running[0].returncode != 0:
            raise SystemExit(f"evaluation failed: {running[0].args!r}")
        running.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "bench-audioqa")
    parser.add_argument("--full", action="store_true", help="the full size (hours on a 2-core machine)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--jobs", type=int, default=1, help="QA trainings run at once (separate processes)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished QA runs")
    parser.add_argument("--until", choices=("data", "sed"), help="stop after this step (the next call resumes)")
    parser.add_argument("--eval-run", type=Path, help=argparse.SUPPRESS)  # one evaluation worker (see --jobs)
    args = parser.parse_args()
    if args.eval_run:
        import torch

        torch.set_num_threads(1)
        _evaluate_run(args.eval_run)
        return

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from apps.audioqa.data import make_data
    from apps.audioqa.evaluate import evaluate_rules, evaluate_sed, majority_baseline
    from apps.audioqa.sed import Decoder
    from core.config import load_config
    from core.train import fit

    size = SIZES["full" if args.full else "cpu"]
    ws = args.workspace
    ws.mkdir(parents=True, exist_ok=True)
    times_path = ws / "times.json"
    times: dict[str, float] = json.loads(times_path.read_text()) if times_path.is_file() else {}
    start_wall, start_cpu = time.perf_counter(), _cpu()
    data = ws / "data"
    quiet = ["trainer.enable_progress_bar=false"]

    if not (data / "summary.json").is_file():
        cfg = load_config(
            CONFIG / "data.yaml",
            [f"out_dir={data}", f"splits.train.n_clips={size['train']}", f"splits.val.n_clips={size['val']}",
             f"splits.test.n_clips={size['test']}", f"splits.train.questions_per_clip={size['qa_per_clip']}",
             "num_workers=2", "overwrite=true"],
        )  # fmt: skip
        _timed(times, "make_data", lambda: make_data(cfg))
        times_path.write_text(json.dumps(times, indent=2))
    summary = json.loads((data / "summary.json").read_text())
    if args.until == "data":
        return

    sed_run = ws / "sed"
    if not (sed_run / "metric.json").is_file():
        overrides = [*quiet, f"data_dir={data}", f"trainer.max_epochs={size['sed_epochs']}"]
        _timed(times, "train_sed", lambda: fit(CONFIG / "sed.yaml", overrides, run_dir=sed_run))
        times_path.write_text(json.dumps(times, indent=2))
    # The decoder (source and thresholds) is chosen on the validation clips; the test clips are scored with it, and
    # with the best validation setting of each source for comparison.
    chosen = _load_or(ws / "sed_decoder.json", lambda: _decoders(sed_run, data))
    sed = _load_or(ws / "sed_eval.json", lambda: evaluate_sed(sed_run, data, "test", Decoder(**chosen["chosen"])))
    per_source = {
        source: _load_or(
            ws / f"sed_eval_{source}.json", lambda s=setting: evaluate_sed(sed_run, data, "test", _decoder_of(s))
        )
        for source, setting in chosen["best_per_source"].items()
    }
    print(f"SED on {sed['clips']} test clips: event F1 {sed['sed_eval_f1']:.3f} (sed_eval), {sed['f1']:.3f} (ours)")
    if args.until == "sed":
        return

    if args.jobs > 1 and not args.report_only:
        _train_qa_parallel(args, ws, data, sed_run, size, times, quiet)
        times_path.write_text(json.dumps(times, indent=2))
    unevaluated = [
        ws / f"qa-{name}-{seed}"
        for seed in range(args.seeds)
        for name in KINDS
        if (ws / f"qa-{name}-{seed}" / "metric.json").is_file()
        and not (ws / f"qa-{name}-{seed}" / "bench_correct.json").is_file()
    ]
    if args.jobs > 1:
        _evaluate_parallel(unevaluated, args.jobs)
    results: dict[str, list[dict[str, Any]]] = {}
    correct: dict[str, list[list[float]]] = {}
    for seed in range(args.seeds):  # seed-major: an interrupted run still has every variant of the first seeds
        for name, kind in KINDS.items():
            run = ws / f"qa-{name}-{seed}"
            if not (run / "metric.json").is_file():
                if args.report_only:
                    continue
                overrides = [*quiet, f"seed={seed}", f"data_dir={data}", f"sed_run={sed_run}", f"features={kind}",
                             f"trainer.max_epochs={size['qa_epochs']}"]  # fmt: skip
                _timed(
                    times, f"train_qa_{name}_{seed}", lambda o=overrides, r=run: fit(CONFIG / "qa.yaml", o, run_dir=r)
                )
                times_path.write_text(json.dumps(times, indent=2))
            if not (run / "bench_correct.json").is_file():
                _evaluate_run(run)
            scores = json.loads((run / "bench_eval.json").read_text())
            results.setdefault(name, []).append(scores)
            correct.setdefault(name, []).append(json.loads((run / "bench_correct.json").read_text()))
            print(f"QA {name} seed {seed}: overall {scores['overall']:.3f}")
    majority = majority_baseline(data, "test")
    rules = _load_or(ws / "rules_eval.json", lambda: evaluate_rules(sed_run, data, "test"))

    figures: dict[str, Any] = {
        "sed_event_f1": sed["sed_eval_f1"],
        "sed_event_precision": sed["sed_eval_precision"],
        "sed_event_recall": sed["sed_eval_recall"],
        "sed_event_f1_ours": sed["f1"],
        "sed_decoder": sed["decoder"]["source"],
        "sed_threshold": sed["decoder"]["threshold"],
        "sed_frame_threshold": sed["decoder"]["frame_threshold"],
        "sed_decoder_val_f1": max(chosen["val_f1"].values()),
        **{f"sed_event_f1_{source}": scores["sed_eval_f1"] for source, scores in per_source.items()},
        **{f"sed_decoder_{source}": setting for source, setting in chosen["best_per_source"].items()},
        "sed_test_clips": sed["clips"],
        "sed_test_events": sed["n_ref"],
    }
    for name, runs in results.items():
        for key in ("overall", *TYPES):
            values = [r[key] for r in runs]
            stem = f"qa_acc_{name}" + ("" if key == "overall" else f"_{key}")
            figures[stem] = statistics.mean(values)
            figures[f"{stem}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            figures[f"{stem}_min"], figures[f"{stem}_max"] = min(values), max(values)
    for key in ("overall", *TYPES):
        figures["qa_acc_majority" + ("" if key == "overall" else f"_{key}")] = majority[key]
        figures["qa_acc_rules_on_sed_events" + ("" if key == "overall" else f"_{key}")] = rules[key]

    # Paired difference per test question (same questions, correctness averaged over seeds), bootstrap 95%.
    types = _question_types(data)
    both = "event" in correct and "frame" in correct
    event = np.mean(np.array(correct["event"]), axis=0) if both else np.zeros(len(types))
    frame = np.mean(np.array(correct["frame"]), axis=0) if both else np.zeros(len(types))
    type_index = np.array([TYPES.index(t) for t in types])
    rng = np.random.default_rng(0)
    for key in ("overall", *TYPES) if both else ():
        if key == "overall":
            groups = [np.flatnonzero(type_index == k) for k in range(len(TYPES))]
        else:
            groups = [np.flatnonzero(type_index == TYPES.index(key))]
        diff = float(np.mean([np.mean(event[g] - frame[g]) for g in groups]))
        boot = []
        for _ in range(2000):
            samples = [rng.choice(g, size=g.size) for g in groups]
            boot.append(np.mean([np.mean(event[s] - frame[s]) for s in samples]))
        stem = "qa_event_minus_frame" + ("" if key == "overall" else f"_{key}")
        figures[stem] = diff
        figures[f"{stem}_ci95_low"], figures[f"{stem}_ci95_high"] = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    figures["qa_test_questions"] = len(types)
    figures["qa_train_questions"] = sum(sum(a.values()) for a in summary["train"]["questions"].values())
    for t in TYPES:
        figures[f"qa_test_questions_{t}"] = int(np.sum(type_index == TYPES.index(t)))

    event_qa = [times[k] for k in times if k.startswith("train_qa_event_") and k.endswith("_cpu_s")]
    event_qa_wall = [times[k] for k in times if k.startswith("train_qa_event_") and k.endswith("_wall_s")]
    # An interrupted SED run has no CPU figure of its own; times.json may then hold an estimate (wall time × the
    # CPU share a run of the same niceness measured in the same period), reported as such.
    sed_cpu = times.get("train_sed_cpu_s", times.get("train_sed_cpu_s_estimated", float("nan")))
    figures["train_sed_cpu_is_estimate"] = "train_sed_cpu_s" not in times
    event_qa = event_qa or [float("nan")]
    event_qa_wall = event_qa_wall or [float("nan")]
    figures["train_minutes_total"] = (sed_cpu + statistics.mean(event_qa)) / 60
    figures["train_wall_minutes_total"] = (
        times.get("train_sed_wall_s", float("nan")) + statistics.mean(event_qa_wall)
    ) / 60
    figures["train_sed_cpu_minutes"] = sed_cpu / 60
    figures["train_sed_wall_minutes"] = times.get("train_sed_wall_s", float("nan")) / 60
    figures["train_qa_event_cpu_minutes"] = statistics.mean(event_qa) / 60
    frame_qa = [times[k] for k in times if k.startswith("train_qa_frame_") and k.endswith("_cpu_s")]
    figures["train_qa_frame_cpu_minutes"] = statistics.mean(frame_qa) / 60 if frame_qa else float("nan")
    figures["bench_cpu_minutes"] = sum(v for k, v in times.items() if k.endswith("_cpu_s")) / 60
    figures["bench_wall_minutes"] = sum(v for k, v in times.items() if k.endswith("_wall_s")) / 60
    figures["this_invocation_wall_minutes"] = (time.perf_counter() - start_wall) / 60
    figures["this_invocation_cpu_minutes"] = (_cpu() - start_cpu) / 60
    figures.update({
        "size": "full" if args.full else "cpu",
        "train_clips": size["train"], "val_clips": size["val"], "test_clips": size["test"],
        "sed_epochs_planned": size["sed_epochs"], "sed_epochs_trained": _epochs_trained(sed_run),
        "sed_val_f1_by_epoch": _logged(sed_run, "val/f1"),
        "qa_epochs": size["qa_epochs"], "seeds": args.seeds,
        **{f"seeds_done_{name}": len(runs) for name, runs in results.items()},
        **{f"qa_epochs_{name}": _run_epochs(ws, name, args.seeds) for name in results},
        "torch_threads": args.threads, "qa_parallel_jobs": args.jobs,
        "cpu_count": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0],
        "torch": version("torch"), "torchaudio": version("torchaudio"), "lightning": version("lightning"),
        "sed_eval": version("sed_eval"), "python": platform.python_version(),
    })  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    from core.files import write_atomic

    write_atomic(RESULTS, json.dumps(figures, indent=2) + "\n")
    _print_table(figures)
    print(f"wrote {RESULTS}")


def _train_qa_parallel(
    args: Any, ws: Path, data: Path, sed_run: Path, size: dict[str, Any], times: dict[str, float], quiet: list[str]
) -> None:
    """The pending QA runs as ``kakehashi audioqa train-qa`` processes, ``args.jobs`` at a time, 1 thread each.

    Their CPU time comes from ``wait4`` (the process's own usage), their wall time from start to exit.
    """
    import subprocess

    from apps.audioqa.qa import QADataModule

    QADataModule(str(data), str(sed_run), "event").setup("fit")  # the frozen SED's features, cached once
    pending = [
        (name, kind, seed)
        for seed in range(args.seeds)
        for name, kind in KINDS.items()
        if not (ws / f"qa-{name}-{seed}" / "metric.json").is_file()
    ]
    running: dict[int, tuple[str, float]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < args.jobs:
            name, kind, seed = pending.pop(0)
            run = ws / f"qa-{name}-{seed}"
            argv = [sys.executable, "-m", "core.cli", "audioqa", "train-qa", str(CONFIG / "qa.yaml"), *quiet,
                    f"seed={seed}", f"data_dir={data}", f"sed_run={sed_run}", f"features={kind}",
                    f"trainer.max_epochs={size['qa_epochs']}", "--threads", "1", "--run-dir", str(run)]  # fmt: skip
            log = (ws / f"qa-{name}-{seed}.log").open("w")
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running[process.pid] = (f"train_qa_{name}_{seed}", time.perf_counter())
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        key, started = running.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{key} failed (exit {os.waitstatus_to_exitcode(status)}); see its log in {ws}")
        times[f"{key}_wall_s"] = time.perf_counter() - started
        times[f"{key}_cpu_s"] = usage.ru_utime + usage.ru_stime
        (ws / "times.json").write_text(json.dumps(times, indent=2))
        print(f"{key}: {times[f'{key}_cpu_s'] / 60:.1f} CPU minutes")


def _logged(run: Path, key: str) -> list[float]:
    """A run's logged values of ``key``, one per epoch (the training config's decoder on the validation clips)."""
    import csv

    with (run / "logs" / "version_0" / "metrics.csv").open() as f:
        return [round(float(r[key]), 4) for r in csv.DictReader(f) if r.get(key)]


def _run_epochs(ws: Path, name: str, seeds: int) -> list[int]:
    """The epochs each finished QA run of variant ``name`` was configured for (runs of an earlier size may remain)."""
    from core.train.run import load_run_config

    runs = [ws / f"qa-{name}-{seed}" for seed in range(seeds)]
    return [int(load_run_config(run).trainer.max_epochs) for run in runs if (run / "metric.json").is_file()]


def _epochs_trained(run: Path) -> int:
    import torch

    return int(torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]) + 1


def _question_types(data: Path) -> list[str]:
    """The type of every test question, in the order the QA dataset lists them."""
    from core.data import RawHDF5Dataset

    source = RawHDF5Dataset(data / "test.h5")
    types: list[str] = []
    for i in range(len(source)):
        text = source[i]["questions"]
        types += [q["type"] for q in json.loads(text.decode() if isinstance(text, bytes) else str(text))]
    return types


def _print_table(f: dict[str, Any]) -> None:
    print(f"\nSED event F1 (sed_eval, 200 ms collar): {f['sed_event_f1']:.3f}   "
          f"train minutes (CPU, SED + one QA): {f['train_minutes_total']:.1f}")  # fmt: skip
    header = f"{'type':<10}" + "".join(f"{n:>22}" for n in ("event", "frame", "question only", "majority"))
    print(header + f"{'event - frame [95% CI]':>30}")
    for key in ("overall", *TYPES):
        suffix = "" if key == "overall" else f"_{key}"
        cells = [
            f"{f['qa_acc_' + n + suffix]:.3f} ± {f['qa_acc_' + n + suffix + '_std']:.3f}"
            if "qa_acc_" + n + suffix in f
            else "not run"
            for n in ("event", "frame", "question_only")
        ]
        d = f"qa_event_minus_frame{suffix}"
        diff = f"{f[d]:>+12.3f} [{f[d + '_ci95_low']:+.3f}, {f[d + '_ci95_high']:+.3f}]" if d in f else "not shown"
        print(f"{key:<10}" + "".join(f"{c:>22}" for c in cells) + f"{f['qa_acc_majority' + suffix]:>22.3f}  {diff}")


if __name__ == "__main__":
    main()
