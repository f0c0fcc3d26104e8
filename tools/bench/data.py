"""Benchmark core.data: cache hits against plain in-memory data and aiaccel, and the seed's data claims.

    python tools/bench/data.py [--quick] [--stage-mb 1024] [--repeats 5]

Every comparison is measured in one run, interleaved (A, B, A, B, ... with the order rotated each repeat), and
reported as the median of ``--repeats`` (default 5) repeats. Figures (see core/data/README.md):

- **Cache hits** (3x64x64 float32 image + int64 label, batch 64, every read a hit) with 0 and 4 DataLoader
  workers: ``CachedDataset`` (with ``collate_fn=CachedDataset.collate``) against a plain in-memory dataset over
  preallocated tensors that returns slices (the usual ``DataLoader`` path: per-item slices, ``default_collate``),
  against the same tensors gathered a whole batch at a time (one fancy index, the memcpy limit), and against
  aiaccel's ``CachedDataset``. Each timing covers ``--hit-epochs`` epochs (default 3); the CPU time of the
  process tree per sample (main process and workers, from ``/proc``) is recorded for ours and the slices too.
- **Memory**: extra proportional set size (PSS) of the process tree after two epochs with 4 workers, over the
  uncached run, per copy of the data (one shared copy = 1).
- **Time to the first training batch**, cache vs staging: a data set of small ``.npy`` files (``--stage-mb`` in
  all, 48 KiB each; pages dropped before each try) read through a ``CachedDataset`` straight away, against copying
  it to another local folder first and training from the copy. The clock starts at "job start" (nothing
  open) and stops when the first batch of 64 is in hand (2 workers).
- **Files opened and bytes read per epoch**, 1,000 short mp4 clips in one HDF5 file vs 1,000 mp4 files, counted
  with ``strace`` (``open``/``openat`` of the data) and ``/proc/<pid>/io`` (``rchar``) in a child process.
- **In-memory decode vs write-to-tmpfs-then-decode**: PyAV on the clip's bytes in memory (``decode_mp4``) against
  writing the bytes to a file in ``/dev/shm`` and opening it by path (what decoders that need a file name do).
- **Cold reads**: random clip reads (with and without decoding) after dropping the page cache of the data with
  ``posix_fadvise(POSIX_FADV_DONTNEED)`` before each epoch, one HDF5 file vs many small mp4 files.
- epoch 2 / epoch 1 for 10,000 small ``.npy`` files (page-cached, per-file overhead).

Writes tools/bench/results/data.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.data import CachedDataset, FileCachedDataset, HDF5Writer, VideoStore, clip_sample  # noqa: E402
from core.data.video import decode_mp4  # noqa: E402
from core.files import write_atomic  # noqa: E402

SHAPE = (3, 64, 64)


class ImageDataset:
    """Samples made on the fly: {"image": float32 tensor of ``shape``, "label": int64 tensor}."""

    def __init__(self, n: int, shape: tuple[int, ...] = SHAPE) -> None:
        self.n = n
        self.shape = shape

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"image": torch.rand(*self.shape, generator=g), "label": torch.tensor(i % 10)}


class MemoryDataset:
    """Plain in-memory data: preallocated tensors, ``ds[i]`` returns slices."""

    def __init__(self, n: int, shape: tuple[int, ...] = SHAPE) -> None:
        self.images = torch.rand(n, *shape)
        self.labels = torch.arange(n) % 10

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "label": self.labels[i]}


class GatherDataset(MemoryDataset):
    """The same tensors, a whole batch gathered with one fancy index per field (the memcpy limit)."""

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        index = torch.as_tensor(indices)
        return [{"image": self.images[index], "label": self.labels[index]}]


def _first(batch: list[Any]) -> Any:
    return batch[0]


class NpyFolder:
    """One small .npy file per sample."""

    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.load(self.root / f"{i:06d}.npy"))


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Run each function once per repeat, in a rotated order; the median of what each returned."""
    names = list(fns)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seen[name].append(fns[name]())
    return {name: statistics.median(values) for name, values in seen.items()}


