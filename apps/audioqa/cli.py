"""``kakehashi audioqa make-data | train-sed | train-qa | eval | ask``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.cli import SubParsers, add_area, add_config_arguments

_CONFIG = "apps/audioqa/config"
_DATA = f"{_CONFIG}/data.yaml"
_SED = f"{_CONFIG}/sed.yaml"
_QA = f"{_CONFIG}/qa.yaml"
# Each example runs as written, in seconds: a tiny data set and tiny models (the full size is the configs' default).
_TINY = "splits.train.n_clips=24 splits.val.n_clips=6 splits.test.n_clips=6 examples=1 overwrite=true"
_MAKE_TINY = f"kakehashi audioqa make-data {_DATA} out_dir=runs/audioqa/tiny {_TINY}"
_SED_TINY = (
    f"kakehashi audioqa train-sed {_SED} data_dir=runs/audioqa/tiny trainer.max_epochs=1 task.model.d_model=32 "
    "trainer.enable_progress_bar=false --run-dir runs/audioqa/tiny-sed"
)
_QA_TINY = (
    f"kakehashi audioqa train-qa {_QA} data_dir=runs/audioqa/tiny sed_run=runs/audioqa/tiny-sed trainer.max_epochs=1 "
    "task.d_model=32 trainer.enable_progress_bar=false --run-dir runs/audioqa/tiny-qa"
)


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "audioqa",
        help="audio question answering from sound-event features",
        description="Generate soundscapes with balanced questions, train a SED transformer with event queries,\n"
        "train a small audio-language model on its frame- or event-level features, score them, ask questions.",
    )
    make_data = verbs.add_parser(
        "make-data",
        help="write the soundscape splits (HDF5) with their questions",
        description="Write <out_dir>/{train,val,test}.h5 (log-mel, events and balanced questions per clip),\n"
        "summary.json (questions per type and answer) and a few test clips as wav files in <out_dir>/examples.",
        epilog=f"example:\n  {_MAKE_TINY}\n  kakehashi audioqa make-data {_DATA} out_dir=runs/audioqa/tiny {_TINY}",
    )
    add_config_arguments(make_data)
    make_data.set_defaults(handler=_make_data)

    for verb, text, example in (
        ("train-sed", "train the SED transformer (core.train run directory)",
         f"{_MAKE_TINY}\n  {_SED_TINY}\n  {_SED_TINY.replace('max_epochs=1', 'max_epochs=2')} --resume"),
        ("train-qa", "train the audio-language model on a frozen SED run's features",
         f"{_MAKE_TINY}\n  {_SED_TINY}\n  {_QA_TINY}\n  {_QA_TINY.replace('tiny-qa', 'tiny-qa-frame')} features=frame"),
    ):  # fmt: skip
        parser = verbs.add_parser(
            verb,
            help=text,
            description=f"{text[0].upper()}{text[1:]}: `kakehashi train fit` of the config, with the run\n"
            "directory, resume and load_run of core.train. The full-size configs take minutes to hours on a CPU.",
            epilog=f"example (slow):\n  {example}",
        )
        add_config_arguments(parser)
        parser.add_argument("--run-dir", type=Path, help="run directory (default: runs/<name>/<time>)")
        parser.add_argument(
            "--resume",
            nargs="?",
            const="last",
            metavar="CKPT|RUN_DIR",
            help="alone: the run's last.ckpt; or a checkpoint file; or a run directory",
        )
        parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
        parser.set_defaults(handler=_train)

    evaluate = verbs.add_parser(
        "eval",
        help="score a SED run (event F1) or a QA run (exact match per question type)",
        description="Score the best checkpoint of a train-sed run (event-based F1 by sed_eval: onsets within 200 ms,\n"
        "offsets within max(200 ms, 20% of the length); the decoder is chosen on the val split once, kept in the\n"
        "run's decoder.json) or\n"
        "of a train-qa run (exact match per question type, with the majority-answer baseline) on a split.\n"
        "Writes <run dir>/results/eval-<split>.json.",
        epilog=f"example (slow):\n  {_MAKE_TINY}\n  {_SED_TINY}\n  {_QA_TINY}\n"
        "  kakehashi audioqa eval runs/audioqa/tiny-sed\n  kakehashi audioqa eval runs/audioqa/tiny-qa --split val",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a train-sed or train-qa run directory")
    evaluate.add_argument("--split", default="test", help="test (default), val or train")
    evaluate.add_argument("--data-dir", type=Path, help="the make-data folder (default: the run's data_dir)")
    evaluate.set_defaults(handler=_eval)

    ask = verbs.add_parser(
        "ask",
        help="answer a question about a wav file (16 kHz mono) and show the detected events",
        description="Run the QA run's frozen SED on the clip, then generate the answer. Prints the answer and the\n"
        "events (class, onset, offset, confidence, level) the SED detected.",
        epilog=f"example (slow):\n  {_MAKE_TINY}\n  {_SED_TINY}\n  {_QA_TINY}\n"
        "  kakehashi audioqa ask runs/audioqa/tiny-qa runs/audioqa/tiny/examples/test-0000.wav "
        '"what happened after the bell"',
    )
    ask.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a train-qa run directory")
    ask.add_argument("wav", metavar="WAV", type=Path, help="a 16 kHz mono wav file (10 s clips, as trained)")
    ask.add_argument("question", metavar="QUESTION", help="the question, in the words of the templates")
    ask.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ask.set_defaults(handler=_ask)


def _make_data(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from apps.audioqa.data import make_data
    from core.config import load_config

    cfg = load_config(args.config, args.overrides)
    console = Console(stderr=True)
    with console.status("rendering soundscapes and writing HDF5 splits"):
        summary = make_data(cfg)
    table = Table("split", "clips", "events", "questions per type (answers balanced per question text)")
    for split, info in summary.items():
        if split == "scene":
            continue
        per_type = ", ".join(f"{t} {sum(a.values())}" for t, a in info["questions"].items())
        table.add_row(split, str(info["clips"]), str(info["events"]), per_type)
    Console().print(table)
    console.print(f"wrote {cfg.out_dir}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.train import fit

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume)
    console = Console(stderr=True)
    console.print(f"run directory: {result.run_dir}")
    if result.best_checkpoint is not None:
        score = f" ({result.best_score:.4f})" if result.best_score is not None else ""
        console.print(f"best checkpoint: {result.best_checkpoint}{score}")
    return 0


def _kind(run_dir: Path) -> tuple[str, Any]:
    from core.errors import UserError
    from core.train.run import load_run_config

    cfg = load_run_config(run_dir)
    target = str(cfg.task.get("_target_", ""))
    if target.endswith("SEDTask"):
        return "sed", cfg
    if target.endswith("QATask"):
        return "qa", cfg
    raise UserError(
        f"not an audioqa run (task {target!r})", where=str(run_dir), hint="give a train-sed or train-qa run"
    )


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from apps.audioqa.evaluate import evaluate_qa, evaluate_sed, majority_baseline
    from core.files import write_atomic

    kind, cfg = _kind(args.run_dir)
    data_dir = args.data_dir or Path(str(cfg.get("data_dir")))
    if kind == "sed":
        scores: dict[str, Any] = evaluate_sed(args.run_dir, data_dir, args.split)
        table = Table("metric", "value", title=f"SED on {args.split} ({scores['clips']} clips)")
        for key in ("sed_eval_f1", "sed_eval_precision", "sed_eval_recall", "f1"):
            table.add_row(key, f"{scores[key]:.4f}")
        d = scores["decoder"]
        table.add_row("decoder (chosen on val)", f"{d['source']}, {d['threshold']} / frames {d['frame_threshold']}")
    else:
        scores = evaluate_qa(args.run_dir, args.split, args.data_dir)
        scores["majority"] = majority_baseline(data_dir, args.split)
        table = Table(
            "question type",
            "questions",
            f"exact match ({cfg.get('features')})",
            "majority answer",
            title=f"QA on {args.split}",
        )
        for t, n in scores["n_questions"].items():
            table.add_row(t, str(n), f"{scores[t]:.3f}", f"{scores['majority'][t]:.3f}")
        table.add_row(
            "overall (mean of types)",
            str(sum(scores["n_questions"].values())),
            f"{scores['overall']:.3f}",
            f"{scores['majority']['overall']:.3f}",
        )
    Console().print(table)
    out = args.run_dir / "results" / f"eval-{args.split}.json"
    out.parent.mkdir(exist_ok=True)
    write_atomic(out, json.dumps(scores, indent=2) + "\n")
    Console(stderr=True).print(f"wrote {out}")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from core.errors import UserError

    # the cheap checks first: a wrong path is one line at once, not after torch has loaded
    if not (Path(args.run_dir) / "merged_config.yaml").is_file():
        raise UserError(
            "not a QA run directory (no merged_config.yaml)",
            where=str(args.run_dir),
            hint="give the --run-dir of a finished `kakehashi audioqa train-qa`",
        )
    if not Path(args.wav).is_file():
        raise UserError("wav file not found", where=str(args.wav))

    from apps.audioqa.evaluate import ask

    result = ask(args.run_dir, args.wav, args.question)
    console = Console()
    if args.json:
        console.print_json(json.dumps(asdict(result)))
        return 0
    console.print(f"[bold]answer:[/bold] {result.answer}")
    table = Table("event", "onset (s)", "offset (s)", "confidence", "level (dB SNR)", title="detected events")
    for e in result.events:
        table.add_row(
            e["label"], f"{e['onset']:.2f}", f"{e['offset']:.2f}", f"{e['confidence']:.2f}", f"{e['snr_db']:.1f}"
        )
    console.print(table)
    return 0
