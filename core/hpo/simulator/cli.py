"""``kakehashi hpo simulate CFG``: the zero-wait simulator's verb, added to the ``hpo`` area by core/hpo/cli.py.

Example:
    >>> from core.cli import ArgumentParser, add_area
    >>> parser = ArgumentParser(prog="kakehashi")
    >>> register_verbs(add_area(parser.add_subparsers(), "hpo", help="hpo", description="hpo"))
    >>> parser.parse_args(["hpo", "simulate", "cfg.yaml", "n_trials=5"]).overrides
    ['n_trials=5']
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from core.cli import SubParsers, add_config_arguments

_EXAMPLE = "core/hpo/simulator/examples/branin.yaml"


def register_verbs(verbs: SubParsers) -> None:
    """Add ``simulate`` to the verbs of the ``hpo`` area."""
    simulate = verbs.add_parser(
        "simulate",
        help="zero-wait simulation of asynchronous (multi-fidelity) HPO on a benchmark",
        description="Replay what N asynchronous workers would do with each method (Optuna sampler + pruner) on a\n"
        "benchmark with a runtime model, in seconds instead of days: results reach the sampler in simulated\n"
        "finish order, pruners see only what a real run would have seen. Writes trials.csv, summary.json,\n"
        "best_so_far.png, merged_config.yaml and provenance.json into the run directory.",
        epilog=f"example:\n  kakehashi hpo simulate {_EXAMPLE} n_trials=50 'n_workers=[1,8]' --run-dir runs/sim\n"
        f"  kakehashi hpo simulate {_EXAMPLE} --validate --time-scale 1e-5",
    )
    add_config_arguments(simulate)
    simulate.add_argument("--run-dir", type=Path, help="run directory (default: runs/simulate/<config name>/<time>)")
    simulate.add_argument(
        "--validate",
        action="store_true",
        help="instead, run the first method, worker count and seed both simulated and for real (threads sleeping\n"
        "the runtimes times --time-scale) and compare the order of results; exit 1 if they differ",
    )
    simulate.add_argument(
        "--time-scale", type=_positive, default=1e-5, help="real seconds per simulated second (--validate)"
    )
    simulate.add_argument("--validate-trials", type=int, default=24, help="trials of the validation run")
    simulate.add_argument("--quiet", action="store_true", help="no progress display")
    simulate.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from core.config import load_config

    cfg = load_config(args.config, args.overrides)
    console = Console(stderr=True)
    if args.validate:
        return _validate(cfg, args, console)
    from core.hpo.simulator.run import run_config

    run_dir = args.run_dir or Path("runs") / "simulate" / Path(args.config).stem / datetime.now().strftime(
        "%Y%m%d-%H%M%S"
    )
    summary = run_config(cfg, run_dir, progress=not args.quiet)
    _print_summary(summary)
    console.print(f"wrote {run_dir}/trials.csv, summary.json, best_so_far.png")
    return 0


def _positive(text: str) -> float:
    """A finite number above 0 (argparse turns the ValueError into one ``error:`` line)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


_positive.__name__ = "positive number"


def _validate(cfg: object, args: argparse.Namespace, console: object) -> int:
    import optuna
    from omegaconf import DictConfig

    from core.config import instantiate
    from core.errors import UserError
    from core.hpo.simulator.objectives import benchmark_objective
    from core.hpo.simulator.run import _check, _int_list
    from core.hpo.simulator.validate import validate

    assert isinstance(cfg, DictConfig)
    _check(cfg)
    if not args.time_scale > 0:
        raise UserError(f"--time-scale must be > 0, got {args.time_scale}", where="--time-scale")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    benchmark = instantiate(cfg.benchmark)
    label = next(iter(cfg.methods))
    method = cfg.methods[label]
    n_workers = _int_list(cfg.n_workers, "n_workers")[0]
    seed = _int_list(cfg.get("seeds", [0]), "seeds")[0]

    def make_study() -> optuna.Study:
        pruner = instantiate(method.pruner) if method.get("pruner") is not None else optuna.pruners.NopPruner()
        return optuna.create_study(
            sampler=instantiate(method.sampler, seed=seed), pruner=pruner, directions=list(benchmark.directions)
        )

    objective = benchmark_objective(benchmark, cfg.get("report_fidelities"), cfg.get("fidelity_param"))
    report = validate(make_study, objective, n_workers, args.validate_trials, args.time_scale)
    print(f"validate {label} · {n_workers} workers · seed {seed} · {args.validate_trials} trials: {report.summary()}")
    if report.resolution * args.time_scale < 2e-3:
        print(
            f"note: the closest simulated events are {report.resolution * args.time_scale * 1e3:.3g} ms apart in "
            "real time; thread timing cannot resolve less than a few ms — raise --time-scale"
        )
    return 0 if report.same_order and report.same_states else 1


def _print_summary(summary: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("method", "workers", "seed", "trials", "complete", "pruned", "best", "simulated time (s)", "wall (s)")
    runs = summary["runs"]
    assert isinstance(runs, list)
    for run in runs:
        best = run["best"]
        table.add_row(
            str(run["label"]),
            str(run["n_workers"]),
            str(run["seed"]),
            str(run["n_trials"]),
            str(run["complete"]),
            str(run["pruned"]),
            f"{best:.6g}" if isinstance(best, float) else "-",
            f"{run['end_time']:.6g}",
            f"{run['wall_seconds']:.3g}",
        )
    Console().print(table)


__all__ = ["register_verbs"]
