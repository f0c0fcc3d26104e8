"""Files written whole or not at all: one atomic-write helper for every floor of core and the apps.

A reader never sees half a file: the text goes to a temporary file in the same folder (same file system), is
flushed to disk, and replaces the target with one ``rename``. A crash, a full disk or Ctrl-C leaves the old file
(or none) and no temporary behind.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_atomic(folder / "result.json", '{"loss": 0.5}')
    >>> (folder / "result.json").read_text()
    '{"loss": 0.5}'
    >>> write_atomic(folder / "blob.bin", b"\\x00\\x01")
    >>> (folder / "blob.bin").read_bytes()
    b'\\x00\\x01'
    >>> sorted(p.name for p in folder.iterdir())
    ['blob.bin', 'result.json']
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path``, unique per process and thread, keeping its suffix (so a writer
    that picks its format by suffix, such as ``savefig``, still does)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write through any library (``torch.save``, ``savefig``, h5py); on a clean exit it
    replaces ``path`` in one rename, on an exception it is removed and ``path`` is left as it was.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "model.bin"
        >>> with atomic_path(target) as temporary:
        ...     _ = temporary.write_bytes(b"weights")
        >>> target.read_bytes()
        b'weights'
    """
    target = Path(path)
    temporary = temporary_sibling(target)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through a temporary sibling and one rename.

    Args:
        path: The file to (re)place. Its folder must exist.
        data: The whole new content.
        fsync: Flush the temporary file to disk before the rename, so that a power loss cannot leave an empty
            file under the final name. Turn off only for scratch files written in bulk.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(payload)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())


__all__ = ["atomic_path", "temporary_sibling", "write_atomic"]
