"""The journal's write lock: a holder killed mid-write does not block the next writer for Optuna's 30 s.

Each test gives the lock a grace period of an hour, so only the dead-holder rule can release a lock within the
test's bounds; the bounds themselves are generous (a loaded machine), never a speed target.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.hpo.storage import JournalLock, open_storage, process_alive

HOUR = 3600.0
BOUND_S = 60.0

_HOLD = """
import sys, time
from core.hpo.storage import JournalLock
JournalLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(journal: Path) -> subprocess.Popen[str]:
    """A process that takes the journal's lock and keeps it until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(journal)], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def _acquire_in_thread(lock: JournalLock) -> threading.Event:
    taken = threading.Event()

    def take() -> None:
        lock.acquire()
        taken.set()

    threading.Thread(target=take, daemon=True).start()
    return taken


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "study.journal"
    path.write_bytes(b"")
    return path


def test_a_lock_whose_holder_was_killed_is_broken_with_a_warning(
    journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = _holder(journal)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert Path(f"{journal}.lock").is_symlink()  # the killed holder left its lock behind
    lock = JournalLock(str(journal), grace_period=HOUR)
    with caplog.at_level(logging.WARNING, logger="core.hpo.storage"):
        assert _acquire_in_thread(lock).wait(BOUND_S)
    assert f"(pid {holder.pid} on this host) has died" in caplog.text
    lock.release()
    assert not os.path.lexists(f"{journal}.lock") and not Path(f"{journal}.lock.holder").exists()


def test_a_live_holder_keeps_its_lock_until_it_dies(journal: Path) -> None:
    holder = _holder(journal)
    lock = JournalLock(str(journal), grace_period=HOUR)
    try:
        taken = _acquire_in_thread(lock)
        assert not taken.wait(1.0)  # the holder runs: no waiter may take it
        assert process_alive(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert taken.wait(BOUND_S)
    lock.release()


def test_a_lock_without_a_record_of_its_holder_waits_for_the_grace_period(journal: Path) -> None:
    """A link made by plain Optuna (or by a holder killed before it recorded itself) is Optuna's to judge."""
    os.symlink(str(journal), f"{journal}.lock")
    patient = JournalLock(str(journal), grace_period=HOUR)
    taken = _acquire_in_thread(patient)
    assert not taken.wait(1.0)
    os.unlink(f"{journal}.lock")  # its holder is done
    assert taken.wait(BOUND_S)
    patient.release()
    os.symlink(str(journal), f"{journal}.lock")  # and after the grace period without a journal write, it is broken
    impatient = JournalLock(str(journal), grace_period=0.5)
    assert _acquire_in_thread(impatient).wait(BOUND_S)
    impatient.release()


def test_a_stale_record_of_another_link_breaks_nothing(journal: Path) -> None:
    holder = _holder(journal)
    holder.kill()
    holder.wait()
    record = Path(f"{journal}.lock.holder").read_text()
    os.unlink(f"{journal}.lock")  # the dead holder's link is gone; a live process (plain Optuna) takes the lock
    os.symlink(str(journal), f"{journal}.lock")
    Path(f"{journal}.lock.holder").write_text(record)  # while the dead holder's record is still there
    lock = JournalLock(str(journal), grace_period=HOUR)
    taken = _acquire_in_thread(lock)
    assert not taken.wait(1.0)
    os.unlink(f"{journal}.lock")  # the live holder is done: the waiter gets it
    assert taken.wait(BOUND_S)
    lock.release()


def test_plain_optuna_waits_for_our_lock(journal: Path) -> None:
    from optuna.storages.journal import JournalFileSymlinkLock

    ours = JournalLock(str(journal))
    ours.acquire()
    theirs = JournalFileSymlinkLock(str(journal), grace_period=None)
    taken = threading.Event()
    threading.Thread(target=lambda: (theirs.acquire(), taken.set()), daemon=True).start()
    assert not taken.wait(1.0)
    ours.release()
    assert taken.wait(BOUND_S)
    theirs.release()


def test_a_study_on_a_journal_whose_writer_was_killed_goes_on(journal: Path, caplog: pytest.LogCaptureFixture) -> None:
    import optuna

    holder = _holder(journal)
    holder.kill()
    holder.wait()
    opened = open_storage(str(journal), journal.parent)
    done = threading.Event()

    def create() -> None:
        optuna.create_study(study_name="s", storage=opened.storage).optimize(lambda t: t.suggest_float("x", 0, 1), 2)
        done.set()

    with caplog.at_level(logging.WARNING, logger="core.hpo.storage"):
        threading.Thread(target=create, daemon=True).start()
        assert done.wait(BOUND_S)
    assert "has died; lock broken" in caplog.text
    assert len(optuna.load_study(study_name="s", storage=opened.storage).trials) == 2


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


def test_the_link_names_are_optunas() -> None:
    """The lock is Optuna's by its file names; they are Optuna's private constants, so a change there must fail here."""
    from optuna.storages.journal import _file

    assert JournalLock.SUFFIX == _file.LOCK_FILE_SUFFIX
    assert JournalLock.RENAME_SUFFIX == _file.RENAME_FILE_SUFFIX


def test_held_releases_on_error(journal: Path) -> None:
    lock = JournalLock(str(journal), grace_period=HOUR)
    link = str(journal) + JournalLock.SUFFIX

    def fail_inside() -> None:
        with lock.held():
            assert os.path.islink(link)
            raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fail_inside()
    assert not os.path.lexists(link)
