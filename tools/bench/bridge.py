"""Benchmark: the model bridge against direct HPO of the expensive model, on the analytic families.

For each family (linear and nonlinear h) the whole pipeline runs: 12 training scenarios, 10 held-out ones, direct HPO
with 50 expensive runs per held-out scenario as the peer, the bridge (cheap study + 1 expensive run) and the bridge
refined with 5 more expensive runs. Each expensive run sleeps ``--delay`` seconds, so wall time has a cost to save.

    python tools/bench/bridge.py [--delay 0.2]

Writes tools/bench/results/bridge.json: ``speedup`` (wall time direct HPO needed to reach the bridge's objective value,
over the bridge's wall time; median over held-out scenarios), ``regret_ratio_vs_direct`` (objective at the bridge's
prediction over the direct optimum's; median), and the same per family.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.bridge.pipeline import run
from core.config import load_config, package_dir

RESULTS = Path(__file__).with_name("results") / "bridge.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per expensive run")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    example = package_dir("core.bridge.config") / "examples" / "analytic.yaml"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for mapping in ("linear", "nonlinear"):
            cfg = load_config(
                example,
                [
                    f"workspace={folder}/{mapping}",
                    f"scenarios.mapping={mapping}",
                    f"scenarios.delay={args.delay}",
                    "evaluate.refine=5",
                ],
            )
            workspace = run(cfg, log=lambda line, tag=mapping: print(f"  [{tag}] {line}"))
            summary = json.loads((workspace.report_dir / "summary.json").read_text())
            for key in (
                "speedup",
                "speedup_runs",
                "speedup_full_direct_wall",
                "regret_ratio_vs_direct",
                "bridge_value",
                "refine_value",
                "direct_value",
                "param_error",
                "n_test_scenarios",
            ):
                figures[f"{mapping}_{key}"] = summary.get(key)
            chosen = summary.get("model") or {}  # the model chosen per output
            figures[f"{mapping}_model"] = ", ".join(f"{k}={v}" for k, v in chosen.items())
            if mapping == "nonlinear":
                figures["refine_ratio_vs_direct"] = round(summary["refine_value"] / summary["direct_value"], 4)
    # headline figures: the nonlinear family, where the choice of h matters
    figures["speedup"] = figures["nonlinear_speedup"]
    figures["regret_ratio_vs_direct"] = figures["nonlinear_regret_ratio_vs_direct"]
    figures.update(
        {
            "direct_n_trials": 50,
            "refine_k": 5,
            "expensive_delay_s": args.delay,
            "optuna_version": version("optuna"),
            "scikit_learn_version": version("scikit-learn"),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
