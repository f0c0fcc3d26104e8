"""``kakehashi hpo optimize | report | trials | simulate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import SubParsers, add_area

_EXAMPLE = "core/hpo/config/examples/quadratic.yaml"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "hpo",
        help="hyperparameter optimization: Optuna studies over commands, jobs or callables",
        description="Run Optuna studies whose trials are commands (on any job backend) or Python callables;\n"
        "asynchronous, resumable, several runners per storage.",
    )

    optimize = verbs.add_parser(
        "optimize",
        help="run or resume a study until it holds n_trials trials",
        description="Run (or resume) the study of CFG. n_trials is the study's total: running the same command\n"
        "again finishes an interrupted study. The trial command may follow `--`; placeholders {param},\n"
        "{trial_number}, {out_file}, {report_file}, {trial_dir}, {run_dir}, {python} are filled per argument.\n"
        "Without a config file, start with KEY=VALUE overrides of the bundled defaults.",
        epilog=f"example:\n  kakehashi hpo optimize {_EXAMPLE} n_trials=30 n_max_jobs=4\n"
        "  kakehashi hpo optimize params.x=[0,1] n_trials=10 --run-dir runs/try -- \\\n"
        "      python -m core.hpo.example_objective --x {x} --out {out_file}",
    )
    optimize.add_argument("config", metavar="CFG", help="YAML config file (or the first KEY=VALUE override)")
    optimize.add_argument(
        "rest",
        metavar="[KEY=VALUE ...] [-- CMD ...]",
        nargs=argparse.REMAINDER,
        help="overrides: key.sub=value, +new.key=value, ~key (params.NAME=... adds a parameter); then the command",
    )
    optimize.add_argument("--run-dir", type=Path, help="run directory (default: the config's run_dir)")
    optimize.add_argument("--no-progress", action="store_true", help="no live progress line")
    optimize.set_defaults(handler=_optimize, parser=optimize)

    report = verbs.add_parser(
        "report",
        help="(re)write trials.csv, best.yaml and the plots of a run directory",
        epilog="example:\n  kakehashi hpo report runs/quadratic",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    report.add_argument("--storage", help="storage path or URL (default: the one in merged_config.yaml)")
    report.add_argument("--study", help="study name (default: the one in merged_config.yaml)")
    report.add_argument("--no-plots", action="store_true", help="tables only")
    report.set_defaults(handler=_report)

    trials = verbs.add_parser(
        "trials",
        help="print the trials of a run directory as a table",
        epilog="example:\n  kakehashi hpo trials runs/quadratic --state FAIL",
    )
    trials.add_argument("run_dir", metavar="RUN_DIR", type=Path)
    trials.add_argument("--storage", help="storage path or URL (default: the one in merged_config.yaml)")
    trials.add_argument("--study", help="study name (default: the one in merged_config.yaml)")
    trials.add_argument("--state", help="only trials in this state (COMPLETE, PRUNED, FAIL, RUNNING, WAITING)")
    trials.set_defaults(handler=_trials)

    from core.hpo.simulator.cli import register_verbs as register_simulate

    register_simulate(verbs)


def split_command(config: str, rest: list[str]) -> tuple[str | None, list[str], list[str], dict[str, str | bool]]:
    """Tell apart the config, the overrides, the trial command and options in
    ``CFG [KEY=VALUE ...] [--run-dir DIR] [--no-progress] [-- CMD ...]``.

    The command starts after ``--``, or at the first item that is not an override; a first positional that is an
    override (and not a file) means "no config file: the bundled defaults". ``params.NAME=...`` adds a parameter.

    Example:
        >>> split_command("params.x=[0,1]", ["n_trials=5", "--run-dir", "r", "--", "python", "f.py", "--x={x}"])
        (None, ['++params.x=[0,1]', 'n_trials=5'], ['python', 'f.py', '--x={x}'], {'run_dir': 'r'})
    """
    items = [config, *rest]
    cfg: str | None = None
    if not _is_override(config) or Path(config).is_file():
        cfg = config
        items = list(rest)
    overrides: list[str] = []
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--":
            return cfg, overrides, items[i + 1 :], options
        if item == "--run-dir" and i + 1 < len(items):
            options["run_dir"] = items[i + 1]
            i += 2
            continue
        if item.startswith("--run-dir="):
            options["run_dir"] = item.split("=", 1)[1]
        elif item == "--no-progress":
            options["no_progress"] = True
        elif item in ("-h", "--help"):
            options["help"] = True
        elif _is_override(item):
            overrides.append("++" + item if item.startswith("params.") else item)
        else:
            return cfg, overrides, items[i:], options
        i += 1
    return cfg, overrides, [], options


def _is_override(item: str) -> bool:
    head = item.split("=", 1)[0]
    return (
        "=" in item
        and head.lstrip("+~")
        .replace(".", "")
        .replace("_", "")
        .replace("-", "")
        .replace("[", "")
        .replace("]", "")
        .isalnum()
    ) or (item.startswith("~") and "=" not in item)


def _optimize(args: argparse.Namespace) -> int:
    from core.config.loader import literal_override
    from core.errors import ConfigError
    from core.hpo.runner import optimize
    from core.hpo.settings import default_config_path

    config, overrides, command, options = split_command(args.config, list(args.rest))
    if options.get("help"):
        args.parser.print_help()
        return 0
    run_dir = Path(str(options["run_dir"])) if "run_dir" in options else args.run_dir
    if config is not None and not Path(config).is_file():
        raise ConfigError("config file not found", where=config, hint="check the path")
    if command:
        overrides.append(literal_override("command", command))  # as written: ${...} is not interpolated
    result = optimize(
        config if config is not None else default_config_path(),
        overrides,
        run_dir=run_dir,
        progress=not (args.no_progress or options.get("no_progress")),
    )
    from rich.markup import escape

    from core.hpo.report import console

    console().print(escape(result.summary))  # with or without the progress line
    return 0 if result.n_complete + result.n_pruned > 0 or result.n_trials == 0 else 1


def _report(args: argparse.Namespace) -> int:
    from core.hpo.report import console, load_run_study, write_report

    study = load_run_study(args.run_dir, args.storage, args.study)
    written = write_report(study, args.run_dir, plots=not args.no_plots)
    for path in written:
        console().print(f"wrote {path}")
    return 0


def _trials(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.errors import UserError
    from core.hpo.report import load_run_study, trial_rows

    study = load_run_study(args.run_dir, args.storage, args.study)
    rows = trial_rows(study)
    if args.state:
        states = {"COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"}
        if args.state.upper() not in states:
            raise UserError(
                f"unknown state {args.state!r}", where="--state", hint=f"one of {', '.join(sorted(states))}"
            )
        rows = [r for r in rows if r["state"] == args.state.upper()]
    hidden = ("log_path", "job_id", "user_attrs_")  # in trials.csv; too wide for a terminal table
    columns = [
        c
        for c in dict.fromkeys(k for r in rows for k in r)
        if any(r.get(c) is not None for r in rows) and not c.startswith(hidden)
    ]
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    return 0


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


__all__ = ["register", "split_command"]
