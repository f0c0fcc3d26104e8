"""In-RAM sample cache shared by every DataLoader worker of a run, in one shared-memory segment.

:class:`CachedDataset` wraps any map-style dataset. The first time any process (the main process or any
DataLoader worker) reads index ``i``, it serializes the sample (:mod:`core.data.serialize`) into a shared-memory
arena and records ``(state, offset, length)`` for ``i`` in a table at the head of the same segment. Every later
read of ``i``, by any process, is a table lookup plus one ``memcpy``: no Manager process, no socket, no pickling
of array data. There is one copy of the data however many workers there are.

How it stays correct:

- **Fork and spawn.** The segment is created (empty; tmpfs commits no memory until written) when the wrapper is
  built. Forked workers inherit the mapping; spawned workers receive the segment's name when the dataset is
  pickled and attach to it on their first read.
- **Two workers filling the same index.** Space is claimed under an ``flock`` on the segment's file, each process
  on its own file descriptor (a descriptor inherited across fork would share the lock). Whoever finds the slot
  empty claims it and marks it *writing*; the other keeps its freshly loaded sample and moves on. The writer
  copies its bytes outside the lock and publishes the slot as *ready* last, so a reader never sees half a sample.
- **Size cap.** ``max_bytes`` bounds the arena. Space is committed with ``posix_fallocate`` before it is written,
  so a full ``/dev/shm`` means "stop caching" (with one warning), never a ``SIGBUS`` that kills a worker. When the
  cap is reached, new samples are served uncached; nothing is evicted (in epoch-order access every eviction policy
  turns into a miss per read, while keeping the first ``max_bytes`` keeps that share of hits every epoch).
- **Cleanup.** The process that built the wrapper unlinks the segment when the wrapper is garbage collected, at
  interpreter exit, or on :meth:`CachedDataset.close`; if that process is killed, Python's resource tracker
  unlinks it. Nothing is left in ``/dev/shm``.

Example:
    >>> import numpy as np
    >>> class Squares:
    ...     def __len__(self) -> int:
    ...         return 4
    ...     def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    ...         return {"x": np.full(3, i * i)}
    >>> ds = CachedDataset(Squares())
    >>> ds[3]["x"].tolist(), ds[3]["x"].tolist()  # the second read is a cache hit
    ([9, 9, 9], [9, 9, 9])
    >>> ds.info()["cached"]
    1
    >>> ds.close()
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import warnings
import weakref
from multiprocessing import shared_memory
from typing import Any, Protocol, TypeVar

import numpy as np

from core.data import serialize

T_co = TypeVar("T_co", covariant=True)

_EMPTY, _WRITING, _READY = 0, 1, 2
_HEADER_WORDS = 8  # [magic, length, bump pointer, disabled flag, reserved...]
_MAGIC = 0x6B685F6361636865  # "kh_cache"
_ALIGN = 64
_SHM_DIR = "/dev/shm"


class SizedDataset(Protocol[T_co]):
    """What the wrappers need from a dataset: ``len(ds)`` and ``ds[i]`` (any torch map-style dataset)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> T_co: ...


def _unlink_if_owner(segment: shared_memory.SharedMemory, owner_pid: int) -> None:
    # Forked children inherit this finalizer; only the creator may remove the segment.
    if os.getpid() != owner_pid:
        return
    with contextlib.suppress(BufferError):  # a numpy view is still alive: the mapping goes at process exit
        segment.close()
    with contextlib.suppress(FileNotFoundError):
        segment.unlink()


