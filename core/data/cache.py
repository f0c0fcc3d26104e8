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
- **Whole batches.** When every cached sample has one layout (the same keys, dtypes and shapes: the common case
  of fixed-size images and labels; numpy scalars count as 0-d arrays), each field lies at the same offset of
  equal-sized records on a regular stride. The DataLoader calls :meth:`CachedDataset.__getitems__` with a batch's
  indices; if all are hits, one ``index_select`` per field copies the rows straight from the segment into the
  batch tensor (in shared memory when in a worker, as ``default_collate`` does). With
  ``collate_fn=CachedDataset.collate`` that tensor is the batch: a hit costs about a ``memcpy``. Samples of
  varying layout, and batches with a miss, take the per-item path.
- **Hits in DataLoader workers.** A worker does not copy a batch of hits: ``CachedDataset.collate`` returns the
  rows' slot numbers, which cross to the main process as a few hundred pickled bytes, and the main process copies
  the rows out of the shared segment itself (the segment is already there: it built the wrapper). One copy per
  batch, and none of the DataLoader's per-batch cost of a shared-memory tensor (allocated and written in the
  worker, its descriptor passed over a socket, mapped and unmapped in the main process). Workers still load and
  cache the misses in parallel; the copy of a hit batch runs in the process that consumes it.
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
import math
import os
import secrets
import shutil
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import shared_memory
from typing import Any, Protocol, TypeVar

import numpy as np

from core.data import serialize

T_co = TypeVar("T_co", covariant=True)

_EMPTY, _WRITING, _READY = 0, 1, 2
_HEADER_WORDS = 8  # [magic, length, bump pointer, disabled flag, record length, uniform, first offset, prefix]
_UNKNOWN, _UNIFORM, _MIXED = 0, 1, 2  # header[5]: do all stored records share one layout?
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


_OPEN: weakref.WeakValueDictionary[str, CachedDataset] = weakref.WeakValueDictionary()  # by segment, this process


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
        self._plan: _BatchPlan | None = None
        _OPEN[self._name] = self

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
        for key in ("_segment", "_buf", "_header", "_table", "_finalizer", "_lock_fd", "_plan"):
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
        _OPEN[self._name] = self

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

    def __getitems__(self, indices: Sequence[int]) -> Sequence[Any]:
        """A whole batch (the DataLoader calls this instead of ``ds[i]`` per index).

        When every index is a hit and all cached samples share one layout (the same keys, dtypes and shapes),
        the batch is gathered with one ``index_select`` per field straight from the shared segment, already
        collated: pass ``collate_fn=CachedDataset.collate`` to the DataLoader to use it as it is (in a worker,
        the main process gathers it; see the module docstring). Any other ``collate_fn`` sees an ordinary
        sequence of samples. Otherwise each index is read as ``ds[i]``.
        """
        if self._table is None:
            self._attach()
        assert self._table is not None and self._header is not None
        batch = self._gather(indices)
        if batch is not None:
            return batch
        return [self[i] for i in indices]

    @staticmethod
    def collate(batch: Sequence[Any]) -> Any:
        """``collate_fn`` for a DataLoader over a :class:`CachedDataset`: a gathered batch passes through as is
        (from a worker, as the slot numbers its receiver gathers), anything else goes to torch's
        ``default_collate`` (which it equals on the same samples)."""
        if isinstance(batch, GatheredBatch):
            from torch.utils.data import get_worker_info

            return _InTransit(batch.segment, batch.slots) if get_worker_info() is not None else batch.collated
        from torch.utils.data import default_collate

        return default_collate(list(batch))

    def _gather(self, indices: Sequence[int]) -> GatheredBatch | None:
        assert self._table is not None and self._header is not None
        if self._header[5] != _UNIFORM or len(indices) == 0:
            return None
        plan = self._batch_plan()
        if plan is None:
            return None
        idx = np.asarray(indices, dtype=np.int64)
        idx = np.where(idx < 0, idx + self._length, idx)
        if idx.min() < 0 or idx.max() >= self._length:
            return None  # the per-item path raises the IndexError
        rows = self._table[idx]
        if not bool((rows[:, 0] == _READY).all()):
            return None
        slots = (rows[:, 1] - plan.first_offset) // plan.stride
        return GatheredBatch(self, slots)

    def _batch_plan(self) -> _BatchPlan | None:
        assert self._header is not None
        if self._plan is None or self._plan.first_offset != int(self._header[6]):
            self._plan = _BatchPlan.build(self)
        return self._plan

    def gather_slots(self, slots: np.ndarray[Any, Any]) -> Any:
        """The collated batch of the records in ``slots`` (from :meth:`__getitems__`; all of one layout)."""
        if self._table is None:
            self._attach()
        plan = self._batch_plan()
        assert plan is not None, "slots come from a gathered batch: the cache has one layout"
        return plan.gather(slots)

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
            written = self._track_layout(offset, blob)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        if not written:
            self._buf[offset:end] = blob
        self._table[i, 0] = _READY  # published last: readers test this word before reading the bytes

    def _track_layout(self, offset: int, blob: bytes) -> bool:
        """Under the lock: keep header[5] saying whether every record so far has the first one's layout.

        Records of one length sit on a regular stride (the bump pointer rounds to 64 bytes), and equal
        structure bytes mean equal keys, dtypes and shapes at equal offsets. The first record is written here,
        under the lock, so that later writers can compare with it. Returns whether the blob was written.
        """
        assert self._header is not None
        state = int(self._header[5])
        if state == _MIXED:
            return False
        prefix, _ = serialize.layout(blob)
        if state == _UNKNOWN:
            self._buf[offset : offset + len(blob)] = blob
            self._header[4], self._header[6], self._header[7] = len(blob), offset, prefix
            self._header[5] = _UNIFORM
            return True
        first, length = int(self._header[6]), int(self._header[4])
        if len(blob) != length or prefix != int(self._header[7]) or self._buf[first : first + prefix] != blob[:prefix]:
            self._header[5] = _MIXED
        return False

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
        self._plan = None
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


