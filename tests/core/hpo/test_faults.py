"""Faults to survive, with real runner processes: SIGKILL mid-study, Ctrl-C, several runners on one journal file
and on PostgreSQL. Each ends with exactly ``n_trials`` finished trials and every objective call accounted for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest

from core.hpo.liveness import owner_of
from tests.core.hpo.helpers import (
    alive_jobs,
    calls,
    config,
    kill_jobs,
    load,
    objective_command,
    start_runner,
    states,
    wait_for,
    write_yaml,
)


def _finish(runner: subprocess.Popen[bytes], timeout: float = 120) -> str:
    out, _ = runner.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert runner.returncode == 0, text
    return text


def _results(run_dir: Path) -> int:
    return len(list(run_dir.glob("trials/*/result.json")))


def test_sigkill_then_restart_adopts_running_jobs_and_loses_nothing(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", config(tmp_path, n_trials=8, n_max_jobs=2, command=objective_command(1.0)))
    runner = start_runner(cfg)
    wait_for(lambda: _results(tmp_path) >= 2 and len(calls(tmp_path)) >= 4, 60, "two finished, two running trials")
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    assert states(load(tmp_path)).get("RUNNING", 0) >= 1  # the dead runner left RUNNING trials behind
    _finish(start_runner(cfg))
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 8}
    made = calls(tmp_path)
    assert sorted(made) == list(range(8))  # each trial ran exactly once: the orphans' jobs were adopted, not re-run


def test_sigkill_with_its_jobs_marks_them_lost_and_retries_them(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", config(tmp_path, n_trials=6, n_max_jobs=2, command=objective_command(2.0)))
    runner = start_runner(cfg)
    wait_for(lambda: _results(tmp_path) >= 2 and len(calls(tmp_path)) >= 4, 60, "two finished, two running trials")
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    killed = kill_jobs(tmp_path)  # the node went down with the runner
    assert killed >= 1
    _finish(start_runner(cfg))
    study = load(tmp_path)
    counts = states(study)
    assert counts["COMPLETE"] == 6 and counts["FAIL"] == killed
    for t in study.trials:
        if t.state.name == "FAIL":
            assert "lost" in t.user_attrs["failure"]
            retry = next(r for r in study.trials if r.user_attrs.get("retry_of") == t.number)
            assert retry.state.name == "COMPLETE" and retry.params == t.params


def test_ctrl_c_stops_and_records_running_trials_and_the_study_resumes(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", config(tmp_path, n_trials=6, n_max_jobs=2, command=objective_command(20)))
    runner = start_runner(cfg)
    wait_for(lambda: len(calls(tmp_path)) >= 2, 60, "two running trials")
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130, out.decode()
    study = load(tmp_path)
    assert states(study) == {"FAIL": 2, "WAITING": 2}  # stopped, recorded, and queued to re-run
    assert all("interrupted" in t.user_attrs["failure"] for t in study.trials if t.state.name == "FAIL")
    wait_for(lambda: alive_jobs(tmp_path) == 0, 10, "no trial process outliving the runner")
    assert (tmp_path / "trials.csv").exists()
    _finish(start_runner(cfg, "command[14]=0.1"))  # resume, with quick trials this time
    study = load(tmp_path)
    assert states(study) == {"FAIL": 2, "COMPLETE": 6}


def _run_four(cfg_file: Path) -> None:
    runners = [start_runner(cfg_file) for _ in range(4)]
    for runner in runners:
        _finish(runner, timeout=240)


def test_four_runners_on_one_journal_file(tmp_path: Path) -> None:
    cfg = config(tmp_path, n_trials=12, n_max_jobs=2, command=objective_command(0.2))
    _run_four(write_yaml(tmp_path / "c.yaml", cfg))
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 12}
    assert sorted(calls(tmp_path)) == list(range(12))
    owners = Counter(owner_of(t.system_attrs) for t in study.trials)
    assert None not in owners
    assert len(owners) >= 2  # the work was shared


def _postgres_url() -> str:
    env_file = Path(os.environ.get("KAKEHASHI_POSTGRES_DIR", "/tmp/kakehashi-postgres")) / "env.sh"
    url = os.environ.get("KAKEHASHI_POSTGRES_URL")
    if url is None and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export KAKEHASHI_POSTGRES_URL="):
                url = line.split("=", 1)[1].strip().strip('"')
    if url is None:
        pytest.skip("no PostgreSQL server: run tools/ci/postgres-up.sh")
    return url


@pytest.mark.postgres
def test_runners_starting_together_on_an_empty_database(tmp_path: Path) -> None:
    """Six processes open the storage of a new database at once: Optuna's tables are created once, no error."""
    import sqlalchemy

    base = _postgres_url()
    database = f"kh_empty_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    url = base.rsplit("/", 1)[0] + "/" + database
    code = f"from pathlib import Path; from core.hpo.storage import open_storage; open_storage({url!r}, Path('.'))"
    try:
        processes = [
            subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(6)
        ]
        errors = [p.communicate(timeout=120)[1] for p in processes]
        assert [p.returncode for p in processes] == [0] * 6, "\n".join(e for e in errors if e)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {database} WITH (FORCE)"))
        admin.dispose()


@pytest.mark.postgres
def test_four_runners_on_postgresql(tmp_path: Path) -> None:
    url = _postgres_url()
    name = f"t-{uuid.uuid4().hex[:8]}"
    cfg = config(tmp_path, n_trials=12, n_max_jobs=2, command=objective_command(0.2))
    cfg["study"].update(name=name, storage=url)
    try:
        _run_four(write_yaml(tmp_path / "c.yaml", cfg))
        study = load(tmp_path, storage=url, name=name)
        assert states(study) == {"COMPLETE": 12}
        assert sorted(calls(tmp_path)) == list(range(12))
    finally:
        optuna.delete_study(study_name=name, storage=url)
