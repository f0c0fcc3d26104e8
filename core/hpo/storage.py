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

Each record of a journal file is flushed to disk (``fsync``, a few milliseconds) before the write returns, as
Optuna does, except inside :meth:`OpenedStorage.grouped_sync`: there each record is still written to the file at
once (other runners read it, and a runner killed right after loses nothing: the kernel holds it), and the file is
flushed once when the block ends. The runner groups the records of each round of its loop (tell, ask, launch), so
one flush per round replaces one per record, and everything is on disk before the runner sleeps.

A journal file is written under Optuna's own lock, a symbolic link ``<journal>.lock`` that a killed writer leaves
behind; Optuna's waiters break it only after 30 s without a write. :class:`JournalLock` is the same lock (plain
Optuna processes and ours exclude each other) that also records its holder, so a waiter breaks a lock whose
holder is a dead process of this host at once, with a warning.

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
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from core.errors import ConfigError, DependencyError, UserError
from core.files import write_atomic

if TYPE_CHECKING:
    import optuna
    from optuna.storages.journal import BaseJournalBackend
    from optuna.storages.journal._file import BaseJournalFileLock

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
        with self._thread_lock:  # a thread inside the lock keeps its descriptor until it has released it
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
        with self._thread_lock:  # a thread inside the lock keeps its connection until it has released it
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


class JournalLock:
    """Optuna's journal lock (``optuna.storages.journal.JournalFileSymlinkLock``) that knows its holder.

    Taking it creates the symbolic link ``<journal>.lock`` exactly as Optuna does, so runners and plain Optuna
    processes (``optuna-dashboard``, a script) exclude each other, then records the holder (host, pid, the link's
    inode and change time) in ``<journal>.lock.holder``. A waiter that finds the link held by a process of this
    host that no longer runs (killed mid-write) removes it at once and logs a warning; otherwise it waits, and
    breaks a lock that has seen no journal write for ``grace_period`` seconds, as Optuna does (a holder on another
    host, or one killed before it could record itself).

    Example:
        >>> import tempfile, pathlib
        >>> journal = pathlib.Path(tempfile.mkdtemp()) / "study.journal"
        >>> _ = journal.write_bytes(b"")
        >>> lock = JournalLock(str(journal))
        >>> lock.acquire(), journal.with_name("study.journal.lock").is_symlink()
        (True, True)
        >>> lock.release()
    """

    # Optuna's names for the link and for a link being removed (tests/core/hpo check them against Optuna's own)
    SUFFIX = ".lock"
    RENAME_SUFFIX = ".rename"

    def __init__(self, filepath: str, grace_period: float = 30.0) -> None:
        self._target = filepath
        self._lock_file = filepath + self.SUFFIX
        self._holder_file = self._lock_file + ".holder"
        self.grace_period = grace_period

    def acquire(self) -> bool:
        """Take the lock, waiting as long as a live holder keeps it."""
        delay, seen, since = 0.001, None, time.monotonic()
        while True:
            try:
                os.symlink(self._target, self._lock_file)
            except FileExistsError:
                if self._break_if_holder_is_dead():
                    delay = 0.001
                    continue
                try:
                    written = os.stat(self._lock_file).st_mtime  # the journal's: the link points to it
                except OSError:
                    written = None
                if written != seen:
                    seen, since = written, time.monotonic()
                elif time.monotonic() - since > self.grace_period:
                    log.warning("%s: held for %.0f s without a journal write; breaking it", self._lock_file,
                                self.grace_period)  # fmt: skip
                    self._remove()
                    since = time.monotonic()
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            try:
                self._record_holder()
            except BaseException:
                self.release()
                raise
            return True

    def release(self) -> None:
        """Give the lock back (the holder record first, so that no waiter reads a record without its link)."""
        with contextlib.suppress(OSError):
            os.unlink(self._holder_file)
        if not self._remove():
            raise RuntimeError("Error: did not possess lock")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The lock, for the duration of a ``with`` block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def as_optuna_lock(self) -> BaseJournalFileLock:
        """This lock, typed as what ``JournalFileBackend(lock_obj=...)`` takes (it has the same two methods; it is
        not a subclass only so that importing this module does not import Optuna)."""
        return cast("BaseJournalFileLock", self)

    def _record_holder(self) -> None:
        record = {"host": socket.gethostname(), "pid": os.getpid(), "link": _identity(self._lock_file)}
        temporary = f"{self._holder_file}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:  # no fsync: a host crash ends every holder anyway
            handle.write(json.dumps(record))
        os.replace(temporary, self._holder_file)

    def _break_if_holder_is_dead(self) -> bool:
        """Remove the link if its recorded holder is a dead process of this host; True if the link is gone."""
        try:
            with open(self._holder_file, encoding="utf-8") as handle:
                holder = json.loads(handle.read())
            link = _identity(self._lock_file)
        except FileNotFoundError:
            return not os.path.lexists(self._lock_file)
        except (OSError, ValueError):
            return False
        if not isinstance(holder, dict) or holder.get("link") != link or holder.get("host") != socket.gethostname():
            return False  # a record of another link (a new holder not yet recorded), or a holder on another host
        pid = holder.get("pid")
        if not isinstance(pid, int) or process_alive(pid):
            return False
        if self._remove(link):
            log.warning("%s: its holder (pid %d on this host) has died; lock broken", self._lock_file, pid)
        return True

    def _remove(self, link: list[int] | None = None) -> bool:
        """Remove the link (only the one ``link`` identifies, when given) as Optuna does: rename it away, unlink."""
        moved = f"{self._lock_file}{uuid.uuid4()}{self.RENAME_SUFFIX}"
        try:
            os.rename(self._lock_file, moved)
        except OSError:
            return False
        # a new holder took it just now: put it back (the rename changed the link's ctime, not its inode)
        if link is not None and os.lstat(moved).st_ino != link[0]:
            with contextlib.suppress(OSError):
                os.link(moved, self._lock_file, follow_symlinks=False)
            os.unlink(moved)
            return False
        os.unlink(moved)
        return True


