"""The local journal's lock: exclusive between processes and threads, freed when its holder dies."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest

from nas.journal import FlockJournalLock
from nas.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from nas.journal import FlockJournalLock
lock = FlockJournalLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _acquire_in_thread(lock: FlockJournalLock) -> threading.Event:
    done = threading.Event()

    def take() -> None:
        lock.acquire()
        done.set()

    threading.Thread(target=take, daemon=True).start()
    return done


def _holder(journal: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow  # worker subprocesses
def test_a_killed_holder_frees_the_lock_at_once(tmp_path):
    journal = tmp_path / "journal.log"
    holder = _holder(journal)
    try:
        done = _acquire_in_thread(FlockJournalLock(str(journal)))
        assert not done.wait(0.5)  # another process holds it
        holder.send_signal(signal.SIGKILL)  # dies holding it, as a killed worker would
        holder.wait(timeout=10)
        # Optuna's default lock file would keep it for its 30 s grace period.
        assert done.wait(5)
    finally:
        holder.kill()
        holder.wait()
    assert Path(f"{journal}.flock").exists()


def test_threads_of_one_process_take_turns(tmp_path):
    lock = FlockJournalLock(str(tmp_path / "journal.log"))
    assert lock.acquire()
    done = _acquire_in_thread(lock)
    assert not done.wait(0.3)
    lock.release()
    assert done.wait(5)
    lock.release()


def test_concurrent_writers_keep_every_trial(tmp_path):
    # Threads writing through separate storages on one journal: nothing lost or interleaved.
    journal = str(tmp_path / "journal.log")
    optuna.create_study(study_name="s", storage=open_storage(journal))

    def write(k: int) -> None:
        study = optuna.load_study(study_name="s", storage=open_storage(journal))
        for i in range(20):
            study.add_trial(optuna.trial.create_trial(value=float(k * 100 + i)))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)  # no writer left waiting on the lock
    study = optuna.load_study(study_name="s", storage=open_storage(journal))
    values = sorted(t.value for t in study.get_trials())
    assert values == sorted(float(k * 100 + i) for k in range(3) for i in range(20))
    assert sorted(t.number for t in study.get_trials()) == list(range(60))


def test_a_lock_file_that_cannot_be_opened_raises_and_holds_nothing(tmp_path):
    # The journal's folder is missing: the open error reaches the caller, and the lock is free
    # again, so a later attempt (once the folder exists) takes it without waiting.
    folder = tmp_path / "gone"
    lock = FlockJournalLock(str(folder / "journal.log"))
    with pytest.raises(FileNotFoundError):
        lock.acquire()
    folder.mkdir()
    done = _acquire_in_thread(lock)
    assert done.wait(5)
    lock.release()


def test_an_interrupted_wait_for_the_lock_closes_its_file_and_holds_nothing(tmp_path, monkeypatch):
    # Ctrl-C while waiting on the flock: the interrupt reaches the caller, the lock file opened
    # for it is closed, and the thread lock is free again.
    import nas.journal

    opened, open_lock_file = [], nas.journal.open_lock_file

    def open_and_record(path):
        handle = open_lock_file(path)
        opened.append(handle)
        return handle

    def interrupted(handle, operation):
        raise KeyboardInterrupt

    lock = FlockJournalLock(str(tmp_path / "journal.log"))
    with monkeypatch.context() as patch:
        patch.setattr(nas.journal, "open_lock_file", open_and_record)
        patch.setattr(nas.journal.fcntl, "flock", interrupted)
        with pytest.raises(KeyboardInterrupt):
            lock.acquire()
    assert len(opened) == 1 and opened[0].closed
    done = _acquire_in_thread(lock)
    assert done.wait(5)
    lock.release()
