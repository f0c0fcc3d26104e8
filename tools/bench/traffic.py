"""Benchmark of SUMO traffic calibration: the model bridge against direct HPO, and the pieces under it.

Measured in one run (a 2-core machine shared with other work: absolute times are inflated, ratios less so):

1. **The bridge** (``apps/traffic/config/demo.yaml``: 4×4 grids, 1 simulated hour, 8 training + 4 held-out
   scenarios): per held-out scenario the count RMSE of one SUMO run at the bridge's θ̂ = h(ξ̂) over that of direct
   HPO's best θ after 50 SUMO runs (``rmse_ratio_bridge_vs_direct``, median), the noise floor (θ* itself, rerun
   with the calibration seed), the prior-only baseline (the training scenarios' mean θ̂, which ignores the
   cheap model), and the wall-time speedup: direct HPO's wall time over the bridge's search (the
   cheap model's calibration; ``speedup_wall``), and with the one SUMO run that checks θ̂ charged too
   (``speedup_wall_with_check``), both also extrapolated to a 30-minute SUMO run. The workspace is resumable:
   a second run of this script reuses finished studies (``--fresh`` starts over).
2. **Direct calibration** of θ on the default scenario with TPE and with ``NelderMeadSampler`` (50 runs each):
   parameter error and count RMSE against the noise floor — which sampler the demo uses.
3. **How trials run**: the expensive objective in the HPO runner's threads (libsumo in one, SUMO child processes
   through traci in the others) against command trials (``python -m apps.traffic.trial``, a process per trial),
   2 at a time: wall and CPU seconds per trial.
4. Cost per run of the cheap link queue model and of SUMO's mesoscopic mode, as speedups over microscopic SUMO.

    python tools/bench/traffic.py [--workspace runs/bench/traffic] [--fresh] [--trials 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SPACE = {"demand_scale": [0.6, 1.4], "speed_factor": [0.8, 1.2], "tau": [0.5, 2.0]}
SAMPLERS = {
    "tpe": {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 10},
    "nelder_mead": {"_target_": "core.hpo.samplers.NelderMeadSampler", "seed": 0},
}
SUMO_30_MIN = 1800.0


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def bridge(workspace: Path, fresh: bool) -> dict[str, Any]:
    from apps.traffic.bridge import run_bridge
    from core.config import load_config

    if fresh and workspace.exists():
        shutil.rmtree(workspace)
    cfg = load_config(ROOT / "apps" / "traffic" / "config" / "demo.yaml", [f"workspace={workspace}"])
    started, cpu = time.perf_counter(), _cpu()
    figures = run_bridge(cfg)
    figures["bridge_pipeline_wall_s"] = time.perf_counter() - started  # 0-ish when the workspace was finished
    figures["bridge_pipeline_cpu_s"] = _cpu() - cpu
    figures["n_max_jobs"] = int(cfg.models.expensive.n_max_jobs)
    return figures


def direct(spec: Any, workdir: Path, run_dir: Path, trials: int) -> dict[str, dict[str, Any]]:
    from apps.traffic.calibrate import calibrate

    return {
        name: calibrate(
            spec,
            SPACE,
            model="expensive",
            n_trials=trials,
            n_jobs=2,
            sampler=sampler,
            run_dir=run_dir / name,
            workdir=workdir,
            progress=False,
        )
        for name, sampler in SAMPLERS.items()
    }


def trial_modes(spec: Any, workdir: Path, run_dir: Path, n: int = 10) -> dict[str, float]:
    """Wall and CPU seconds per trial: objective in threads vs a command (process) per trial, 2 at a time."""
    from apps.traffic.family import observe
    from apps.traffic.objective import expensive
    from core.bridge.scenario import Scenario
    from core.hpo import optimize

    scenario = Scenario("mode", "train", 0, {"traffic": spec.to_dict(), "observed": observe(spec, workdir).to_dict(),
                                             "workdir": str(workdir)})  # fmt: skip
    scenario_file = run_dir / "scenario.json"
    scenario_file.parent.mkdir(parents=True, exist_ok=True)
    scenario_file.write_text(scenario.to_json())
    out = {}
    for mode in ("threads", "command"):
        sampler = {"_target_": "optuna.samplers.RandomSampler", "seed": 0}
        config: dict[str, Any] = {"params": SPACE, "n_trials": n, "n_max_jobs": 2, "plots": False,
                                  "study": {"sampler": sampler}}  # fmt: skip
        objective = None
        if mode == "command":
            config["command"] = ["{python}", "-m", "apps.traffic.trial", str(scenario_file), "--out", "{out_file}",
                                 *(f"{k}={{{k}}}" for k in SPACE)]  # fmt: skip
        else:

            def objective(trial: Any) -> Any:
                return expensive(scenario, dict(trial.params))

        started, cpu = time.perf_counter(), _cpu()
        result = optimize(config, objective=objective, run_dir=run_dir / mode, progress=False)
        assert result.n_complete == n, f"{mode}: {result.n_complete} of {n} trials complete"
        out[f"{mode}_wall_s_per_trial"] = (time.perf_counter() - started) / n
        out[f"{mode}_cpu_s_per_trial"] = (_cpu() - cpu) / n
    return out


def costs(spec: Any, workdir: Path) -> dict[str, float]:
    from apps.traffic.queue_model import LinkQueueModel
    from apps.traffic.scenario import build
    from apps.traffic.simulator import RunInfo, simulate

    built = build(spec, workdir)
    micro: list[RunInfo] = []
    meso: list[RunInfo] = []
    for seed in (11, 12, 13):
        simulate(built, spec, spec.theta_star, seed, backend="libsumo", info=micro)
        simulate(built, spec, spec.theta_star, seed, mesoscopic=True, info=meso)
    model = LinkQueueModel(built, spec)
    cheap = []
    for _ in range(10):
        start = time.perf_counter()
        model.simulate({})
        cheap.append(time.perf_counter() - start)
    sumo = statistics.median(i.wall_s for i in micro)
    return {
        "sumo_run_s": sumo,
        "speedup_cheap_model_vs_sumo": sumo / statistics.median(cheap),
        "speedup_mesoscopic_vs_sumo": sumo / statistics.median(i.wall_s for i in meso),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "bench" / "traffic-bridge")
    parser.add_argument("--fresh", action="store_true", help="start the bridge workspace over")
    parser.add_argument("--trials", type=int, default=50, help="SUMO runs of each direct calibration")
    parser.add_argument("--out", type=Path, default=ROOT / "tools" / "bench" / "results" / "traffic.json")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from apps.traffic.scenario import TrafficScenario

    console = Console()
    console.print("1/4 the bridge (demo config)")
    b = bridge(args.workspace, args.fresh)
    spec = TrafficScenario(name="bench")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "scenarios"
        console.print("2/4 direct calibration, TPE and Nelder–Mead")
        d = direct(spec, workdir, Path(tmp) / "direct", args.trials)
        console.print("3/4 trials in threads vs as commands")
        modes = trial_modes(spec, workdir, Path(tmp) / "modes")
        console.print("4/4 cost per run")
        c = costs(spec, workdir)

    # extrapolation: direct HPO's wall scales with the SUMO run; the bridge's search (the cheap model) does not
    direct_slots = b["direct_runs"] / b["n_max_jobs"]
    direct_30 = direct_slots * SUMO_30_MIN
    figures: dict[str, Any] = {
        "speedup_wall": b["speedup_wall"],
        "speedup_wall_with_check": b["speedup_wall_with_check"],
        "speedup_wall_30min_sumo": direct_30 / b["cheap_wall_s"],
        "speedup_wall_with_check_30min_sumo": direct_30 / (b["cheap_wall_s"] + SUMO_30_MIN),
        "rmse_ratio_bridge_vs_direct": b["rmse_ratio_bridge_vs_direct"],
        "rmse_ratio_refine_vs_direct": b["rmse_ratio_refine_vs_direct"],
        "rmse_ratio_prior_vs_direct": b["rmse_ratio_prior_vs_direct"],
        "rmse_ratio_direct_vs_noise_floor": b["rmse_ratio_direct_vs_noise_floor"],
        "rmse_bridge": b["count_rmse_bridge"],
        "rmse_refine": b["count_rmse_refine"],
        "rmse_direct": b["count_rmse_direct"],
        "rmse_noise_floor": b["count_rmse_noise_floor"],
        "rmse_prior_baseline": b["count_rmse_prior"],
        "n_test_scenarios": b["n_test_scenarios"],
        "direct_runs": b["direct_runs"],
        "direct_wall_s": b["direct_wall_s"],
        "bridge_search_wall_s": b["cheap_wall_s"],
    }
    for name, result in d.items():
        errors = result["parameter_error"]
        figures[f"recovery_{name}_rmse_over_noise_floor"] = result["count_rmse_over_noise_floor"]
        figures[f"recovery_{name}_param_error_mean"] = sum(errors.values()) / len(errors)
        figures.update({f"recovery_{name}_param_error_{k}": v for k, v in errors.items()})
    figures["recovery_rmse_noise_floor"] = d["tpe"]["noise_floor"]["count_rmse"]
    figures["speedup_threads_vs_command_wall"] = modes["command_wall_s_per_trial"] / modes["threads_wall_s_per_trial"]
    figures["cpu_ratio_command_vs_threads"] = modes["command_cpu_s_per_trial"] / modes["threads_cpu_s_per_trial"]
    figures.update(modes)
    figures.update(c)
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    figures.update({"sumo_version": version("eclipse-sumo"), "optuna_version": version("optuna"),
                    "cpu_count": os.cpu_count()})  # fmt: skip

    table = Table("figure", "value", title="traffic: model bridge vs direct HPO (50 SUMO runs)")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}; bridge report: {b['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
