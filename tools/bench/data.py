"""Benchmark core.data against aiaccel's CachedDataset (PyPI) and plain reads, in one run.

    python tools/bench/data.py [--quick]

Figures (ratios measured in this run; see core/data/README.md):

- cache-hit throughput (samples/s, epoch 2, every read a hit) with 0 and 4 DataLoader workers, ours vs aiaccel's
  Manager-dict cache, and vs the uncached in-memory dataset;
- memory: extra proportional set size (PSS) of the main process and all its children (workers, aiaccel's Manager)
  after two epochs, over the same run with the uncached dataset, divided by the bytes of one copy of the data.
  PSS splits a shared page among the processes that map it, so one shared copy counts once (plain RSS would count
  it once per worker);
- epoch 2 / epoch 1 time for 10,000 small ``.npy`` files (page-cached, so it measures per-file overhead);
- random clip reads per second, 1,000 short mp4 clips in one HDF5 file vs 1,000 mp4 files in a folder, with and
  without decoding.

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
import sys
import tempfile
import time
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


class ImageDataset:
    """CIFAR-like samples made on the fly: {"image": 3x32x32 float32 tensor, "label": int64 tensor}."""

    def __init__(self, n: int, channels: int = 3) -> None:
        self.n = n
        self.channels = channels

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"image": torch.rand(self.channels, 32, 32, generator=g), "label": torch.tensor(i % 10)}


class NpyFolder:
    """One small .npy file per sample."""

    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.load(self.root / f"{i:05d}.npy"))


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


def run_epochs(ds: Any, workers: int, batch_size: int = 64) -> tuple[float, float, int]:
    """Two epochs; returns (epoch-1 seconds, epoch-2 seconds, PSS of the process tree at the end)."""
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        multiprocessing_context="fork" if workers else None,
    )
    times = []
    memory = 0
    for epoch in range(2):
        start = time.perf_counter()
        for _ in loader:
            pass
        times.append(time.perf_counter() - start)
        if epoch == 1:
            memory = tree_pss_bytes()
    del loader
    gc.collect()
    return times[0], times[1], memory


def make_aiaccel(ds: Any) -> Any:
    from aiaccel.torch.datasets import CachedDataset as AiaccelCachedDataset

    return AiaccelCachedDataset(ds)  # type: ignore[arg-type]


def bench_cache(n: int, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    data_bytes = n * (3 * 32 * 32 * 4 + 8)
    for workers in (0, 4):
        base_ds = ImageDataset(n)
        _, plain_t, plain_mem = run_epochs(base_ds, workers)
        ours = CachedDataset(ImageDataset(n))
        _, ours_t, ours_mem = run_epochs(ours, workers)
        ours.close()
        peer = make_aiaccel(ImageDataset(n))
        _, peer_t, peer_mem = run_epochs(peer, workers)
        peer.manager.shutdown()
        speedup = peer_t / ours_t
        results[f"cache_hit_samples_per_s_{workers}_workers"] = round(n / ours_t)
        results[f"aiaccel_cache_hit_samples_per_s_{workers}_workers"] = round(n / peer_t)
        results[f"plain_samples_per_s_{workers}_workers"] = round(n / plain_t)
        results[f"cache_hit_speedup_vs_aiaccel_{workers}_workers"] = round(speedup, 2)
        rows.append((f"cache hit, {workers} workers (samples/s)", f"{n / ours_t:,.0f}", f"{n / peer_t:,.0f}"))
        if workers == 4:
            ours_ratio = (ours_mem - plain_mem) / data_bytes
            peer_ratio = (peer_mem - plain_mem) / data_bytes
            results["cache_rss_ratio_4_workers"] = round(ours_ratio, 2)
            results["aiaccel_cache_rss_ratio_4_workers"] = round(peer_ratio, 2)
            results["cache_data_mib"] = round(data_bytes / 2**20, 1)
            rows.append(("extra memory / one copy, 4 workers", f"{ours_ratio:.2f}", f"{peer_ratio:.2f}"))


def bench_small_files(n: int, tmp: Path, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    root = tmp / "npy"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        np.save(root / f"{i:05d}.npy", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
    figures = {}
    for name, ds in (
        ("plain", NpyFolder(root, n)),
        ("ours", CachedDataset(NpyFolder(root, n))),
        ("ours_file", FileCachedDataset(NpyFolder(root, n), tmp / "file_cache", fingerprint="npy")),
        ("aiaccel", make_aiaccel(NpyFolder(root, n))),
    ):
        first, second, _ = run_epochs(ds, 2, batch_size=100)
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


def _clip(i: int) -> tuple[str, dict[str, Any]]:
    rng = np.random.default_rng(i)
    frames = np.repeat(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 8, axis=0)
    frames[:, :, :8] = np.arange(8, dtype=np.uint8)[:, None, None, None] * 30
    return f"clip{i:04d}", clip_sample(frames, fps=8.0)


def bench_video(n: int, reads: int, tmp: Path, results: dict[str, Any], rows: list[tuple[str, str, str]]) -> None:
    path = HDF5Writer(tmp / "clips.h5", num_workers=2, chunk_size=100).write(range(n), make_sample=_clip)
    folder = tmp / "mp4"
    folder.mkdir()
    store = VideoStore(path, locking=False)
    for i, name in enumerate(store.group_names):
        (folder / f"{name}.mp4").write_bytes(store.mp4(i))
    order = [random.Random(0).randrange(n) for _ in range(reads)]
    names = store.group_names

    def timed(fn: Any) -> float:
        start = time.perf_counter()
        for i in order:
            fn(i)
        return reads / (time.perf_counter() - start)

    store_fresh = VideoStore(path, locking=False)
    h5_decode = timed(lambda i: store_fresh.read(i))
    files_decode = timed(lambda i: decode_mp4((folder / f"{names[i]}.mp4").read_bytes()))
    h5_bytes = timed(lambda i: store_fresh.mp4(i))
    files_bytes = timed(lambda i: (folder / f"{names[i]}.mp4").read_bytes())
    results["video_hdf5_clips_per_s"] = round(h5_decode, 1)
    results["video_files_clips_per_s"] = round(files_decode, 1)
    results["video_hdf5_speedup_vs_files"] = round(h5_decode / files_decode, 2)
    results["video_bytes_hdf5_speedup_vs_files"] = round(h5_bytes / files_bytes, 2)
    results["video_clips"] = n
    rows.append((f"random clip reads + decode, {n} clips (clips/s)", f"{h5_decode:,.0f}", f"{files_decode:,.0f}"))
    rows.append(("random clip reads, bytes only (clips/s)", f"{h5_bytes:,.0f}", f"{files_bytes:,.0f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    parser.add_argument("--out", default=str(ROOT / "tools/bench/results/data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.1 if args.quick else 1.0
    results: dict[str, Any] = {}
    rows: list[tuple[str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="kh_bench_data_"))
    started = time.perf_counter()
    try:
        bench_cache(int(6000 * scale), results, rows)
        bench_small_files(int(10000 * scale), tmp, results, rows)
        bench_video(int(1000 * scale), int(500 * scale), tmp, results, rows)
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
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'ours':>12}  {'peer':>12}")
    for name, ours, peer in rows:
        print(f"{name:<{width}}  {ours:>12}  {peer:>12}")
    print("peer: aiaccel CachedDataset; for clip reads: mp4 files in a folder")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
