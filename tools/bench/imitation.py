"""Benchmark: few-shot multi-robot imitation (apps/robots/imitation) against the scripted expert, a single-LSTM
behaviour-cloning baseline of the same parameter count, and a random policy.

For each training seed: the rounds protocol with the mixture of experts (round 0: 5 demonstrations of robot 0
among idle robots; round 1: 5 demonstrations of robot 1 among copies of the round-0 policy, after 100 steps of that
team alone), 10 demonstrations in all; the single LSTM is trained on exactly the same 10 demonstrations. Every
policy runs on all robots for the same evaluation episodes (seeds 0..49; demonstrations use 1000+, the gate's
labelled episodes 3000+). ``gate_nmi``: normalized mutual information between the gate's argmax and the scripted
operator's behaviour labels on 10 held-out episodes of the scripted team (every robot's steps).

    python tools/bench/imitation.py [--seeds 3] [--episodes 50] [--work-dir DIR]
    python tools/bench/imitation.py --quick            # 1 seed, 10 episodes, 20 epochs: a smoke run
    python tools/bench/imitation.py --first-seed 500 --episodes 100 --output val.json   # validation seeds

Design choices (the policy's form, the losses, which checkpoint is evaluated) are made on the validation seeds
500..599, never on the evaluation seeds 0..49 that the results JSON reports.

Writes tools/bench/results/imitation.json. Figures: ``moe_over_expert_boxes``, ``single_lstm_over_expert_boxes``,
``random_over_expert_boxes`` (boxes stored per episode over the expert's, mean over training seeds; ``_std``: the
spread over training seeds, ``_min``/``_max``), the boxes per episode and success rates themselves,
``moe_round0_over_expert_boxes`` (the round-0 policy, 5 demonstrations), ``moe_minus_single_boxes`` with a 95%
interval over evaluation episodes (paired: per episode, the mean over training seeds), ``gate_nmi`` (mean and
spread over seeds), ``gate_least_used_expert_share`` (the share of those steps on which the least chosen expert is
the gate's argmax: near 0 means the gate collapsed onto fewer experts), parameter counts, versions, core count and
wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).with_name("results") / "imitation.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="first evaluation seed (500: the validation seeds, for choices)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--work-dir", default=None, help="where demonstrations and runs go (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 episodes, 20 epochs")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.episodes, args.epochs = 1, 10, 20
    if args.first_seed < 0 or args.first_seed + args.episodes > 1000:
        parser.error("evaluation seeds must lie in 0..999 (demonstrations use 1000+)")

    import torch

    torch.set_num_threads(1)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from scipy import stats

    from apps.robots.imitation.evaluation import (
        evaluate_policy,
        expert_episodes,
        gate_choices,
        gate_nmi,
        load_policy,
    )
    from apps.robots.imitation.pipeline import CONFIG, env_config, run_rounds, train
    from apps.robots.imitation.policy import count_parameters
    from core.config import load_config

    started = time.perf_counter()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="imitation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = ["trainer.enable_progress_bar=false"] + ([f"trainer.max_epochs={args.epochs}"] if args.epochs else [])
    env = env_config(load_config(CONFIG, base))
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    rounds = (5, 5)

    def boxes(policy: str) -> np.ndarray:
        t = time.perf_counter()
        result = np.array([r.boxes_stored for r in evaluate_policy(policy, env, seeds)], float)
        print(
            f"  evaluated {policy if len(policy) < 40 else '...' + policy[-37:]}: {result.mean():.2f} boxes/episode "
            f"({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
        return result

    def success(policy_boxes: np.ndarray) -> float:
        return float((policy_boxes == env.n_boxes).mean())

    expert = boxes("expert")
    random_boxes = boxes("random")
    gate_obs, gate_labels = expert_episodes(env, range(3000, 3010))

    moe, moe0, single, nmi, usage = [], [], [], [], []
    counts: dict[str, int] = {}
    for seed in range(args.seeds):
        t = time.perf_counter()
        folder = work / f"seed{seed}"
        runs = run_rounds(CONFIG, [*base, f"seed={seed}"], folder, rounds)
        files = ",".join(f"'{folder / f'demos-round{r}.h5'}'" for r in range(len(rounds)))
        train(
            CONFIG,
            [
                *base,
                f"seed={seed}",
                "task.model._target_=apps.robots.imitation.policy.single_lstm_like",
                f"datamodule.paths=[{files}]",
            ],
            run_dir=folder / "single",
        )
        print(f"seed {seed}: trained in {time.perf_counter() - t:.0f} s", flush=True)
        moe.append(boxes(str(runs[-1])))
        moe0.append(boxes(str(runs[0])))
        single.append(boxes(str(folder / "single")))
        model = load_policy(runs[-1], env.n_robots)
        nmi.append(gate_nmi(model, gate_obs, gate_labels))
        chosen = np.concatenate(gate_choices(model, gate_obs))
        usage.append(float(np.bincount(chosen, minlength=model.n_experts).min() / len(chosen)))
        counts["moe_parameters"] = count_parameters(model)
        counts["single_lstm_parameters"] = count_parameters(load_policy(folder / "single", env.n_robots))
        print(f"  gate NMI {nmi[-1]:.3f}, least used expert {usage[-1]:.3f} of the steps", flush=True)

    expert_mean = float(expert.mean())

    def ratio_figures(name: str, runs: list[np.ndarray]) -> dict[str, float]:
        ratios = [float(r.mean()) / expert_mean for r in runs]
        return {
            f"{name}_over_expert_boxes": statistics.fmean(ratios),
            f"{name}_over_expert_boxes_std": statistics.stdev(ratios) if len(ratios) > 1 else 0.0,
            f"{name}_over_expert_boxes_min": min(ratios),
            f"{name}_over_expert_boxes_max": max(ratios),
            f"{name}_boxes_per_episode": statistics.fmean(float(r.mean()) for r in runs),
            f"{name}_success_rate": statistics.fmean(success(r) for r in runs),
        }

    difference = np.mean(moe, axis=0) - np.mean(single, axis=0)  # per evaluation episode
    sem = float(stats.sem(difference)) if len(difference) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(difference) - 1) * sem) if len(difference) > 1 else 0.0
    figures: dict[str, object] = {
        **ratio_figures("moe", moe),
        **ratio_figures("single_lstm", single),
        **ratio_figures("moe_round0", moe0),
        "random_over_expert_boxes": float(random_boxes.mean()) / expert_mean,
        "random_boxes_per_episode": float(random_boxes.mean()),
        "random_success_rate": success(random_boxes),
        "expert_boxes_per_episode": expert_mean,
        "expert_success_rate": success(expert),
        "moe_minus_single_boxes": float(difference.mean()),
        "moe_minus_single_boxes_ci95_low": float(difference.mean()) - half,
        "moe_minus_single_boxes_ci95_high": float(difference.mean()) + half,
        "gate_nmi": statistics.fmean(nmi),
        "gate_nmi_std": statistics.stdev(nmi) if len(nmi) > 1 else 0.0,
        "gate_least_used_expert_share": statistics.fmean(usage),
        **counts,
        "n_demonstrations": sum(rounds),
        "n_training_seeds": args.seeds,
        "n_eval_episodes": args.episodes,
        "eval_first_seed": args.first_seed,
        "n_robots": env.n_robots,
        "n_boxes": env.n_boxes,
        "wall_s": round(time.perf_counter() - started, 1),
        "torch_version": version("torch"),
        "lightning_version": version("lightning"),
        "pymunk_version": version("pymunk"),
        "cpu_count": os.cpu_count(),
    }
    print()
    print(f"{'figure':<40} {'value':>12}")
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<40} {shown:>12}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    from core.files import write_atomic

    write_atomic(out, json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
