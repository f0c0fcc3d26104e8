"""Write a dataset into one HDF5 file (one group per sample), in parallel, resumably.

:class:`HDF5Writer` cuts the items into chunks of ``chunk_size``. Each chunk is turned into samples by
``make_sample`` (in ``num_workers`` processes when ``num_workers > 1``) and written to its own small HDF5 file in
``<path>.partial/``, under a temporary name renamed into place once closed: a chunk file that exists is complete.
When all chunks exist they are joined into ``<path>``:

- ``layout="merged"`` copies every group into one file (portable; costs one copy of the data);
- ``layout="linked"`` writes a small file of external links to the chunk files, kept in ``<path>.parts/``
  (no copy; move the file and its ``.parts`` folder together).

The join also writes ``<path>.json``, the list of group names in item order, which
:class:`~core.data.RawHDF5Dataset` reads. ``<path>`` itself appears only by a final rename, so a crash never
leaves a half-written file under the final name; rerunning the same ``write`` after a crash redoes only the chunks
that were not finished (items must come in the same order; ``make_sample`` is not called for finished chunks).

Parallel HDF5 (MPI) is not needed: each process writes its own file. h5py built with MPI is rare on PyPI, so this
writer does not use it.

Example:
    >>> import tempfile, os, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "squares.h5")
    >>> written = HDF5Writer(path).write(range(5), make_sample=lambda i: {"x": np.full(3, i * i)})
    >>> from core.data import RawHDF5Dataset
    >>> RawHDF5Dataset(path)[4]["x"].tolist()
    [16, 16, 16]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from core.data.hdf5 import open_hdf5, write_group
from core.errors import UserError
from core.files import write_atomic

SampleResult = Mapping[str, Any] | tuple[str, Mapping[str, Any]]


def _identity(item: Any) -> Any:
    return item


def _chunk_name(k: int) -> str:
    return f"chunk-{k:06d}.h5"


def _write_chunk(
    work_dir: Path,
    k: int,
    first_index: int,
    items: list[Any],
    make_sample: Callable[[Any], SampleResult],
    compression: str | None,
    locking: bool | None,
) -> list[str]:
    """Write one chunk file atomically; return its group names in order."""
    final = work_dir / _chunk_name(k)
    tmp = work_dir / f".{final.name}.tmp-{os.getpid()}"
    names: list[str] = []
    try:
        with open_hdf5(tmp, "w", locking) as f:
            for offset, item in enumerate(items):
                result = make_sample(item)
                if isinstance(result, tuple):
                    name, sample = result
                else:
                    name, sample = f"{first_index + offset:08d}", result
                if name in f:
                    raise UserError("two samples share a group name", where=f"{final}, group {name!r}")
                write_group(f.create_group(name), sample, compression)
                names.append(name)
            f.attrs["names"] = json.dumps(names)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return names


def _finished_chunk(path: Path, locking: bool | None) -> list[str] | None:
    """The group names of a complete chunk file, or ``None`` if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with open_hdf5(path, "r", locking) as f:
            names = json.loads(f.attrs["names"])
    except (OSError, KeyError, ValueError):
        path.unlink(missing_ok=True)  # torn by a crash outside our control: redo it
        return None
    return list(names)


