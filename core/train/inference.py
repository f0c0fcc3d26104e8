"""Inference pipelines: one input file to one output file, or a list of files sharded across an array job.

Subclass :class:`InferencePipeline`, write :meth:`~InferencePipeline.process` (and :meth:`~InferencePipeline.setup`
to load the model once), and expose it with :func:`add_inference_arguments` / :func:`run_inference`::

    kakehashi train infer RUN_DIR one input.npy output.npy
    kakehashi train infer RUN_DIR batch inputs.txt outputs/      # inputs.txt: one path per line

``batch`` works on its share of the list when it runs as an element of an array job (``core.jobs`` exports
``TASK_INDEX`` / ``TASK_STEPSIZE`` / ``TASK_COUNT``), skips outputs that exist (so a rerun finishes what a killed
one left) and writes each output under a temporary name first, so a crash never leaves a half-written file.

Example:
    >>> import pathlib, tempfile
    >>> class Upper(InferencePipeline):
    ...     suffix = ".txt"
    ...     def process(self, src, dst):
    ...         dst.write_text(src.read_text().upper())
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("hi")
    >>> Upper().one(folder / "a.txt", folder / "out" / "A.txt").read_text()
    'HI'
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.files import atomic_path
from core.jobs.ranks import split_tasks


class InferencePipeline(ABC):
    """Turn one source file into one destination file; :meth:`one` and :meth:`batch` drive it.

    Attributes:
        suffix: The extension of outputs in ``batch`` mode (``dst_dir/<source stem><suffix>``).
    """

    suffix: str = ".out"

    def __init__(self) -> None:
        self._ready = False

    def setup(self) -> None:  # noqa: B027 (optional hook)
        """Load models and anything else :meth:`process` needs (called once, before the first file)."""

    @abstractmethod
    def process(self, src: Path, dst: Path) -> None:
        """Read ``src``, write the result to ``dst`` (a temporary name with the final suffix; renamed after)."""

    def output_path(self, src: Path, dst_dir: Path) -> Path:
        """Where ``batch`` writes the output of ``src``."""
        return dst_dir / f"{src.stem}{self.suffix}"

    def one(self, src: str | Path, dst: str | Path) -> Path:
        """Process one file."""
        source, target = Path(src), Path(dst)
        if not source.exists():
            raise UserError("input not found", where=str(source))
        self._setup_once()
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            self.process(source, temporary)
        return target

    def batch(
        self,
        src_list: str | Path,
        dst_dir: str | Path,
        overwrite: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> list[Path]:
        """Process this array element's share of the files listed in ``src_list``; return the outputs written.

        Relative paths in the list are relative to the list file's folder.
        """
        listing = Path(src_list)
        if not listing.is_file():
            raise UserError("input list not found", where=str(listing), hint="a text file with one path per line")
        lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines()]
        sources = [_relative_to(Path(line), listing.parent) for line in lines if line and not line.startswith("#")]
        mine = split_tasks(sources, environ=environ)
        target_dir = Path(dst_dir)
        todo = [(src, self.output_path(src, target_dir)) for src in mine]
        if not overwrite:
            todo = [(src, dst) for src, dst in todo if not dst.exists()]
        written: list[Path] = []
        if not todo:
            return written
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            bar = progress.add_task(f"{type(self).__name__}", total=len(todo))
            for src, dst in todo:
                written.append(self.one(src, dst))
                progress.advance(bar)
        return written

    def _setup_once(self) -> None:
        if not getattr(self, "_ready", False):
            self.setup()
            self._ready = True


class RunPipeline(InferencePipeline):
    """Apply a trained run's task to tensors: ``.npy`` or ``.pt`` in, the same kind out (by the output suffix).

    Each input is one sample; it gets a batch dimension of 1 for the forward pass, which the output loses.

    Args:
        run_dir: A run directory of ``kakehashi train fit``.
        checkpoint: ``best``, ``last`` or a checkpoint file (see :func:`~core.train.run.load_run`).
        suffix: Output extension in ``batch`` mode: ``.npy`` or ``.pt``.
    """

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", suffix: str = ".npy") -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = checkpoint
        self.suffix = suffix
        self.task: Any = None

    def setup(self) -> None:
        from core.train.run import load_run

        self.task = load_run(self.run_dir, self.checkpoint)

    def process(self, src: Path, dst: Path) -> None:
        import numpy as np
        import torch

        if src.suffix == ".npy":
            inputs = torch.from_numpy(np.load(src))
        elif src.suffix == ".pt":
            inputs = torch.load(src, map_location="cpu", weights_only=True)
        else:
            raise UserError(f"cannot read {src.suffix!r} inputs", where=str(src), hint="give .npy or .pt files")
        with torch.inference_mode():
            output = self.task(inputs.unsqueeze(0).to(torch.get_default_dtype()))[0]
        if dst.suffix == ".pt":
            torch.save(output, dst)
        else:
            with dst.open("wb") as file:  # np.save would append .npy to the temporary name
                np.save(file, output.numpy())


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``one SRC DST`` and ``batch SRC_LIST DST_DIR [--overwrite]`` modes to ``parser``."""
    modes = parser.add_subparsers(title="modes", dest="mode", metavar="MODE", required=True)
    one = modes.add_parser(
        "one",
        help="process one file",
        epilog="example:\n  kakehashi train infer runs/digits one sample.npy prediction.npy",
    )
    one.add_argument("src", metavar="SRC", type=Path)
    one.add_argument("dst", metavar="DST", type=Path)
    batch = modes.add_parser(
        "batch",
        help="process a list of files (this array element's share)",
        epilog="example:\n  kakehashi train infer runs/digits batch inputs.txt outputs/",
    )
    batch.add_argument("src_list", metavar="SRC_LIST", type=Path, help="text file, one input path per line")
    batch.add_argument("dst_dir", metavar="DST_DIR", type=Path)
    batch.add_argument("--overwrite", action="store_true", help="redo outputs that exist")


def run_inference(pipeline: InferencePipeline, args: argparse.Namespace) -> int:
    """Run the mode that :func:`add_inference_arguments` parsed."""
    from rich.console import Console

    console = Console(stderr=True)
    if args.mode == "one":
        console.print(f"wrote {pipeline.one(args.src, args.dst)}")
    else:
        written = pipeline.batch(args.src_list, args.dst_dir, overwrite=args.overwrite)
        console.print(f"wrote {len(written)} file(s) into {args.dst_dir}")
    return 0


def _relative_to(path: Path, folder: Path) -> Path:
    return path if path.is_absolute() else folder / path


__all__ = ["InferencePipeline", "RunPipeline", "add_inference_arguments", "run_inference"]
