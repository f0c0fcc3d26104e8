"""``get_backend(name, config)``: a backend by name, configured by its YAML template (or a site file extending it).

Backends are plug-ins: a class published under the entry-point group ``kakehashi.backends`` (core's own the same
way, in ``pyproject.toml``), so a site adds, say, LSF from its own package without editing core::

    [project.entry-points."kakehashi.backends"]
    lsf = "mysite.lsf:LSFBackend"

Example:
    >>> from core.jobs.registry import get_backend
    >>> get_backend("local").name
    'local'
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.errors import UserError
from core.jobs.base import Backend, JobHandle
from core.jobs.state import read_handle_record
from core.jobs.template import BackendConfig, load_backend_config

BACKEND_GROUP = "kakehashi.backends"


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends, core's first (``local``, ``slurm``, ``sge``, ``pbs``), then the rest."""
    names = {point.name for point in entry_points(group=BACKEND_GROUP)}
    core_first = [name for name in ("local", "slurm", "sge", "pbs") if name in names]
    return (*core_first, *sorted(names - set(core_first)))


def _backend_class(name: str) -> Any:
    points = {point.name: point for point in entry_points(group=BACKEND_GROUP)}
    if name not in points:
        raise UserError(f"unknown job backend {name!r}", hint=f"one of {', '.join(backend_names())}")
    return points[name].load()


def get_backend(name: str, config: DictConfig | str | Path | None = None) -> Backend:
    """The backend ``name`` (``local``, ``slurm``, ``sge``, ``pbs``) configured by ``config``.

    Args:
        name: Which backend.
        config: ``None`` for the bundled ``core/jobs/config/<name>.yaml``; else a YAML file (typically one that
            extends the bundled file with ``_base_: ${pkg:core.jobs.config}/<name>.yaml``) or a loaded config.
    """
    cls = _backend_class(name)
    backend: Backend = cls(load_backend_config(name, config))
    return backend


def backend_of(handle: JobHandle) -> Backend:
    """The backend that submitted ``handle``, configured as it was at submission (saved in its state directory)."""
    saved = read_handle_record(handle.state_dir).get("backend_config")
    if not isinstance(saved, dict):
        return get_backend(handle.backend)
    backend: Backend = _backend_class(handle.backend)(BackendConfig(saved, str(handle.state_dir / "handle.json")))
    return backend


__all__ = ["BACKEND_GROUP", "backend_names", "backend_of", "get_backend"]
