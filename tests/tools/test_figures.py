"""Every README figure marked as coming from a benchmark agrees with tools/bench/results/*.json."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _figures_module():
    spec = importlib.util.spec_from_file_location("bench_figures", ROOT / "tools" / "bench" / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_figures"] = module
    spec.loader.exec_module(module)
    return module


figures = _figures_module()


def test_every_quoted_figure_agrees_with_its_json() -> None:
    count, problems = figures.check(figures.markdown_files())
    assert not problems, "\n".join(problems)
    assert count >= 10  # the data, sampler and simulator READMEs quote their figures this way


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "b.json").write_text(json.dumps({"speedup": 6.2437, "rate": 5535.4, "frac": 0.0591, "v": "x"}))
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    return tmp_path


def test_disagreements_are_found_and_rewritten(results: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "| a | 6.24× <!-- figure: b.json:speedup --> |\n"
        "| b | 5,536 <!-- figure: b.json:rate --> |\n"
        "| c | 5.9% <!-- figure: b.json:frac scale=100 --> |\n"
        "| d | 1.0 <!-- figure: b.json:missing --> |\n"
        "| e | 1.0 <!-- figure: nope.json:speedup --> |\n"
        "| f | 2 <!-- figure: b.json:v --> |\n"
        "| g | <!-- figure: b.json:rate --> |\n"
    )
    count, problems = figures.check([readme])
    assert count == 6
    text = "\n".join(problems)
    assert "quotes 5,536" in text and "says 5,535" in text
    assert "no key 'missing'" in text and "nope.json does not exist" in text and "not a finite number" in text
    assert "without a number" in text
    assert len(problems) == 5  # 6.24 and 5.9% agree
    figures.check([readme], write=True)
    assert "| b | 5,535 <!-- figure: b.json:rate --> |" in readme.read_text()
    assert len(figures.check([readme])[1]) == 4
