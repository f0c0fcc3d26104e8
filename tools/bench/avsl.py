"""Benchmark of apps/avsl: localization figures after a CPU-time training budget, the annotation loop, speed.

Stages, each kept in a workspace and skipped when its output exists (rerun the script to resume):

1. ``data``: ``kakehashi avsl make-data apps/avsl/config/data.yaml`` (train 2,000, val 200, test 300, hand 24,
   unlabelled ``--unlabelled`` 8,000 scenes at 128×256; a smaller pool written before is grown to that size);
2. ``main``: ``kakehashi avsl train`` on the training split, ``--main-minutes`` of CPU time (one thread);
3. ``eval``: the held-out test split: cIoU success and AUC, beside the centre prior and the same model with
   shuffled audio; silent false-positive area; two-source ARI; class accuracy; 95% bootstrap intervals; at the
   map threshold that scores best on the validation split (and at 0.5, the ``*_at_threshold_0.5`` figures);
4. ``teacher``: ``config/teacher.yaml``, the model trained on the 24 hand-labelled scenes only, each shown as
   the array's exact symmetries (``--small-minutes`` of CPU); scored like the main model
   (``ciou_success_hand_only``);
5. ``annotate-<r>``, ``student-<r>`` for ``--rounds`` rounds: ``kakehashi avsl annotate``'s round (the round's
   model labels the unlabelled split at its validation-chosen map threshold, as an array of 2 local jobs; the
   scripted reviewer checks a sample of each number of predicted sources), then ``config/student.yaml`` on hand +
   accepted labels, starting from the weights of the model that made them (``--student-minutes`` of CPU); the
   last student is ``ciou_success_hand_plus_pseudo``, every round's figures are kept (``*_round<r>``);
6. ``speed``: inference frames per second at 128×256 on one thread (CPU time of this process, and wall time);
7. ``node``: ``kakehashi avsl node`` on loopback: frame published → map received, ``--node-frames`` times.

``--speed-only`` measures stages 6 and 7 again (with the trained main run of the workspace) and replaces only
their figures and the load averages in the JSON: for a re-measurement on a quiet machine.

    python tools/bench/avsl.py [--workspace runs/avsl-bench] [--main-minutes 2.5] [--small-minutes 4] [--rounds 2]
    python tools/bench/avsl.py --full --workspace runs/avsl-full   # 4× the data, 15 CPU minutes per model
    python tools/bench/avsl.py --speed-only                         # re-measure fps and node latency only

The defaults fit the shared 2-core development machine (the main model gets 2.5 CPU minutes, the teacher and each
round's student 4); a cached stage is not redone, so a rerun after a change of the loop redoes only the loop
(delete ``teacher``, ``annotate-*``, ``student-*`` and their ``eval-*`` files first); ``--full`` is the
issue's setting (15 CPU minutes of training per model).

Writes tools/bench/results/avsl.json (a flat object of figures, the peer versions and the core count).
The CPU budgets are CPU time of the training process (``apps.avsl.callbacks.CPUBudget``), not wall time: on the
shared development machine the wall clock counts other people's jobs too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results") / "avsl.json"
CONFIG = ROOT / "apps" / "avsl" / "config"


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def _kakehashi(*args: str) -> None:
    command = [sys.executable, "-m", "core.cli", *args]
    print("$ kakehashi " + " ".join(args), flush=True)
    subprocess.run(command, check=True, env=_env(), cwd=ROOT)


def _train(ws: Path, name: str, config: str, minutes: float, extra: list[str]) -> Path:
    run = ws / name
    if (run / "metric.json").is_file():
        return run
    _kakehashi(
        "avsl",
        "train",
        str(CONFIG / config),
        f"data_dir={ws / 'data'}",
        f"callbacks.budget.minutes={minutes}",
        "trainer.enable_progress_bar=false",
        *extra,
        "--run-dir",
        str(run),
    )
    return run


def _trained_at(run: Path) -> str:
    """When the run was trained (its provenance): stages are cached, so the figures of one JSON can come from runs
    trained by different invocations (and code versions); this says which."""
    provenance: dict[str, Any] = json.loads((run / "provenance.json").read_text())
    return str(provenance.get("time", "unknown"))


def _budget_spent(run: Path) -> float:
    """CPU minutes the run's training took (CPUBudget's state in the last checkpoint)."""
    import torch

    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    spent = [v["spent"] for k, v in state.get("callbacks", {}).items() if "CPUBudget" in k]
    return float(spent[0]) / 60.0 if spent else float("nan")


def _evaluate(run: Path, scenes: Path, cache: Path, threshold: float = 0.5) -> dict[str, Any]:
    from apps.avsl.evaluate import evaluate_run

    if cache.is_file():
        result: dict[str, Any] = json.loads(cache.read_text())
        return result
    result = evaluate_run(run, scenes, threshold=threshold, overlays=run / "overlays", n_overlays=8)
    cache.write_text(json.dumps(result) + "\n")
    return result


def _evaluate_tuned(run: Path, ws: Path, name: str) -> dict[str, Any]:
    """The test figures at the map threshold that scores best on the validation split (never on the test split)."""
    from apps.avsl.evaluate import choose_threshold

    cache = ws / f"eval-{name}-val-threshold.json"
    if cache.is_file():
        result: dict[str, Any] = json.loads(cache.read_text())
        return result
    best, table = choose_threshold(run, ws / "data" / "val.h5")
    result = _evaluate(run, ws / "data" / "test.h5", ws / f"eval-{name}-t{best:g}.json", threshold=best)
    result["figures"]["val_success_by_threshold"] = {str(k): v for k, v in table.items()}
    cache.write_text(json.dumps(result) + "\n")
    return result


def _speed(run: Path, scenes: Path, n: int) -> dict[str, Any]:
    import torch

    from apps.avsl.data import AVSLDataset
    from apps.avsl.inference import Localizer

    torch.set_num_threads(1)
    localizer = Localizer.from_run(run)
    dataset = AVSLDataset(scenes, limit=n)
    samples = [(dataset[i]["image"].permute(1, 2, 0).numpy().copy(), dataset[i]["audio"].numpy()) for i in range(n)]
    for frame, audio in samples[:5]:
        localizer(frame, audio)
    cpu, wall = time.process_time(), time.perf_counter()
    for frame, audio in samples:
        localizer(frame, audio)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "fps_one_thread": n / cpu,
        "fps_one_thread_wall": n / wall,
        "speed_run": run.name,
        "speed_load_average_1min": os.getloadavg()[0],
    }


def _node_latency(run: Path, scenes: Path, n: int) -> dict[str, Any]:
    from std_msgs.msg import Float32MultiArray, UInt8MultiArray

    from apps.avsl.data import AVSLDataset
    from core.ros.harness import Loopback, start_node, stop_node
    from core.ros.messages import audio_to_message, image_to_message

    dataset = AVSLDataset(scenes, limit=n)
    latencies: list[float] = []
    with Loopback() as ros:
        env = {**ros.env, **{k: v for k, v in _env().items() if k in ("PYTHONPATH", "OMP_NUM_THREADS")}}
        node = start_node([sys.executable, "-m", "core.cli", "avsl", "node", str(run)], env)
        try:
            maps = ros.collect_timed("/avsl/map", Float32MultiArray)
            images = ros.publisher("/avsl/image", UInt8MultiArray)
            sounds = ros.publisher("/avsl/audio", Float32MultiArray)
            if not (ros.wait_for_subscribers(images, timeout=120) and ros.wait_for_subscribers(sounds, timeout=60)):
                raise RuntimeError("the node did not subscribe")
            for i in range(n):
                sample = dataset[i]
                sounds.publish(audio_to_message(sample["audio"].numpy(), 16000))
                time.sleep(0.05)  # the audio arrives first, as from a microphone stream
                message = image_to_message(sample["image"].permute(1, 2, 0).numpy().copy())
                before = len(maps)
                sent = time.perf_counter()
                images.publish(message)
                if not ros.wait_for(lambda before=before: len(maps) > before, timeout=30):
                    raise RuntimeError(f"no map for frame {i}")
                latencies.append(1000.0 * (maps[before][0] - sent))
        finally:
            code, output = stop_node(node, grace=120)  # a loaded machine can take a while to shut torch down
    if code != 0:
        print(f"the node exited with {code}:\n{output[-2000:]}", file=sys.stderr)
    values = np.array(latencies[3:])  # the first frames warm the model up
    return {
        "node_latency_ms_p50": float(np.percentile(values, 50)),
        "node_latency_ms_p95": float(np.percentile(values, 95)),
        "node_run": run.name,
        "node_frames": len(values),
        "node_exit_code": code,
        "node_load_average_1min": os.getloadavg()[0],
    }


def _evaluated_threshold(run: Path, ws: Path) -> float:
    """The map threshold a run's evaluation chose on the validation split (its labels use the same)."""
    name = run.name
    result: dict[str, Any] = json.loads((ws / f"eval-{name}-val-threshold.json").read_text())
    return float(result["figures"]["threshold"])


