"""The runner's small parts: the search space, command templates, the result protocol, report tails, liveness,
storage URLs and the CLI's argument split."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest

from core.errors import ConfigError
from core.hpo.cli import split_command
from core.hpo.command import parse_command, render_command, unknown_placeholders
from core.hpo.liveness import RunnerRecord
from core.hpo.params import parse_params, suggest
from core.hpo.results import ReportTail, ResultError, parse_result_text, read_result
from core.hpo.storage import hide_password, normalize_url


def test_params_forms_and_distributions() -> None:
    space = parse_params(
        {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "x": [-1, 1],
            "n": {"type": "int", "low": 2, "high": 10, "step": 2},
            "act": {"choices": ["relu", "gelu"]},
            "tag": "a b",
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        values = suggest(trial, space)
        assert 1e-4 <= values["lr"] <= 1e-1 and -1 <= values["x"] <= 1
        assert values["n"] in (2, 4, 6, 8, 10) and values["act"] in ("relu", "gelu") and values["tag"] == "a b"
        study.tell(trial, 0.0)
    dists = study.trials[0].distributions
    assert dists["lr"].log and isinstance(dists["x"], optuna.distributions.FloatDistribution)
    assert isinstance(dists["n"], optuna.distributions.IntDistribution) and dists["n"].step == 2


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ([1], "short form"),
        ({"type": "float", "low": 2, "high": 1}, "above high"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "low > 0"),
        ({"type": "int", "low": 0.5, "high": 3}, "integer"),
        ({"type": "categorical", "choices": []}, "non-empty"),
        ({"type": "uniform", "low": 0, "high": 1}, "unknown parameter type"),
        ({"type": "float", "low": 0, "high": 1, "lo": 3}, "unknown key 'lo'"),
    ],
)
def test_params_mistakes_are_config_errors(definition: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_params({"p": definition})
    assert "params.p" in str(info.value)


def test_render_command_keeps_values_whole_and_foreign_braces_intact() -> None:
    template = parse_command('python f.py --x={x} "{name}" \'{"a": {x}}\' {{x}} ${HOME} {unknown}')
    argv = render_command(template, {"x": 0.1 + 0.2, "name": "a b; $(rm -rf /) `id` *"})
    assert argv == [
        "python",
        "f.py",
        f"--x={0.1 + 0.2!r}",  # full precision
        "a b; $(rm -rf /) `id` *",
        '{"a": 0.30000000000000004}',
        "{x}",
        "${HOME}",
        "{unknown}",
    ]
    assert unknown_placeholders(template, ["x", "name"]) == ["unknown"]
    assert render_command(["{v}"], {"v": [1, 2]}) == ["[1, 2]"]


def test_result_protocol() -> None:
    assert parse_result_text('{"value": 3}', 1).values == [3.0]
    assert parse_result_text("[1, 2]", 2).values == [1.0, 2.0]
    assert parse_result_text("-0.5", 1).values == [-0.5]
    for text, reason in [
        ('{"value": "x"}', "not a number"),
        ('{"value": NaN}', "NaN"),
        ('{"values": [1]}', "1 values for 2 objectives"),
        ("{}", 'no "value"'),
        ("hello", "not JSON"),
        ('{"value": true}', "not a number"),
    ]:
        with pytest.raises(ResultError, match=reason):
            parse_result_text(text, 2 if "values" in text else 1)


def test_read_result_prefers_out_file_then_last_json_line(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text('{"value": 1}\nprogress 50%\n{"value": 2}\nwarning: on stderr\n')
    assert read_result(tmp_path / "missing.json", log, 1).values == [2.0]
    out = tmp_path / "out.json"
    out.write_text(json.dumps({"value": 5, "user_attrs": {"k": "v"}}))
    result = read_result(out, log, 1)
    assert result.values == [5.0] and result.user_attrs == {"k": "v"}
    log.write_text("no json here\n")
    with pytest.raises(ResultError, match="was not written"):
        read_result(tmp_path / "missing.json", log, 1)


def test_report_tail_handles_partial_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    tail = ReportTail(path)
    assert tail.read() == []
    path.write_bytes(b'{"step": 0, "value": 1}\ngarbage\n{"step": 1, "val')
    assert tail.read() == [(0, 1.0)]
    with path.open("ab") as f:
        f.write(b'ue": 0.5}\n{"step": -1, "value": 2}\n')
    assert tail.read() == [(1, 0.5)]
    assert tail.bad_lines == 2


def test_runner_liveness_rules() -> None:
    me = RunnerRecord.current()
    now = time.time()
    other_host_fresh = RunnerRecord("a", "elsewhere", 1, "", now - 5)
    other_host_stale = RunnerRecord("b", "elsewhere", 1, "", now - 500)
    same_pid_old_run = RunnerRecord("c", me.host, me.pid, me.pid_start, now)
    recycled_pid = RunnerRecord("d", me.host, me.pid, "different-start", now)
    exited = RunnerRecord("e", "elsewhere", 1, "", now, exited=True)
    assert not other_host_fresh.is_dead(now, 60, me)
    assert other_host_stale.is_dead(now, 60, me)
    assert same_pid_old_run.is_dead(now, 60, me) and recycled_pid.is_dead(now, 60, me) and exited.is_dead(now, 60, me)
    assert not me.is_dead(now + 1000, 60, me)
    assert RunnerRecord.from_attr("x", me.to_attr()) == RunnerRecord("x", me.host, me.pid, me.pid_start, me.heartbeat)


def test_storage_urls() -> None:
    assert normalize_url("postgresql://u:p@h/db").startswith("postgresql+psycopg")
    assert normalize_url("sqlite:///a.db") == "sqlite:///a.db"
    assert (
        hide_password("postgresql+psycopg2://user:secret@127.0.0.1:5/db")
        == "postgresql+psycopg2://user:***@127.0.0.1:5/db"
    )


def test_cli_split_of_config_overrides_and_command(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("n_trials: 3\n")
    assert split_command(str(cfg), ["n_trials=4", "--", "python", "x=1", "--flag"]) == (
        str(cfg),
        ["n_trials=4"],
        ["python", "x=1", "--flag"],
        {},
    )
    assert split_command(str(cfg), ["--run-dir", "r", "--no-progress", "prog", "a=b"]) == (
        str(cfg),
        [],
        ["prog", "a=b"],
        {"run_dir": "r", "no_progress": True},
    )
