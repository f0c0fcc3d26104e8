"""Benchmark of the robots speech front-end: DOA, separation against pyroomacoustics' BSS, command accuracy,
real-time factor and the ROS 2 node's latency on loopback.

Needs the simulated splits (``kakehashi robots make-frontend-data apps/robots/frontend/config/data.yaml``) and a
trained run (``kakehashi robots train-frontend apps/robots/frontend/config/train.yaml --run-dir
runs/robots/frontend/train``). Writes ``tools/bench/results/frontend.json``:

- ``doa_mae_deg_srp``, ``doa_mae_deg_music``: mean absolute azimuth error of our SRP-PHAT and MUSIC on the
  mixture's covariance, one source, RT60 0.3 s (the ``doa`` split); ``*_pra``: pyroomacoustics' SRP and MUSIC on
  the same STFTs; ``doa_mae_deg_srp_masked``: SRP-PHAT on the network's speech covariance.
- ``sisdri_ours`` (mask MVDR with the masks of offline cACGMM EM started at the azimuths the trained network's
  masks point to, as :class:`~apps.robots.frontend.enhance.Frontend` does by default, utterance-level),
  ``sisdri_ours_network_only`` (the same with the network's masks as they are, no EM), ``sisdri_ours_streaming`` (the
  node's block-online path: the network's masks alone), ``sisdri_cacgmm_teacher`` (the network's training teacher
  on its own), ``sisdri_fastmnmf2``, ``sisdri_auxiva``, ``sisdri_oracle_mvdr``: mean SI-SDR improvement (dB)
  over the ``test`` split (two speakers + diffuse noise, held-out voices), the same oracle speaker assignment for
  all; ``*_ci95_*``: paired 95 % intervals of ours minus each peer.
- ``command_acc_clean`` (each utterance's reverberant image at mic 0), ``command_acc_mixture`` (mic 0),
  ``command_acc_enhanced`` (ours, offline), ``command_acc_enhanced_streaming``, ``command_acc_oracle_mvdr``:
  pocketsphinx with the command grammar on the ``commands`` split (one speaker, held-out voices).
- ``rtf_one_core``: CPU seconds of the block-online front-end per second of 4-channel 16 kHz audio, one torch
  thread; ``rtf_wall`` the same in wall time (the machine is shared, so this one is noisy).
- ``node_latency_ms_p50``, ``_p95``: from publishing a 32 ms block to receiving its enhanced block, node on
  loopback, real-time pacing (a node slower than real time on a busy machine builds a queue, and this shows it);
  ``*_isolated``: one block every 250 ms (no queue: the per-block cost plus transport); ``algorithmic_delay_ms``:
  the block plus ``n_fft - hop``.

Run: ``python tools/bench/frontend.py [--run runs/robots/frontend/train] [--data runs/robots/frontend/data]
[--n-test 100] [--n-commands 100]``; ``--quick`` for a smoke run (5 mixtures each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).with_name("results") / "frontend.json"


def _doa(data: Path, frontend: Any, limit: int) -> dict[str, float]:
    import pyroomacoustics as pra

    from apps.robots.frontend import functional as F
    from apps.robots.frontend.enhance import AZIMUTHS, doa_from_scm
    from apps.robots.frontend.evaluate import samples

    errors: dict[str, list[float]] = {"srp": [], "music": [], "srp_pra": [], "music_pra": [], "srp_masked": []}
    mics = frontend.mics
    for sample in samples(str(data / "doa.h5"), limit):
        truth = sample["doa"][:1]
        X = F.stft(sample["mixture"].astype(np.float64), frontend.n_fft, frontend.hop)
        scm = F.spatial_covariance(X)
        found = {m: doa_from_scm(scm, mics, frontend.fs, frontend.n_fft, m) for m in ("srp", "music")}
        for name in ("SRP", "MUSIC"):
            peer = pra.doa.algorithms[name](
                mics[:2], frontend.fs, frontend.n_fft, c=F.SPEED_OF_SOUND, num_src=1, azimuth=np.deg2rad(AZIMUTHS)
            )
            peer.locate_sources(X, freq_range=[300.0, 3500.0])
            found[f"{name.lower()}_pra"] = float(np.rad2deg(peer.azimuth_recon[0]))
        found["srp_masked"] = frontend.doa(sample["mixture"].astype(np.float64), "srp")
        for key, value in found.items():
            errors[key].append(float(F.angular_error_deg(np.array([value]), truth)[0]))
    return {f"doa_mae_deg_{k}": float(np.mean(v)) for k, v in errors.items()} | {"doa_n": len(errors["srp"])}


def _separation(data: Path, frontend: Any, limit: int) -> dict[str, float]:
    from apps.robots.frontend.enhance import Frontend, StreamingFrontend
    from apps.robots.frontend.evaluate import (
        oracle_mvdr,
        paired_interval,
        samples,
        separate_auxiva,
        separate_cacgmm,
        separate_fastmnmf2,
        sisdr_improvement,
    )

    stream = StreamingFrontend(frontend)
    network_only = Frontend(frontend.task, refine_iterations=0)
    methods = {
        "ours": lambda m, s: frontend.separate(m),
        "ours_network_only": lambda m, s: network_only.separate(m),
        "ours_streaming": lambda m, s: stream.run(m)[None],
        "auxiva": lambda m, s: separate_auxiva(m),
        "fastmnmf2": lambda m, s: separate_fastmnmf2(m, n_src=3),
        "cacgmm_teacher": lambda m, s: separate_cacgmm(m, frontend.mics),
        "oracle_mvdr": lambda m, s: oracle_mvdr(m, s["clean"], s["noise"]),
    }
    scores: dict[str, list[float]] = {k: [] for k in methods}
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    for i, sample in enumerate(samples(str(data / "test.h5"), limit)):
        mixture = sample["mixture"].astype(np.float64)
        for name, method in methods.items():
            start = time.process_time()
            estimates = method(mixture, sample)
            seconds[name] += time.process_time() - start
            clean = sample["clean"]
            if estimates.shape[0] < clean.shape[0]:  # one output (streaming): scored against its best speaker
                best = max(
                    range(clean.shape[0]), key=lambda k: sisdr_improvement(estimates, clean[k : k + 1], mixture[0])
                )
                clean = clean[best : best + 1]
            scores[name].append(sisdr_improvement(estimates, clean, mixture[0]))
        print(f"  test mixture {i}: " + ", ".join(f"{k} {v[-1]:+.2f}" for k, v in scores.items()), flush=True)
    out: dict[str, float] = {f"sisdri_{k}": float(np.mean(v)) for k, v in scores.items()}
    out["sisdri_n"] = len(scores["ours"])
    out |= {f"cpu_s_per_mixture_{k}": v / max(len(scores["ours"]), 1) for k, v in seconds.items()}
    for peer in ("fastmnmf2", "auxiva", "cacgmm_teacher", "oracle_mvdr", "ours_network_only"):
        mean, low, high = paired_interval(np.array(scores["ours"]), np.array(scores[peer]))
        out[f"sisdri_ours_minus_{peer}"] = mean
        out[f"sisdri_ours_minus_{peer}_ci95_low"] = low
        out[f"sisdri_ours_minus_{peer}_ci95_high"] = high
    return out


def _commands(data: Path, frontend: Any, limit: int) -> dict[str, float]:
    from apps.robots.frontend.asr import CommandRecognizer
    from apps.robots.frontend.enhance import StreamingFrontend
    from apps.robots.frontend.evaluate import oracle_mvdr, samples
    from apps.robots.frontend.speech import COMMANDS

    recognizer = CommandRecognizer()
    stream = StreamingFrontend(frontend)
    hits: dict[str, list[bool]] = {k: [] for k in ("clean", "mixture", "enhanced", "enhanced_streaming", "oracle_mvdr")}
    for sample in samples(str(data / "commands.h5"), limit):
        mixture = sample["mixture"].astype(np.float64)
        truth = COMMANDS[int(sample["command"][0])]
        inputs = {
            "clean": sample["clean"][0],
            "mixture": mixture[0],
            "enhanced": frontend.enhance(mixture),
            "enhanced_streaming": stream.run(mixture),
            "oracle_mvdr": oracle_mvdr(mixture, sample["clean"], sample["noise"])[0],
        }
        for name, audio in inputs.items():
            hits[name].append(recognizer.decode(audio) == truth)
    out = {f"command_acc_{k}": float(np.mean(v)) for k, v in hits.items()}
    out["command_n"] = len(hits["clean"])
    enhanced, raw = np.array(hits["enhanced"], float), np.array(hits["mixture"], float)
    from apps.robots.frontend.evaluate import paired_interval

    _, low, high = paired_interval(enhanced, raw)
    out["command_acc_enhanced_minus_mixture_ci95_low"] = low
    out["command_acc_enhanced_minus_mixture_ci95_high"] = high
    return out


def _rtf(data: Path, frontend: Any, seconds: float) -> dict[str, float]:
    from apps.robots.frontend.enhance import StreamingFrontend
    from apps.robots.frontend.evaluate import samples

    pieces = []
    for sample in samples(str(data / "commands.h5"), int(np.ceil(seconds / 3.0))):
        pieces.append(sample["mixture"].astype(np.float64))
    audio = np.concatenate(pieces, axis=1)
    stream = StreamingFrontend(frontend)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, audio.shape[1] - 511, 512):
        stream.process(audio[:, i : i + 512])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    duration = audio.shape[1] / frontend.fs
    return {"rtf_one_core": cpu / duration, "rtf_wall": wall / duration, "rtf_audio_s": duration}


def _latency(
    data: Path, run: Path, frontend: Any, blocks: int, interval: float = 0.032, key: str = ""
) -> dict[str, float]:
    from std_msgs.msg import Float32MultiArray

    from apps.robots.frontend.evaluate import samples
    from core.ros.harness import Loopback, start_node, stop_node
    from core.ros.messages import audio_to_message

    pieces = [s["mixture"] for s in samples(str(data / "commands.h5"), int(np.ceil(blocks * 512 / 48000)) + 1)]
    audio = np.concatenate(pieces, axis=1).astype(np.float32)
    kakehashi = str(Path(sys.executable).with_name("kakehashi"))
    sent: list[float] = []
    with Loopback() as ros:
        node = start_node([kakehashi, "robots", "frontend-node", "--model", str(run)], ros.env)
        try:
            replies = ros.collect_timed("/audio/enhanced", Float32MultiArray, depth=1000)
            publisher = ros.publisher("/audio", Float32MultiArray, depth=1000)
            if not ros.wait_for_subscribers(publisher, timeout=120):
                raise RuntimeError("the node never subscribed")
            start = time.perf_counter()
            for b in range(blocks):
                target = start + b * interval  # 0.032: real time, one 32 ms block every 32 ms
                time.sleep(max(0.0, target - time.perf_counter()))
                message = audio_to_message(audio[:, b * 512 : (b + 1) * 512], 16000)
                sent.append(time.perf_counter())
                publisher.publish(message)
            ros.wait_for(lambda: len(replies) >= blocks, timeout=60)
        finally:
            code, output = stop_node(node)
    if len(replies) < blocks:
        raise RuntimeError(f"{len(replies)} of {blocks} replies; node output:\n{output[-2000:]}")
    latency = np.array([arrived - sent[i] for i, (arrived, _) in enumerate(replies[:blocks])]) * 1000.0
    delay = 1000.0 * (512 + frontend.n_fft - frontend.hop) / frontend.fs
    return {
        f"node_latency_ms_p50{key}": float(np.percentile(latency, 50)),
        f"node_latency_ms_p95{key}": float(np.percentile(latency, 95)),
        f"node_latency_blocks{key}": blocks,
        "algorithmic_delay_ms": delay,
        f"node_exit_code{key}": code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/robots/frontend/train")
    parser.add_argument("--data", default="runs/robots/frontend/data")
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-commands", type=int, default=100)
    parser.add_argument("--n-doa", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 mixtures per part (a smoke run)")
    parser.add_argument("--only", nargs="+", default=None, help="doa commands rtf latency separation")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from apps.robots.frontend.enhance import Frontend

    if args.quick:
        args.n_test = args.n_commands = args.n_doa = 5
    data, run = Path(args.data), Path(args.run)
    frontend = Frontend.from_run(run)
    parts = args.only or ["doa", "commands", "rtf", "latency", "separation"]
    output = Path(args.output)
    figures: dict[str, Any] = json.loads(output.read_text()) if args.only and output.is_file() else {}
    for part in parts:
        start = time.perf_counter()
        print(f"{part} ...", flush=True)
        if part == "doa":
            figures |= _doa(data, frontend, args.n_doa)
        elif part == "commands":
            figures |= _commands(data, frontend, args.n_commands)
        elif part == "rtf":
            figures |= _rtf(data, frontend, 12.0)
        elif part == "latency":
            figures |= _latency(data, run, frontend, 150)
            figures |= _latency(data, run, frontend, 40, interval=0.25, key="_isolated")
        elif part == "separation":
            figures |= _separation(data, frontend, args.n_test)
        figures[f"bench_wall_s_{part}"] = time.perf_counter() - start
        output.parent.mkdir(parents=True, exist_ok=True)
        figures |= {
            "pyroomacoustics": version("pyroomacoustics"),
            "pocketsphinx": version("pocketsphinx"),
            "torch": version("torch"),
            "rclpy": version("ros-rclpy"),
            "cores": os.cpu_count(),
            "quick": bool(args.quick),
        }
        from core.files import write_atomic

        write_atomic(output, json.dumps(figures, indent=1, sort_keys=True) + "\n")
    width = max(len(k) for k in figures)
    for key in sorted(figures):
        value = figures[key]
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