class GroupedJournal:
    """Optuna's journal file backend (the same file format and lock) whose flushes to disk can be grouped: see the
    module docstring. Outside :meth:`grouped_sync`, and in threads other than the one that entered it, every
    append is flushed before it returns, as Optuna's own backend does.

    Example:
        >>> import tempfile, pathlib
        >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "study.journal")
        >>> journal = GroupedJournal(path, JournalLock(path))
        >>> with journal.grouped_sync():
        ...     journal.append_logs([{"op_code": 0, "worker_id": "w"}])
        ...     journal.append_logs([{"op_code": 1, "worker_id": "w"}])
        ...     journal.flushes_owed
        1
        >>> journal.flushes_owed, [log["op_code"] for log in journal.read_logs(0)]
        (0, [0, 1])
    """

    def __init__(self, path: str, lock: JournalLock) -> None:
        from optuna.storages.journal import JournalFileBackend

        self.path = path
        self._lock = lock
        self._file = JournalFileBackend(path, lock_obj=lock.as_optuna_lock())
        self._local = threading.local()  # depth: nesting of grouped_sync in this thread; owed: unflushed appends

    def __getstate__(self) -> dict[str, Any]:  # a JournalStorage may be pickled (Optuna allows it); not a group
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return self._file.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not getattr(self._local, "depth", 0):
            self._file.append_logs(logs)
            return
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with self._lock.held(), open(self.path, "ab") as handle:
            handle.write(text.encode("utf-8"))
        self._local.owed = True

    @property
    def flushes_owed(self) -> int:
        """1 if this thread has appended since its last flush, else 0."""
        return int(getattr(self._local, "owed", False))

    @contextlib.contextmanager
    def grouped_sync(self) -> Iterator[None]:
        """Appends of this thread inside the block are flushed to disk once, when it ends (also on an error)."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            if not self._local.depth and self.flushes_owed:
                self.flush()

    def flush(self) -> None:
        """Flush the journal file's written records to disk."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._local.owed = False

    def as_optuna_backend(self) -> BaseJournalBackend:
        """This backend, typed as what ``JournalStorage`` takes (see :meth:`JournalLock.as_optuna_lock`)."""
        return cast("BaseJournalBackend", self)


