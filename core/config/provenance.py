"""What a run was: ``merged_config.yaml`` and ``provenance.json`` in its run directory, and the git check.

``provenance.json`` records the time, host, user, working directory and command line; Python and the versions of
the packages that matter; and, for every repository that a ``_target_`` of the config lives in, its path, commit,
branch and whether it had uncommitted changes (``git status --porcelain --untracked-files=no``; untracked files,
such as run directories, do not make a tree dirty).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config.instantiate import iter_targets
from core.config.loader import config_error_from
from core.errors import UserError
from core.files import write_atomic

_PACKAGES = (
    "kakehashi",
    "omegaconf",
    "hydra-core",
    "optuna",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "lightning",
    "h5py",
    "av",
    "eclipse-sumo",
)


@dataclass
class RepoState:
    """The git state of one repository that some ``_target_`` of a config is imported from."""

    path: str
    commit: str
    branch: str
    dirty: bool
    changed_files: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


def repo_states(cfg: Any) -> list[RepoState]:
    """Git state of every repository that holds a ``_target_`` module of ``cfg`` (installed packages skipped)."""
    states: dict[str, RepoState] = {}
    for _, target in iter_targets(cfg):
        folder = _module_folder(target)
        if folder is None:
            continue
        top = _git(folder, "rev-parse", "--show-toplevel")
        if top is None or _git(top, "check-ignore", "-q", str(folder)) is not None:
            continue  # not in a repository, or an ignored folder in one (a .venv inside the checkout)
        if top not in states:
            status = _git(top, "status", "--porcelain", "--untracked-files=no") or ""
            changed = [line[3:] for line in status.splitlines() if line.strip()]
            states[top] = RepoState(
                path=top,
                commit=_git(top, "rev-parse", "HEAD") or "(no commits)",
                branch=_git(top, "rev-parse", "--abbrev-ref", "HEAD") or "?",
                dirty=bool(changed),
                changed_files=changed,
            )
        if target not in states[top].targets:
            states[top].targets.append(target)
    return list(states.values())


def check_git(cfg: Any, strict: bool = False) -> list[RepoState]:
    """Return the git state of the config's repositories; with ``strict``, refuse a dirty one.

    Raises:
        UserError: When ``strict`` and a repository has uncommitted changes to tracked files.
    """
    states = repo_states(cfg)
    dirty = [s for s in states if s.dirty]
    if strict and dirty:
        first = dirty[0]
        shown = ", ".join(first.changed_files[:3]) + (" ..." if len(first.changed_files) > 3 else "")
        raise UserError(
            f"uncommitted changes in {len(first.changed_files)} file(s): {shown}",
            where=first.path,
            hint="commit or stash them, or run without the strict git check",
        )
    return states


def collect_provenance(cfg: Any) -> dict[str, Any]:
    """Everything ``provenance.json`` holds, as a dict."""
    return {
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "user": _user(),
        "cwd": os.getcwd(),
        "command_line": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else [],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "repositories": [asdict(s) for s in repo_states(cfg)],
    }


def save_run_config(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Write ``merged_config.yaml`` (resolved: the config as run) and ``provenance.json`` into ``run_dir``.

    Both files are written to a temporary name first and renamed, so a crash never leaves half a file.

    Example:
        >>> import tempfile
        >>> from omegaconf import OmegaConf
        >>> run = save_run_config(OmegaConf.create({"lr": "${eval:1/8}"}), tempfile.mkdtemp())
        >>> (run / "merged_config.yaml").read_text()
        'lr: 0.125\\n'
    """
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise config_error_from(exc, "config") from None
    run = Path(run_dir)
    try:
        run.mkdir(parents=True, exist_ok=True)
        write_atomic(run / "merged_config.yaml", text)
        write_atomic(run / "provenance.json", json.dumps(collect_provenance(cfg), indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the run directory: {exc.strerror or exc}", where=str(run)) from None
    return run


def _module_folder(target: str) -> Path | None:
    """Folder of the module a dotted target lives in, found without importing the target itself."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:cut]))
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            return Path(spec.origin).parent
        if spec is not None and spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations)))
    return None


def _git(folder: str | Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.rstrip("\n") if done.returncode == 0 else None


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
