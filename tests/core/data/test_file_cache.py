from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from core.data import FileCachedDataset, dataset_fingerprint
from tests.core.data.helpers import NumpyDataset, loads_logged, require_user_namespaces

ROOT = Path(__file__).resolve().parents[3]


class Versioned(NumpyDataset):
    def fingerprint(self) -> str:
        return f"numbers-{self.tag}"


def test_later_run_reuses_the_cache(tmp_path: Path) -> None:
    log = tmp_path / "loads.log"
    first = FileCachedDataset(NumpyDataset(6, log), tmp_path / "cache")
    assert [int(first[i][0]) for i in range(6)] == list(range(6))
    assert first.cached_indices() == list(range(6))
    second = FileCachedDataset(NumpyDataset(6, log), tmp_path / "cache")  # a "later run": a new object
    for i in range(6):
        np.testing.assert_array_equal(second[i], np.full(16, i))
    # The default fingerprint itself reads samples 0, 3 and 5 once per object; no other read reaches the dataset.
    assert sorted(loads_logged(log)) == sorted([*range(6), 0, 3, 5, 0, 3, 5])
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_fingerprint_sources(tmp_path: Path) -> None:
    assert dataset_fingerprint(Versioned(4)) == "numbers-v1"
    assert dataset_fingerprint(NumpyDataset(4)) != dataset_fingerprint(NumpyDataset(5))
    assert dataset_fingerprint(NumpyDataset(4)) != dataset_fingerprint(NumpyDataset(4, size=3))
    assert dataset_fingerprint(NumpyDataset(4)) == dataset_fingerprint(NumpyDataset(4))
    a = FileCachedDataset(Versioned(4, tag="v1"), tmp_path)
    b = FileCachedDataset(Versioned(4, tag="v2"), tmp_path)
    c = FileCachedDataset(Versioned(4), tmp_path, fingerprint="my data/2024")
    assert len({a.directory, b.directory, c.directory}) == 3
    assert a.directory.name == "numbers-v1"


def test_corrupt_entry_is_a_miss_and_rewritten(tmp_path: Path) -> None:
    log = tmp_path / "loads.log"
    ds = FileCachedDataset(Versioned(3, log), tmp_path / "c")
    ds[1]
    path = ds.directory / "1.sample"
    path.write_bytes(path.read_bytes()[:-5])  # torn write
    np.testing.assert_array_equal(ds[1], np.full(16, 1))
    np.testing.assert_array_equal(FileCachedDataset(Versioned(3, log), tmp_path / "c")[1], np.full(16, 1))
    assert loads_logged(log) == [1, 1]


@pytest.mark.parametrize("start_method", ["fork"])
def test_workers_fill_concurrently(tmp_path: Path, start_method: str) -> None:
    log = tmp_path / "loads.log"
    ds = FileCachedDataset(Versioned(40, log), tmp_path / "c")
    loader = DataLoader(ds, batch_size=5, num_workers=2, multiprocessing_context=start_method, shuffle=True)
    for _ in range(2):
        got = sorted(int(v) for batch in loader for v in batch[:, 0])
        assert got == list(range(40))
    assert ds.cached_indices() == list(range(40))
    assert sorted(loads_logged(log)) == list(range(40))


def test_cap_evicts_other_fingerprints_then_stops(tmp_path: Path) -> None:
    root = tmp_path / "c"
    old = FileCachedDataset(Versioned(20, size=200, tag="old"), root)
    for i in range(20):
        old[i]
    one = (old.directory / "0.sample").stat().st_size
    new = FileCachedDataset(Versioned(20, size=200, tag="new"), root, max_bytes=12 * one)
    for i in range(20):
        np.testing.assert_array_equal(new[i], np.full(200, i))
    assert not old.directory.exists()  # the least recently used fingerprint went first
    cached = new.cached_indices()
    assert 8 <= len(cached) <= 12 and cached == list(range(len(cached)))  # then it stopped adding
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total <= 12 * one + 64
    new.clear()
    assert not new.directory.exists() and root.exists()


def test_clear_all(tmp_path: Path) -> None:
    ds = FileCachedDataset(Versioned(2), tmp_path / "c")
    ds[0]
    ds.clear(all_fingerprints=True)
    assert not (tmp_path / "c").exists()
    np.testing.assert_array_equal(ds[0], np.zeros(16))  # usable again after clear


def test_full_and_read_only_cache_dirs_fall_back(tmp_path: Path) -> None:
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    script = textwrap.dedent(
        f"""
        import warnings, numpy as np
        from core.data import FileCachedDataset
        from tests.core.data.helpers import NumpyDataset
        for where in ({str(full)!r}, {str(ro)!r}):
            ds = FileCachedDataset(NumpyDataset(30, size=4096), where)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(2):
                    for i in range(30):
                        assert (ds[i] == i).all()
            messages = [str(w.message) for w in caught]
            assert len(messages) == 1 and "training goes on" in messages[0], messages
            print(where, messages[0])
        """
    )
    require_user_namespaces()
    (tmp_path / "check.py").write_text(script)
    command = f"mount -t tmpfs -o size=64k tmpfs {full} && mount -t tmpfs -o ro tmpfs {ro} && {sys.executable} check.py"
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "No space left" in done.stdout and "Read-only" in done.stdout
