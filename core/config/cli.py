"""``kakehashi config show | get | check-git | run``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from core.cli import SubParsers, add_area, add_config_arguments, add_override_arguments
from core.errors import ConfigError

_EXAMPLE = "core/config/examples/demo.yaml"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "config",
        help="show, query and run configs",
        description="Load YAML configs (_base_, _inherit_, overrides) and run them.",
    )

    show = verbs.add_parser(
        "show",
        help="print the merged config",
        epilog=f"example:\n  kakehashi config show {_EXAMPLE} data.noise=1.0 +tag=try1",
    )
    add_config_arguments(show)
    show.add_argument("--raw", action="store_true", help="keep interpolations instead of resolving them")
    show.set_defaults(handler=_show)

    get = verbs.add_parser(
        "get",
        help="print one value of the merged config",
        epilog=f"example:\n  kakehashi config get {_EXAMPLE} models.strong_ridge.alpha",
    )
    get.add_argument("config", metavar="CFG", help="YAML config file")
    get.add_argument("key", metavar="KEY", help="dotted key path, e.g. model.alpha")
    add_override_arguments(get)
    get.set_defaults(handler=_get)

    check = verbs.add_parser(
        "check-git",
        help="git state of the repositories the config's _target_s come from",
        epilog=f"exit status: 0 clean, 1 uncommitted changes (2 with --strict)\n"
        f"example:\n  kakehashi config check-git {_EXAMPLE} || echo 'uncommitted changes: commit before a run to keep'",
    )
    add_config_arguments(check)
    check.add_argument("--strict", action="store_true", help="a dirty repository is an error (exit 2)")
    check.set_defaults(handler=_check_git)

    run = verbs.add_parser(
        "run",
        help="instantiate the config's `run` node and record the run",
        description="Instantiate the node KEY (default: run) of the config, typically a function with its\n"
        "arguments, print its result, and keep merged_config.yaml, provenance.json and result.json\n"
        "in the run directory.",
        epilog=f"example:\n  kakehashi config run {_EXAMPLE} model.alpha=10 --run-dir runs/alpha10",
    )
    add_config_arguments(run)
    run.add_argument("--key", default="run", help="node to instantiate (default: run)")
    run.add_argument("--run-dir", type=Path, help="run directory (default: runs/<config name>/<time>)")
    run.add_argument("--strict-git", action="store_true", help="refuse to run from a dirty repository")
    run.set_defaults(handler=_run)


def _load(args: argparse.Namespace) -> Any:
    from core.config import load_config

    return load_config(args.config, args.overrides)


def _show(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = _load(args)
    _print_yaml(OmegaConf.to_yaml(cfg, resolve=not args.raw))
    return 0


def _get(args: argparse.Namespace) -> int:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    cfg = _load(args)
    missing = object()
    value = OmegaConf.select(cfg, args.key, default=missing)
    if value is missing:
        raise ConfigError(
            f"no key {args.key!r} in the config",
            where=args.config,
            hint="see the keys with: kakehashi config show " + args.config,
        )
    if isinstance(value, DictConfig | ListConfig):
        _print_yaml(OmegaConf.to_yaml(value, resolve=True))
    else:
        print(value)
    return 0


def _check_git(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.config import check_git

    states = check_git(_load(args), strict=args.strict)
    table = Table("repository", "commit", "branch", "state", "targets")
    for state in states:
        mark = f"[red]dirty ({len(state.changed_files)} files)[/red]" if state.dirty else "[green]clean[/green]"
        table.add_row(state.path, state.commit[:12], state.branch, mark, ", ".join(state.targets))
    console = Console()
    if states:
        console.print(table)
    else:
        console.print("no _target_ of this config lives in a git repository")
    return 1 if any(s.dirty for s in states) else 0


def _run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from rich.console import Console

    from core.config import check_git, check_targets, instantiate, save_run_config

    cfg = _load(args)
    node = OmegaConf.select(cfg, args.key)
    if node is None:
        raise ConfigError(f"no node {args.key!r} to run", where=args.config, hint="add one or pass --key")
    check_targets(node)
    check_git(cfg, strict=args.strict_git)
    run_dir = args.run_dir or Path("runs") / Path(args.config).stem / datetime.now().strftime("%Y%m%d-%H%M%S")
    save_run_config(cfg, run_dir)
    console = Console(stderr=True)
    console.print(f"run directory: {run_dir}")
    result = instantiate(node)
    _print_result(result)
    try:
        text = json.dumps(result, indent=2, default=_jsonable)
    except TypeError:
        return 0  # a result that is not data (an object): printed, not stored
    (Path(run_dir) / "result.json").write_text(text + "\n", encoding="utf-8")
    console.print(f"wrote {Path(run_dir) / 'result.json'}")
    return 0


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    raise TypeError(type(value).__name__)


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.pretty import Pretty
    from rich.table import Table

    console = Console()
    if isinstance(result, dict) and all(isinstance(v, dict) for v in result.values()) and result:
        columns = list(next(iter(result.values())))
        table = Table("name", *columns)
        for name, row in result.items():
            table.add_row(str(name), *(_cell(row.get(c)) for c in columns))
        console.print(table)
    else:
        console.print(Pretty(result))


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_yaml(text: str) -> None:
    from rich.console import Console
    from rich.syntax import Syntax

    if sys.stdout.isatty():
        Console().print(Syntax(text, "yaml", background_color="default"))
    else:
        sys.stdout.write(text)


__all__ = ["register"]
