"""Sample serialization shared by the RAM and disk caches.

A sample (a tensor, a numpy array, or any nesting of dicts, lists and tuples of them) becomes one byte string:
a small pickle of its structure plus the raw bytes of every array, stored out of band (pickle protocol 5), so
arrays are copied once with ``memcpy`` and never pickled element by element. Tensors travel as numpy arrays and
come back as tensors (``torch`` is imported only if the sample holds one).

Layout: ``u64 structure length | u64 buffer count | u64 buffer lengths... | structure | buffers`` with each
buffer starting on a 64-byte boundary.

Example:
    >>> import numpy as np
    >>> blob = dumps({"x": np.arange(3), "y": [1, "a"]})
    >>> loads(blob)["x"].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
from typing import Any

import numpy as np

_U64 = struct.Struct("<Q")
_ALIGN = 64


def _rebuild_tensor(array: Any) -> Any:
    import torch

    return torch.from_numpy(array)


def _rebuild_scalar(array: Any) -> Any:
    return array[()]


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.generic) and obj.dtype.kind in "biufc":
            # a numpy scalar travels as a 0-d array, out of band like any array: samples that differ only in
            # values then share one structure, which lets the RAM cache serve a batch with one gather per field
            return _rebuild_scalar, (np.asarray(obj),)
        torch = sys.modules.get("torch")
        if torch is not None and type(obj) is torch.Tensor:
            tensor = obj.detach()
            if tensor.device.type == "cpu" and not tensor.is_sparse:
                try:
                    return _rebuild_tensor, (tensor.contiguous().numpy(),)
                except (TypeError, RuntimeError):  # bfloat16 and friends: torch pickles them itself
                    pass
        return NotImplemented


def _pad(n: int) -> int:
    return -n % _ALIGN


def dumps(sample: Any) -> bytes:
    """Serialize ``sample`` to bytes (see the module docstring for the layout)."""
    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    _Pickler(stream, protocol=5, buffer_callback=buffers.append).dump(sample)
    structure = stream.getbuffer()
    views = [b.raw() for b in buffers]
    header = _U64.pack(len(structure)) + _U64.pack(len(views)) + b"".join(_U64.pack(v.nbytes) for v in views)
    out = bytearray(header)
    out += structure
    for view in views:
        out += bytes(_pad(len(out)))
        out += view
    return bytes(out)


def layout(data: bytes | bytearray | memoryview) -> tuple[int, list[tuple[int, int]]]:
    """The structure's end and ``(offset, length)`` of every out-of-band buffer of a :func:`dumps` blob.

    Example:
        >>> layout(dumps(np.zeros(3, np.float32)))[1]
        [(192, 12)]
    """
    view = memoryview(data)
    structure_len = _U64.unpack_from(view, 0)[0]
    count = _U64.unpack_from(view, 8)[0]
    pos = 16 + 8 * count + structure_len
    prefix = pos
    buffers = []
    for i in range(count):
        length = _U64.unpack_from(view, 16 + 8 * i)[0]
        pos += _pad(pos)
        buffers.append((pos, length))
        pos += length
    return prefix, buffers


def loads(data: bytes | bytearray | memoryview, copy: bool = True) -> Any:
    """Rebuild a sample from :func:`dumps` output.

    With ``copy=True`` (the default) every array gets its own writable memory, so the caller may modify it
    without touching ``data``; with ``copy=False`` arrays are read-only views into ``data``.
    """
    view = memoryview(data)
    structure_len = _U64.unpack_from(view, 0)[0]
    count = _U64.unpack_from(view, 8)[0]
    lengths = [_U64.unpack_from(view, 16 + 8 * i)[0] for i in range(count)]
    pos = 16 + 8 * count
    structure = view[pos : pos + structure_len]
    pos += structure_len
    buffers: list[Any] = []
    for length in lengths:
        pos += _pad(pos)
        chunk = view[pos : pos + length]
        if copy:
            own = bytearray(length)
            own[:] = chunk  # slice assignment is a memcpy; bytearray(chunk) is several times slower
            buffers.append(own)
        else:
            buffers.append(chunk.toreadonly())
        pos += length
    if pos > len(view):
        raise ValueError(f"serialized sample truncated: needs {pos} bytes, has {len(view)}")
    return pickle.loads(structure, buffers=buffers)
