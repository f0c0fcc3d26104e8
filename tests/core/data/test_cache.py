from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.data import CachedDataset
from tests.core.data.helpers import (
    CountingDataset,
    NumpyDataset,
    check_sample,
    loads_logged,
    require_user_namespaces,
    shm_segments,
)

ROOT = Path(__file__).resolve().parents[3]


def _identity(batch: list) -> list:  # keep samples unbatched so the nested structure can be checked
    return batch


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_share_one_cache(tmp_path: Path, start_method: str) -> None:
    log = tmp_path / "loads.log"
    ds = CachedDataset(CountingDataset(24, log))
    loader = DataLoader(
        ds,
        batch_size=4,
        num_workers=2,
        collate_fn=_identity,
        multiprocessing_context=start_method,
        shuffle=True,
        persistent_workers=start_method == "spawn",  # spawned workers import torch: start them once
    )
    for epoch in range(2):
        seen = sorted(i for batch in loader for i in [int(s["meta"]["id"]) for s in batch])
        assert seen == list(range(24)), epoch
    for i in range(24):  # the main process reads what the workers cached
        check_sample(ds[i], i)
    loads = loads_logged(log)
    # Each sample was loaded once by some worker (two workers may race for one index, never more).
    assert sorted(set(loads)) == list(range(24))
    assert len(loads) <= 24 + 2
    info = ds.info()
    assert info["cached"] == 24 and 0 < info["bytes"] <= info["max_bytes"]
    name = ds.segment_name
    assert name in shm_segments()
    ds.close()
    assert name not in shm_segments()


def test_hit_returns_independent_copies() -> None:
    ds = CachedDataset(CountingDataset(3))
    first = ds[1]
    first["x"][:] = -5
    again = ds[1]
    check_sample(again, 1)
    again["x"][:] = -7
    check_sample(ds[1], 1)
    with pytest.raises(IndexError):
        ds[3]
    check_sample(ds[-1], 2)
    ds.close()


def test_size_cap_serves_uncached_samples(tmp_path: Path) -> None:
    log = tmp_path / "loads.log"
    one = len(__import__("core.data.serialize", fromlist=["dumps"]).dumps(np.full(1000, 0, dtype=np.int64)))
    ds = CachedDataset(NumpyDataset(10, log, size=1000), max_bytes=3 * one + 200)
    for _ in range(2):
        for i in range(10):
            np.testing.assert_array_equal(ds[i], np.full(1000, i))
    info = ds.info()
    assert info["cached"] == 3
    assert info["bytes"] <= info["max_bytes"]
    loads = loads_logged(log)
    assert loads.count(0) == 1 and loads.count(9) == 2  # the first three are hits in epoch 2, the rest re-read
    ds.close()


def _fill(ds: CachedDataset, order: list[int]) -> None:
    for i in order:
        ds[i]


def test_two_processes_filling_the_same_indices(tmp_path: Path) -> None:
    import multiprocessing as mp

    ds = CachedDataset(CountingDataset(200, tmp_path / "loads.log"))
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_fill, args=(ds, list(range(200)) if k % 2 else list(range(199, -1, -1)))) for k in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    info = ds.info()
    assert info["cached"] == 200
    for i in range(200):
        check_sample(ds[i], i)
    # Each index holds exactly one blob: the space used equals one sample's worth per index.
    assert info["bytes"] <= 200 * max(len(__import__("pickle").dumps(ds.dataset[i])) + 1024 for i in (199,))
    ds.close()


