"""Grouped flushes of the journal: one ``fsync`` per group of records, and nothing lost when the writer is killed
before the group's flush."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest

from core.hpo.storage import OpenedStorage, open_storage

REPO = Path(__file__).resolve().parents[3]

_KILLED_INSIDE_A_GROUP = """
import os, signal, sys
import optuna
from core.hpo.storage import open_storage
opened = open_storage(sys.argv[1], None)
study = optuna.create_study(storage=opened.storage, study_name="s")
with opened.grouped_sync():
    for i in range(3):
        trial = study.ask()
        study.tell(trial, float(i))
    os.kill(os.getpid(), signal.SIGKILL)  # before the group's flush
"""


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that called ``os.fsync``, in order."""
    calls: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(threading.current_thread().name)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def _study(tmp_path: Path) -> tuple[OpenedStorage, optuna.Study]:
    opened = open_storage(str(tmp_path / "study.journal"), tmp_path)
    return opened, optuna.create_study(storage=opened.storage, study_name="s")


def test_the_records_of_a_group_are_flushed_once_at_its_end(tmp_path: Path, fsyncs: list[str]) -> None:
    opened, study = _study(tmp_path)
    fsyncs.clear()
    trial = study.ask()
    study.tell(trial, 1.0)
    assert len(fsyncs) >= 2  # outside a group: one flush per record, as Optuna does
    fsyncs.clear()
    with opened.grouped_sync():
        for i in range(3):
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            study.tell(trial, float(i))
        assert fsyncs == []
    assert len(fsyncs) == 1
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


def test_other_threads_flush_their_records_at_once(tmp_path: Path, fsyncs: list[str]) -> None:
    opened, study = _study(tmp_path)
    fsyncs.clear()
    with opened.grouped_sync():
        writer = threading.Thread(target=lambda: study.set_user_attr("k", 1), name="writer")
        writer.start()
        writer.join()
        assert fsyncs == ["writer"]


def test_a_writer_killed_before_the_flush_loses_no_record(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _KILLED_INSIDE_A_GROUP, str(journal)], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal), tmp_path).storage)
    assert [(t.state.name, t.value) for t in study.trials] == [("COMPLETE", 0.0), ("COMPLETE", 1.0), ("COMPLETE", 2.0)]


def test_a_journal_storage_still_pickles(tmp_path: Path) -> None:
    opened, study = _study(tmp_path)
    copy = pickle.loads(pickle.dumps(opened.storage))
    with opened.grouped_sync():
        study.set_user_attr("k", 1)
    assert optuna.load_study(study_name="s", storage=copy).user_attrs == {"k": 1}
