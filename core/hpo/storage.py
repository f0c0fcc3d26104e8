"""Opening a study's storage, and the lock that makes "count the budget, then ask" atomic across runners.

``study.storage`` in a config is one of:

* ``null``: an Optuna journal file, ``<run_dir>/study.journal`` (one machine, or a shared file system);
* a path (any string without ``://``): a journal file there;
* an Optuna RDB URL: ``sqlite:///study.db`` (one machine), ``postgresql+psycopg2://user:pw@host/db`` (many
  machines; plain ``postgresql://`` works too).

Several runner processes may share one storage. Before each ``ask`` a runner takes the storage's
:class:`BudgetLock` (an exclusive ``flock`` on ``<file>.budget-lock`` for journal and SQLite files, a session-level
``pg_advisory_lock`` for PostgreSQL), counts the trials, asks, tags the new trial and releases it; a runner that
dies while holding it releases it with its process (the kernel drops the ``flock``, the server ends the session).

Example:
    >>> import tempfile, pathlib
    >>> run_dir = pathlib.Path(tempfile.mkdtemp())
    >>> opened = open_storage(None, run_dir)
    >>> opened.kind, opened.location.endswith("study.journal"), opened.lock.shared
    ('journal', True, True)
    >>> with opened.lock:
    ...     pass
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, DependencyError, UserError
from core.files import write_atomic

if TYPE_CHECKING:
    import optuna

JOURNAL_NAME = "study.journal"
log = logging.getLogger(__name__)


class BudgetLock:
    """An exclusive lock shared by every runner of one storage. ``shared`` is False when it only excludes the
    threads of this process (storages given as Python objects, or RDBs other than SQLite and PostgreSQL)."""

    shared = False

    def __init__(self) -> None:
        self._thread_lock = threading.RLock()

    def __enter__(self) -> BudgetLock:
        self._thread_lock.acquire()
        try:
            self.acquire()
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.release()
        finally:
            self._thread_lock.release()

    def acquire(self) -> None:
        """Take the cross-process part of the lock (none here)."""

    def release(self) -> None:
        """Release the cross-process part of the lock (none here)."""

    def close(self) -> None:
        """Free resources (files, connections)."""


class FileLock(BudgetLock):
    """``flock`` on a file next to the storage: released by the kernel when the holder dies."""

    shared = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        # one descriptor for the lock's lifetime: an interruption between taking and recording the lock cannot
        # leave a second descriptor of this process waiting on the first one's lock (flock is per open file)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PostgresAdvisoryLock(BudgetLock):
    """``pg_advisory_lock`` keyed by the study name, on a connection of its own: the server releases it when the
    holder's session ends, even if the holder was killed."""

    shared = True

    def __init__(self, url: str, key: str) -> None:
        super().__init__()
        self.url = url
        self.key = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        self._engine: Any = None
        self._connection: Any = None

    def acquire(self) -> None:
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        self._connection = self._engine.connect()
        self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})

    def release(self) -> None:
        import sqlalchemy

        if self._connection is not None:
            with contextlib.suppress(Exception):  # a lost session has released the lock already
                self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._connection.commit()
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


@dataclass
class OpenedStorage:
    storage: optuna.storages.BaseStorage
    kind: str  # journal | sqlite | postgresql | rdb | object
    location: str  # path or URL with the password hidden
    lock: BudgetLock


