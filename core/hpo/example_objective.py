"""A small objective command for examples, tests and benchmarks: the shifted Branin-like function below, with
intermediate values, optional sleep, and failure modes on request.

    python -m core.hpo.example_objective --x 0.3 --y 1.2 --out result.json [--report report.jsonl] [--steps 5]
        [--sleep 0.2] [--fail-if-above 50] [--record calls.txt]

f(x, y) = (y - 0.5 x²)² + (1 - x)², minimum 0 at (1, 0.5). With ``--steps N`` it reports the partial sums
f·(1 + 1/k) for k = 1..N (decreasing towards f) to ``--report``, sleeping ``--sleep / N`` between them, so
pruners have something to prune. ``--record FILE`` appends the trial's ``--tag`` to FILE (to count real calls).

Example:
    >>> objective(1.0, 0.5)
    0.0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def objective(x: float, y: float) -> float:
    return (y - 0.5 * x * x) ** 2 + (1.0 - x) ** 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, default=0.5)
    parser.add_argument("--out", type=Path, help="result file; without it the result is printed as JSON")
    parser.add_argument("--report", type=Path, help="file to append {step, value} lines to")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to spend in total")
    parser.add_argument("--fail-if-above", type=float, help="exit 1 (with a message on stderr) if f is above it")
    parser.add_argument("--record", type=Path, help="append --tag to this file (one line per call)")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)

    if args.record is not None:
        fd = os.open(args.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{args.tag}\n".encode())
        os.close(fd)
    value = objective(args.x, args.y)
    steps = max(args.steps, 0)
    for k in range(1, steps + 1):
        time.sleep(args.sleep / steps)
        if args.report is not None:
            with args.report.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": k, "value": value * (1 + 1 / k)}) + "\n")
    if steps == 0 and args.sleep > 0:
        time.sleep(args.sleep)
    if args.fail_if_above is not None and value > args.fail_if_above:
        print(f"objective {value:.4g} above {args.fail_if_above:g}: giving up", file=sys.stderr)
        return 1
    result = json.dumps({"value": value, "user_attrs": {"x_squared": args.x * args.x}})
    if args.out is None:
        print(result)
    else:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(result + "\n", encoding="utf-8")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
