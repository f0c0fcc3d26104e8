"""``get_backend(name, config)``: a backend by name, configured by its YAML template (or a site file extending it).

Example:
    >>> from core.jobs.registry import get_backend
    >>> get_backend("local").name
    'local'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.errors import UserError
from core.jobs.base import Backend, JobHandle
from core.jobs.state import read_handle_record
from core.jobs.template import BackendConfig, load_backend_config

BACKENDS: dict[str, str] = {
    "local": "core.jobs.local:LocalBackend",
    "slurm": "core.jobs.slurm:SlurmBackend",
    "sge": "core.jobs.sge:SGEBackend",
    "pbs": "core.jobs.pbs:PBSBackend",
}


def _backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise UserError(f"unknown job backend {name!r}", hint=f"one of {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


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


__all__ = ["BACKENDS", "backend_of", "get_backend"]
