"""Node-local disk cache for any map-style dataset, reusable by later runs.

:class:`FileCachedDataset` stores each sample read from a slow file system (Lustre, NFS) as one file on fast
node-local disk (``$TMPDIR``, ``/local``), under a directory named by the dataset's **fingerprint**, so the next
run on the same node with the same data finds its cache and skips the slow reads.

The fingerprint is, first found wins:

1. the ``fingerprint=`` argument (any string: a data version, a path plus mtime);
2. ``dataset.fingerprint()`` if the dataset defines it;
3. a hash of the dataset's class (module and qualified name), its length, and the serialized bytes of samples
   ``0``, ``len // 2`` and ``len - 1``. This catches a different dataset or a changed length or edited end
   samples; it cannot see an edit elsewhere, so give (1) or (2) when data changes in place.

Writes go to a temporary file in the same directory and are renamed into place, so a reader sees a whole sample
or none, and several processes (DataLoader workers, ranks on one node) may fill the cache at once: the last rename
wins and all of them wrote the same bytes. A file that fails to load (a crash during a copy, a foreign file) is a
miss and is rewritten.

``max_bytes`` caps the whole ``cache_dir`` (all fingerprints). Over the cap, the least recently used *other*
fingerprints are deleted first; if the current dataset alone fills the cap, new samples are served uncached
(evicting its own samples would turn epoch-order reads into misses). The cap is checked by scanning the directory
now and then, so it may be exceeded by a few samples per process.

If the cache directory cannot be used (read-only, full, no permission), the dataset warns once and serves samples
uncached: training goes on.

Example:
    >>> import tempfile, numpy as np
    >>> class Ramp:
    ...     def __len__(self) -> int:
    ...         return 3
    ...     def __getitem__(self, i: int) -> np.ndarray:
    ...         return np.arange(i + 1)
    ...     def fingerprint(self) -> str:
    ...         return "ramp-v1"
    >>> root = tempfile.mkdtemp()
    >>> ds = FileCachedDataset(Ramp(), root)
    >>> ds[2].tolist()
    [0, 1, 2]
    >>> FileCachedDataset(Ramp(), root).cached_indices()  # a later run sees what this one wrote
    [2]
    >>> ds.clear()
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import time
import warnings
from pathlib import Path
from typing import Any

from core.data import serialize
from core.data.cache import SizedDataset

_MAGIC = b"KHFC0001"
_HEADER = struct.Struct("<8sQ")
_SUFFIX = ".sample"
_STAMP = ".last_used"
_FALLBACK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def dataset_fingerprint(dataset: SizedDataset[Any]) -> str:
    """The default fingerprint: class, length and a hash of three samples (see the module docstring)."""
    method = getattr(dataset, "fingerprint", None)
    if callable(method):
        return _safe_name(str(method()))
    n = len(dataset)
    digest = hashlib.sha256(f"{type(dataset).__module__}.{type(dataset).__qualname__}:{n}".encode())
    for i in sorted({0, n // 2, n - 1}) if n else ():
        digest.update(serialize.dumps(dataset[i]))
    return digest.hexdigest()[:24]


def _safe_name(text: str) -> str:
    if all(c.isalnum() or c in "-_." for c in text) and 0 < len(text) <= 64 and not text.startswith("."):
        return text
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _dir_size(path: Path) -> int:
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                    elif entry.is_dir(follow_symlinks=False):
                        total += _dir_size(Path(entry.path))
                except FileNotFoundError:
                    pass
    except FileNotFoundError:
        pass
    return total


class FileCachedDataset:
    """Cache the samples of ``dataset`` as files under ``cache_dir/<fingerprint>/``.

    Args:
        dataset: Any map-style dataset.
        cache_dir: A directory on node-local disk; created if missing.
        fingerprint: Names this dataset's cache; default: see :func:`dataset_fingerprint`.
        max_bytes: Cap on the size of ``cache_dir`` as a whole; ``None`` for no cap.

    Nothing is read or created until the first sample is requested (then in each process separately).
    """

    def __init__(
        self,
        dataset: SizedDataset[Any],
        cache_dir: str | os.PathLike[str],
        fingerprint: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.cache_dir = Path(cache_dir)
        self.fingerprint = fingerprint
        self.max_bytes = max_bytes
        self._dir: Path | None = None
        self._disabled = False
        self._full = False
        self._known_bytes = 0
        self._written_since_scan = 0

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def directory(self) -> Path:
        """``cache_dir/<fingerprint>``: where this dataset's samples live."""
        if self._dir is None:
            name = _safe_name(self.fingerprint) if self.fingerprint else dataset_fingerprint(self.dataset)
            self._dir = self.cache_dir / name
        return self._dir

    def _path(self, index: int) -> Path:
        return self.directory / f"{index}{_SUFFIX}"

    def _open(self) -> None:
        """Create the directory, mark it used now, and learn the cache's size (once per process)."""
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / _STAMP).touch()
        if self.max_bytes is not None:
            self._known_bytes = _dir_size(self.cache_dir)
            self._written_since_scan = 0

    def __getitem__(self, index: int) -> Any:
        i = int(index)
        n = len(self.dataset)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        if not self._disabled:
            sample = self._read(i)
            if sample is not _MISS:
                return sample
        sample = self.dataset[i]
        if not self._disabled and not self._full:
            try:
                self._write(i, sample)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS:
                    raise
                self._disabled = True
                warnings.warn(
                    f"FileCachedDataset: cannot write to {self.cache_dir} ({exc.strerror}); "
                    "serving samples uncached, training goes on",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return sample

    def _read(self, i: int) -> Any:
        path = self._path(i)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return _MISS
        except PermissionError:
            return _MISS
        try:
            magic, length = _HEADER.unpack_from(data, 0)
            if magic != _MAGIC or length != len(data) - _HEADER.size:
                raise ValueError("bad header")
            return serialize.loads(memoryview(data)[_HEADER.size :])
        except Exception:  # a torn or foreign file: treat as a miss and rewrite it
            return _MISS

    def _write(self, i: int, sample: Any) -> None:
        if self._dir is None or not self._dir.is_dir():
            self._open()
        blob = serialize.dumps(sample)
        if self.max_bytes is not None and not self._room_for(len(blob)):
            return
        final = self._path(i)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_HEADER.pack(_MAGIC, len(blob)))
                f.write(blob)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._known_bytes += len(blob) + _HEADER.size
        self._written_since_scan += len(blob) + _HEADER.size

    def _room_for(self, size: int) -> bool:
        assert self.max_bytes is not None
        budget = self.max_bytes - self._known_bytes
        # Other processes write too: rescan whenever this one has used an eighth of what seemed free.
        if self._known_bytes + size > self.max_bytes or self._written_since_scan > max(budget, 0) // 8:
            self._known_bytes = _dir_size(self.cache_dir)
            self._written_since_scan = 0
            if self._known_bytes + size > self.max_bytes:
                self._known_bytes -= self._evict_others(self._known_bytes + size - self.max_bytes)
            if self._known_bytes + size > self.max_bytes:
                self._full = True
                return False
        return True

    def _evict_others(self, needed: int) -> int:
        """Delete other fingerprints' directories, least recently used first; return the bytes freed."""
        others = []
        for entry in self.cache_dir.iterdir():
            if entry.is_dir() and entry.name != self.directory.name:
                stamp = entry / _STAMP
                used = stamp.stat().st_mtime if stamp.exists() else entry.stat().st_mtime
                others.append((used, entry))
        freed = 0
        for _, entry in sorted(others):
            if freed >= needed:
                break
            size = _dir_size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            freed += size
        return freed

    def cached_indices(self) -> list[int]:
        """Indices whose samples are on disk now (written by any process or earlier run)."""
        if not self.directory.is_dir():
            return []
        return sorted(int(p.name[: -len(_SUFFIX)]) for p in self.directory.glob(f"[0-9]*{_SUFFIX}"))

    def clear(self, all_fingerprints: bool = False) -> None:
        """Delete this dataset's cache, or with ``all_fingerprints=True`` everything under ``cache_dir``."""
        target = self.cache_dir if all_fingerprints else self.directory
        shutil.rmtree(target, ignore_errors=True)
        self._full = False
        self._known_bytes = 0


class _Miss:
    pass


_MISS: Any = _Miss()
