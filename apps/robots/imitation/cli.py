"""``kakehashi robots record | train-imitation | evaluate``: the imitation part of the robots area.

:func:`add_verbs` is called by ``apps/robots/cli.py``; each verb is a thin wrapper over
:mod:`apps.robots.imitation.pipeline`.
"""

from __future__ import annotations

import argparse
import logging

from core.cli import SubParsers, add_config_arguments

_CFG = "apps/robots/imitation/config/imitation.yaml"

log = logging.getLogger(__name__)


def add_verbs(verbs: SubParsers) -> None:
    record = verbs.add_parser(
        "record",
        help="record demonstrations of one operated robot (scripted operator or keyboard)",
        description="Record one round of demonstrations: the operator (scripted, or you at the keyboard) drives one\n"
        "robot; in round 0 the others stand still, in round r they run the previous round's policy (record.policy)\n"
        "after working alone for record.warmup_steps. Writes record.out (HDF5, one group per episode).\n"
        f"At the keyboard (needs a display): kakehashi robots record {_CFG} record.operator=keyboard",
        epilog=f"example:\n  kakehashi robots record {_CFG} record.episodes=2 record.out=runs/robots/demo-try.h5",
    )
    add_config_arguments(record)
    record.set_defaults(handler=_record)

    train = verbs.add_parser(
        "train-imitation",
        help="behaviour cloning of the LSTM mixture of experts (a core.train run)",
        description="Train the config's policy on its demonstration files (datamodule.paths) with core.train: the\n"
        "run directory holds merged_config.yaml, provenance.json, checkpoints and logs; `kakehashi train` verbs\n"
        "work on it. task.model._target_=apps.robots.imitation.policy.single_lstm_like trains the baseline.",
        epilog=f"example:\n  kakehashi robots record {_CFG} record.episodes=2 record.out=runs/robots/demo-try.h5\n"
        f"  kakehashi robots train-imitation {_CFG} 'datamodule.paths=[runs/robots/demo-try.h5]' "
        "trainer.max_epochs=5 --run-dir runs/robots/try",
    )
    add_config_arguments(train)
    train.add_argument("--run-dir", help="the run directory (default: the config's run_dir, else runs/<config>/<time>)")
    train.set_defaults(handler=_train)

    evaluate = verbs.add_parser(
        "evaluate",
        help="evaluation episodes: boxes stored per episode and success rate",
        description="Run evaluate.episodes seeded episodes with evaluate.policy on every robot (expert, random, or a\n"
        "trained run directory), here or as an array of jobs (evaluate.backend=local|slurm|sge|pbs). Writes a JSON\n"
        "summary; evaluate.gif=FILE also writes an animated GIF of the first episode.",
        epilog=f"example:\n  kakehashi robots evaluate {_CFG} evaluate.policy=expert evaluate.episodes=5\n"
        f"  kakehashi robots evaluate {_CFG} evaluate.policy=random evaluate.episodes=4 evaluate.backend=local "
        "evaluate.episodes_per_task=2 evaluate.gif=runs/robots/random.gif",
    )
    add_config_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)


def _quiet_threads() -> None:
    import torch

    torch.set_num_threads(1)  # tiny LSTMs: threads cost more than they give


def _record(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from apps.robots.imitation.operators import BEHAVIOURS
    from apps.robots.imitation.pipeline import record
    from core.config import load_config

    _quiet_threads()
    cfg = load_config(args.config, args.overrides)
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("recording", total=int(cfg.record.episodes))
        path, demos = record(cfg, on_episode=lambda _: progress.advance(task))
    steps = sum(len(d.obs) for d in demos)
    labels = [int((d.label == k).sum()) for d in demos for k in range(len(BEHAVIOURS))]
    shares = ", ".join(
        f"{name} {100 * sum(labels[k :: len(BEHAVIOURS)]) / max(steps, 1):.0f}%" for k, name in enumerate(BEHAVIOURS)
    )
    console.print(
        f"{len(demos)} demonstrations of robot {demos[0].robot} (round {demos[0].round}), {steps} steps, "
        f"{sum(d.boxes_stored for d in demos)} boxes stored by the team; labels: {shares}"
    )
    console.print(f"wrote {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from apps.robots.imitation.pipeline import train

    _quiet_threads()
    result = train(args.config, args.overrides, run_dir=args.run_dir)
    score = result.metrics.get("val/bc")
    shown = "n/a" if score is None else f"{score:.4f}"
    Console().print(f"val/bc {shown} after the last epoch (the weights evaluate loads); run directory {result.run_dir}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from apps.robots.imitation.pipeline import evaluate
    from core.config import load_config

    _quiet_threads()
    cfg = load_config(args.config, args.overrides)
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("episodes", total=int(cfg.evaluate.episodes))
        report = evaluate(cfg, on_episode=lambda _: progress.advance(task))
    table = Table(title=f"policy {report['policy']}", show_header=False)
    table.add_row("episodes", str(report["episodes"]))
    table.add_row("boxes stored per episode", f"{report['boxes_mean']:.2f} ± {report['boxes_sem']:.2f} (s.e.)")
    table.add_row("success rate (every box stored)", f"{100 * report['success_rate']:.0f}%")
    table.add_row("mean episode length (steps)", f"{report['steps_mean']:.0f}")
    console.print(table)
    console.print(f"wrote {report['out']}")
    return 0
