"""``kakehashi hpo optimize | report | trials`` end to end, and one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.cli import main
from tests.core.hpo.helpers import calls, load, states


def test_optimize_from_overrides_and_a_command_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    argv = ["hpo", "optimize", "params.x=[-2,2]", "n_trials=5", "n_max_jobs=2", "study.name=t", "--run-dir"]
    argv += [str(run_dir), "--no-progress", "--", "{python}", "-m", "core.hpo.example_objective", "--x", "{x}"]
    argv += ["--out", "{out_file}", "--record", "{run_dir}/calls.txt", "--tag", "{trial_number}"]
    assert main(argv) == 0
    assert states(load(run_dir)) == {"COMPLETE": 5} and sorted(calls(run_dir)) == [0, 1, 2, 3, 4]
    for name in ("trials.csv", "best.yaml"):
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "plots")
    assert main(["hpo", "report", str(run_dir)]) == 0
    assert (run_dir / "trials.csv").read_text().count("\n") == 6
    assert {p.name for p in (run_dir / "plots").iterdir()} >= {"optimization_history.png", "parallel_coordinate.png"}
    assert main(["hpo", "trials", str(run_dir), "--state", "complete"]) == 0
    assert "COMPLETE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hpo", "optimize", "missing.yaml"], "config file not found"),
        (["hpo", "optimize", "n_trial=3", "--", "true"], "did you mean n_trials"),
        (["hpo", "optimize", "n_trials=3"], "nothing to optimize"),
        (["hpo", "optimize", "params.x=[1]", "--", "true"], "short form"),
        (["hpo", "report", "."], "no merged_config.yaml"),
    ],
)
def test_user_mistakes_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_the_bundled_example_runs(tmp_path: Path) -> None:
    from core.config import package_dir

    example = package_dir("core.hpo.config") / "examples" / "quadratic.yaml"
    argv = ["hpo", "optimize", str(example), "n_trials=6", "plots=false", "--run-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    study = load(tmp_path, name="quadratic")
    assert sum(states(study).values()) == 6 and study.trials[0].params == {"x": 0.0, "y": 0.0}  # the enqueued point
