"""The keys a job backend's YAML may hold (``core/jobs/config/<backend>.yaml`` and the site files extending them).

The bundled YAML files carry the values (they are the templates a site copies); this schema says which keys
exist, their types and ranges, so a typo (``poll_intervall``), a string where a number belongs or a negative
grace period is one line naming the file and the key, before anything is submitted.

Example:
    >>> from core.config.schema import check_config
    >>> _ = check_config({"backend": "local", "poll_interval": 0.1, "kill_grace": 2}, BackendSchema, "site.yaml")
    >>> check_config({"backend": "local", "poll_intervall": 0.1}, BackendSchema, "site.yaml")
    Traceback (most recent call last):
    ...
    core.errors.ConfigError: unknown key 'poll_intervall' (site.yaml: poll_intervall) — did you mean poll_interval?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config.schema import option


@dataclass
class ModeTemplate:
    """How one mode (cpu, gpu, mpi, train) launches the command, and its extra scheduler directives."""

    launcher: list[str] = field(default_factory=list)
    directives: list[str] = field(default_factory=list)


@dataclass
class ArrayElement:
    """The scheduler's array-index variable and the index of its first element."""

    variable: str = ""
    first: int = option(0, ge=0)


@dataclass
class BackendSchema:
    """Every key of a backend config; see core/jobs/README.md for what each does."""

    backend: str = option("local")
    poll_interval: float = option(1.0, gt=0)
    kill_grace: float = option(5.0, ge=0)
    max_parallel: int | None = option(None, ge=1)
    query_retries: int = option(3, ge=0)
    lost_after: float = option(60.0, gt=0)
    log_dir: str = "."
    state_root: str | None = None
    shell: str = "/bin/bash"
    submit: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    accounting: list[str] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    job_id_variable: str = "JOB_ID"
    element: ArrayElement = field(default_factory=ArrayElement)
    options: dict[str, Any] = field(default_factory=dict)
    directives: list[str] = field(default_factory=list)
    array_directives: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    export_env: list[str] = field(default_factory=list)
    modes: dict[str, ModeTemplate] = field(default_factory=dict)


__all__ = ["ArrayElement", "BackendSchema", "ModeTemplate"]
