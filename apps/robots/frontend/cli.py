"""``kakehashi robots make-frontend-data | train-frontend | enhance | frontend-node``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli import SubParsers, add_config_arguments
from core.errors import ConfigError, UserError

_DATA = "apps/robots/frontend/config/data.yaml"
_TRAIN = "apps/robots/frontend/config/train.yaml"
_RUN = "runs/robots/frontend/train"
_DATA_DIR = "runs/robots/frontend/data"
# a tiny data set and a one-epoch run: what the --help examples build first, so that each runs as written
_TINY_DATA = (
    f"kakehashi robots make-frontend-data {_DATA} out_dir=runs/tiny-data common.duration=1.5 "
    "splits.train.n=4 splits.val.n=2 splits.commands.n=1 --only train val commands"
)


def _tiny_train(run_dir: str) -> str:
    return (
        f"kakehashi robots train-frontend {_TRAIN} data_dir=runs/tiny-data trainer.max_epochs=1 "
        f"task.model.hidden=16 trainer.enable_progress_bar=false --run-dir {run_dir}"
    )


def add_verbs(verbs: SubParsers) -> None:
    """Add the front-end's verbs to the ``robots`` area."""
    data = verbs.add_parser(
        "make-frontend-data",
        help="simulate far-field recordings (rooms, mic array, espeak-ng commands, diffuse noise)",
        description="Write the config's splits as HDF5 files (core.data): pyroomacoustics rooms at RT60 0.2–0.6 s, a\n"
        "4-mic array on a robot head, 1–2 espeak-ng speakers saying commands, diffuse noise. The training\n"
        "split holds mixtures only; the evaluation splits also hold the clean images. Resumable.",
        epilog=f"example:\n  {_TINY_DATA}\n"
        f"full size (~35 min on 2 busy cores): kakehashi robots make-frontend-data {_DATA}",
    )
    add_config_arguments(data)
    data.add_argument("--only", nargs="+", metavar="SPLIT", help="write only these splits")
    data.add_argument("--overwrite", action="store_true", help="replace finished split files")
    data.set_defaults(handler=_make_data)

    train = verbs.add_parser(
        "train-frontend",
        help="train the front-end on mixtures only (core.train config)",
        description="Unsupervised training of the mask network by the full-rank spatial-model (FCA) likelihood\n"
        "of the mixtures; `kakehashi train fit` with this area's config, the same run directory.",
        epilog=f"example:\n  {_TINY_DATA}\n  {_tiny_train('runs/tiny-train')}\n"
        f"full size (28 min on 2 busy cores): kakehashi robots train-frontend {_TRAIN} --run-dir {_RUN}",
    )
    add_config_arguments(train)
    train.add_argument("--run-dir", default=None, help="run directory (default: the config's run_dir)")
    train.add_argument("--resume", nargs="?", const="last", default=None, help="resume: last, a checkpoint or a run")
    train.set_defaults(handler=_train)

    enhance = verbs.add_parser(
        "enhance",
        help="enhance one recording offline: the speaker's MVDR output, its DOA and the recognized command",
        description="Read a multichannel WAV file (or sample INDEX of a data file: FILE.h5#INDEX), write the\n"
        "enhanced speech as a mono WAV, print the DOA (SRP-PHAT on the speaker's covariance) and the command.",
        epilog=f"example:\n  {_TINY_DATA}\n  {_tiny_train('runs/tiny-enhance')}\n"
        "  kakehashi robots enhance --model runs/tiny-enhance runs/tiny-data/commands.h5#0 enhanced.wav\n"
        f"with the full-size run: kakehashi robots enhance --model {_RUN} {_DATA_DIR}/commands.h5#0 enhanced.wav",
    )
    enhance.add_argument("--model", required=True, help="run directory of train-frontend")
    enhance.add_argument("input", help="multichannel WAV, or FILE.h5#INDEX")
    enhance.add_argument("output", help="mono WAV to write")
    enhance.add_argument("--streaming", action="store_true", help="use the block-online front-end (as the node)")
    enhance.set_defaults(handler=_enhance)

    node = verbs.add_parser(
        "frontend-node",
        help="run the front-end as a ROS 2 node (audio in; enhanced audio, DOA, commands out)",
        description="Subscribe to multichannel audio (std_msgs/Float32MultiArray, dims channels × samples@<rate>)\n"
        "and publish the enhanced audio, the DOA and the recognized commands. Parameters are ROS parameters:\n"
        "input_topic, enhanced_topic, doa_topic, command_topic, rate, forget, recognize, vad_mode.",
        epilog=f"example (ros):\n  {_TINY_DATA}\n  {_tiny_train('runs/tiny-node')}\n"
        "  kakehashi robots frontend-node --model runs/tiny-node --duration 5 --ros-args -p input_topic:=/mic_array\n"
        f"with the full-size run, until Ctrl-C: kakehashi robots frontend-node --model {_RUN}",
    )
    node.add_argument("--model", required=True, help="run directory of train-frontend")
    node.add_argument("--duration", type=float, default=None, help="stop after this many seconds (demos, tests)")
    node.add_argument(
        "--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], help="ROS arguments: -p NAME:=VALUE ..."
    )
    node.set_defaults(handler=_node)