def drop_pages(paths: list[Path]) -> None:
    """Evict the files' pages from the page cache (clean pages only: the files were synced when written)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def loader(ds: Any, workers: int, batch_size: int = 64, **kwargs: Any) -> DataLoader[Any]:
    return DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        multiprocessing_context="fork" if workers else None,
        **kwargs,
    )


def epoch_rate(dl: DataLoader[Any], n: int, epochs: int = 1, cpu: list[float] | None = None) -> Callable[[], float]:
    """A timing of ``epochs`` epochs: samples per second; with ``cpu``, also appends the CPU time the process tree
    (this process and its workers) spent per sample, in microseconds."""

    def run() -> float:
        used = tree_cpu_seconds()
        start = time.perf_counter()
        for _ in range(epochs):
            for _ in dl:
                pass
        rate = epochs * n / (time.perf_counter() - start)
        if cpu is not None:
            cpu.append((tree_cpu_seconds() - used) / (epochs * n) * 1e6)
        return rate

    return run


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live descendants (DataLoader workers), from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [os.getpid(), *descendants(os.getpid())]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def make_aiaccel(ds: Any) -> Any:
    from aiaccel.torch.datasets import CachedDataset as AiaccelCachedDataset  # type: ignore[import-untyped]

    return AiaccelCachedDataset(ds)


def bench_cache_hits(
    n: int, repeats: int, epochs: int, results: dict[str, Any], rows: list[tuple[str, str, str]]
) -> None:
    """Each timing covers ``epochs`` epochs: with workers a single epoch of 4,000 samples lasts a fraction of a
    second, and on a shared machine one scheduling hiccup then moves a ratio by 20 %."""
    memory, gather = MemoryDataset(n), GatherDataset(n)
    ours = CachedDataset(ImageDataset(n))
    peer = make_aiaccel(ImageDataset(n))
    for workers in (0, 4):
        loaders = {
            "memory": loader(memory, workers, shuffle=True),
            "gather": loader(gather, workers, shuffle=True, collate_fn=_first),
            "ours": loader(ours, workers, shuffle=True, collate_fn=CachedDataset.collate),
            "aiaccel": loader(peer, workers, shuffle=True),
        }
        for dl in loaders.values():  # warm-up: fills both caches, starts the workers
            for _ in dl:
                pass
        cpu: dict[str, list[float]] = {"ours": [], "memory": []}
        rates = interleaved({name: epoch_rate(dl, n, epochs, cpu.get(name)) for name, dl in loaders.items()}, repeats)
        del loaders
        gc.collect()
        w = f"{workers}_workers"
        results[f"cache_hit_cpu_us_per_sample_{w}"] = round(statistics.median(cpu["ours"]), 1)
        results[f"memory_cpu_us_per_sample_{w}"] = round(statistics.median(cpu["memory"]), 1)
        results[f"cache_hit_samples_per_s_{w}"] = round(rates["ours"])
        results[f"memory_samples_per_s_{w}"] = round(rates["memory"])
        results[f"memory_gather_samples_per_s_{w}"] = round(rates["gather"])
        results[f"aiaccel_cache_hit_samples_per_s_{w}"] = round(rates["aiaccel"])
        results[f"cache_hit_over_memory_{w}"] = round(rates["ours"] / rates["memory"], 3)
        results[f"cache_hit_over_memory_gather_{w}"] = round(rates["ours"] / rates["gather"], 3)
        results[f"cache_hit_speedup_vs_aiaccel_{w}"] = round(rates["ours"] / rates["aiaccel"], 2)
        rows.append((f"cache hit, {workers} workers (samples/s)", f"{rates['ours']:,.0f}", f"{rates['aiaccel']:,.0f}"))
        rows.append(("  in-memory slices; batch gather", f"{rates['memory']:,.0f}", f"{rates['gather']:,.0f}"))
    results["cache_sample"] = "3x64x64 float32 + int64, batch 64"
    results["cache_samples"] = n
    results["cache_epochs_per_timing"] = epochs
    ours.close()
    peer.manager.shutdown()


def bench_aiaccel_small(n: int, repeats: int, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    """Cache hits against aiaccel at the seed benchmark's sample size (3x32x32), 0 workers, where per-item
    overhead rather than the copy decides."""
    shape = (3, 32, 32)
    ours = CachedDataset(ImageDataset(n, shape))
    peer = make_aiaccel(ImageDataset(n, shape))
    loaders = {
        "ours": loader(ours, 0, shuffle=True, collate_fn=CachedDataset.collate),
        "aiaccel": loader(peer, 0, shuffle=True),
        "memory": loader(MemoryDataset(n, shape), 0, shuffle=True),
    }
    for dl in loaders.values():
        for _ in dl:
            pass
    rates = interleaved({name: epoch_rate(dl, n) for name, dl in loaders.items()}, repeats)
    results["cache_hit_speedup_vs_aiaccel_0_workers_3x32x32"] = round(rates["ours"] / rates["aiaccel"], 2)
    results["cache_hit_over_memory_0_workers_3x32x32"] = round(rates["ours"] / rates["memory"], 3)
    rows.append(("cache hit, 0 workers, 3x32x32 (samples/s)", f"{rates['ours']:,.0f}", f"{rates['aiaccel']:,.0f}"))
    del loaders
    ours.close()
    peer.manager.shutdown()


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            out += [child, *descendants(child)]
    return out


def tree_pss_bytes() -> int:
    me = os.getpid()
    return 1024 * sum(pss_kib(p) for p in [me, *descendants(me)])


def two_epochs(ds: Any, workers: int, batch_size: int = 64, **kwargs: Any) -> tuple[float, float, int]:
    """Two epochs; returns (epoch-1 seconds, epoch-2 seconds, PSS of the process tree at the end)."""
    dl = loader(ds, workers, batch_size, **kwargs)
    times = []
    memory = 0
    for epoch in range(2):
        start = time.perf_counter()
        for _ in dl:
            pass
        times.append(time.perf_counter() - start)
        if epoch == 1:
            memory = tree_pss_bytes()
    del dl
    gc.collect()
    return times[0], times[1], memory


def bench_memory(n: int, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    shape = (3, 32, 32)
    data_bytes = n * (4 * int(np.prod(shape)) + 8)
    _, _, plain = two_epochs(ImageDataset(n, shape), 4)
    ours = CachedDataset(ImageDataset(n, shape))
    _, _, ours_mem = two_epochs(ours, 4, collate_fn=CachedDataset.collate)
    ours.close()
    peer = make_aiaccel(ImageDataset(n, shape))
    _, _, peer_mem = two_epochs(peer, 4)
    peer.manager.shutdown()
    results["cache_rss_ratio_4_workers"] = round((ours_mem - plain) / data_bytes, 2)
    results["aiaccel_cache_rss_ratio_4_workers"] = round((peer_mem - plain) / data_bytes, 2)
    results["cache_data_mib"] = round(data_bytes / 2**20, 1)
    rows.append(
        (
            "extra memory / one copy, 4 workers",
            f"{results['cache_rss_ratio_4_workers']:.2f}",
            f"{results['aiaccel_cache_rss_ratio_4_workers']:.2f}",
        )
    )


def write_npy_files(root: Path, n: int, shape: tuple[int, ...]) -> list[Path]:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = root / f"{i:06d}.npy"
        np.save(path, rng.random(shape, dtype=np.float32))
        paths.append(path)
    os.sync()
    return paths


def bench_first_batch(
    stage_mb: int, repeats: int, tmp: Path, results: dict[str, Any], rows: list[tuple[str, str, str]]
) -> None:
    per_file = 4 * int(np.prod(SHAPE)) + 128
    n = max(256, stage_mb * 2**20 // per_file)
    source = tmp / "source"
    paths = write_npy_files(source, n, SHAPE)

    def staging() -> float:
        drop_pages(paths)
        target = tmp / "staged"
        start = time.perf_counter()
        shutil.copytree(source, target)
        dl = loader(NpyFolder(target, n), 2, shuffle=True)
        next(iter(dl))
        elapsed = time.perf_counter() - start
        del dl
        shutil.rmtree(target)
        os.sync()
        return elapsed

    def cache() -> float:
        drop_pages(paths)
        start = time.perf_counter()
        ds = CachedDataset(NpyFolder(source, n))
        dl = loader(ds, 2, shuffle=True, collate_fn=CachedDataset.collate)
        next(iter(dl))
        elapsed = time.perf_counter() - start
        del dl
        ds.close()
        return elapsed

    seconds = interleaved({"staging": staging, "cache": cache}, repeats)
    results["first_batch_seconds_cache"] = round(seconds["cache"], 3)
    results["first_batch_seconds_staging"] = round(seconds["staging"], 3)
    results["first_batch_ratio_vs_staging"] = round(seconds["cache"] / seconds["staging"], 4)
    results["staging_data_mib"] = round(n * per_file / 2**20)
    results["staging_files"] = n
    rows.append(
        (
            f"job start to first batch, {n:,} files, {n * per_file / 2**20:,.0f} MiB (s)",
            f"{seconds['cache']:.2f}",
            f"staging {seconds['staging']:.2f}",
        )
    )
    shutil.rmtree(source)


def bench_small_files(n: int, tmp: Path, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    root = tmp / "npy"
    write_npy_files(root, n, (3, 32, 32))
    figures = {}
    for name, ds in (
        ("plain", NpyFolder(root, n)),
        ("ours", CachedDataset(NpyFolder(root, n))),
        ("ours_file", FileCachedDataset(NpyFolder(root, n), tmp / "file_cache", fingerprint="npy")),
        ("aiaccel", make_aiaccel(NpyFolder(root, n))),
    ):
        first, second, _ = two_epochs(ds, 2, batch_size=100)
        figures[name] = second / first
        if isinstance(ds, CachedDataset):
            ds.close()
        elif hasattr(ds, "manager"):
            ds.manager.shutdown()
    results["epoch2_over_epoch1_10k_files"] = round(figures["ours"], 3)
    results["file_cache_epoch2_over_epoch1_10k_files"] = round(figures["ours_file"], 3)
    results["aiaccel_epoch2_over_epoch1_10k_files"] = round(figures["aiaccel"], 3)
    results["plain_epoch2_over_epoch1_10k_files"] = round(figures["plain"], 3)
    rows.append((f"epoch 2 / epoch 1, {n:,} files, 2 workers", f"{figures['ours']:.3f}", f"{figures['aiaccel']:.3f}"))
    rows.append(("  (plain files; our disk cache)", f"{figures['plain']:.3f}", f"{figures['ours_file']:.3f}"))
    shutil.rmtree(root)


def _clip(i: int) -> tuple[str, dict[str, Any]]:
    rng = np.random.default_rng(i)
    frames = np.repeat(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 8, axis=0)
    frames[:, :, :8] = np.arange(8, dtype=np.uint8)[:, None, None, None] * 30
    return f"clip{i:04d}", clip_sample(frames, fps=8.0)


def decode_via_tmpfs(data: bytes) -> np.ndarray[Any, Any]:
    """What decoders that need a file name cost: write the bytes to /dev/shm, open by path, decode, remove."""
    import av

    fd, name = tempfile.mkstemp(suffix=".mp4", dir="/dev/shm")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with av.open(name, "r") as container:
            stream = container.streams.video[0]
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    finally:
        os.unlink(name)
    return np.stack(frames)


_EPOCH_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from core.data import VideoStore
    from core.data.video import decode_mp4

    def rchar():
        return int(next(l for l in open("/proc/self/io") if l.startswith("rchar")).split()[1])

    kind, where, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = [f"clip{{i:04d}}" for i in range(n)]
    before = rchar()
    if kind == "hdf5":
        store = VideoStore(where, locking=False)
        for i in range(n):
            decode_mp4(store.mp4(i))
    else:
        for name in names:
            decode_mp4((Path(where) / f"{{name}}.mp4").read_bytes())
    print(rchar() - before)
    """
)


