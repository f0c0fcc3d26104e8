"""How the runner's loop sleeps without spinning: a self-pipe that anything may write to (a trial thread that
finished, a signal handler), waited on with ``select`` together with the pidfds of running child processes.

Ctrl-C and SIGTERM do not raise inside whatever the runner happens to be doing (a storage write, a lock): the first
one sets :attr:`StopSignals.requested` and wakes the loop, which stops its trials at a safe point; a second one
raises ``KeyboardInterrupt`` at once, for a runner that is stuck.

Example:
    >>> wake = Wakeup()
    >>> wake.wait(0.0)
    False
    >>> wake.set()
    >>> wake.wait(10.0)
    True
    >>> wake.close()
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import Any


class Wakeup:
    """A self-pipe: :meth:`set` from any thread (or a signal handler) ends the current or next :meth:`wait`."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def set(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe is already a pending wake-up
            os.write(self._write, b"x")

    def wait(self, timeout: float, fds: Iterable[int] = ()) -> bool:
        """Sleep until :meth:`set` was called, one of ``fds`` is readable (a pidfd: its process exited), or
        ``timeout`` seconds passed. True if woken before the timeout."""
        watched = [self._read, *fds]
        try:
            ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
        except InterruptedError:  # pragma: no cover - Python retries select itself (PEP 475)
            return True
        except (OSError, ValueError):  # a pidfd closed meanwhile: let the caller look again
            return True
        if self._read in ready:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._read, 4096):
                    pass
        return bool(ready)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class StopSignals:
    """While active (a context manager), SIGINT and SIGTERM request a stop instead of raising; a second signal
    raises ``KeyboardInterrupt``. Outside the main thread it does nothing (signals go to the main thread)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup
        self.requested = False
        self._previous: list[Any] = []

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.wakeup.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = [signal.signal(s, self._handler) for s in self.SIGNALS]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, previous in zip(self.SIGNALS, self._previous, strict=False):
            signal.signal(s, previous)
        self._previous = []

    @contextlib.contextmanager
    def ignored(self) -> Any:
        """While recording an interruption, further signals do not cut the records short."""
        if not self._previous:
            yield
            return
        saved = [signal.signal(s, signal.SIG_IGN) for s in self.SIGNALS]
        try:
            yield
        finally:
            for s, handler in zip(self.SIGNALS, saved, strict=True):
                signal.signal(s, handler)
