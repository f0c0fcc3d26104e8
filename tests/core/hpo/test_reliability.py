"""Storage safety, graceful ends and clean exits of the runner (issue: every bad input one line, no process outliving
its end, no storage damaged)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from core.cli import main
from core.errors import ConfigError, UserError
from core.hpo import optimize
from core.jobs.processes import group_members
from tests.core.hpo.helpers import config, load, states


def _quick(run_dir: Path, n_trials: int, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "study": {"name": "t", "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0}},
        "params": {"x": [0.0, 1.0]},
        "n_trials": n_trials,
        "plots": False,
        "run_dir": str(run_dir),
    }
    cfg.update(extra)
    return cfg


def _square(trial: optuna.Trial) -> float:
    return float(trial.params["x"]) ** 2


# ---------------------------------------------------------------------- storage
def test_a_torn_last_journal_record_is_repaired_on_resume(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    optimize(_quick(tmp_path, 3), objective=_square, progress=False)
    journal = tmp_path / "study.journal"
    last_line = journal.read_bytes().splitlines(keepends=True)[-1]
    os.truncate(journal, journal.stat().st_size - 5)  # as `truncate -s -5`: a runner killed mid-write
    result = optimize(_quick(tmp_path, 6), objective=_square, progress=False)  # resume: appends after the repair
    assert "torn" in caplog.text
    torn = list(tmp_path.glob("study.journal.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == last_line[:-5]
    assert journal.read_bytes().endswith(b"\n")
    assert result.n_complete >= 5 and sum(states(load(tmp_path)).values()) >= 6
    assert main(["hpo", "trials", str(tmp_path)]) == 0  # and every later verb reads it


def test_a_torn_journal_is_read_but_not_touched_by_read_only_verbs(tmp_path: Path) -> None:
    optimize(_quick(tmp_path, 2), objective=_square, progress=False)
    journal = tmp_path / "study.journal"
    os.truncate(journal, journal.stat().st_size - 5)
    before = journal.read_bytes()
    assert main(["hpo", "trials", str(tmp_path)]) == 0
    assert journal.read_bytes() == before and not list(tmp_path.glob("*.torn-*"))


@pytest.mark.parametrize("kind", ["yaml", "directory", "sqlite-yaml"])
def test_a_path_that_is_not_our_storage_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "settings.yaml"
    if kind == "directory":
        target = tmp_path / "folder"
        target.mkdir()
    else:
        target.write_text("lr: 0.1\nname: mine\n")
    storage = f"sqlite:///{target}" if kind == "sqlite-yaml" else str(target)
    cfg = _quick(tmp_path / "run", 2)
    cfg["study"]["storage"] = storage
    with pytest.raises(UserError, match=r"not an SQLite database|not an Optuna journal|not a file"):
        optimize(cfg, objective=_square, progress=False)
    if kind != "directory":
        assert target.read_text() == "lr: 0.1\nname: mine\n"


@pytest.mark.parametrize("verb", ["trials", "report"])
def test_read_only_verbs_create_nothing(tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    for storage in (f"sqlite:///{tmp_path}/new/dir/x.db", str(tmp_path / "new2" / "x.journal")):
        assert main(["hpo", verb, str(tmp_path), "--storage", storage]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_studies_named_with_a_slash_share_one_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = tmp_path / "bridge.journal"
    for name in ("scenario-1/direct", "scenario-1/refine"):
        cfg = _quick(tmp_path / name.replace("/", "_"), 3)
        cfg["study"].update(name=name, storage=str(journal))
        assert optimize(cfg, objective=_square, progress=False).n_complete == 3
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == [
        "scenario-1/direct",
        "scenario-1/refine",
    ]
    capsys.readouterr()
    assert main(["hpo", "trials", str(tmp_path), "--storage", str(journal), "--study", "scenario-1/refine"]) == 0
    assert capsys.readouterr().out.count("COMPLETE") == 3
    assert main(["hpo", "report", str(tmp_path), "--storage", str(journal), "--study", "scenario-1/direct"]) == 0
    assert (tmp_path / "trials.csv").read_text().count("COMPLETE") == 3


# ---------------------------------------------------------------------- graceful ends, seeds
def test_a_sampler_that_stops_the_study_ends_the_runner_cleanly(tmp_path: Path) -> None:
    cfg = _quick(tmp_path, 20, n_max_jobs=2)
    cfg["params"] = {"x": {"type": "int", "low": 0, "high": 4}}
    cfg["study"]["sampler"] = {"_target_": "optuna.samplers.BruteForceSampler", "seed": 0}
    result = optimize(cfg, objective=lambda t: float(t.params["x"]), progress=False)
    counts = states(load(tmp_path))
    assert "RUNNING" not in counts and counts["COMPLETE"] == result.n_complete
    assert {t.params["x"] for t in load(tmp_path).trials} == {0, 1, 2, 3, 4}  # the whole space, then it stopped
    assert result.n_complete < 20


def test_resumed_and_parallel_runners_do_not_repeat_a_seeded_sampler(tmp_path: Path) -> None:
    for n in (4, 8, 12):  # three runners, one after the other, same seed in the config
        optimize(_quick(tmp_path / "a", n), objective=_square, progress=False)
    xs = [t.params["x"] for t in load(tmp_path / "a").trials]
    assert len(xs) == 12 and len(set(xs)) == 12
    optimize(_quick(tmp_path / "b", 4), objective=_square, progress=False)  # a single runner stays reproducible
    assert [t.params["x"] for t in load(tmp_path / "b").trials] == xs[:4]


# ---------------------------------------------------------------------- processes
def _groups(run_dir: Path) -> list[int]:
    return [int(p.read_text().split()[0]) for p in run_dir.glob("trials/*/.kakehashi/*/0.pid")]


def test_a_trial_that_ignores_sigterm_is_killed_and_says_so(tmp_path: Path) -> None:
    stubborn = ["sh", "-c", "trap '' TERM; sleep 96 & wait; sleep 96"]
    cfg = config(tmp_path, n_trials=1, n_max_jobs=1, command=stubborn, timeout_per_trial=1)
    cfg["jobs"]["kill_grace"] = 0.5
    started = time.monotonic()
    optimize(cfg, progress=False)
    assert time.monotonic() - started < 30
    (trial,) = load(tmp_path).trials
    assert trial.state.name == "FAIL" and "timeout" in trial.user_attrs["failure"]
    assert "SIGKILL after a 0.5 s grace period" in trial.user_attrs["failure"]
    assert [pgid for pgid in _groups(tmp_path) if group_members(pgid)] == []


def test_nothing_a_trial_started_outlives_the_runner(tmp_path: Path) -> None:
    leaves_a_child = ["sh", "-c", "sleep 300 & echo 0.5 > $0", "{out_file}"]
    optimize(config(tmp_path, n_trials=2, n_max_jobs=2, command=leaves_a_child), progress=False)
    assert states(load(tmp_path)) == {"COMPLETE": 2}
    groups = _groups(tmp_path)
    assert len(groups) == 2
    deadline = time.monotonic() + 10
    while any(group_members(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [g for g in groups if group_members(g)] == []


# ---------------------------------------------------------------------- config mistakes, output
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_trails": 30}, "unknown key 'n_trails'.*did you mean n_trials"),
        ({"jobs": {"kill_grase": 1}}, "unknown key 'kill_grase'.*did you mean kill_grace"),
        ({"params": {"x": [float("nan"), 1]}}, "finite"),
        ({"params": {"x": [1.0, float("inf")]}}, "finite"),
        ({"params": {"x": {"type": "float", "low": 1, "high": 1}}}, "equals high"),
        ({"params": {"x": {"type": "float", "low": 2, "high": 1}}}, "above high"),
        ({"params": {"x": {"type": "float", "low": 0, "high": 1, "log": True}}}, "low > 0"),
        ({"enqueue": [{"x": 3.0}]}, r"outside the range \[0.0, 1.0\]"),
        ({"enqueue": [{"x": "a"}]}, "not a number"),
    ],
)
def test_config_mistakes_are_refused_before_anything_runs(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    cfg = _quick(tmp_path, 2)
    cfg.update(change)
    with pytest.raises(ConfigError, match=message):
        optimize(cfg, objective=_square, progress=False)
    assert not (tmp_path / "study.journal").exists()


def test_a_typo_in_a_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("params: {x: [0, 1]}\nn_trails: 30\ncommand: [true]\n")
    assert main(["hpo", "optimize", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown key 'n_trails'") and "n_trials" in err and "\n" not in err


def test_no_progress_still_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["hpo", "optimize", "params.x=[0,1]", "n_trials=2", "plots=false", "--run-dir", str(tmp_path)]
    argv += ["--no-progress", "--", "sh", "-c", "echo 0.5 > $0", "{out_file}"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "hpo: 2 complete, 0 pruned, 0 failed; best 0.5" in err


def test_closing_a_budget_lock_waits_for_the_thread_inside_it(tmp_path: Path) -> None:
    """close() while another thread holds the lock waits for that thread's release (it used to close the
    descriptor under it: EBADF in the holder's release)."""
    import threading

    from core.hpo.storage import FileLock

    lock = FileLock(tmp_path / "study.journal.budget-lock")
    inside, leave, errors = threading.Event(), threading.Event(), []

    def hold() -> None:
        try:
            with lock:
                inside.set()
                leave.wait(10)
        except OSError as exc:
            errors.append(exc)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert inside.wait(10)
    closer = threading.Thread(target=lock.close, daemon=True)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close() did not wait for the thread inside the lock"
    leave.set()
    holder.join(10)
    closer.join(10)
    assert not closer.is_alive() and errors == [] and lock._fd is None


def test_an_interrupted_budget_lock_does_not_deadlock_the_next_acquire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cause of a Ctrl-C hang seen under load: KeyboardInterrupt landing just after ``flock`` took the lock
    left it held on a descriptor the lock had forgotten, and the next acquire (recording the interrupted trials)
    waited on it forever."""
    import fcntl
    import threading

    from core.hpo.storage import FileLock

    lock = FileLock(tmp_path / "study.journal.budget-lock")
    real = fcntl.flock

    def flock_then_interrupt(fd: int, operation: int) -> None:
        real(fd, operation)
        if operation == fcntl.LOCK_EX:
            raise KeyboardInterrupt

    monkeypatch.setattr(fcntl, "flock", flock_then_interrupt)
    with pytest.raises(KeyboardInterrupt), lock:
        pass
    monkeypatch.setattr(fcntl, "flock", real)
    taken = threading.Event()

    def take() -> None:
        with lock:
            taken.set()

    second = threading.Thread(target=take, daemon=True)
    second.start()
    assert taken.wait(10), "the second acquire is stuck behind the first one's lock"
    second.join(10)  # its release done before the descriptor is closed
    lock.close()
