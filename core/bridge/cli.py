"""``kakehashi bridge run | prepare | optimize | collect | fit | evaluate | report``."""

from __future__ import annotations

import argparse

from core.cli import SubParsers, add_area, add_config_arguments

_EXAMPLE = "core/bridge/config/examples/analytic.yaml"
_STAGE_HELP = {
    "prepare": "write the workspace: scenarios and the config as run",
    "optimize": "calibrate the cheap and the expensive model on every scenario (resumable)",
    "collect": "gather the (ξ̂, θ̂) pairs into pairs.csv",
    "fit": "fit the regression models, choose one by cross-validation",
    "evaluate": "run the expensive model at the bridge's predictions on held-out scenarios",
    "report": "write report.md, summary.json and the plots",
}


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "bridge",
        help="the model bridge: cheap calibrations → expensive parameters",
        description="Learn θ = h(ξ) from cheap and expensive calibrations across scenarios.",
    )
    run = verbs.add_parser(
        "run",
        help="run every stage (finished ones are skipped)",
        epilog=f"example:\n  kakehashi bridge run {_EXAMPLE} scenarios.mapping=nonlinear",
    )
    add_config_arguments(run)
    run.add_argument("--force", action="store_true", help="redo finished stages")
    add_redo_from_argument(run)
    run.set_defaults(handler=_handler(None))
    study = verbs.add_parser(
        "study",
        help="run (or resume) one per-scenario study: a unit of work for make or a job",
        epilog=f"example:\n  kakehashi bridge prepare {_EXAMPLE}\n"
        f"  kakehashi bridge study {_EXAMPLE} --scenario train-003 --role cheap",
    )
    add_config_arguments(study)
    study.add_argument("--scenario", required=True, help="scenario name (see <workspace>/scenarios/)")
    study.add_argument(
        "--role", required=True, choices=["cheap", "expensive", "direct_gauss_newton"],
        help="which study: a model's calibration, or the second reference (evaluate.direct_gauss_newton)",
    )  # fmt: skip
    study.set_defaults(handler=_study)
    fragment = verbs.add_parser(
        "make-fragment",
        help="print the path of the GNU Make fragment (core/workflow)",
        description="Print the path of the GNU Make fragment that runs the bridge's stages as make targets;\n"
        "a Makefile uses it with:  include $(shell kakehashi bridge make-fragment)",
        epilog="example:\n  kakehashi bridge make-fragment",
    )
    fragment.set_defaults(handler=_make_fragment)
    for stage, text in _STAGE_HELP.items():
        parser = verbs.add_parser(stage, help=text, epilog=f"example:\n  kakehashi bridge {stage} {_EXAMPLE}")
        add_config_arguments(parser)
        parser.add_argument("--force", action="store_true", help="redo it even if finished")
        parser.set_defaults(handler=_handler(stage))


def _handler(stage: str | None):  # type: ignore[no-untyped-def]
    def handle(args: argparse.Namespace) -> int:
        from rich.console import Console

        from core.bridge.pipeline import STAGES, run
        from core.cli import log_to
        from core.config import load_config

        console = Console(stderr=True)
        cfg = load_config(args.config, args.overrides)
        stages = STAGES if stage is None else (stage,)
        redo = getattr(args, "redo_from", None)
        workspace = run(cfg, stages, force=args.force, log=log_to(console), redo_from=redo)
        if stage in (None, "report"):
            console.print(f"report: {workspace.report_dir / 'report.md'}")
        return 0

    return handle


def add_redo_from_argument(parser: argparse.ArgumentParser) -> None:
    """``--redo-from STAGE``: redo that stage and every later one (after a config change; finished studies kept)."""
    parser.add_argument(
        "--redo-from", choices=list(_STAGE_HELP), metavar="STAGE",
        help="redo this stage and every later one, e.g. fit after a change to fit (finished studies are reused): "
        + ", ".join(_STAGE_HELP),
    )  # fmt: skip


def _study(args: argparse.Namespace) -> int:
    from core.bridge.pipeline import run_one_study
    from core.config import load_config

    result = run_one_study(load_config(args.config, args.overrides), args.scenario, args.role)
    print(f"{args.scenario}/{args.role}: best {result.best_value} after {result.n_trials} trials")
    return 0 if result.best_value is not None else 1


def _make_fragment(_: argparse.Namespace) -> int:
    from core.config import package_dir

    print(package_dir("core.workflow") / "bridge.mk")
    return 0
