"""A journal opened twice in one process is replayed once: later opens reuse the open storage, which still sees
every record other processes append, and a journal replaced at the same path, or cut shorter, is replayed afresh."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from core.hpo.storage import forget_journals, open_storage

REPO = Path(__file__).resolve().parents[3]

_TELL_ONE = """
import sys
import optuna
from core.hpo.storage import open_storage
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1], None).storage)
trial = study.ask()
study.tell(trial, 7.0)
"""


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    forget_journals()
    yield
    forget_journals()


def _study_with(path: Path, values: list[float]) -> None:
    study = optuna.create_study(storage=open_storage(str(path), None).storage, study_name="s")
    for value in values:
        study.tell(study.ask(), value)


def _values(path: Path) -> list[float]:
    study = optuna.load_study(study_name="s", storage=open_storage(str(path), None).storage)
    return [t.value for t in study.trials]


def test_a_second_open_reuses_the_storage_and_sees_other_processes_records(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    _study_with(journal, [1.0, 2.0])
    first = open_storage(str(journal), None).storage
    assert open_storage(str(journal), None, read_only=True).storage is first
    subprocess.run([sys.executable, "-c", _TELL_ONE, str(journal)], cwd=REPO, check=True)
    assert _values(journal) == [1.0, 2.0, 7.0]
    assert open_storage(str(journal), None).storage is first


def test_a_journal_written_anew_at_the_same_path_is_replayed_afresh(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    _study_with(journal, [1.0, 2.0])
    before = open_storage(str(journal), None).storage
    journal.unlink()
    _study_with(journal, [5.0])
    assert open_storage(str(journal), None).storage is not before
    assert _values(journal) == [5.0]


def test_a_journal_that_got_shorter_is_replayed_afresh(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    _study_with(journal, [1.0])
    copy = journal.read_bytes()  # a backup: the study with one trial
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal), None).storage)
    study.tell(study.ask(), 2.0)
    assert _values(journal) == [1.0, 2.0]
    journal.write_bytes(copy)  # the backup restored over it: same inode, same first record, shorter
    assert _values(journal) == [1.0]


def test_a_torn_record_appended_after_the_first_open_is_still_repaired(tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    _study_with(journal, [1.0])
    first = open_storage(str(journal), None).storage
    with journal.open("ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "killed mid-li')  # a writer killed mid-line
    assert _values(journal) == [1.0]  # the open repaired it (cut the torn bytes) and replayed afresh
    assert journal.read_bytes().endswith(b"\n") and list(tmp_path.glob("study.journal.torn-*"))
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal), None).storage)
    study.tell(study.ask(), 3.0)
    forget_journals()
    assert _values(journal) == [1.0, 3.0]  # replayed from the file alone: nothing poisoned
    assert open_storage(str(journal), None).storage is not first
