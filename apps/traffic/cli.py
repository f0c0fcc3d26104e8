"""``kakehashi traffic scenario | identify | calibrate | bridge``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.bridge.cli import add_redo_from_argument
from core.cli import SubParsers, add_area, add_config_arguments
from core.cli import console as make_console
from core.errors import ConfigError, UserError

_SCENARIO = "apps/traffic/config/scenario.yaml"
_FAMILY = "apps/traffic/config/family.yaml"
_CALIBRATE = "apps/traffic/config/calibrate.yaml"
_DEMO = "apps/traffic/config/demo.yaml"
_GRID = "apps/traffic/config/grid.yaml"


def register(areas: SubParsers) -> None:
    verbs = add_area(
        areas,
        "traffic",
        help="SUMO traffic scenarios and their calibration",
        description="Build SUMO scenarios (network, demand, detectors, hidden θ*), observe them, calibrate θ.",
    )
    scenario = verbs.add_parser(
        "scenario",
        help="build a scenario (or a family) and show it",
        description="Build the `scenario` of the config (or every member of its `scenarios` family), simulate\n"
        "its observations Y at θ* and, for one scenario, the noise floor: θ* rerun with another seed.",
        epilog=f"example (sumo):\n  kakehashi traffic scenario {_SCENARIO} scenario.network.size=3\n"
        f"  kakehashi traffic scenario {_FAMILY} scenarios.n_train=2 scenarios.n_test=1",
    )
    add_config_arguments(scenario)
    scenario.set_defaults(handler=_scenario)

    identify = verbs.add_parser(
        "identify",
        help="is θ identifiable? the loss around θ* per parameter against SUMO's seed noise",
        description="Simulate θ* with several fresh SUMO seeds (the seed noise) and θ* moved by ±10/25/50% of\n"
        "each parameter's search range; print the loss increase in noise units (z; identifiable: z >= 2 on\n"
        "both sides) and write identify.json and identify.png. With a bridge family config it takes a\n"
        "training scenario (--scenario) and the expensive model's search space.",
        epilog=f"example (sumo):\n  kakehashi traffic identify {_GRID} --scenario train-000 --seeds 2\n"
        f"  kakehashi traffic identify {_SCENARIO} scenario.network.size=3 scenario.demand.duration=900 --seeds 2",
    )
    add_config_arguments(identify)
    identify.add_argument("--scenario", default="train-000", help="family member to examine (family configs)")
    identify.add_argument("--seeds", type=int, default=4, help="fresh SUMO seeds per point (at least 2)")
    identify.set_defaults(handler=_identify)

    calibrate = verbs.add_parser(
        "calibrate",
        help="calibrate θ (or the cheap model's ξ) on one scenario by HPO",
        description="Direct HPO of the model's parameters against the scenario's observations; resumable.\n"
        "Writes result.json, calibration.png and the Optuna study (study.db) to run_dir.",
        epilog=f"example (sumo):\n  kakehashi traffic calibrate {_CALIBRATE} n_trials=20\n"
        f"  kakehashi traffic calibrate {_CALIBRATE} model=cheap n_trials=200",
    )
    add_config_arguments(calibrate)
    calibrate.set_defaults(handler=_calibrate)

    bridge = verbs.add_parser(
        "bridge",
        help="the model bridge over a scenario family (core.bridge), with the traffic figures",
        description="Run (or resume) core.bridge's pipeline on a traffic family: calibrate the cheap model on every\n"
        "scenario and SUMO on the training ones (and directly on the held-out ones, as the reference), learn\n"
        "θ̂ = h(ξ̂), check it with one SUMO run per held-out scenario and refine it with a few more; then score\n"
        "every θ̂ and the baselines on fresh SUMO seeds and count the cost. Prints the final table.",
        epilog=f"example (sumo, slow):\n  kakehashi traffic bridge {_DEMO} workspace=runs/tiny scenarios.n_train=4 "
        "scenarios.n_test=2 models.cheap.n_trials=10 models.expensive.n_trials=4 evaluate.direct_trials=6 "
        "score.fresh_seeds=2\n"
        "(make demo runs the demo's size on both families: apps/traffic/config/demo.yaml, demo_congested.yaml)",
    )
    add_config_arguments(bridge)
    bridge.add_argument("--force", action="store_true", help="redo finished stages")
    add_redo_from_argument(bridge)
    bridge.set_defaults(handler=_bridge)


def _load(args: argparse.Namespace) -> Any:
    from core.config import load_config

    return load_config(args.config, args.overrides)


def _scenario_of(cfg: Any, config: str) -> Any:
    from omegaconf import OmegaConf

    from apps.traffic.scenario import TrafficScenario
    from core.config import as_dict

    node = OmegaConf.select(cfg, "scenario")
    if node is None:
        raise ConfigError("no `scenario` node", where=config, hint=f"see {_SCENARIO}")
    return TrafficScenario.from_dict(as_dict(node, where="scenario", hint=f"see {_SCENARIO}"), where="scenario")


def _scenario(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = _load(args)
    if OmegaConf.select(cfg, "scenarios._target_") is not None:
        return _show_family(cfg)
    from rich.table import Table

    from apps.traffic.family import observe
    from apps.traffic.objective import discrepancy
    from apps.traffic.scenario import build
    from apps.traffic.simulator import RunInfo, dump_series, simulate
    from core.config import save_run_config

    spec = _scenario_of(cfg, args.config)
    workdir = Path(str(cfg.get("workdir", "runs/traffic/scenarios")))
    run_dir = Path(str(cfg.get("run_dir", f"runs/traffic/{spec.name}")))
    timeout = float(cfg.get("timeout", 300))
    save_run_config(cfg, run_dir)
    console = make_console()
    built = build(spec, workdir)
    observed = observe(spec, workdir, timeout=timeout)
    info: list[RunInfo] = []
    rerun = simulate(built, spec, spec.theta_star, spec.calibration_seed, timeout=timeout, info=info)
    floor = discrepancy(observed, rerun)

    table = Table(title=f"scenario {spec.name}", show_header=False)
    table.add_row("network", f"{spec.network.kind} size {spec.network.size}, {len(built.edges)} edges on routes")
    table.add_row("demand", f"{spec.demand.vehicles_per_hour:g} veh/h mean over {spec.demand.duration:g} s, "
                  f"{len(built.routes)} routes; {info[0].inserted} vehicles inserted")  # fmt: skip
    table.add_row("detectors", f"{len(built.detectors)} edges, {observed.counts.shape[1]} intervals of "
                  f"{spec.detectors.interval:g} s")  # fmt: skip
    table.add_row("θ*", ", ".join(f"{k}={v:g}" for k, v in spec.theta_star.items()))
    table.add_row("noise floor", f"count RMSE {floor.count_rmse:.3f}, speed RMSE {floor.speed_rmse:.3f} m/s, "
                  f"GEH<5 {100 * floor.geh_share:.0f}%, loss {floor.loss:.4f}")  # fmt: skip
    table.add_row("one SUMO run", f"{info[0].wall_s:.2f} s ({info[0].backend})")
    table.add_row("files", str(built.folder))
    console.print(table)
    detectors = Table("detector", "vehicles", "mean speed (m/s)", title="observations Y")
    for i, name in enumerate(observed.detectors):
        speeds = observed.speeds[i][~_isnan(observed.speeds[i])]
        detectors.add_row(name, f"{observed.counts[i].sum():.0f}", f"{speeds.mean():.2f}" if speeds.size else "-")
    console.print(detectors)
    dump_series(observed, run_dir / "observed.json")
    (run_dir / "scenario.json").write_text(json.dumps(spec.to_dict(), indent=1) + "\n", encoding="utf-8")
    (run_dir / "noise_floor.json").write_text(json.dumps(floor.to_dict(), indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {run_dir}")
    return 0


def _isnan(values: Any) -> Any:
    import numpy as np

    return np.isnan(values)


def _show_family(cfg: Any) -> int:
    from rich.table import Table

    from core.config import check_targets, instantiate

    check_targets(cfg.scenarios)
    family = instantiate(cfg.scenarios)
    scenarios = family.scenarios()
    table = Table("scenario", "split", "veh/h", "peak", "θ*", "vehicles observed", title="scenario family")
    for s in scenarios:
        traffic = s.context["traffic"]
        total = sum(sum(row) for row in s.context["observed"]["counts"])
        theta = ", ".join(f"{k}={v:g}" for k, v in traffic["theta_star"].items())
        table.add_row(s.name, s.split, f"{traffic['demand']['vehicles_per_hour']:.0f}",
                      f"{traffic['demand']['peak_time']:.2f}", theta, f"{total:.0f}")  # fmt: skip
    make_console().print(table)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from rich.table import Table

    from apps.traffic.calibrate import MODELS, calibrate, search_space
    from core.config import as_dict, check_targets, save_run_config

    cfg = _load(args)
    model = str(cfg.get("model", "expensive"))
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}", where="model", hint=f"one of {', '.join(MODELS)}")
    spec = _scenario_of(cfg, args.config)
    params = OmegaConf.select(cfg, "params")
    if params is None:
        raise ConfigError("no `params` (search space)", where=args.config, hint=f"see {_CALIBRATE}")
    space = search_space(as_dict(params, where="params", hint=f"see {_CALIBRATE}"), model)
    sampler = None
    if cfg.get("sampler") is not None:
        check_targets(cfg.sampler)
        sampler = as_dict(cfg.sampler, where="sampler")
    run_dir = Path(str(cfg.get("run_dir", f"runs/traffic/calibrate-{spec.name}")))
    save_run_config(cfg, run_dir)  # only once the config is known good: a refused one leaves no run directory
    try:
        result = calibrate(
            spec, {name: list(bounds) for name, bounds in space.items()},
            model=model, n_trials=int(cfg.get("n_trials", 50)),
            n_jobs=int(cfg.get("n_jobs", 2)), sampler=sampler, run_dir=run_dir,
            workdir=str(cfg.get("workdir", "runs/traffic/scenarios")), timeout=float(cfg.get("timeout", 300)),
        )  # fmt: skip
    except RuntimeError as exc:
        raise UserError(str(exc), where=str(run_dir), hint="see the trials' `error` attributes in study.db") from None
    console = make_console()
    table = Table("parameter", "calibrated", "θ*", "error (share of range)", title=f"calibration of {spec.name}")
    for name, value in result["best_params"].items():
        star = result.get("theta_star", {}).get(name)
        error = result.get("parameter_error", {}).get(name)
        table.add_row(name, f"{value:.4g}", "-" if star is None else f"{star:g}",
                      "-" if error is None else f"{100 * error:.1f}%")  # fmt: skip
    console.print(table)
    fit = result["best_fit"]
    line = (
        f"best loss {result['best_loss']:.4f}: count RMSE {fit['count_rmse']:.3f}, speed RMSE {fit['speed_rmse']:.3f}"
    )
    if "noise_floor" in result:
        line += f" (noise floor {result['noise_floor']['count_rmse']:.3f}, {result['noise_floor']['speed_rmse']:.3f})"
    console.print(line)
    console.print(f"{result['n_complete']} trials ({result['n_failed']} failed) in {result['wall_s']:.1f} s; "
                  f"wrote {run_dir / 'result.json'}")  # fmt: skip
    return 0


def _bridge(args: argparse.Namespace) -> int:
    from rich.table import Table

    from apps.traffic.bridge import run_bridge, table_rows
    from core.cli import log_to

    cfg = _load(args)
    console = make_console(stderr=True)
    figures = run_bridge(cfg, force=args.force, log=log_to(console), redo_from=args.redo_from)
    out = make_console()
    table = Table(
        "figure (loss: mean over held-out scenarios, each θ̂ scored on fresh SUMO seeds)",
        "value",
        title=f"traffic bridge {cfg.name}: {figures['n_test_scenarios']} held-out scenarios, "
        f"{figures['n_train_scenarios']} training scenarios",
    )
    for words, value in table_rows(figures):
        table.add_row(words, value)
    out.print(table)
    out.print(f"report: {figures['report']} (figures: {Path(figures['report']).parent / 'traffic.json'})")
    return 0


def _identify(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf
    from rich.table import Table

    from apps.traffic.identify import STEPS, landscape, plot
    from core.config import as_dict
    from core.files import write_atomic

    cfg = _load(args)
    if args.seeds < 2:
        raise UserError("--seeds must be at least 2 (the noise is their spread)", where="--seeds")
    if OmegaConf.select(cfg, "scenarios._target_") is not None:
        from apps.traffic.family import TrafficFamily

        node = as_dict(cfg.scenarios, where="scenarios")
        node.pop("_target_")
        node["progress"] = False
        family = TrafficFamily(**node)
        members = {name: spec for name, _, _, spec in family.specs()}
        if args.scenario not in members:
            raise UserError(f"no scenario {args.scenario!r} in the family", where="--scenario",
                            hint=f"one of {', '.join(list(members)[:4])}, ...")  # fmt: skip
        if args.scenario.startswith("test"):
            raise UserError("identify examines training scenarios only", where="--scenario",
                            hint="held-out scenarios are scored once, by the bridge")  # fmt: skip
        spec, workdir = members[args.scenario], str(node.get("workdir", "runs/traffic/scenarios"))
        space_key = "models.expensive.params"
        params = OmegaConf.select(cfg, space_key)
    else:
        spec = _scenario_of(cfg, args.config)
        workdir = str(cfg.get("workdir", "runs/traffic/scenarios"))
        space_key = "params" if OmegaConf.select(cfg, "params") else "spaces.expensive"
        params = OmegaConf.select(cfg, space_key)
    space = as_dict(params, where=space_key) if params is not None else dict(_IDENTIFY_SPACE)
    run_dir = Path(str(OmegaConf.select(cfg, "run_dir") or f"runs/traffic/identify-{spec.name}"))
    seeds = tuple(spec.calibration_seed + 200_000 + i for i in range(args.seeds))
    from rich.progress import Progress

    with Progress(transient=True, console=make_console(stderr=True)) as bar:
        task = bar.add_task("SUMO runs", total=args.seeds * (1 + len(space) * len(STEPS)))
        table = landscape(spec, space, workdir=workdir, seeds=seeds, progress=lambda: bar.advance(task))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "identify.json", json.dumps(table.to_dict(), indent=1) + "\n")
    plot(table, run_dir / "identify.png")
    steps = sorted({r.step for r in table.rows})
    out = Table("parameter", *[f"{100 * s:+.0f}%" for s in steps],
                title=f"{spec.name}: loss increase over θ* in seed-noise units (z; noise sd {table.noise:.4f} "
                      f"over {len(seeds)} seeds, θ* loss {sum(table.losses_at_star) / len(seeds):.4f})")  # fmt: skip
    for name in dict.fromkeys(r.parameter for r in table.rows):
        cells = {r.step: r.z for r in table.rows if r.parameter == name}
        out.add_row(name, *[f"{cells[s]:.1f}" if s in cells else "outside" for s in steps])
    console = make_console()
    console.print(out)
    for step in (0.1, 0.25, 0.5):
        verdict = table.identifiable(step)
        console.print(f"identifiable at ±{100 * step:.0f}% (z >= 2 both sides): "
                      + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in verdict.items()))  # fmt: skip
    if table.flagged_runs:
        console.print(f"{table.flagged_runs} runs flagged (collisions or mass teleports): see the log")
    console.print(f"wrote {run_dir / 'identify.json'} and {run_dir / 'identify.png'}")
    return 0


_IDENTIFY_SPACE = {"demand_scale": [0.6, 1.4], "speed_factor": [0.8, 1.2], "tau": [1.0, 2.0]}


__all__ = ["register"]
