"""One calibration trial as a process: ``python -m apps.traffic.trial SCENARIO_FILE --out OUT name=value ...``.

The command form of the objectives in :mod:`apps.traffic.objective`, for HPO command trials (the model bridge's
``models.<role>.command``, run as ``core.jobs`` jobs): each trial is its own process, so each simulates with
libsumo in-process, however many run at once. It reads a bridge scenario (``core.bridge.Scenario`` JSON whose
``context`` holds ``traffic``, ``observed`` and ``workdir``), evaluates the model at the parameters given as
``name=value`` arguments (or, without any, at the runner's ``KAKEHASHI_PARAMS``), and writes the runner's result,
``{"value": loss, "user_attrs": {"count_rmse": ..., "speed_rmse": ..., "geh_share": ...}}``, to ``--out``.

Example (a bridge model section)::

    command: ["{python}", -m, apps.traffic.trial, "{scenario_file}", --out, "{out_file}",
              "demand_scale={demand_scale}", "speed_factor={speed_factor}", "tau={tau}"]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODELS = ("expensive", "mesoscopic", "cheap")


def parse_params(pairs: Sequence[str]) -> dict[str, float]:
    """``["tau=1.2", ...]`` → ``{"tau": 1.2}``; without pairs, the runner's ``KAKEHASHI_PARAMS`` (JSON)."""
    if not pairs:
        raw = os.environ.get("KAKEHASHI_PARAMS")
        if raw is None:
            raise ValueError("no parameters: give name=value arguments or set KAKEHASHI_PARAMS")
        return {str(k): float(v) for k, v in json.loads(raw).items()}
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"a parameter is name=value, not {pair!r}")
        params[name] = float(value)
    return params


def run_trial(scenario_file: str | Path, params: dict[str, float], model: str = "expensive") -> dict[str, Any]:
    """Evaluate ``model`` at ``params`` on the scenario in ``scenario_file``; the runner's result dict."""
    from apps.traffic import objective
    from core.bridge.scenario import Scenario

    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    scenario = Scenario.load(scenario_file)
    if model == "cheap":
        return objective.runner_result(objective.evaluate_cheap(scenario, params))
    # a process of its own: libsumo in-process, the fastest way to run SUMO
    fit = objective.evaluate_sumo(scenario, params, mesoscopic=model == "mesoscopic", backend="libsumo")
    return objective.runner_result(fit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.traffic.trial", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario_file", help="a bridge scenario JSON (the bridge's {scenario_file})")
    parser.add_argument("params", nargs="*", help="name=value (default: $KAKEHASHI_PARAMS)")
    parser.add_argument("--out", required=True, help="where to write the result JSON (the runner's {out_file})")
    parser.add_argument("--model", default="expensive", choices=MODELS)
    args = parser.parse_intermixed_args(argv)
    from core.files import write_atomic

    try:
        params = parse_params(args.params)
    except ValueError as exc:
        parser.error(str(exc))
    result = run_trial(args.scenario_file, params, args.model)
    write_atomic(Path(args.out), json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