def test_no_segment_left_after_normal_exit_or_kill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from core.data import CachedDataset
        from tests.core.data.helpers import NumpyDataset
        ds = CachedDataset(NumpyDataset(50))
        for i in range(50):
            ds[i]
        print(ds.segment_name, flush=True)
        if sys.argv[1] == "hang":
            time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = shm_segments()
    done = subprocess.run([sys.executable, "-c", script, "exit"], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() not in shm_segments()
    proc = subprocess.Popen([sys.executable, "-c", script, "hang"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    assert name in shm_segments()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while name in shm_segments() and time.monotonic() < deadline:  # the resource tracker cleans up
        time.sleep(0.1)
    assert name not in shm_segments()
    assert shm_segments() - before == set()


def test_garbage_collection_removes_segment() -> None:
    ds = CachedDataset(NumpyDataset(5))
    ds[0]
    name = ds.segment_name
    del ds
    gc.collect()
    assert name not in shm_segments()


def test_full_dev_shm_warns_and_goes_on(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import warnings, numpy as np
        from core.data import CachedDataset
        from tests.core.data.helpers import NumpyDataset
        ds = CachedDataset(NumpyDataset(40, size=8192), max_bytes=1 << 30)  # the cap is far above the 256 KiB
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                for i in range(40):
                    assert (ds[i] == i).all()
        info = ds.info()
        assert 0 < info["cached"] < 40, info
        assert any("full" in str(w.message) for w in caught), [str(w.message) for w in caught]
        print("ok", info["cached"])
        """
    )
    (tmp_path / "check.py").write_text(script)
    command = f"mount -t tmpfs -o size=256k tmpfs /dev/shm && {sys.executable} check.py"
    require_user_namespaces()
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_tensor_batches_through_default_collate() -> None:
    ds = CachedDataset(NumpyDataset(8))
    for _ in range(2):
        batches = list(DataLoader(ds, batch_size=4, num_workers=0))
        assert torch.equal(batches[1][:, 0], torch.tensor([4, 5, 6, 7]))
    ds.close()


class _Images:
    """Fixed-layout samples (one layout for every index), as most image data sets are."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {
            "image": torch.full((3, 4, 4), float(i)),
            "label": np.int64(i % 10),
            "extra": [np.arange(2, dtype=np.float32) + i, torch.tensor(i)],
        }


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_hits_equal_default_collate(workers: int) -> None:
    ds = CachedDataset(_Images(40))
    loader = DataLoader(
        ds,
        batch_size=8,
        shuffle=True,
        num_workers=workers,
        collate_fn=CachedDataset.collate,
        multiprocessing_context="fork" if workers else None,
        generator=torch.Generator().manual_seed(0),
    )
    reference = _Images(40)
    for _epoch in range(2):  # epoch 0 fills the cache (per-item path), epoch 1 is all gathered hits
        for batch in loader:
            ids = batch["image"][:, 0, 0, 0].long().tolist()
            expected = torch.utils.data.default_collate([reference[i] for i in ids])
            torch.testing.assert_close(batch, expected)
            assert batch["label"].dtype == torch.int64 and batch["extra"][0].dtype == torch.float32
        assert sorted(ds.info().values())  # the cache stays readable
    gathered = ds.__getitems__([5, 3, -1])
    assert type(gathered).__name__ == "GatheredBatch"
    # any collate_fn sees plain samples
    torch.testing.assert_close(
        torch.utils.data.default_collate(gathered), torch.utils.data.default_collate([reference[i] for i in (5, 3, 39)])
    )
    gathered.collated["image"] += 100  # a returned batch is a copy: the cache is unchanged
    assert float(ds[5]["image"][0, 0, 0]) == 5.0
    ds.close()


def test_batch_with_misses_or_mixed_layouts_falls_back_to_items() -> None:
    ds = CachedDataset(_Images(10))
    ds[0]
    batch = ds.__getitems__([0, 1])  # index 1 is a miss: per-item path, which caches it
    assert type(batch) is list and len(batch) == 2 and ds.info()["cached"] == 2
    assert type(ds.__getitems__([0, 1])).__name__ == "GatheredBatch"
    ds.close()
    bare = CachedDataset(NumpyDataset(6))  # a bare array per sample, one shape: gathered
    mixed = CachedDataset(CountingDataset(6))  # arrays of different lengths and strings: per item
    for cache in (bare, mixed):
        for i in range(6):
            cache[i]
    assert type(mixed.__getitems__([0, 1, 2])) is list
    batch = bare.__getitems__([4, 2])
    assert type(batch).__name__ == "GatheredBatch"
    np.testing.assert_array_equal(np.stack(batch), np.stack([np.full(16, 4), np.full(16, 2)]))
    with pytest.raises(IndexError):
        bare.__getitems__([0, 6])
    bare.close()
    mixed.close()


def test_a_batch_of_hits_leaves_a_worker_as_slot_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = CachedDataset(_Images(40))
    reference = _Images(40)
    for i in range(40):
        ds[i]
    ids = [5, 3, 39, 0]
    expected = torch.utils.data.default_collate([reference[i] for i in ids])
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())  # as inside a DataLoader worker
    sent = pickle.dumps(CachedDataset.collate(ds.__getitems__(ids)))
    monkeypatch.undo()
    assert len(sent) < expected["image"].numel() * 4  # not the batch's bytes: the receiver copies the rows
    torch.testing.assert_close(pickle.loads(sent), expected)  # received by the process that holds the cache
    ds.close()
    with pytest.raises(RuntimeError, match="without that CachedDataset open"):
        pickle.loads(sent)