def _make_data(args: argparse.Namespace) -> int:
    from rich.console import Console

    from apps.robots.frontend.simulate import ArraySpec, SplitSpec, write_split
    from core.config import as_dict, load_config, save_run_config

    cfg = load_config(args.config, args.overrides)
    raw = as_dict(cfg, where=args.config)
    splits = as_dict(raw.get("splits") or {}, where="splits", hint=f"see {_DATA}")
    if not splits:
        raise ConfigError("no `splits`", where=args.config, hint=f"see {_DATA}")
    chosen = args.only or list(splits)
    for name in chosen:
        if name not in splits:
            raise ConfigError(f"no split {name!r}", where=f"{args.config}: splits", hint=f"one of {', '.join(splits)}")
    out_dir = Path(str(raw.get("out_dir", "runs/robots/frontend/data")))
    try:
        array = ArraySpec(**(raw.get("array") or {}))
    except TypeError as exc:
        raise ConfigError(f"bad array: {exc}", where="array", hint="keys: n_mics, radius, height") from None
    common = as_dict(raw.get("common") or {}, where="common", hint=f"see {_DATA}")
    specs = {
        name: SplitSpec.from_dict({**common, **as_dict(splits[name], where=f"splits.{name}", hint=f"see {_DATA}")})
        for name in chosen
    }  # every split is checked before anything is written
    save_run_config(cfg, out_dir)
    console = Console(stderr=True)
    for name, spec in specs.items():
        path = out_dir / f"{name}.h5"
        if path.exists() and not args.overwrite:
            console.print(f"{name}: {path} exists (--overwrite replaces it)")
            continue
        with console.status(f"{name}: simulating {spec.n} mixtures"):
            write_split(str(path), spec, array, num_workers=int(raw.get("workers", 1)), overwrite=args.overwrite)
        console.print(f"{name}: wrote {spec.n} mixtures to {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.train.run import fit, is_rank_zero

    result = fit(args.config, args.overrides, run_dir=args.run_dir, resume=args.resume)
    if is_rank_zero():
        console = Console(stderr=True)
        console.print(f"run directory: {result.run_dir}")
        if result.best_checkpoint is not None:
            console.print(f"best checkpoint: {result.best_checkpoint} (val/loss {result.best_score:.4f})")
    return 0


def _read_input(spec: str) -> tuple[Any, int]:
    import numpy as np

    if "#" in spec and spec.split("#")[0].endswith((".h5", ".hdf5")):
        from core.data.hdf5 import RawHDF5Dataset

        path, index = spec.rsplit("#", 1)
        if not Path(path).is_file():
            raise UserError("data file not found", where=path, hint="run kakehashi robots make-frontend-data")
        data = RawHDF5Dataset(path)
        if not index.isdigit() or int(index) >= len(data):
            raise UserError(f"no sample {index!r}", where=path, hint=f"an index below {len(data)}")
        return data[int(index)]["mixture"].astype(np.float64), 16000
    from scipy.io import wavfile

    if not Path(spec).is_file():
        raise UserError("input file not found", where=spec, hint="a multichannel WAV file or FILE.h5#INDEX")
    rate, samples = wavfile.read(spec)
    samples = np.asarray(samples, dtype=np.float64)
    if samples.dtype.kind == "i" or np.abs(samples).max() > 1.0:
        samples = samples / 32768.0
    return (samples.T if samples.ndim == 2 else samples[None]), int(rate)


def _enhance(args: argparse.Namespace) -> int:
    import io

    import numpy as np
    from rich.console import Console
    from scipy.io import wavfile

    from apps.robots.frontend.asr import CommandRecognizer
    from apps.robots.frontend.enhance import Frontend, StreamingFrontend
    from core.files import write_atomic

    frontend = Frontend.from_run(args.model)
    mixture, rate = _read_input(args.input)
    if rate != frontend.fs:
        raise UserError(f"input at {rate} Hz, the model at {frontend.fs} Hz", where=args.input, hint="resample it")
    if mixture.shape[0] != frontend.mics.shape[1]:
        raise UserError(
            f"input has {mixture.shape[0]} channels, the model's array {frontend.mics.shape[1]}", where=args.input
        )
    enhanced = StreamingFrontend(frontend).run(mixture) if args.streaming else frontend.enhance(mixture)
    buffer = io.BytesIO()
    wavfile.write(buffer, rate, (0.9 * enhanced / max(float(np.abs(enhanced).max()), 1e-9)).astype(np.float32))
    write_atomic(args.output, buffer.getvalue())
    command = CommandRecognizer().decode(enhanced)
    Console().print(
        f"DOA {frontend.doa(mixture):.0f}° (SRP-PHAT on the speaker's covariance); command: {command or '(none)'}; "
        f"wrote {args.output}"
    )
    return 0


def _node(args: argparse.Namespace) -> int:
    from apps.robots.frontend.enhance import Frontend
    from apps.robots.frontend.node import run_node

    frontend = Frontend.from_run(args.model)  # before ROS starts: a missing model is one error line, exit 2
    ros_args = [a for a in args.ros_args if a != "--ros-args"]
    return run_node(frontend, ros_args, duration=args.duration)


__all__ = ["add_verbs"]