class _NoPlan(Exception):
    pass


class GatheredBatch(list[Any]):
    """A batch of hits: ``collated`` (copied from the cache on first use) is what ``default_collate`` would make
    of its samples, and :meth:`CachedDataset.collate` passes it through without a second copy. As a list it holds
    the samples (row views of ``collated``), made on first use, so any ``collate_fn`` works on it.
    """

    def __init__(self, cache: CachedDataset, slots: np.ndarray[Any, Any]) -> None:
        super().__init__()
        self.segment = cache.segment_name
        self.slots = slots
        self._cache = cache
        self._collated: Any = None
        self._filled = False

    @property
    def collated(self) -> Any:
        if self._collated is None:
            self._collated = self._cache.gather_slots(self.slots)
        return self._collated

    def _fill(self) -> None:
        if not self._filled:
            self._filled = True
            super().extend(_rows(self.collated))

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __getitem__(self, i: Any) -> Any:
        self._fill()
        return super().__getitem__(i)

    def __iter__(self) -> Iterator[Any]:
        self._fill()
        return super().__iter__()


class _InTransit:
    """A batch of hits on its way from a DataLoader worker: pickled, it is the cache's segment name and the rows'
    slots; unpickled, the receiving process gathers the batch from its own :class:`CachedDataset` of that
    segment."""

    def __init__(self, segment: str, slots: np.ndarray[Any, Any]) -> None:
        self.segment = segment
        self.slots = slots

    def __reduce__(self) -> tuple[Callable[[str, np.ndarray[Any, Any]], Any], tuple[str, np.ndarray[Any, Any]]]:
        return _gather_received, (self.segment, self.slots)


def _gather_received(segment: str, slots: np.ndarray[Any, Any]) -> Any:
    cache = _OPEN.get(segment)
    if cache is None or cache._segment is None:
        raise RuntimeError(
            f"a batch of the shared cache {segment} reached a process without that CachedDataset open "
            "(use CachedDataset.collate only in the DataLoader of the process that holds the dataset)"
        )
    return cache.gather_slots(slots)


