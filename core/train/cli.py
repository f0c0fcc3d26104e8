"""``kakehashi train fit | validate | test | predict | merge | infer``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli import SubParsers, add_area, add_config_arguments, add_override_arguments

_EXAMPLE = "core/train/config/digits.yaml"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "train",
        help="config-driven Lightning training",
        description="Train, evaluate, average and apply Lightning models described by a YAML config\n"
        "(trainer, task, datamodule and callbacks as _target_ nodes).",
    )

    fit = verbs.add_parser(
        "fit",
        help="train the config's task on its datamodule",
        description="Seed, write merged_config.yaml and provenance.json into the run directory, and train.\n"
        "Checkpoints go to <run dir>/checkpoints, CSV logs to <run dir>/logs.",
        epilog=f"example:\n  kakehashi train fit {_EXAMPLE} task.optimizer.lr=1e-3 --run-dir runs/digits\n"
        f"  kakehashi train fit {_EXAMPLE} --resume runs/digits          # continue from last.ckpt",
    )
    add_config_arguments(fit)
    fit.add_argument(
        "--run-dir", type=Path, help="run directory (default: run_dir of the config, else runs/<name>/<time>)"
    )
    fit.add_argument(
        "--resume",
        nargs="?",
        const="last",
        metavar="CKPT|RUN_DIR",
        help="resume: alone, the run directory's last.ckpt; or a checkpoint file; or a run directory",
    )
    fit.set_defaults(handler=_fit)

    for stage, text in (
        ("validate", "run the validation loop of a trained run"),
        ("test", "run the test loop of a trained run"),
        ("predict", "predict with a trained run (outputs saved with torch.save)"),
    ):
        parser = verbs.add_parser(
            stage,
            help=text,
            description=f"{text[0].upper()}{text[1:]}; results go to <run dir>/results.",
            epilog=f"example:\n  kakehashi train {stage} runs/digits --ckpt best trainer.devices=1",
        )
        parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory of `train fit`")
        add_override_arguments(parser, help="overrides of the run's config")
        parser.add_argument("--ckpt", default="best", help="best (default), last, or a checkpoint file")
        parser.set_defaults(handler=_evaluate, stage=stage)

    merge = verbs.add_parser(
        "merge",
        help="average the N best checkpoints recorded by ModelCheckpoint",
        description="Average the weights of the N best checkpoints of a run, as ModelCheckpoint recorded\n"
        "them (best_k_models); it is an error if fewer were kept. Writes checkpoints/merged-topN.ckpt.",
        epilog="example:\n  kakehashi train merge runs/digits --top-k 3 && "
        "kakehashi train test runs/digits --ckpt merged-top3.ckpt",
    )
    merge.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    merge.add_argument("--top-k", type=int, required=True, help="how many of the best checkpoints to average")
    merge.add_argument("--monitor", help="the metric, when several ModelCheckpoints monitor one")
    merge.add_argument("--output", type=Path, help="output file (default: checkpoints/merged-topN.ckpt)")
    merge.set_defaults(handler=_merge)

    infer = verbs.add_parser(
        "infer",
        help="apply a trained run's task to .npy/.pt files (one, or a list sharded by array task)",
        epilog="example:\n"
        "  python -c \"import numpy as np; np.save('sample.npy', np.zeros((1, 64), np.float32))\"\n"
        "  kakehashi train infer runs/digits one sample.npy prediction.npy\n"
        "  echo sample.npy > inputs.txt\n"
        "  kakehashi train infer runs/digits batch inputs.txt outputs/",
    )
    infer.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    infer.add_argument("--ckpt", default="best", help="best (default), last, or a checkpoint file")
    infer.add_argument("--suffix", default=".npy", choices=[".npy", ".pt"], help="output type in batch mode")
    from core.train.inference import add_inference_arguments

    add_inference_arguments(infer)
    infer.set_defaults(handler=_infer)


def _fit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.config import load_config
    from core.train.config.schema import TrainConfig

    cfg = load_config(args.config, args.overrides, schema=TrainConfig)  # a mistake fails before torch loads
    _precheck_fit(cfg, args)

    from core.train.run import fit, is_rank_zero

    result = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume)
    if is_rank_zero():
        console = Console(stderr=True)
        console.print(f"run directory: {result.run_dir}")
        if result.best_checkpoint is not None:
            score = f" (score {result.best_score:.6g})" if result.best_score is not None else ""
            console.print(f"best checkpoint: {result.best_checkpoint}{score}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    _require_run_dir(args.run_dir)

    from core.train.run import evaluate

    results, path = evaluate(args.run_dir, args.stage, args.ckpt, args.overrides)
    console = Console()
    if args.stage == "predict":
        console.print(f"{len(results)} batch(es) of predictions written to {path}")
        return 0
    table = Table("metric", "value", title=f"{args.stage} ({args.ckpt})")
    for name, value in sorted(results.items()):
        table.add_row(name, f"{value:.6g}")
    console.print(table)
    Console(stderr=True).print(f"wrote {path}")
    return 0


def _precheck_fit(cfg: Any, args: argparse.Namespace) -> None:
    """What can be refused without importing torch (seconds on a busy machine): a run directory that is a
    file, a checkpoint to resume from that does not exist, a _target_ whose package does not exist."""
    import importlib.util

    from core.config import iter_targets
    from core.errors import ConfigError, UserError

    if args.run_dir is not None and args.run_dir.exists() and not args.run_dir.is_dir():
        raise UserError("the run directory is a file", where=str(args.run_dir), hint="give a folder")
    resume = args.resume
    if resume is not None and resume != "last" and not Path(resume).exists():
        raise UserError("checkpoint to resume from not found", where=str(resume), hint="give a .ckpt or a run dir")
    for key_path, target in iter_targets(cfg):
        package = target.split(".")[0]
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"_target_ {target!r} does not import: no module named {package!r}",
                where=f"{args.config}: {key_path}._target_",
                hint="check the dotted path and that its package is installed",
            )


def _require_run_dir(run_dir: Path) -> None:
    """Refuse a path that is not a run directory before torch loads (seconds on a busy machine)."""
    from core.errors import UserError

    if not (run_dir / "merged_config.yaml").is_file():
        raise UserError(
            "not a run directory: no merged_config.yaml", where=str(run_dir), hint="give the --run-dir of a fit"
        )


def _merge(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.train.checkpoints import merge_top_k, monitored_record

    record = monitored_record(args.run_dir, args.monitor)
    path = merge_top_k(args.run_dir, args.top_k, args.monitor, args.output)
    console = Console()
    for checkpoint, score in record.best[: args.top_k]:
        console.print(f"  {record.monitor}={score:.6g}  {checkpoint.name}")
    console.print(f"averaged {args.top_k} checkpoint(s) into {path}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    from core.train.inference import RunPipeline, run_inference

    return run_inference(RunPipeline(args.run_dir, args.ckpt, args.suffix), args)


__all__ = ["register"]
