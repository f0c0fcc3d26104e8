"""Datasets over one HDF5 file that holds one group per sample.

A sample is a group; its datasets (and subgroups, recursively) become a dict of numpy arrays
(:class:`RawHDF5Dataset`) or of tensors (:class:`HDF5Dataset`). The file is opened lazily, separately in each
process, the first time a sample is read there: an h5py handle opened before DataLoader workers fork would be
shared by all of them and return wrong data or hang. A handle found to belong to another process is dropped and
reopened.

The list of samples (group names, in order) comes from, first found wins: the ``groups`` argument (a list, or the
path of a JSON file holding one), a ``<file>.json`` index next to the file (what :class:`~core.data.HDF5Writer`
writes), or the file's top-level groups in sorted order.

``locking=False`` turns off HDF5 file locking, which NFS and Lustre often refuse ("unable to lock file").

A truncated or corrupt file, a missing group or an unreadable dataset raises a :class:`~core.errors.UserError`
that names the file and the sample.

Example:
    >>> import tempfile, os, numpy as np, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.h5")
    >>> with h5py.File(path, "w") as f:
    ...     for i in range(3):
    ...         _ = f.create_group(f"{i:08d}").create_dataset("x", data=np.full(2, i))
    >>> ds = RawHDF5Dataset(path)
    >>> len(ds), ds[2]["x"].tolist()
    (3, [2, 2])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError


def open_hdf5(path: str | os.PathLike[str], mode: str = "r", locking: bool | None = None) -> Any:
    """``h5py.File(path, mode)``, with HDF5 file locking off when ``locking=False``."""
    import h5py

    kwargs: dict[str, Any] = {} if locking is None else {"locking": locking}
    return h5py.File(path, mode, **kwargs)


def read_dataset(file: Any, path: str) -> Any:
    """Read one whole dataset by its path through h5py's low-level API (several times faster than
    ``file[path][()]`` for small datasets, which matters for random access to thousands of clips)."""
    import h5py

    dataset = h5py.h5d.open(file.id, path.encode())
    if dataset.shape == () or dataset.dtype.kind in "OSUV":
        return file[path][()]  # scalars and strings: let h5py convert them
    out = np.empty(dataset.shape, dtype=dataset.dtype)
    dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def read_group(group: Any) -> dict[str, Any]:
    """Read every dataset of an h5py group, recursing into subgroups, as numpy arrays (scalars as 0-d)."""
    import h5py

    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = read_group(item)
        else:
            out[key] = item[()]
    return out


def write_group(group: Any, sample: Mapping[str, Any], compression: str | None = None) -> None:
    """Write a (nested) dict of arrays, numbers, strings or ``bytes`` into an h5py group.

    ``bytes`` become 1-D ``uint8`` datasets (how mp4 and flac data is stored); nested dicts become subgroups.
    """
    for key, value in sample.items():
        if isinstance(value, Mapping):
            write_group(group.create_group(key), value, compression)
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            value = np.frombuffer(value, dtype=np.uint8)
        elif hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray) and value.ndim > 0 and value.size > 0:
            group.create_dataset(key, data=value, compression=compression)
        else:
            group.create_dataset(key, data=value)


def _open_error_hint(exc: OSError) -> str:
    if "locking" in str(exc):
        return "this process has the file open with another locking= setting; use one setting for the file"
    return "the file is corrupt or truncated; rewrite it"


def _load_group_list(
    path: Path, groups: Sequence[str] | str | os.PathLike[str] | None, locking: bool | None
) -> list[str]:
    if groups is not None and not isinstance(groups, str | os.PathLike):
        return [str(g) for g in groups]
    index = Path(groups) if groups is not None else path.with_suffix(path.suffix + ".json")
    if groups is not None or index.is_file():
        try:
            names = json.loads(index.read_text())
        except FileNotFoundError:
            raise UserError("group index not found", where=str(index), hint="check the path") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"group index is not valid JSON: {exc}", where=str(index)) from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError("group index must be a JSON list of group names", where=str(index))
        return names
    try:
        with open_hdf5(path, "r", locking) as f:
            return sorted(f.keys())
    except FileNotFoundError:
        raise UserError("HDF5 file not found", where=str(path), hint="check the path") from None
    except OSError as exc:
        raise UserError(f"cannot open HDF5 file: {exc}", where=str(path), hint=_open_error_hint(exc)) from None


class RawHDF5Dataset:
    """One sample per HDF5 group, returned as a dict of numpy arrays.

    Args:
        path: The HDF5 file.
        groups: The sample group names in order, or the path of a JSON list of them. Default: ``<path>.json``
            if it exists, else the file's top-level groups, sorted.
        locking: ``False`` turns HDF5 file locking off (NFS, Lustre); ``None`` keeps h5py's default.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        groups: Sequence[str] | str | os.PathLike[str] | None = None,
        locking: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.groups = groups
        self.locking = locking
        self._names: list[str] | None = None
        self._file: Any = None
        self._file_pid = -1

    @property
    def group_names(self) -> list[str]:
        """The sample group names, in order (read on first use)."""
        if self._names is None:
            self._names = _load_group_list(self.path, self.groups, self.locking)
        return self._names

    def __len__(self) -> int:
        return len(self.group_names)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"], state["_file_pid"] = None, -1
        return state

    def _handle(self) -> Any:
        if self._file is None or self._file_pid != os.getpid():
            self._file = None  # a handle from the parent process is never used, nor closed, here
            try:
                self._file = open_hdf5(self.path, "r", self.locking)
            except FileNotFoundError:
                raise UserError("HDF5 file not found", where=str(self.path), hint="check the path") from None
            except OSError as exc:
                raise UserError(
                    f"cannot open HDF5 file: {exc}", where=str(self.path), hint=_open_error_hint(exc)
                ) from None
            self._file_pid = os.getpid()
        return self._file

    def read_raw(self, index: int) -> dict[str, Any]:
        """Sample ``index`` as a dict of numpy arrays."""
        names = self.group_names
        name = names[index]
        f = self._handle()
        where = f"{self.path}, sample {index} (group {name!r})"
        try:
            group = f[name]
        except KeyError:
            raise UserError("group missing from HDF5 file", where=where, hint="rebuild the file or its index") from None
        try:
            return read_group(group)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot read sample: {exc}", where=where, hint="the file is corrupt; rewrite it") from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.read_raw(index)

    def close(self) -> None:
        """Close this process's handle (a later read reopens it)."""
        if self._file is not None and self._file_pid == os.getpid():
            self._file.close()
        self._file = None


def _to_tensors(sample: Any) -> Any:
    import torch

    if isinstance(sample, dict):
        return {k: _to_tensors(v) for k, v in sample.items()}
    if isinstance(sample, np.ndarray) and sample.dtype.kind in "biuf":
        return torch.from_numpy(np.ascontiguousarray(sample))
    if isinstance(sample, np.generic) and sample.dtype.kind in "biuf":
        return torch.as_tensor(sample)
    return sample


class HDF5Dataset(RawHDF5Dataset):
    """Like :class:`RawHDF5Dataset`, with numeric arrays returned as tensors (strings and bytes stay as is)."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = _to_tensors(self.read_raw(index))
        return result
