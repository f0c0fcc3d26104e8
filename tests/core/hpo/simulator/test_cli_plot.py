"""``kakehashi hpo simulate`` (parser built here, as core/hpo/cli.py will), the run directory and the plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.cli import ArgumentParser, add_area
from core.errors import UserError
from core.hpo.simulator.cli import register_verbs

EXAMPLE = Path(__file__).parents[4] / "core" / "hpo" / "simulator" / "examples" / "branin.yaml"


def run(*argv: str) -> int:
    parser = ArgumentParser(prog="kakehashi")
    register_verbs(add_area(parser.add_subparsers(), "hpo", help="hpo", description="hpo"))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


def test_simulate_writes_csv_summary_and_plot(tmp_path: Path) -> None:
    import matplotlib.image

    status = run(
        "hpo",
        "simulate",
        str(EXAMPLE),
        "n_trials=15",
        "seeds=[0,1]",
        "n_workers=[1,4]",
        "--run-dir",
        str(tmp_path),
        "--quiet",
    )
    assert status == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["runs"]) == 3 * 2 * 2 and all(r["n_trials"] == 15 for r in summary["runs"])
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert len(rows) == 3 * 2 * 2 * 15 and {r["method"] for r in rows} == {"random", "tpe", "tpe+median"}
    assert all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert any(r["state"] == "PRUNED" for r in rows if r["method"] == "tpe+median")
    assert all(r["state"] == "COMPLETE" for r in rows if r["method"] != "tpe+median")  # no pruner: none
    single = [r for r in rows if r["n_workers"] == "1"]
    assert all(float(r["end"]) - float(r["start"]) <= 3600.0 for r in single)
    image = matplotlib.image.imread(tmp_path / "best_so_far.png")
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert (tmp_path / "merged_config.yaml").is_file() and (tmp_path / "provenance.json").is_file()


def test_simulate_rerun_is_byte_identical(tmp_path: Path) -> None:
    args = ("hpo", "simulate", str(EXAMPLE), "n_trials=12", "seeds=[3]", "n_workers=[3]", "--quiet")
    run(*args, "--run-dir", str(tmp_path / "a"))
    run(*args, "--run-dir", str(tmp_path / "b"))
    assert (tmp_path / "a" / "trials.csv").read_bytes() == (tmp_path / "b" / "trials.csv").read_bytes()


def test_validate_flag(capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        "hpo",
        "simulate",
        str(EXAMPLE),
        "n_workers=[2]",
        "--validate",
        "--validate-trials",
        "6",
        "--time-scale",
        "1e-5",
    )
    assert status == 0 and "same order" in capsys.readouterr().out


def test_config_mistakes_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no key 'bogus'"):
        run("hpo", "simulate", str(EXAMPLE), "bogus=1", "--run-dir", str(tmp_path))
    with pytest.raises(UserError, match="no end"):
        run("hpo", "simulate", str(EXAMPLE), "n_trials=null", "--run-dir", str(tmp_path))
    with pytest.raises(UserError, match="n_workers"):
        run("hpo", "simulate", str(EXAMPLE), "n_workers=[-1]", "--run-dir", str(tmp_path))