class HDF5Writer:
    """Write samples made from ``items`` into the HDF5 file ``path``, one group per sample.

    Args:
        path: The output file.
        num_workers: Processes that run ``make_sample`` and write chunks; 1 runs everything in this process.
        chunk_size: Items per chunk file: the unit of parallel work and of resuming.
        layout: ``"merged"`` (one self-contained file) or ``"linked"`` (external links to the chunk files).
        compression: h5py compression for array datasets (``"gzip"``, ``"lzf"``) or ``None``.
        locking: ``False`` turns HDF5 file locking off (NFS, Lustre).
        overwrite: Replace ``path`` if it is already complete; otherwise that is an error.
        start_method: Multiprocessing start method for the workers (default: the platform's).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        num_workers: int = 1,
        chunk_size: int = 64,
        layout: Literal["merged", "linked"] = "merged",
        compression: str | None = None,
        locking: bool | None = None,
        overwrite: bool = False,
        start_method: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.num_workers = num_workers
        self.chunk_size = chunk_size
        self.layout = layout
        self.compression = compression
        self.locking = locking
        self.overwrite = overwrite
        self.start_method = start_method

    @property
    def work_dir(self) -> Path:
        """Where chunk files collect until the join: ``<path>.partial``."""
        return self.path.with_name(self.path.name + ".partial")

    @property
    def parts_dir(self) -> Path:
        """Where a ``linked`` file's chunk files live: ``<path>.parts``."""
        return self.path.with_name(self.path.name + ".parts")

    def _check_args(self) -> None:
        if self.layout not in ("merged", "linked"):
            raise UserError(f"unknown layout {self.layout!r}", where=str(self.path), hint="use merged or linked")
        if self.chunk_size < 1 or self.num_workers < 1:
            raise UserError("chunk_size and num_workers must be at least 1", where=str(self.path))

    def _prepare_work_dir(self) -> None:
        manifest = {"chunk_size": self.chunk_size, "version": 1}
        manifest_path = self.work_dir / "manifest.json"
        if self.work_dir.is_dir() and manifest_path.is_file():
            found = json.loads(manifest_path.read_text())
            if found != manifest:
                raise UserError(
                    f"an unfinished write with chunk_size={found.get('chunk_size')} is in the way",
                    where=str(self.work_dir),
                    hint="rerun with the same chunk_size to resume, or delete the folder to start over",
                )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.work_dir.glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)
        write_atomic(manifest_path, json.dumps(manifest))

    def write(self, items: Iterable[Any], make_sample: Callable[[Any], SampleResult] | None = None) -> Path:
        """Write one group per item and return ``path``.

        Args:
            items: What to write. Without ``make_sample``, each item is a sample: a dict (nested dicts allowed)
                of arrays, numbers, strings or ``bytes``. With it, items are its inputs (file names, indices).
            make_sample: Turns an item into a sample dict, or into ``(group_name, sample)``; the default group
                name is the item's position, ``"00000042"``. With ``num_workers > 1`` it must be picklable.
        """
        self._check_args()
        if self.path.exists() and not self.work_dir.exists() and not self.overwrite:
            raise UserError("output file exists", where=str(self.path), hint="pass overwrite=True or delete it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_work_dir()
        make = make_sample if make_sample is not None else _identity
        chunk_names: dict[int, list[str]] = {}
        todo = self._pending_chunks(iter(items), chunk_names)
        if self.num_workers == 1:
            for k, first, chunk in todo:
                chunk_names[k] = _write_chunk(self.work_dir, k, first, chunk, make, self.compression, self.locking)
        else:
            self._write_parallel(todo, make, chunk_names)
        self._join([chunk_names[k] for k in sorted(chunk_names)])
        return self.path

    def _pending_chunks(
        self, items: Iterator[Any], chunk_names: dict[int, list[str]]
    ) -> Iterator[tuple[int, int, list[Any]]]:
        k = 0
        while True:
            chunk = list(islice(items, self.chunk_size))
            if not chunk:
                return
            done = _finished_chunk(self.work_dir / _chunk_name(k), self.locking)
            if done is not None and len(done) == len(chunk):
                chunk_names[k] = done
            else:
                yield k, k * self.chunk_size, chunk
            k += 1

    def _write_parallel(
        self,
        todo: Iterator[tuple[int, int, list[Any]]],
        make: Callable[[Any], SampleResult],
        chunk_names: dict[int, list[str]],
    ) -> None:
        context = multiprocessing.get_context(self.start_method)
        with ProcessPoolExecutor(self.num_workers, mp_context=context) as pool:
            running: dict[Future[list[str]], int] = {}
            for k, first, chunk in todo:
                job = (self.work_dir, k, first, chunk, make, self.compression, self.locking)
                running[pool.submit(_write_chunk, *job)] = k
                if len(running) >= 2 * self.num_workers:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        chunk_names[running.pop(future)] = future.result()
            for future in list(running):
                chunk_names[running.pop(future)] = future.result()

    def _join(self, chunks: list[list[str]]) -> None:
        import h5py

        names = [name for chunk in chunks for name in chunk]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UserError("two samples share a group name", where=f"{self.path}, group {dup!r}")
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            with open_hdf5(tmp, "w", self.locking) as out:
                for k, chunk in enumerate(chunks):
                    if self.layout == "linked":
                        target = f"{self.parts_dir.name}/{_chunk_name(k)}"
                        for name in chunk:
                            out[name] = h5py.ExternalLink(target, name)
                        continue
                    with open_hdf5(self.work_dir / _chunk_name(k), "r", self.locking) as src:
                        for name in chunk:
                            src.copy(src[name], out, name=name)
            write_atomic(self.path.with_name(self.path.name + ".json"), json.dumps(names))
            if self.layout == "linked":
                shutil.rmtree(self.parts_dir, ignore_errors=True)
                (self.work_dir / "manifest.json").unlink()
                os.replace(self.work_dir, self.parts_dir)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.layout == "merged":
            shutil.rmtree(self.work_dir, ignore_errors=True)
