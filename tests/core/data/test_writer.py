from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.data import HDF5Writer, RawHDF5Dataset
from core.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def make(i: int) -> dict[str, object]:
    return {"x": np.full((3, 2), i, dtype=np.int32), "meta": {"name": f"n{i}", "blob": bytes([i % 256]) * 5}}


def named(i: int) -> tuple[str, dict[str, object]]:
    return f"item-{i:03d}", make(i)


def check(path: Path, n: int) -> None:
    ds = RawHDF5Dataset(path)
    assert len(ds) == n
    for i in (0, n // 2, n - 1):
        s = ds[i]
        assert (s["x"] == i).all() and s["x"].dtype == np.int32
        assert s["meta"]["name"] == f"n{i}".encode()
        assert s["meta"]["blob"].tobytes() == bytes([i % 256]) * 5


@pytest.mark.parametrize(("workers", "layout"), [(1, "merged"), (2, "merged"), (2, "linked")])
def test_write_and_read_back(tmp_path: Path, workers: int, layout: str) -> None:
    path = tmp_path / "out.h5"
    HDF5Writer(path, num_workers=workers, chunk_size=7, layout=layout).write(range(30), make_sample=make)  # type: ignore[arg-type]
    check(path, 30)
    assert not (tmp_path / "out.h5.partial").exists()
    assert (tmp_path / "out.h5.parts").exists() == (layout == "linked")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_custom_names_samples_directly_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.h5"
    HDF5Writer(path, num_workers=2, chunk_size=4).write(range(10), make_sample=named)
    assert RawHDF5Dataset(path).group_names == [f"item-{i:03d}" for i in range(10)]
    with pytest.raises(UserError, match="exists"):
        HDF5Writer(path).write([make(0)])
    HDF5Writer(path, overwrite=True).write([make(i) for i in range(3)])
    check(path, 3)
    with pytest.raises(UserError, match="share a group name"):
        HDF5Writer(tmp_path / "dup.h5", chunk_size=2).write([0, 1, 2], make_sample=lambda i: ("same", make(i)))


def test_killed_writer_leaves_no_file_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "big.h5"
    log = tmp_path / "calls.log"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        import numpy as np
        from core.data import HDF5Writer

        def make(i):
            fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"{{i}}\\n".encode())
            os.close(fd)
            time.sleep(float(sys.argv[1]))
            return {{"x": np.full(1000, i)}}

        HDF5Writer({str(path)!r}, chunk_size=5).write(range(40), make_sample=make)
        """
    )
    (tmp_path / "w.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "w.py"), "0.02"], env=env)
    partial = tmp_path / "big.h5.partial"
    deadline = time.monotonic() + 60
    while len(list(partial.glob("chunk-*.h5"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not path.exists()
    done_chunks = sorted(p.name for p in partial.glob("chunk-*.h5"))
    assert 3 <= len(done_chunks) < 8
    before = log.read_text().split()
    subprocess.run([sys.executable, str(tmp_path / "w.py"), "0"], env=env, check=True, timeout=120)
    rerun = [int(v) for v in log.read_text().split()[len(before) :]]
    first_redone = 5 * len(done_chunks)
    assert rerun == list(range(first_redone, 40))  # finished chunks are not recomputed
    ds = RawHDF5Dataset(path)
    assert len(ds) == 40
    assert all((ds[i]["x"] == i).all() for i in range(40))
    assert not partial.exists()


def test_torn_chunk_is_redone(tmp_path: Path) -> None:
    path = tmp_path / "o.h5"
    writer = HDF5Writer(path, chunk_size=4)
    writer.work_dir.mkdir()
    (writer.work_dir / "manifest.json").write_text('{"chunk_size": 4, "version": 1}')
    (writer.work_dir / "chunk-000001.h5").write_bytes(b"torn")
    writer.write(range(10), make_sample=make)
    check(path, 10)
    w = HDF5Writer(tmp_path / "p.h5", chunk_size=4)
    w.work_dir.mkdir()
    (w.work_dir / "manifest.json").write_text('{"chunk_size": 8, "version": 1}')
    with pytest.raises(UserError, match="chunk_size"):
        w.write(range(3), make_sample=make)