def _annotate(ws: Path, round_: int, model: Path, n_hand: int, map_threshold: float) -> dict[str, Any]:
    """One round of ``kakehashi avsl annotate``: ``model`` labels the unlabelled split (2 local array jobs)."""
    out = ws / f"annotate-{round_}"
    if not (out / "report.json").is_file():
        _kakehashi(
            "avsl",
            "annotate",
            str(CONFIG / "annotate.yaml"),
            f"teacher={model}",
            f"scenes={ws / 'data' / 'unlabelled.h5'}",
            f"out_dir={out}",
            f"n_hand_frames={n_hand}",
            f"map_threshold={map_threshold}",
            f"seed={round_}",
        )
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def _student_overrides(ws: Path, round_: int, model: Path, n_scenes: int) -> list[str]:
    """``config/student.yaml`` on this round's accepted labels, from ``model``'s weights, validated every ~50
    steps (an "epoch" is one pass over the ``n_scenes`` hand + accepted scenes, at most 50 batches of 16)."""
    batches = min(50, -(-n_scenes // 16))
    return [
        f"annotate_dir={ws / f'annotate-{round_}'}",
        f"teacher={model}",
        f"trainer.check_val_every_n_epoch={max(1, round(50 / batches))}",
    ]


def _cached(path: Path, measure: Any) -> dict[str, Any]:
    """A stage's figures, measured once (the model's weights do not change its cost: any run of the same
    architecture gives the same speed; the file says which run was used)."""
    if path.is_file():
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached
    figures: dict[str, Any] = measure()
    path.write_text(json.dumps(figures) + "\n")
    return figures


def _remeasure_speed(ws: Path, speed_frames: int, node_frames: int) -> None:
    """Stages 6 and 7 again with the workspace's main run; only their figures (and the load) change in the JSON."""
    run, test = ws / "main", ws / "data" / "test.h5"
    if not (run / "metric.json").is_file() or not test.is_file():
        print(f"error: no trained main run and test split in {ws}: run the benchmark first", file=sys.stderr)
        raise SystemExit(2)
    figures: dict[str, Any] = json.loads(RESULTS.read_text())
    fresh = {**_speed(run, test, speed_frames), **_node_latency(run, test, node_frames)}
    for path, keys in ((ws / "speed.json", ("fps", "speed")), (ws / "node.json", ("node",))):
        path.write_text(json.dumps({k: v for k, v in fresh.items() if k.startswith(keys)}) + "\n")
    figures.update(fresh)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in fresh.items():
        print(f"{key}  {value:.4g}" if isinstance(value, float) else f"{key}  {value}")
    print(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "avsl-bench")
    parser.add_argument("--main-minutes", type=float, default=2.5)
    parser.add_argument("--small-minutes", type=float, default=4.0)
    parser.add_argument("--student-minutes", type=float, default=None, help="default: --small-minutes")
    parser.add_argument("--full", action="store_true", help="4× the data; 15 CPU minutes for every model")
    parser.add_argument("--rounds", type=int, default=2, help="annotation rounds (each student labels the next)")
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=8000,
        help="scenes of the unlabelled pool (default 8000; a smaller existing pool is grown, not rewritten)",
    )
    parser.add_argument("--node-frames", type=int, default=40)
    parser.add_argument("--speed-frames", type=int, default=100)
    parser.add_argument("--speed-only", action="store_true", help="re-measure speed and node latency only")
    args = parser.parse_args()
    ws: Path = args.workspace
    if args.speed_only:
        _remeasure_speed(ws, args.speed_frames, args.node_frames)
        return
    data_overrides = [f"out_dir={ws / 'data'}", f"splits.unlabelled.n={args.unlabelled}"]
    if args.full:
        data_overrides += ["splits.train.n=8000", "splits.test.n=1000", "splits.hand.n=100"]
        args.main_minutes = args.small_minutes = args.student_minutes = 15.0
    started = time.perf_counter()
    _kakehashi("avsl", "make-data", str(CONFIG / "data.yaml"), *data_overrides)
    hand_meta = json.loads((ws / "data" / "hand.h5.scene.json").read_text())
    n_hand = int(hand_meta["n"]) * int(hand_meta["scene"]["n_frames"])  # hand-labelled video frames
    test = ws / "data" / "test.h5"

    main_run = _train(ws, "main", "train.yaml", args.main_minutes, [])
    at_half = _evaluate(main_run, test, ws / "eval-main.json")["figures"]
    main = _evaluate_tuned(main_run, ws, "main")
    figures: dict[str, Any] = {k: v for k, v in main["figures"].items() if not isinstance(v, dict)}
    figures["val_success_by_threshold"] = json.dumps(main["figures"].get("val_success_by_threshold"))
    figures["ciou_success_at_threshold_0.5"] = at_half["ciou_success"]
    figures["auc_at_threshold_0.5"] = at_half["auc"]
    figures["silent_false_positive_area_at_threshold_0.5"] = at_half["silent_false_positive_area"]
    figures["train_cpu_minutes"] = _budget_spent(main_run)

    teacher = _train(ws, "teacher", "teacher.yaml", args.small_minutes, [])
    hand_only = _evaluate_tuned(teacher, ws, "teacher")
    model, student, with_pseudo, report = teacher, teacher, hand_only, {}
    accepted_frames = 0  # over all rounds: each student starts from the weights of the one whose labels it got
    student_minutes = args.student_minutes if args.student_minutes is not None else args.small_minutes
    for round_ in range(1, args.rounds + 1):  # each round's model labels the unlabelled split for the next
        report = _annotate(ws, round_, model, n_hand, _evaluated_threshold(model, ws))
        extra = _student_overrides(ws, round_, model, n_hand + int(report["n_accepted"]))
        student = _train(ws, f"student-{round_}", "student.yaml", student_minutes, extra)
        with_pseudo = _evaluate_tuned(student, ws, f"student-{round_}")
        for key in ("pseudo_label_precision", "pseudo_label_recall", "label_multiplier", "n_accepted"):
            figures[f"{key}_round{round_}"] = report[key]
        figures[f"ciou_success_student_round{round_}"] = with_pseudo["figures"]["ciou_success"]
        accepted_frames += int(report["n_accepted_frames"])
        figures[f"student_round{round_}_cpu_minutes"] = _budget_spent(student)
        model = student
    for key in (
        "pseudo_label_precision",
        "pseudo_label_recall",
        "label_multiplier",
        "n_accepted",
        "n_accepted_frames",
        "n_hand_frames",
        "n_unlabelled",
        "teacher_label_accuracy",
    ):
        figures[key] = report[key]
    figures["annotation_rounds"] = args.rounds
    figures["label_multiplier_cumulative"] = accepted_frames / n_hand
    figures["annotation_thresholds"] = json.dumps(report["thresholds"])
    figures["n_accepted_by_sources"] = json.dumps(report["n_accepted_by_sources"])
    figures["annotation_map_threshold"] = report["map_threshold"]
    figures["ciou_success_hand_only"] = hand_only["figures"]["ciou_success"]
    figures["ciou_success_hand_plus_pseudo"] = with_pseudo["figures"]["ciou_success"]
    paired = [
        float(a >= 0.5) - float(b >= 0.5)
        for a, b, n in zip(
            with_pseudo["per_scene"]["ciou"],
            hand_only["per_scene"]["ciou"],
            with_pseudo["per_scene"]["n_sounding"],
            strict=True,
        )
        if n > 0
    ]
    from apps.avsl.metrics import bootstrap_interval

    figures["pseudo_gain_ci95_low"], figures["pseudo_gain_ci95_high"] = bootstrap_interval(paired)
    figures["teacher_cpu_minutes"] = _budget_spent(teacher)
    figures["student_cpu_minutes"] = _budget_spent(student)
    for name, run in (("main", main_run), ("teacher", teacher), ("student", student)):
        figures[f"{name}_trained_at"] = _trained_at(run)

    figures.update(_cached(ws / "speed.json", lambda: _speed(main_run, test, args.speed_frames)))
    figures.update(_cached(ws / "node.json", lambda: _node_latency(main_run, test, args.node_frames)))
    figures["bench_wall_minutes_this_invocation"] = (time.perf_counter() - started) / 60.0
    figures["load_average_1min_at_end"] = os.getloadavg()[0]
    figures["cpu_count"] = os.cpu_count()
    for package in ("torch", "lightning", "pyroomacoustics", "py360convert", "av", "h5py", "rclpy"):
        try:
            figures[f"version_{package}"] = version(package if package != "rclpy" else "ros-rclpy")
        except Exception:
            figures[f"version_{package}"] = None
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
