"""The runner with real trial commands on the local job backend: failures, timeouts, retries, pruning, shell
metacharacters, resuming to the study total, callables, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from core.errors import ConfigError
from core.hpo import optimize
from tests.core.hpo.helpers import REPO, calls, config, load, objective_command, states


def test_failures_are_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    # f(x, y) is above 5 for part of the box: those trials exit 1 with a message on stderr
    cfg = config(tmp_path, n_trials=10, command=objective_command(extra=("--fail-if-above", "5")))
    result = optimize(cfg, progress=False)
    study = load(tmp_path)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(study.trials) == 10 and failed and complete
    assert result.n_failed == len(failed) and result.n_complete == len(complete)
    for t in failed:
        x, y = t.params["x"], t.params["y"]
        assert (y - 0.5 * x * x) ** 2 + (1 - x) ** 2 > 5
        assert t.user_attrs["exit_code"] == 1 and "giving up" in t.user_attrs["log_tail"]
        assert t.user_attrs["failure"] == "exit code 1"
    for t in complete:  # the value is the objective's own, checked against the formula
        x, y = t.params["x"], t.params["y"]
        assert t.value == pytest.approx((y - 0.5 * x * x) ** 2 + (1 - x) ** 2)
        assert t.user_attrs["x_squared"] == pytest.approx(x * x)
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[0].startswith("number,state,value,params_x,params_y,duration_s,exit_code")


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (["{python}", "-c", "pass"], "was not written and stdout has no JSON"),
        (["{python}", "-c", 'print(\'{"value": "high"}\')'], "not a number"),
        (["{python}", "-c", "import sys; open(sys.argv[1], 'w').write('3 apples')", "{out_file}"], "not JSON"),
    ],
)
def test_missing_or_malformed_output_fails_with_the_reason(tmp_path: Path, command: list[str], reason: str) -> None:
    optimize(config(tmp_path, n_trials=2, command=command), progress=False)
    study = load(tmp_path)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert all(reason in t.user_attrs["failure"] and t.user_attrs["exit_code"] == 0 for t in study.trials)


def test_a_trial_past_its_timeout_is_killed_and_fails(tmp_path: Path) -> None:
    cfg = config(tmp_path, n_trials=2, command=objective_command(sleep=30), timeout_per_trial=1)
    result = optimize(cfg, progress=False)
    study = load(tmp_path)
    assert result.n_failed == 2
    for t in study.trials:
        assert t.user_attrs["failure"].startswith("timeout")
        assert (t.datetime_complete - t.datetime_start).total_seconds() < 10
        assert not (tmp_path / "trials" / f"{t.number:06d}" / "result.json").exists()


def test_shell_metacharacters_reach_the_command_as_one_argument(tmp_path: Path) -> None:
    nasty = 'a b; touch PWNED && echo $(id) `id` * \'"{x}"'
    command = [
        "{python}",
        "-c",
        "import json, sys; print(json.dumps({'value': 0, 'user_attrs': {'argv': sys.argv[1:]}}))",
    ]
    cfg = config(tmp_path, n_trials=1, command=[*command, "{tag}", "--x={x}", '{"literal": 1}'])
    cfg["params"] = {"tag": {"type": "categorical", "choices": [nasty]}, "x": [0, 1]}
    optimize(cfg, progress=False)
    trial = load(tmp_path).trials[0]
    argv = trial.user_attrs["argv"]
    assert argv[0] == nasty and argv[1] == f"--x={trial.params['x']!r}" and argv[2] == '{"literal": 1}'
    assert not (REPO / "PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_n_trials_is_the_study_total_across_resumes(tmp_path: Path) -> None:
    first = optimize(config(tmp_path, n_trials=3), progress=False)
    assert first.n_complete == 3 and sorted(calls(tmp_path)) == [0, 1, 2]
    again = optimize(config(tmp_path, n_trials=3), progress=False)  # nothing left to do
    assert again.n_complete == 3 and len(calls(tmp_path)) == 3
    more = optimize(config(tmp_path, n_trials=5), progress=False)
    assert more.n_complete == 5 and sorted(calls(tmp_path)) == [0, 1, 2, 3, 4]


def test_failed_trials_are_retried_with_the_same_params(tmp_path: Path) -> None:
    # the command fails the first time it sees a trial's x (no marker yet) and succeeds on the retry
    script = (
        "import json, pathlib, sys; m = pathlib.Path(sys.argv[2]) / ('seen-' + sys.argv[1]);"
        "seen = m.exists(); m.touch(); sys.exit(3) if not seen else print(json.dumps({'value': float(sys.argv[1])}))"
    )
    cfg = config(tmp_path, n_trials=3, n_max_jobs=1, command=["{python}", "-c", script, "{x}", "{run_dir}"])
    cfg["max_retries"] = 1
    result = optimize(cfg, progress=False)
    study = load(tmp_path)
    assert result.n_complete == 3 and states(study) == {"FAIL": 3, "COMPLETE": 3}
    for t in study.trials:
        if t.state.name == "COMPLETE":
            original = study.trials[t.user_attrs["retry_of"]]
            assert original.state.name == "FAIL" and original.params == t.params and t.user_attrs["attempt"] == 1


def test_retries_are_bounded(tmp_path: Path) -> None:
    cfg = config(tmp_path, n_trials=2, n_max_jobs=1, command=["{python}", "-c", "import sys; sys.exit(4)"])
    cfg["max_retries"] = 2
    optimize(cfg, progress=False)
    study = load(tmp_path)
    assert states(study) == {"FAIL": 6}  # 2 trials × (1 + 2 retries), then the budget is spent
    assert sorted(t.user_attrs.get("attempt", 0) for t in study.trials) == [0, 0, 1, 1, 2, 2]


def test_pruned_command_trials_are_stopped_early(tmp_path: Path) -> None:
    cfg = config(tmp_path, n_trials=10, n_max_jobs=2, command=objective_command(sleep=3, steps=10))
    cfg["study"]["pruner"] = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2, "n_warmup_steps": 1}
    cfg["enqueue"] = [{"x": 1.0, "y": 0.5}, {"x": 0.9, "y": 0.4}]  # two good trials first: later bad ones prune
    result = optimize(cfg, progress=False)
    study = load(tmp_path)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert result.n_pruned == len(pruned) >= 1
    for t in pruned:
        assert (t.datetime_complete - t.datetime_start).total_seconds() < 3  # stopped before its 3 s were up
        assert t.intermediate_values and t.value == t.intermediate_values[max(t.intermediate_values)]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert all(len(t.intermediate_values) == 10 for t in complete)


def test_callable_objective_with_failures_pruning_and_attrs(tmp_path: Path) -> None:
    def objective(trial: optuna.Trial) -> object:
        x = trial.params["x"]
        if x > 1.5:
            raise RuntimeError("diverged")
        if x < -1.5:
            trial.report(100.0, 0)
            raise optuna.TrialPruned
        if x < 0:
            return {"value": x * x, "user_attrs": {"side": "negative"}}
        return x * x

    cfg = config(tmp_path, n_trials=30, n_max_jobs=3, command=None)
    result = optimize(cfg, objective=objective, progress=False)
    study = load(tmp_path)
    assert len(study.trials) == 30 and result.n_complete + result.n_pruned + result.n_failed == 30
    for t in study.trials:
        x = t.params["x"]
        expected = "FAIL" if x > 1.5 else "PRUNED" if x < -1.5 else "COMPLETE"
        assert t.state.name == expected
        if expected == "FAIL":
            assert t.user_attrs["failure"] == "RuntimeError: diverged" and "Traceback" in t.user_attrs["log_tail"]
        if expected == "COMPLETE":
            assert t.value == pytest.approx(x * x)
            assert t.user_attrs.get("side") == ("negative" if x < 0 else None)


def test_two_objectives_write_the_pareto_set_and_plots(tmp_path: Path) -> None:
    cfg = config(tmp_path, n_trials=12, n_max_jobs=2, command=None, plots=True)
    cfg["study"]["directions"] = ["minimize", "minimize"]
    cfg["study"]["metric_names"] = ["f", "g"]
    optimize(cfg, objective=lambda t: (t.params["x"] ** 2, (t.params["x"] - 1) ** 2), progress=False)
    import yaml

    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    front = best["pareto_front"]
    study = load(tmp_path)
    values = [tuple(t.values) for t in study.trials]
    for item in front:  # nothing dominates a point of the front (brute force)
        f, g = item["values"]
        assert not any(a <= f and b <= g and (a, b) != (f, g) for a, b in values)
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"pareto_front.png", "optimization_history_0.png"}
    header = (tmp_path / "trials.csv").read_text().splitlines()[0]
    assert header.startswith("number,state,f,g,params_x")


def test_config_mistakes_fail_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to optimize"):
        optimize({"params": {"x": [0, 1]}, "run_dir": str(tmp_path)}, progress=False)
    with pytest.raises(ConfigError, match="direction"):
        optimize(config(tmp_path, 1, study={"name": "t", "directions": ["minimise"]}), progress=False)
    with pytest.raises(ConfigError, match="unknown parameter"):
        optimize(config(tmp_path, 1, enqueue=[{"z": 1}]), progress=False)
    assert not (tmp_path / "study.journal").exists()


def test_study_direction_mismatch_on_resume_is_an_error(tmp_path: Path) -> None:
    optimize(config(tmp_path, 1), progress=False)
    cfg = config(tmp_path, 2)
    cfg["study"]["directions"] = ["maximize"]
    with pytest.raises(ConfigError, match="stored study optimizes"):
        optimize(cfg, progress=False)


def test_results_printed_on_stdout_are_read(tmp_path: Path) -> None:
    command = ["{python}", "-c", "import json,sys; print('noise'); print(json.dumps({'value': float(sys.argv[1])}))"]
    optimize(config(tmp_path, 2, command=[*command, "{x}"]), progress=False)
    study = load(tmp_path)
    assert all(t.state.name == "COMPLETE" and t.value == t.params["x"] for t in study.trials)
    assert json.loads((tmp_path / "provenance.json").read_text())["host"]