def _default_capacity() -> int:
    usage = shutil.disk_usage(_SHM_DIR) if os.path.isdir(_SHM_DIR) else None
    return max(usage.free // 2, 1 << 20) if usage else 1 << 30


class CachedDataset:
    """Cache the samples of ``dataset`` in shared memory, one copy for all DataLoader workers.

    Args:
        dataset: Any map-style dataset (``len`` and integer indexing). Samples may be tensors, numpy arrays,
            numbers, strings, or dicts/lists/tuples of them.
        max_bytes: Cap on the cached bytes. ``None``: half of the free space of ``/dev/shm`` when built.

    Reads return fresh copies: modifying a returned tensor never changes the cache.
    """

    def __init__(self, dataset: SizedDataset[Any], max_bytes: int | None = None) -> None:
        self.dataset = dataset
        self.max_bytes = _default_capacity() if max_bytes is None else int(max_bytes)
        self._length = len(dataset)
        self._data_start = self._round_up(8 * (_HEADER_WORDS + 3 * self._length))
        name = f"kh_cache_{os.getpid()}_{secrets.token_hex(6)}"
        self._segment: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=name, create=True, size=self._data_start + max(self.max_bytes, 1)
        )
        self._name = self._segment.name
        self._owner_pid = os.getpid()
        self._bind_views()
        assert self._header is not None
        self._header[0] = _MAGIC
        self._header[1] = self._length
        self._header[2] = self._data_start
        self._finalizer = weakref.finalize(self, _unlink_if_owner, self._segment, self._owner_pid)
        self._lock_fd: int | None = None
        self._lock_pid = -1
        self._warned = False

    @staticmethod
    def _round_up(n: int) -> int:
        return n + (-n % _ALIGN)

    def _bind_views(self) -> None:
        assert self._segment is not None and self._segment.buf is not None
        buf = self._segment.buf
        self._buf: memoryview = buf
        self._header: np.ndarray[Any, np.dtype[np.int64]] | None = np.ndarray(
            (_HEADER_WORDS,), dtype=np.int64, buffer=buf
        )
        self._table: np.ndarray[Any, np.dtype[np.int64]] | None = np.ndarray(
            (self._length, 3), dtype=np.int64, buffer=buf, offset=8 * _HEADER_WORDS
        )

    # -- pickling (spawned workers attach by name, lazily) ---------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_segment", "_buf", "_header", "_table", "_finalizer", "_lock_fd"):
            state[key] = None
        state["_lock_pid"] = -1
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _attach(self) -> None:
        try:
            self._segment = shared_memory.SharedMemory(name=self._name)
        except FileNotFoundError:
            raise RuntimeError(
                f"the shared cache segment {self._name} is gone: the process that built the CachedDataset "
                "closed it or exited"
            ) from None
        self._bind_views()

    # -- the dataset protocol ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if self._table is None:
            self._attach()
        assert self._table is not None and self._segment is not None
        i = int(index)
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"index {index} out of range for a dataset of {self._length} samples")
        state, offset, length = self._table[i]
        if state == _READY:
            return serialize.loads(self._buf[offset : offset + length])
        sample = self.dataset[i]
        self._store(i, sample)
        return sample

    # -- filling -------------------------------------------------------------------------------------------------

    def _lock(self) -> int:
        if self._lock_pid != os.getpid() or self._lock_fd is None:
            self._lock_fd = os.open(os.path.join(_SHM_DIR, self._name), os.O_RDWR)
            self._lock_pid = os.getpid()
        return self._lock_fd

    def _store(self, i: int, sample: Any) -> None:
        assert self._header is not None and self._table is not None and self._segment is not None
        if self._header[3]:
            return
        try:
            blob = serialize.dumps(sample)
        except Exception as exc:  # an unpicklable sample is served, just not cached
            self._warn(f"sample {i} cannot be cached ({type(exc).__name__}: {exc})")
            return
        fd = self._lock()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if self._table[i, 0] != _EMPTY:
                return  # another process got here first
            offset = int(self._header[2])
            end = offset + len(blob)
            if end > self._data_start + self.max_bytes:
                return  # over the cap: serve uncached
            try:
                os.posix_fallocate(fd, offset, len(blob))
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                    self._header[3] = 1
                    self._warn(f"/dev/shm is full ({exc.strerror}); caching stops, training goes on")
                    return
                raise
            self._header[2] = self._round_up(end)
            self._table[i, 1] = offset
            self._table[i, 2] = len(blob)
            self._table[i, 0] = _WRITING
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._buf[offset:end] = blob
        self._table[i, 0] = _READY  # published last: readers test this word before reading the bytes

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"CachedDataset: {message}", RuntimeWarning, stacklevel=3)

    # -- inspection and cleanup ------------------------------------------------------------------------------

    def info(self) -> dict[str, int]:
        """Counts over all processes: ``cached`` samples, ``bytes`` used, ``max_bytes``, ``length``."""
        if self._table is None:
            self._attach()
        assert self._table is not None and self._header is not None
        return {
            "cached": int(np.count_nonzero(self._table[:, 0] == _READY)),
            "bytes": int(self._header[2]) - self._data_start,
            "max_bytes": self.max_bytes,
            "length": self._length,
        }

    @property
    def segment_name(self) -> str:
        """Name of the shared-memory segment (``/dev/shm/<name>`` on Linux)."""
        return self._name

    def close(self) -> None:
        """Release the cache now; in the process that built it, also remove the segment."""
        self._header = self._table = None
        self.__dict__.pop("_buf", None)
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        elif self._segment is not None:
            self._segment.close()
        self._segment = None
