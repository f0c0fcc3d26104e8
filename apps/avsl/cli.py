"""``kakehashi avsl make-data | annotate | train | eval | infer | node``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.cli import SubParsers, add_area, add_config_arguments
from core.errors import ConfigError, UserError

_DATA = "apps/avsl/config/data.yaml"
_TRAIN = "apps/avsl/config/train.yaml"
_ANNOTATE = "apps/avsl/config/annotate.yaml"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "avsl",
        help="audio-visual sounding-object localization in 360° frames",
        description="Procedural 360° scenes, an audio-visual localization model trained with core.train,\n"
        "semi-automatic annotation as array jobs, metrics and overlays, a ROS 2 node.",
    )
    make_data = verbs.add_parser(
        "make-data",
        help="write the scene splits (HDF5, mp4 frames inside)",
        description="Generate the splits of the config's `splits` (each a seed and a size) into `out_dir`,\n"
        "with core.data's resumable, parallel HDF5Writer. The same seed gives the same bytes.",
        epilog=f"example:\n  kakehashi avsl make-data {_DATA} out_dir=runs/avsl-data splits.train.n=64 "
        "splits.unlabelled.n=0\n",
    )
    add_config_arguments(make_data)
    make_data.set_defaults(handler=_make_data)

    train = verbs.add_parser(
        "train",
        help="train a model (core.train fit of the config)",
        description="`kakehashi train fit` on an avsl training config: a run directory with merged_config.yaml,\n"
        "provenance.json, checkpoints (top-k and last), metric.json; --resume continues one.",
        epilog=f"example:\n  kakehashi avsl train {_TRAIN} data_dir=runs/avsl-data trainer.max_epochs=1 "
        "datamodule.limit=32 --run-dir runs/avsl-train\n",
    )
    add_config_arguments(train)
    train.add_argument("--run-dir", help="the run directory (default: the config's run_dir or runs/<name>/<time>)")
    train.add_argument("--resume", nargs="?", const="last", help="resume: alone the run's last.ckpt; or a run/ckpt")
    train.set_defaults(handler=_train)

    evaluate = verbs.add_parser(
        "eval",
        help="figures of a run on a held-out split, with the baselines, and overlays",
        description="cIoU success and AUC, silent false-positive area, two-source ARI, class accuracy of the\n"
        "run's model on SCENES (default: the run's test split), beside the same model with shuffled audio and a\n"
        "centre prior. Writes <run>/results/avsl-eval-<ckpt>.json and overlays/*.png.",
        epilog="example:\n  kakehashi avsl eval runs/avsl-train --limit 16\n"
        "  kakehashi avsl eval runs/avsl-train --merge-top-k 1 --limit 16\n",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--scenes", help="scene file (default: the run's datamodule.test)")
    evaluate.add_argument("--ckpt", default="best", help="best | last | a file in <run>/checkpoints | a path")
    evaluate.add_argument("--merge-top-k", type=int, help="average the K best checkpoints first (core.train)")
    evaluate.add_argument("--limit", type=int, help="only the first N scenes")
    evaluate.add_argument("--overlays", type=int, default=8, help="PNG overlays to write (default 8)")
    evaluate.set_defaults(handler=_eval)

    infer = verbs.add_parser(
        "infer",
        help="localize the sounding objects of scenes; maps as .npy, overlays as PNG, detections as JSON",
        description="Run a trained model on scenes of a scene file: for each, map-<i>.npy (H×W in [0, 1]),\n"
        "overlay-<i>.png and detections.json (class, azimuth, elevation, score of each sounding object).",
        epilog="example:\n  kakehashi avsl infer runs/avsl-train runs/avsl-data/test.h5 --out runs/avsl-infer "
        "--indices 0 1\n",
    )
    infer.add_argument("run_dir", metavar="RUN_DIR")
    infer.add_argument("scenes", metavar="SCENES")
    infer.add_argument("--out", required=True, help="output folder")
    infer.add_argument("--indices", type=int, nargs="*", help="scene indices (default: all)")
    infer.add_argument("--ckpt", default="best")
    infer.set_defaults(handler=_infer)

    annotate = verbs.add_parser(
        "annotate",
        help="one round of semi-automatic annotation (teacher → sharded labelling jobs → review → accepted)",
        description="Label the unlabelled split with the teacher run as an array job (core.jobs), merge the\n"
        "shards, review a sample (scripted reviewer reading the ground truth), write accepted.h5 and report.json.\n"
        "Resumable: shards already written are kept.",
        epilog=f"example:\n  kakehashi avsl annotate {_ANNOTATE} teacher=runs/avsl-train "
        "scenes=runs/avsl-data/test.h5 out_dir=runs/avsl-annotate\n",
    )
    add_config_arguments(annotate)
    annotate.set_defaults(handler=_annotate)

    node = verbs.add_parser(
        "node",
        help="the ROS 2 inference node (rclpy)",
        description="Subscribes to an image topic (UInt8MultiArray H×W×3) and a multichannel audio topic\n"
        "(Float32MultiArray, core.ros convention); publishes the localization map (Float32MultiArray H×W) and\n"
        "the sounding objects' directions (std_msgs/String, JSON). Topic names, the run and the threshold\n"
        "are ROS parameters (--ros-args -p run_dir:=...).",
        epilog="example (ros):\n  kakehashi avsl node --duration 5 runs/avsl-train --ros-args -p threshold:=0.5\n",
    )
    node.add_argument("run_dir", metavar="RUN_DIR")
    node.add_argument("--ckpt", default="best")
    node.add_argument("--duration", type=float, default=None, help="stop after this many seconds (demos, tests)")
    node.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ... (ROS parameters)")
    node.set_defaults(handler=_node)


def _load(args: argparse.Namespace) -> Any:
    from core.config import load_config

    return load_config(args.config, args.overrides)


def _make_data(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from rich.console import Console

    from apps.avsl.scene import SceneConfig, extend_split, write_split
    from core.config import as_dict

    cfg = _load(args)
    scene_node = OmegaConf.select(cfg, "scene")
    splits = OmegaConf.select(cfg, "splits")
    if scene_node is None or splits is None:
        raise ConfigError("the config needs `scene` and `splits`", where=args.config, hint=f"see {_DATA}")
    scene = SceneConfig.from_dict(as_dict(scene_node, where="scene", hint=f"see {_DATA}"), where="scene")
    for name, split in as_dict(splits, where="splits", hint=f"see {_DATA}").items():  # lists, scalars: one line
        as_dict(split, where=f"splits.{name}", hint="e.g. {seed: 1, n: 100}")
    out_dir = Path(str(cfg.get("out_dir", "data/avsl")))
    workers = int(cfg.get("num_workers", 1))
    console = Console()
    seeds: dict[int, str] = {}
    for name, split in splits.items():
        for key in ("seed", "n"):
            if key not in split:
                raise ConfigError(f"split without `{key}`", where=f"splits.{name}")
        if not isinstance(split.n, int) or split.n < 0:
            raise ConfigError(f"split size must be an integer ≥ 0, got {split.n!r}", where=f"splits.{name}.n")
        if int(split.seed) in seeds:
            raise ConfigError(f"splits {seeds[int(split.seed)]} and {name} share a seed", where=f"splits.{name}.seed")
        seeds[int(split.seed)] = str(name)
    for name, split in splits.items():
        if int(split.n) <= 0:
            continue
        path = out_dir / f"{name}.h5"
        if path.is_file() and not (path.with_name(path.name + ".partial")).exists():
            meta = path.with_name(path.name + ".scene.json")
            if not meta.is_file():
                raise UserError("not a scene file: no .scene.json next to it", where=str(path), hint="delete it")
            stored = json.loads(meta.read_text())
            if int(split.n) > int(stored["n"]):
                with console.status(f"growing {path} from {stored['n']} to {split.n} scenes"):
                    extend_split(path, scene, int(split.seed), int(split.n), num_workers=workers)
                console.print(f"grew {path} to {split.n} scenes (seed {split.seed})")
            else:
                console.print(f"{path}: exists ({stored['n']} scenes), kept")
            continue
        with console.status(f"writing {split.n} scenes to {path}"):
            write_split(path, scene, int(split.seed), int(split.n), num_workers=workers)
        console.print(f"wrote {path} ({split.n} scenes, seed {split.seed})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from core.train import fit

    result = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume)
    print(f"run directory: {result.run_dir}")
    if result.best_score is not None:
        print(f"best val/ciou_success: {result.best_score:.3f} ({result.best_checkpoint})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from apps.avsl.evaluate import evaluate_run
    from core.files import write_atomic
    from core.train import load_run_config, merge_top_k

    run = Path(args.run_dir)
    cfg = load_run_config(run)
    ckpt = args.ckpt
    if args.merge_top_k:
        ckpt = str(merge_top_k(run, args.merge_top_k))
    scenes = args.scenes or cfg.datamodule.get("test")
    if scenes is None:
        raise UserError("no scene file to evaluate", where=str(run), hint="give --scenes FILE")
    console = Console()
    with console.status("evaluating") as status:
        result = evaluate_run(
            run,
            str(scenes),
            ckpt,
            limit=args.limit,
            overlays=run / "overlays",
            n_overlays=args.overlays,
            progress=lambda what: status.update(f"evaluating: {what}"),
        )
    figures = result["figures"]
    out = run / "results" / f"avsl-eval-{Path(str(ckpt)).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(result, indent=1) + "\n")
    table = Table("figure", "value", title=f"{run} on {scenes}")
    for key, value in figures.items():
        table.add_row(key, f"{value:.4g}")
    console.print(table)
    console.print(f"wrote {out} and {run / 'overlays'}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    import numpy as np

    from apps.avsl.data import AVSLDataset
    from apps.avsl.inference import Localizer
    from apps.avsl.overlay import save_overlay
    from core.files import atomic_path, write_atomic

    localizer = Localizer.from_run(args.run_dir, args.ckpt)
    dataset = AVSLDataset(args.scenes)
    indices = args.indices if args.indices else list(range(len(dataset)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = []
    for i in indices:
        if not 0 <= i < len(dataset):
            raise UserError(f"scene index {i} out of range (0..{len(dataset) - 1})", where=args.scenes)
        sample = dataset[i]
        frame = sample["image"].permute(1, 2, 0).numpy()
        result = localizer(frame, sample["audio"].numpy())
        with atomic_path(out / f"map-{i:05d}.npy") as temporary, open(temporary, "wb") as handle:
            np.save(handle, result.map)
        save_overlay(out / f"overlay-{i:05d}.png", frame, result.map, [d.cls for d in result.detections])
        report.append({"index": i, "detections": [vars(d) for d in result.detections]})
    write_atomic(out / "detections.json", json.dumps(report, indent=1) + "\n")
    print(f"wrote {len(indices)} maps and overlays to {out}")
    return 0


def _annotate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from apps.avsl.annotate import annotate_round

    cfg = _load(args)
    for key in ("teacher", "scenes", "out_dir"):
        if cfg.get(key) is None:
            raise ConfigError(f"`{key}` is not set", where=f"{args.config}: {key}", hint=f"see {_ANNOTATE}")
    if not Path(str(cfg.teacher), "merged_config.yaml").is_file():
        raise UserError("the teacher is not a training run", where=str(cfg.teacher), hint="train one first")
    n_hand = cfg.get("n_hand_frames")
    if n_hand is None:
        raise ConfigError("`n_hand_frames` is not set", where=f"{args.config}: n_hand_frames")
    console = Console()
    with console.status("labelling (array job), merging, reviewing"):
        result = annotate_round(
            cfg.teacher,
            cfg.scenes,
            cfg.out_dir,
            int(n_hand),
            n_shards=int(cfg.get("n_shards", 2)),
            backend=str(cfg.get("backend", "local")),
            backend_config=cfg.get("backend_config"),
            threshold=float(cfg.get("threshold", 0.5)),
            threshold_step=float(cfg.get("threshold_step", 0.1)),
            map_threshold=float(cfg.get("map_threshold", 0.5)),
            review_fraction=float(cfg.get("review_fraction", 0.05)),
            min_review=int(cfg.get("min_review", 10)),
            max_reject=float(cfg.get("max_reject", 0.1)),
            seed=int(cfg.get("seed", 0)),
        )
    for key, value in result.report.items():
        console.print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return 0


def _node(args: argparse.Namespace) -> int:
    from apps.avsl.node import run_node

    return run_node(args.run_dir, args.ckpt, args.ros_args, duration=args.duration)