def _identity(link: str) -> list[int]:
    """What tells one lock link from the next: its inode and change time (a new link may reuse the inode)."""
    status = os.lstat(link)
    return [status.st_ino, status.st_ctime_ns]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, killed and not yet reaped, does not).

    Example:
        >>> process_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class OpenedStorage:
    storage: optuna.storages.BaseStorage
    kind: str  # journal | sqlite | postgresql | rdb | object
    location: str  # path or URL with the password hidden
    lock: BudgetLock
    journal: GroupedJournal | None = None  # a journal file's backend

    def grouped_sync(self) -> contextlib.AbstractContextManager[None]:
        """A block whose journal records are flushed to disk once, at its end (see the module docstring); other
        storages flush as they always do."""
        return self.journal.grouped_sync() if self.journal is not None else contextlib.nullcontext()


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
    from optuna.storages.journal import JournalStorage

    if path.exists() and not path.is_file():
        raise UserError("the storage path is not a file", where=str(path), hint="name a journal file (.journal)")
    if read_only and not path.is_file():
        raise UserError("no journal file here", where=str(path), hint="check the path, or the run directory")
    try:
        if path.is_file():
            _check_journal(path, repair=not read_only)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        found = _journal_identity(path) if path.is_file() else None  # read before the replay: never past it
        opened = _reuse_journal(path, found) if found else None
        if opened is None:
            journal = GroupedJournal(str(path), JournalLock(str(path)))
            opened = (journal, JournalStorage(journal.as_optuna_backend()))
            if found:
                _remember_journal(path, found, *opened)
        journal, storage = opened
    except OSError as exc:
        raise UserError(f"cannot open the journal file: {exc.strerror or exc}", where=str(path)) from None
    except (ValueError, json.JSONDecodeError) as exc:
        raise UserError(
            f"the journal file is damaged: {exc}",
            where=str(path),
            hint="restore it from a copy; only a torn last record is repaired on its own",
        ) from None
    lock = FileLock(path.with_name(path.name + ".budget-lock"))
    return OpenedStorage(storage, "journal", str(path), lock, journal)


# Journals opened in this process, by resolved path: (the file's identity, its size then, the backend, the storage).
# Opening a JournalStorage replays the whole file (about a second per 20 MB); one that is already open reads only
# the records appended since its last read, so a later open of the same file reuses it (the model bridge opens its
# one journal once per study and per batch of a Gauss–Newton search). A journal deleted and written anew at the
# same path (another inode or first record), or one that got shorter (a copy restored over it, a torn record cut
# off), is replayed afresh.
_OPEN_JOURNALS: OrderedDict[str, tuple[tuple[int, int, bytes], int, GroupedJournal, Any]] = OrderedDict()
_OPEN_JOURNALS_LOCK = threading.Lock()
OPEN_JOURNALS_KEPT = 8  # the least recently opened beyond these is forgotten (its replay state freed)


def _journal_identity(path: Path) -> tuple[tuple[int, int, bytes], int]:
    """(device, inode, first record) and the size of the journal at ``path``; the first record is b"" while it
    is incomplete."""
    stat = path.stat()
    with path.open("rb") as f:
        first = f.readline(4096)
    return (stat.st_dev, stat.st_ino, first if first.endswith(b"\n") else b""), stat.st_size


def _reuse_journal(path: Path, found: tuple[tuple[int, int, bytes], int]) -> tuple[GroupedJournal, Any] | None:
    """The backend and storage this process already has open on the journal at ``path``, if it is still the same
    file (``found``: its identity and size now) and has not got shorter since."""
    identity, size = found
    key = str(path.resolve())
    with _OPEN_JOURNALS_LOCK:
        entry = _OPEN_JOURNALS.get(key)
        if entry is None or entry[0] != identity or size < entry[1]:
            return None
        _OPEN_JOURNALS[key] = (identity, size, entry[2], entry[3])
        _OPEN_JOURNALS.move_to_end(key)
        return entry[2], entry[3]


def _remember_journal(
    path: Path, found: tuple[tuple[int, int, bytes], int], journal: GroupedJournal, storage: Any
) -> None:
    identity, size = found
    if not identity[2]:
        return  # no complete record yet: remembered at an open that finds one
    key = str(path.resolve())
    with _OPEN_JOURNALS_LOCK:
        _OPEN_JOURNALS[key] = (identity, size, journal, storage)
        _OPEN_JOURNALS.move_to_end(key)
        while len(_OPEN_JOURNALS) > OPEN_JOURNALS_KEPT:
            _OPEN_JOURNALS.popitem(last=False)


def forget_journals() -> None:
    """Drop the journals this process keeps open, so the next open replays its file (tests)."""
    with _OPEN_JOURNALS_LOCK:
        _OPEN_JOURNALS.clear()


def _check_journal(path: Path, repair: bool) -> None:
    """Refuse a file that is not an Optuna journal; repair a torn last record (a writer killed mid-line), which
    would otherwise poison the next append. The cut bytes are kept in ``<journal>.torn-<time>``."""
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
    with JournalLock(str(path)).held(), path.open("r+b") as f:
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