def count_epoch_io(kind: str, where: Path, n: int, tmp: Path) -> tuple[int, int]:
    """(files of the data set opened, bytes read through read calls) in one epoch, in a child process."""
    script = tmp / "epoch.py"
    script.write_text(_EPOCH_SCRIPT.format(root=str(ROOT)))
    trace = tmp / f"trace_{kind}.txt"
    command = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(trace), sys.executable, str(script)]
    done = subprocess.run(
        [*command, kind, str(where), str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = str(where)
    opened = sum(1 for line in trace.read_text().splitlines() if data in line and "= -1" not in line)
    return opened, int(done.stdout.split()[-1])


def bench_video(
    n: int, reads: int, repeats: int, tmp: Path, results: dict[str, Any], rows: list[tuple[str, str, str]]
) -> None:
    path = HDF5Writer(tmp / "clips.h5", num_workers=2, chunk_size=100).write(range(n), make_sample=_clip)
    folder = tmp / "mp4"
    folder.mkdir()
    store = VideoStore(path, locking=False)
    names = store.group_names
    files = [folder / f"{name}.mp4" for name in names]
    for i, file in enumerate(files):
        file.write_bytes(store.mp4(i))
    os.sync()

    # files opened and bytes read in one epoch (every clip once, decoded)
    if shutil.which("strace"):
        h5_open, h5_bytes = count_epoch_io("hdf5", path, n, tmp)
        f_open, f_bytes = count_epoch_io("files", folder, n, tmp)
        results.update(
            {
                "files_opened_per_epoch_hdf5": h5_open,
                "files_opened_per_epoch_files": f_open,
                "bytes_read_per_epoch_hdf5": h5_bytes,
                "bytes_read_per_epoch_files": f_bytes,
            }
        )
        rows.append((f"files opened per epoch, {n} clips", f"HDF5 {h5_open}", f"files {f_open}"))
        rows.append(("bytes read per epoch (rchar)", f"{h5_bytes:,}", f"{f_bytes:,}"))

    # in-memory decode against writing the bytes to tmpfs and decoding the file
    blobs = [store.mp4(i) for i in range(min(n, 200))]

    def in_memory() -> float:
        start = time.perf_counter()
        for blob in blobs:
            decode_mp4(blob)
        return len(blobs) / (time.perf_counter() - start)

    def via_tmpfs() -> float:
        start = time.perf_counter()
        for blob in blobs:
            decode_via_tmpfs(blob)
        return len(blobs) / (time.perf_counter() - start)

    decode = interleaved({"memory": in_memory, "tmpfs": via_tmpfs}, repeats)
    results["video_decode_clips_per_s_in_memory"] = round(decode["memory"], 1)
    results["video_decode_clips_per_s_tmpfs"] = round(decode["tmpfs"], 1)
    results["video_decode_speedup_vs_tmpfs"] = round(decode["memory"] / decode["tmpfs"], 3)
    rows.append(
        ("decode in memory vs via a tmpfs file (clips/s)", f"{decode['memory']:,.0f}", f"{decode['tmpfs']:,.0f}")
    )

    # cold random reads: page cache of the data dropped before each epoch
    order = [random.Random(0).randrange(n) for _ in range(reads)]

    def cold(read: Callable[[int], Any], drop: list[Path]) -> Callable[[], float]:
        def run() -> float:
            drop_pages(drop)
            start = time.perf_counter()
            for i in order:
                read(i)
            return reads / (time.perf_counter() - start)

        return run

    def h5_read(decode_it: bool) -> Callable[[int], Any]:
        def read(i: int) -> Any:
            blob = VideoStore.mp4(fresh, i)
            return decode_mp4(blob) if decode_it else blob

        return read

    fresh = VideoStore(path, locking=False)
    rates = interleaved(
        {
            "h5": cold(h5_read(True), [path]),
            "files": cold(lambda i: decode_mp4(files[i].read_bytes()), files),
            "h5_bytes": cold(h5_read(False), [path]),
            "files_bytes": cold(lambda i: files[i].read_bytes(), files),
        },
        repeats,
    )
    results["video_cold_clips_per_s_hdf5"] = round(rates["h5"], 1)
    results["video_cold_clips_per_s_files"] = round(rates["files"], 1)
    results["video_cold_speedup_vs_files"] = round(rates["h5"] / rates["files"], 3)
    results["video_cold_bytes_speedup_vs_files"] = round(rates["h5_bytes"] / rates["files_bytes"], 3)
    results["video_clips"] = n
    results["video_clip"] = "8 frames 64x64, libx264"
    rows.append((f"cold random reads + decode, {n} clips (clips/s)", f"{rates['h5']:,.0f}", f"{rates['files']:,.0f}"))
    rows.append(
        ("cold random reads, bytes only (clips/s)", f"{rates['h5_bytes']:,.0f}", f"{rates['files_bytes']:,.0f}")
    )
    fresh.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per comparison (median)")
    parser.add_argument("--hit-epochs", type=int, default=3, help="epochs per timing of the cache-hit comparison")
    parser.add_argument("--stage-mb", type=int, default=1024, help="size of the small-file data set to stage")
    parser.add_argument(
        "--only", default="", help="comma-separated parts to rerun: hits,hits32,memory,first_batch,files,video"
    )
    parser.add_argument("--out", default=str(ROOT / "tools/bench/results/data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.1 if args.quick else 1.0
    parts = set(args.only.split(",")) if args.only else {"hits", "hits32", "memory", "first_batch", "files", "video"}
    out = Path(args.out)
    results: dict[str, Any] = json.loads(out.read_text()) if args.only and out.exists() else {}
    rows: list[tuple[str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="kh_bench_data_", dir=os.environ.get("KH_BENCH_TMP")))
    started = time.perf_counter()
    try:
        if "hits" in parts:
            bench_cache_hits(int(4000 * scale), args.repeats, args.hit_epochs, results, rows)
        if "hits32" in parts:
            bench_aiaccel_small(int(6000 * scale), args.repeats, results, rows)
        if "memory" in parts:
            bench_memory(int(6000 * scale), results, rows)
        if "first_batch" in parts:
            bench_first_batch(int(args.stage_mb * scale), args.repeats, tmp, results, rows)
        if "files" in parts:
            bench_small_files(int(10000 * scale), tmp, results, rows)
        if "video" in parts:
            bench_video(int(1000 * scale), int(500 * scale), args.repeats, tmp, results, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results.update(
        {
            "aiaccel_version": version("aiaccel"),
            "torch_version": torch.__version__,
            "h5py_version": version("h5py"),
            "av_version": version("av"),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "quick": args.quick,
        }
    )
    # a full run labels the whole file; a rerun of some parts labels those parts (the others keep their run's)
    run = {"load_average_1min": round(os.getloadavg()[0], 1), "repeats": args.repeats}
    if args.only:
        results.update({f"{key}_{part}": value for key, value in run.items() for part in sorted(parts)})
    else:
        results.update(run | {"seconds": round(time.perf_counter() - started, 1)})
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'ours':>14}  {'peer':>14}")
    for name, ours, peer in rows:
        print(f"{name:<{width}}  {ours:>14}  {peer:>14}")
    print("peer: aiaccel CachedDataset; for video: mp4 files in a folder; for the first batch: staging to local disk")
    write_atomic(out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
