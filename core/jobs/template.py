"""Backend configs (the YAML job templates in ``core/jobs/config``) and the placeholders they use.

A backend config is a YAML file; a site extends a bundled one with ``_base_``::

    _base_: ${pkg:core.jobs.config}/slurm.yaml
    directives: [--partition=gpu, --account={account}]
    options: {account: myproject}
    setup: [module load cuda/12.4]

Template strings name spec values in braces: ``{name}``, ``{walltime}`` (``HH:MM:SS``), ``{walltime_seconds}``,
``{n_gpus}`` (null when 0), ``{n_gpus_or_zero}``, ``{n_nodes}``, ``{n_procs}`` (per node in ``train``, ranks in
``mpi``), ``{procs_per_node}``, ``{total_procs}`` (``n_procs × n_nodes``),
``{n_tasks}``, ``{n_array}``, ``{last_element}``, ``{state_dir}``, ``{python}``, plus every key of the config's
``options`` overridden by ``JobSpec.options``. A directive whose placeholder is null is left out (so
``--time={walltime}`` disappears without a walltime); a launcher argument never is.

Example:
    >>> fields = {"walltime": None, "n_gpus": 2}
    >>> render_lines(["--time={walltime}", "--gpus={n_gpus}"], fields, "slurm.yaml:directives")
    ['--gpus=2']
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from core.config import as_dict, load_config, package_dir
from core.errors import ConfigError, UserError
from core.jobs.base import JobSpec

_WALLTIME = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?:(?P<h>\d+):)?(?P<m>\d+):)?(?P<s>\d+)$")
_MODES = ("cpu", "gpu", "mpi", "train")


def bundled_config(name: str) -> Path:
    """The bundled config of backend ``name``."""
    return package_dir("core.jobs.config") / f"{name}.yaml"


@dataclass(frozen=True)
class BackendConfig:
    """A loaded backend config: a plain mapping plus where it came from (for error messages)."""

    data: dict[str, Any]
    where: str

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value is None else value

    def mode(self, mode: str) -> dict[str, Any]:
        modes = self.data.get("modes") or {}
        if mode not in modes:
            raise ConfigError(f"mode {mode!r} has no template", where=f"{self.where}:modes", hint=f"add modes.{mode}")
        return dict(modes[mode] or {})

    def float(self, key: str, default: float) -> float:
        value = self.get(key, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, not {value!r}", where=f"{self.where}:{key}") from None

    def strings(self, key: str, node: Mapping[str, Any] | None = None) -> list[str]:
        value = (self.data if node is None else node).get(key) or []
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{key} must be a list of strings", where=f"{self.where}:{key}")
        return [str(v) for v in value]


def load_backend_config(name: str, config: DictConfig | str | Path | None) -> BackendConfig:
    """Load the config of backend ``name``: the bundled one, a file that extends it, or a ``DictConfig``."""
    if config is None:
        path = bundled_config(name)
        if not path.is_file():
            raise ConfigError(f"no bundled config for backend {name!r}", where=str(path))
        cfg, where = load_config(path), str(path)
    elif isinstance(config, DictConfig):
        cfg, where = config, f"<{name} config>"
    else:
        cfg, where = load_config(config), str(config)
    if not isinstance(cfg, DictConfig):
        raise ConfigError("a backend config must be a mapping", where=where)
    from core.config.schema import check_config
    from core.jobs.schema import BackendSchema

    check_config(cfg, BackendSchema, where)  # unknown keys, types, ranges: one line before anything runs
    data = as_dict(cfg, where=where)
    declared = data.get("backend")
    if declared is not None and declared != name:
        raise ConfigError(
            f"this config is for backend {declared!r}, not {name!r}",
            where=f"{where}:backend",
            hint=f"use get_backend({declared!r}, ...) or extend ${{pkg:core.jobs.config}}/{name}.yaml",
        )
    return BackendConfig(data, where)


def walltime_seconds(walltime: str | None) -> int | None:
    """Seconds of a ``[D-]HH:MM:SS`` (or ``MM:SS``, ``SS``) walltime; ``UserError`` if malformed."""
    if walltime is None:
        return None
    match = _WALLTIME.match(str(walltime).strip())
    if match is None:
        raise UserError(
            f"walltime {walltime!r} is not [D-]HH:MM:SS", where="walltime", hint="e.g. 1:30:00 or 2-00:00:00"
        )
    d, h, m, s = (int(match[g] or 0) for g in "dhms")
    return ((d * 24 + h) * 60 + m) * 60 + s


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def validate_spec(spec: JobSpec) -> None:
    """Reject specs no backend can run, as one ``UserError`` line."""
    if isinstance(spec.command, str) or not spec.command or not all(isinstance(a, str) for a in spec.command):
        raise UserError(
            "command must be a non-empty list of strings (argv), not a shell string",
            where=f"job {spec.name}",
            hint='e.g. JobSpec(["python", "train.py", "lr=0.1"])',
        )
    if spec.mode not in _MODES:
        raise UserError(f"unknown mode {spec.mode!r}", where=f"job {spec.name}", hint=f"one of {', '.join(_MODES)}")
    for field in ("n_nodes", "n_procs", "n_tasks", "n_tasks_per_proc"):
        if int(getattr(spec, field)) < 1:
            raise UserError(f"{field} must be at least 1", where=f"job {spec.name}")
    if spec.n_gpus < 0:
        raise UserError("n_gpus must not be negative", where=f"job {spec.name}")
    walltime_seconds(spec.walltime)
    for key, value in spec.env.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"environment variable name {key!r} is not valid", where=f"job {spec.name}")
        if not isinstance(value, str):
            raise UserError(f"environment value of {key} must be a string", where=f"job {spec.name}")


def spec_fields(spec: JobSpec, cfg: BackendConfig, n_array: int, state_dir: Path) -> dict[str, Any]:
    """The placeholder values of ``spec`` (see the module docstring)."""
    seconds = walltime_seconds(spec.walltime)
    fields: dict[str, Any] = dict(cfg.get("options", {}))
    fields.update(spec.options)
    fields.update(  # SPEC_FIELDS: these come from the spec, never from options
        name=spec.name,
        walltime=None if seconds is None else hms(seconds),
        walltime_seconds=seconds,
        n_gpus=spec.n_gpus if spec.n_gpus > 0 else None,
        n_gpus_or_zero=spec.n_gpus,
        n_nodes=spec.n_nodes,
        n_procs=spec.n_procs,
        procs_per_node=spec.n_procs if spec.mode == "train" else -(-spec.n_procs // spec.n_nodes),
        total_procs=spec.n_procs * spec.n_nodes,
        n_tasks=spec.n_tasks,
        n_array=n_array,
        last_element=n_array - 1,
        state_dir=str(state_dir),
        python=str(cfg.get("python") or sys.executable),
    )
    return fields


SPEC_FIELDS = frozenset(
    [
        "name",
        "walltime",
        "walltime_seconds",
        "n_gpus",
        "n_gpus_or_zero",
        "n_nodes",
        "n_procs",
        "procs_per_node",
        "total_procs",
        "n_tasks",
        "n_array",
        "last_element",
        "state_dir",
        "python",
    ]
)


def _placeholders(text: str, where: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"bad template {text!r}: {exc}", where=where) from None


def render_one(text: str, fields: Mapping[str, Any], where: str) -> str | None:
    """``text`` with its placeholders filled; ``None`` if one of them is null. Newlines are refused."""
    for name in _placeholders(text, where):
        key = re.split(r"[.\[]", name, maxsplit=1)[0]
        if key == "":
            raise ConfigError(f"positional placeholder in {text!r}", where=where, hint="name it, e.g. {n_gpus}")
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown placeholder {{{key}}} in {text!r}", where=where, hint=f"known: {known}")
        if fields[key] is None:
            return None
    try:
        rendered = text.format_map(dict(fields))
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot fill {text!r}: {exc}", where=where) from None
    if "\n" in rendered or "\r" in rendered:
        raise UserError(f"a value in {text!r} contains a line break", where=where)
    return rendered


def render_lines(templates: Sequence[str], fields: Mapping[str, Any], where: str) -> list[str]:
    """Each template filled; those with a null placeholder are left out."""
    return [line for line in (render_one(t, fields, where) for t in templates) if line is not None]


def render_argv(templates: Sequence[str], fields: Mapping[str, Any], where: str) -> list[str]:
    """A launcher's argv filled; a null placeholder in a launcher is a config error, not a silent drop."""
    argv = []
    for text in templates:
        value = render_one(text, fields, where)
        if value is None:
            raise ConfigError(f"launcher argument {text!r} needs a value that this job does not set", where=where)
        argv.append(value)
    return argv


__all__ = [
    "BackendConfig",
    "bundled_config",
    "hms",
    "load_backend_config",
    "render_argv",
    "render_lines",
    "spec_fields",
    "validate_spec",
    "walltime_seconds",
]
