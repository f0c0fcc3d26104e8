"""core/hpo/README.md's figures are the benchmark's JSON, written by the benchmark itself: they cannot drift."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_readme_table_is_the_json() -> None:
    spec = importlib.util.spec_from_file_location("hpo_runner_bench", REPO / "tools" / "bench" / "hpo_runner.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = json.loads((REPO / "tools" / "bench" / "results" / "hpo_runner.json").read_text())
    readme = (REPO / "core" / "hpo" / "README.md").read_text()
    block = readme.split(bench.BEGIN, 1)[1].split(bench.END, 1)[0].strip()
    assert block == bench.figures_table(results).strip(), "run: python tools/bench/hpo_runner.py --readme"
    for key in ("overhead_ratio_vs_aiaccel_1_job", "overhead_ratio_vs_aiaccel_4_jobs_loaded", "idle_fraction_4_slots"):
        assert f"`{key}`" in block
