"""What every job backend does the same way: where a submission's files go, and how ``wait`` polls.

:class:`BackendBase` is the base of :class:`~core.jobs.local.LocalBackend` and of the scheduler backends
(:class:`~core.jobs.scheduler.ScriptBackend`): it holds the backend's config and poll interval, lays out a
submission (:meth:`BackendBase.layout`: working directory, log paths per array element, a fresh state directory)
and implements ``wait`` on top of the subclass's ``status``. A site's own backend (registered under the
``kakehashi.backends`` entry-point group) gets the same by subclassing it.

Example:
    >>> import tempfile
    >>> from core.jobs import JobSpec, get_backend
    >>> folder = Path(tempfile.mkdtemp())
    >>> layout = get_backend("local").layout(JobSpec(["true"], n_tasks=2, log_path=folder / "run.log"))
    >>> [path.name for path in layout.log_paths], layout.state_dir.parent.name
    (['run.0.log', 'run.1.log'], '.kakehashi')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.jobs.base import JobHandle, JobSpec, JobStatus, ProgressCallback, poll_until_finished
from core.jobs.ranks import n_array_elements
from core.jobs.state import element_log_paths, new_state_dir
from core.jobs.template import SPEC_FIELDS, BackendConfig, validate_spec

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Layout:
    """Where one submission lives: its working directory, logs (one per array element) and state directory."""

    cwd: Path
    log_path: Path
    log_paths: tuple[Path, ...]
    state_dir: Path
    n_array: int


class BackendBase:
    """Config, submission layout and ``wait`` for every backend; subclasses add ``submit``, ``status``, ``cancel``."""

    name = ""
    default_poll_interval = 1.0

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.poll_interval = config.float("poll_interval", self.default_poll_interval)
        if self.poll_interval <= 0:
            raise UserError("poll_interval must be positive", where=f"{config.where}:poll_interval")

    def layout(self, spec: JobSpec) -> Layout:
        """Check ``spec`` and lay out its files; creates the state directory (and nothing else).

        The log defaults to ``<log_dir>/<name>.log``; relative paths are relative to the job's working directory;
        the state directory goes under the config's ``state_root`` or next to the log, in ``.kakehashi/``.
        """
        validate_spec(spec)
        self._check_options(spec)
        cwd = Path(spec.cwd).resolve() if spec.cwd is not None else Path.cwd()
        if not cwd.is_dir():
            raise UserError("working directory does not exist", where=str(cwd))
        if spec.log_path is None:
            log_path = Path(self.config.get("log_dir", ".")) / f"{spec.name}.log"
        else:
            log_path = Path(spec.log_path)
        log_path = log_path if log_path.is_absolute() else cwd / log_path
        if log_path.is_dir():
            raise UserError(
                "the log path is a directory", where=str(log_path), hint="give a file name, e.g. logs/run.log"
            )
        if log_path.parent.exists() and not log_path.parent.is_dir():
            raise UserError("the log's folder is a file", where=str(log_path.parent))
        n_array = n_array_elements(spec.n_tasks, spec.n_tasks_per_proc)
        root = self.config.get("state_root")
        try:
            state_dir = new_state_dir(Path(root).expanduser() if root else log_path.parent / ".kakehashi", spec.name)
        except OSError as exc:
            raise UserError(
                f"cannot create the job's state directory: {exc.strerror}",
                where=str(exc.filename or log_path.parent),
                hint="choose a log path (or state_root) in a writable folder",
            ) from None
        return Layout(cwd, log_path, element_log_paths(log_path, n_array), state_dir, n_array)

    def known_options(self) -> set[str]:
        """Option names a ``JobSpec.options`` / ``--option`` may set: the config's ``options`` and every
        ``{placeholder}`` its templates use, except the ones the spec itself fills (name, walltime, n_procs, ...)."""
        known = {str(key) for key in self.config.get("options", {}) or {}}
        texts: list[str] = []
        for key in ("directives", "array_directives", "setup", "launcher"):
            texts += [str(v) for v in self.config.get(key, []) or []]
        for mode in (self.config.get("modes", {}) or {}).values():
            for key in ("directives", "launcher"):
                texts += [str(v) for v in (mode or {}).get(key, []) or []]
        for text in texts:
            known.update(_PLACEHOLDER.findall(text))
        return known - SPEC_FIELDS

    def _check_options(self, spec: JobSpec) -> None:
        unknown = sorted(set(spec.options) - self.known_options())
        if unknown:
            known = ", ".join(sorted(self.known_options())) or "none"
            raise UserError(
                f"unknown option {unknown[0]!r}: no template of the {self.name} backend uses it",
                where=self.config.where,
                hint=f"options here: {known}; add it to the site config's options or templates",
            )

    def submit(self, spec: JobSpec) -> JobHandle:
        raise NotImplementedError

    def status(self, handles: Sequence[JobHandle]) -> list[JobStatus]:
        raise NotImplementedError

    def cancel(self, handle: JobHandle) -> None:
        raise NotImplementedError

    def wait(
        self,
        handles: Sequence[JobHandle],
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[JobStatus]:
        """Poll ``status`` every ``poll_interval`` seconds until every job has finished (or ``timeout``)."""
        return poll_until_finished(self, handles, timeout, on_progress, self.poll_interval)


__all__ = ["BackendBase", "Layout"]
