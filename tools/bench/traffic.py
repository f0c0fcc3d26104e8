"""Benchmark of SUMO traffic calibration: direct HPO of θ on one scenario, and the cost of each model.

Measured in one run, on the default scenario (4×4 signalised grid, one hour, 12 loops, θ* hidden):
- direct calibration (50 microscopic SUMO runs, TPE, 2 at a time): parameter error per θ component (share of
  its search range), and count RMSE at the calibrated θ̂ against the noise floor (θ* itself rerun with the
  calibration seed) — a ratio near 1 means θ̂ explains Y as well as the truth does;
- cost per run of the cheap link queue model and of SUMO's mesoscopic mode, as speedups over microscopic SUMO.

The model-bridge comparison (bridged θ̂ on held-out scenarios vs direct HPO: ``speedup_wall``,
``rmse_ratio_bridge_vs_direct``) needs core.bridge and is added when it lands.

    python tools/bench/traffic.py [--trials 50] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "tools" / "bench" / "results" / "traffic.json")
    args = parser.parse_args()

    import optuna
    from rich.console import Console
    from rich.table import Table

    from apps.traffic.calibrate import calibrate
    from apps.traffic.queue_model import LinkQueueModel
    from apps.traffic.scenario import TrafficScenario, build
    from apps.traffic.simulator import RunInfo, simulate

    console = Console()
    spec = TrafficScenario(name="bench")
    with tempfile.TemporaryDirectory() as tmp:
        workdir, run_dir = Path(tmp) / "scenarios", Path(tmp) / "run"
        built = build(spec, workdir)

        info: list[RunInfo] = []
        for seed in (11, 12, 13):
            simulate(built, spec, spec.theta_star, seed, backend="libsumo", info=info)
        micro = statistics.median(i.wall_s for i in info)
        meso_info: list[RunInfo] = []
        for seed in (11, 12, 13):
            simulate(built, spec, spec.theta_star, seed, mesoscopic=True, info=meso_info)
        meso = statistics.median(i.wall_s for i in meso_info)
        model = LinkQueueModel(built, spec)
        cheap_times = []
        for _ in range(10):
            start = time.perf_counter()
            model.simulate({})
            cheap_times.append(time.perf_counter() - start)
        cheap = statistics.median(cheap_times)

        space = {"demand_scale": [0.6, 1.4], "speed_factor": [0.8, 1.2], "tau": [0.5, 2.0]}
        result = calibrate(spec, space, model="expensive", n_trials=args.trials, n_jobs=args.jobs,
                           sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10),
                           run_dir=run_dir, workdir=workdir)  # fmt: skip

    errors = result["parameter_error"]
    figures = {
        "rmse_direct": round(result["best_fit"]["count_rmse"], 4),
        "rmse_noise_floor": round(result["noise_floor"]["count_rmse"], 4),
        "rmse_direct_over_noise_floor": round(result["count_rmse_over_noise_floor"], 4),
        "speed_rmse_direct": round(result["best_fit"]["speed_rmse"], 4),
        "speed_rmse_noise_floor": round(result["noise_floor"]["speed_rmse"], 4),
        "geh_share_direct": round(result["best_fit"]["geh_share"], 4),
        "geh_share_noise_floor": round(result["noise_floor"]["geh_share"], 4),
        **{f"param_error_{name}": round(value, 4) for name, value in errors.items()},
        "param_error_mean": round(sum(errors.values()) / len(errors), 4),
        "direct_trials": result["n_complete"],
        "direct_wall_s": result["wall_s"],
        "sumo_run_s": round(micro, 4),
        "speedup_cheap_model_vs_sumo": round(micro / cheap, 2),
        "speedup_mesoscopic_vs_sumo": round(micro / meso, 2),
        "sumo_version": version("eclipse-sumo"),
        "optuna_version": version("optuna"),
        "cpu_count": os.cpu_count(),
    }
    table = Table("figure", "value", title="traffic: direct calibration of θ (bridge comparison: pending core.bridge)")
    for name, value in figures.items():
        table.add_row(name, str(value))
    console.print(table)
    theta = ", ".join(f"{k} {result['best_params'][k]:.3f} (θ* {v:g})" for k, v in result["theta_star"].items())
    console.print(f"θ̂: {theta}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