def open_storage(spec: Any, run_dir: Path, study_name: str = "study", read_only: bool = False) -> OpenedStorage:
    """Open the storage that ``spec`` names (see the module docstring) and its budget lock.

    A path that exists and is not a storage of ours (a directory, a YAML file, ...) is refused. With
    ``read_only`` (``hpo trials``, ``hpo report``) nothing is created: a storage that does not exist is an error,
    and a journal's torn last record is skipped rather than repaired.
    """
    import optuna

    if spec is None or spec == "":
        spec = str(run_dir / JOURNAL_NAME)
    if isinstance(spec, optuna.storages.BaseStorage):
        return OpenedStorage(spec, "object", type(spec).__name__, BudgetLock())
    if not isinstance(spec, str):
        raise ConfigError(
            "study.storage must be a journal file path or a storage URL",
            where="study.storage",
            hint="e.g. runs/x/study.journal, sqlite:///study.db, postgresql+psycopg2://user:pw@host/db",
        )
    if "://" not in spec:
        return _open_journal(Path(spec).expanduser(), read_only)
    url = normalize_url(spec)
    scheme = url.split("://", 1)[0]
    engine_kwargs: dict[str, Any] = {}
    if scheme.startswith("sqlite"):
        file = url.split("///", 1)[1] if "///" in url else ""
        if not file or file == ":memory:":
            raise ConfigError("an in-memory SQLite storage cannot be shared or resumed", where="study.storage")
        _check_sqlite(Path(file).expanduser(), read_only)
        engine_kwargs = {"connect_args": {"timeout": 60}}
        lock: BudgetLock = FileLock(Path(file + ".budget-lock"))
        kind = "sqlite"
    elif scheme.startswith("postgres"):
        engine_kwargs = {"pool_pre_ping": True}
        lock = PostgresAdvisoryLock(url, f"kakehashi-hpo:{study_name}")
        kind = "postgresql"
    else:
        lock, kind = BudgetLock(), "rdb"
    # runners starting together on an empty PostgreSQL database race to create Optuna's tables ("duplicate key
    # ... pg_type_typname_nsp_index"): create them one runner at a time
    creating = PostgresAdvisoryLock(url, "kakehashi-hpo:create-tables") if kind == "postgresql" else BudgetLock()
    try:
        with creating:
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=read_only)
    except ImportError as exc:
        raise DependencyError(
            f"no database driver for {scheme}", where="study.storage", hint="pip install 'kakehashi[postgres]'"
        ) from exc
    except Exception as exc:  # sqlalchemy's OperationalError and friends: the server is not there
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot open the storage: {first}",
            where=hide_password(url),
            hint="check the URL and that the database server runs",
        ) from None
    finally:
        creating.close()
    return OpenedStorage(rdb, kind, hide_password(url), lock)


def _open_journal(path: Path, read_only: bool = False) -> OpenedStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if path.exists() and not path.is_file():
        raise UserError("the storage path is not a file", where=str(path), hint="name a journal file (.journal)")
    if read_only and not path.is_file():
        raise UserError("no journal file here", where=str(path), hint="check the path, or the run directory")
    try:
        if path.is_file():
            _check_journal(path, repair=not read_only)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        storage = JournalStorage(backend)
    except OSError as exc:
        raise UserError(f"cannot open the journal file: {exc.strerror or exc}", where=str(path)) from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise UserError(
            f"the journal file is damaged: {exc}",
            where=str(path),
            hint="restore it from a copy; only a torn last record is repaired on its own",
        ) from None
    return OpenedStorage(storage, "journal", str(path), FileLock(path.with_name(path.name + ".budget-lock")))


def _check_journal(path: Path, repair: bool) -> None:
    """Refuse a file that is not an Optuna journal; repair a torn last record (a writer killed mid-line), which
    would otherwise poison the next append. The cut bytes are kept in ``<journal>.torn-<time>``."""
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    with path.open("rb") as f:
        head = f.read(4096)
    if not head:
        return
    first = head.split(b"\n", 1)[0]
    if not first.startswith(b'{"op_code"') and b'"op_code"' not in first[:200]:
        raise UserError(
            "this file is not an Optuna journal; it is left as it is",
            where=str(path),
            hint="give study.storage a new file name (e.g. study.journal) or an RDB URL",
        )
    if _ends_with_newline(path):
        return
    if not repair:
        log.warning("%s: its last record is torn (a writer was killed mid-line); reading without it", path)
        return
    # under the journal's own lock: no runner is appending while we cut
    with get_lock_file(JournalFileSymlinkLock(str(path))), path.open("r+b") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return
        torn = data[keep:]
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    saved = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    write_atomic(saved, torn)
    log.warning(
        "%s: its last record was torn (%d bytes; a writer was killed mid-line); cut off and kept in %s",
        path,
        len(torn),
        saved.name,
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _check_sqlite(file: Path, read_only: bool) -> None:
    if file.exists() and not file.is_file():
        raise UserError("the storage path is not a file", where=str(file), hint="name an SQLite database file")
    if file.is_file() and file.stat().st_size > 0:
        with file.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise UserError(
                    "this file is not an SQLite database; it is left as it is",
                    where=str(file),
                    hint="give study.storage a new file name",
                )
    elif read_only:
        raise UserError("no SQLite database here", where=str(file), hint="check the storage URL")
    else:
        file.parent.mkdir(parents=True, exist_ok=True)


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` name the psycopg2 driver when psycopg (3) is not installed."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        has_psycopg3 = importlib.util.find_spec("psycopg") is not None
        return f"postgresql{'+psycopg' if has_psycopg3 else '+psycopg2'}://{rest}"
    return url


def hide_password(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs, errors and trials.csv)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}@{host}"
