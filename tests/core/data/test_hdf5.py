from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from core.data import HDF5Dataset, RawHDF5Dataset
from core.errors import UserError


def make_file(path: Path, n: int = 12, ragged: bool = True) -> Path:
    with h5py.File(path, "w") as f:
        for i in range(n):
            g = f.create_group(f"{i:08d}")
            g.create_dataset("x", data=np.full((4, 3), i, dtype=np.float32))
            g.create_dataset("label", data=np.int64(i))
            g.create_group("extra").create_dataset("y", data=np.arange(i + 1 if ragged else 2))
    return path


def test_reads_groups_in_order_with_nested_and_scalar_datasets(tmp_path: Path) -> None:
    ds = RawHDF5Dataset(make_file(tmp_path / "d.h5"), locking=False)
    assert len(ds) == 12
    s = ds[5]
    assert s["x"].shape == (4, 3) and (s["x"] == 5).all()
    assert int(s["label"]) == 5
    assert s["extra"]["y"].tolist() == list(range(6))
    ds.close()  # HDF5 refuses a second open of one file with another locking setting
    t = HDF5Dataset(tmp_path / "d.h5")[3]
    assert isinstance(t["x"], torch.Tensor) and t["x"].dtype == torch.float32 and int(t["label"]) == 3


def test_group_list_from_json_index_or_argument(tmp_path: Path) -> None:
    path = make_file(tmp_path / "d.h5")
    (tmp_path / "d.h5.json").write_text(json.dumps(["00000007", "00000002"]))
    assert [int(RawHDF5Dataset(path)[i]["label"]) for i in range(2)] == [7, 2]
    assert int(RawHDF5Dataset(path, groups=["00000004"])[0]["label"]) == 4
    other = tmp_path / "subset.json"
    other.write_text(json.dumps(["00000009"]))
    assert int(RawHDF5Dataset(path, groups=other)[0]["label"]) == 9


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_open_their_own_handle(tmp_path: Path, start_method: str) -> None:
    ds = HDF5Dataset(make_file(tmp_path / "d.h5", n=40, ragged=False))
    assert int(ds[0]["label"]) == 0  # the parent holds an open handle before the workers start
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=start_method)
    batches = list(loader)
    assert torch.cat([b["label"] for b in batches]).tolist() == list(range(40))
    assert torch.equal(batches[0]["x"][2], torch.full((4, 3), 2.0))


def test_truncated_file_names_the_file_and_sample(tmp_path: Path) -> None:
    path = make_file(tmp_path / "d.h5", n=200)
    ds = RawHDF5Dataset(path, groups=[f"{i:08d}" for i in range(200)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as err:
        ds[150]
    assert "d.h5" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"d\.h5"):
        RawHDF5Dataset(path)[0]  # listing the groups fails the same way


def test_garbage_file_and_missing_group(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(UserError, match=r"junk\.h5"):
        len(RawHDF5Dataset(junk))
    path = make_file(tmp_path / "d.h5", n=3)
    ds = RawHDF5Dataset(path, groups=["00000000", "00000099"])
    with pytest.raises(UserError) as err:
        ds[1]
    assert "sample 1" in str(err.value) and "00000099" in str(err.value) and "d.h5" in str(err.value)
    with pytest.raises(UserError, match="not found"):
        len(RawHDF5Dataset(tmp_path / "missing.h5"))
