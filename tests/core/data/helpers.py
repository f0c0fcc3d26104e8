"""Datasets for the core.data tests, importable by spawned DataLoader workers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


class CountingDataset:
    """Sample ``i`` is a nested dict of a tensor and arrays; every load appends ``i`` to a log file."""

    def __init__(self, n: int, log: Path | None = None, size: int = 64) -> None:
        self.n = n
        self.log = log
        self.size = size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if self.log is not None:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"{i}\n".encode())
            os.close(fd)
        return {
            "x": torch.full((self.size,), float(i)),
            "meta": {"id": np.int64(i), "rows": np.arange(i % 7 + 1), "name": f"s{i}"},
            "pair": (torch.tensor([i, -i]), i * 0.5),
        }


class NumpyDataset:
    """Sample ``i`` is ``np.full(size, i)``; loads are logged like :class:`CountingDataset`."""

    def __init__(self, n: int, log: Path | None = None, size: int = 16, tag: str = "v1") -> None:
        self.n = n
        self.log = log
        self.size = size
        self.tag = tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray[Any, Any]:
        if self.log is not None:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"{i}\n".encode())
            os.close(fd)
        return np.full(self.size, i, dtype=np.int64)


def loads_logged(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def shm_segments(prefix: str = "kh_cache_") -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith(prefix)}


def check_sample(sample: dict[str, Any], i: int) -> None:
    """Assert that a (possibly collated-free) sample from CountingDataset is sample ``i``."""
    import torch

    assert torch.equal(sample["x"], torch.full_like(sample["x"], float(i)))
    assert int(sample["meta"]["id"]) == i
    assert list(np.asarray(sample["meta"]["rows"])) == list(range(i % 7 + 1))
    assert sample["meta"]["name"] == f"s{i}"
    assert torch.equal(sample["pair"][0], torch.tensor([i, -i]))
    assert sample["pair"][1] == i * 0.5


def require_user_namespaces() -> None:
    """Skip where ``unshare -Urm`` (to mount a tiny tmpfs) cannot run; under CI=true fail instead of skipping."""
    import pytest

    works = shutil.which("unshare") is not None and (
        subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode == 0
    )
    if works:
        return
    message = "needs unshare -Urm (user namespaces) to mount a small file system"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must allow user namespaces", pytrace=False)
    pytest.skip(message)