def _rows(node: Any) -> list[Any]:
    if isinstance(node, dict):
        columns = [_rows(v) for v in node.values()]
        return [dict(zip(node, values, strict=True)) for values in zip(*columns, strict=True)]
    if isinstance(node, list):
        return [list(values) for values in zip(*(_rows(v) for v in node), strict=True)]
    return list(node.unbind(0))


class _BatchPlan:
    """How one process gathers a batch: a strided view of every field over all record slots of the segment."""

    def __init__(
        self, first_offset: int, stride: int, fields: list[np.ndarray[Any, Any]], assemble: Callable[..., Any]
    ):
        self.first_offset = first_offset
        self.stride = stride
        self.fields = fields
        self.assemble = assemble
        self._tensors: list[Any] | None = None

    @classmethod
    def build(cls, cache: CachedDataset) -> _BatchPlan | None:
        header = cache._header
        assert header is not None
        first, length = int(header[6]), int(header[4])
        stride = cache._round_up(length)
        record = cache._buf[first : first + length]
        template = serialize.loads(record)
        _, buffers = serialize.layout(record)
        leaves: list[tuple[str, np.dtype[Any], tuple[int, ...]]] = []
        try:
            tree = _spec(template, leaves)
        except _NoPlan:
            return None
        if len(leaves) != len(buffers) or not leaves:
            return None
        n_slots = (cache._data_start + cache.max_bytes - first) // stride
        fields = []
        for (_, dtype, shape), (pos, nbytes) in zip(leaves, buffers, strict=True):
            if nbytes != dtype.itemsize * math.prod(shape):
                return None
            inner = [dtype.itemsize] * len(shape)
            for k in range(len(shape) - 2, -1, -1):
                inner[k] = inner[k + 1] * shape[k + 1]
            fields.append(
                np.ndarray((n_slots, *shape), dtype, buffer=cache._buf, offset=first + pos, strides=(stride, *inner))
            )
        kinds = [kind for kind, _, _ in leaves]
        return cls(first, stride, fields, _builder(tree, kinds))

    def gather(self, slots: np.ndarray[Any, Any]) -> Any:
        import torch
        from torch.utils.data import get_worker_info

        if self._tensors is None:
            self._tensors = [torch.from_numpy(field) for field in self.fields]
        index = torch.from_numpy(slots)
        in_worker = get_worker_info() is not None
        out = []
        for field in self._tensors:
            shape = (len(slots), *field.shape[1:])
            if in_worker:  # straight into shared memory, as default_collate does, so the batch crosses for free
                storage = field.untyped_storage()._new_shared(math.prod(shape) * field.element_size())
                tensor = field.new_empty(0).set_(storage, 0, shape)
            else:
                tensor = field.new_empty(shape)
            # index_select reads the strided rows in place (numpy.take would first copy the whole strided view)
            torch.index_select(field, 0, index, out=tensor)
            out.append(tensor)
        return self.assemble(out)


def _spec(node: Any, leaves: list[tuple[str, np.dtype[Any], tuple[int, ...]]]) -> Any:
    if type(node) is dict:
        return ("dict", [(k, _spec(v, leaves)) for k, v in node.items()])
    if type(node) in (list, tuple):
        return ("list", [_spec(v, leaves) for v in node])
    if isinstance(node, np.generic | np.ndarray):
        array = np.asarray(node)
    else:
        torch = sys.modules.get("torch")
        if torch is None or type(node) is not torch.Tensor:
            raise _NoPlan
        array = node.numpy()
    if array.dtype.kind not in "biufc" or not array.flags.c_contiguous:
        raise _NoPlan
    leaves.append(("leaf", array.dtype, tuple(array.shape)))
    return ("leaf", len(leaves) - 1)


def _builder(tree: Any, kinds: list[str]) -> Callable[[list[Any]], Any]:
    def build(node: Any, out: list[Any]) -> Any:
        kind, content = node
        if kind == "dict":
            return {k: build(v, out) for k, v in content}
        if kind == "list":
            return [build(v, out) for v in content]
        return out[content]

    return lambda out: build(tree, out)
