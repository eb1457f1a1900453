"""The journal survives a torn line: moved aside before the next append, repaired by `nas doctor`,
and commands that change nothing write nothing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.cli import main
from nas.journal import JournalDamaged, Repair, StudyJournal, good_length, repair_journal
from nas.storage import open_storage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "study_v0_1_0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def study_dir(tmp_path, monkeypatch):
    """The 0.1.0 fixture study (8 finished trials) in tmp_path; returns its journal path."""
    shutil.copy(FIXTURE / "study.toml", tmp_path / "study.toml")
    journal = tmp_path / "runs" / "v010" / "journal.log"
    journal.parent.mkdir(parents=True)
    shutil.copy(FIXTURE / "journal.log", journal)
    monkeypatch.chdir(tmp_path)
    return journal


def _finished(journal: Path) -> dict[int, list[float]]:
    study = optuna.load_study(study_name="v010", storage=open_storage(str(journal)))
    return {t.number: t.values for t in study.get_trials() if t.state.is_finished()}


def _side_files(journal: Path, kind: str) -> list[Path]:
    return sorted(journal.parent.glob(f"{journal.name}.{kind}-*"))


def test_good_length_finds_the_end_of_the_last_parsable_line(tmp_path):
    path = tmp_path / "j.log"
    lines = [json.dumps({"op_code": i, "pad": "x" * 100_000 * (i == 1)}) + "\n" for i in range(3)]
    good = "".join(lines).encode()
    for tail, expected in [
        (b"", len(good)),
        (b'{"op_code": 4, "tri', len(good)),  # torn: no newline
        (b"garbage\n", len(good)),  # a complete line that is not JSON
        (b"garbage\n\x00\x00\n{", len(good)),  # several bad lines
    ]:
        path.write_bytes(good + tail)
        assert good_length(path) == expected
    path.write_bytes(b"no journal at all")
    assert good_length(path) == 0


@pytest.mark.parametrize(
    "damage",
    ["append garbage", "append garbage line", "cut 25 bytes"],
)
def test_a_torn_tail_is_moved_aside_and_no_trial_is_lost(study_dir, damage, capsys):
    before = _finished(study_dir)
    data = study_dir.read_bytes()
    torn = {
        "append garbage": data + b'{"op_code": 5, "trial_id": 3, "val',
        "append garbage line": data + b"#%&\n",
        "cut 25 bytes": data[:-25],
    }[damage]
    study_dir.write_bytes(torn)
    # Reading tolerates a bad last line; `nas status` shows every trial.
    assert _finished(study_dir) == before
    # A refused search (changed config), then a normal one that adds two trials.
    config = Path("study.toml")
    config.write_text(config.read_text().replace("epochs = 3", "epochs = 4"))
    assert main(["search", "study.toml", "--no-progress"]) == 2
    config.write_text(config.read_text().replace("epochs = 4", "epochs = 3"))
    with pytest.warns(UserWarning, match=r"journal\.log: its last \d+ bytes .* moved them to"):
        assert main(["search", "study.toml", "--n-trials", "10", "--no-progress"]) == 0
    after = _finished(study_dir)
    assert {n: after[n] for n in before} == before and len(after) == 10
    (side,) = _side_files(study_dir, "torn")
    assert torn.endswith(side.read_bytes())
    assert main(["status", "study.toml"]) == 0


def test_a_worker_killed_mid_append_leaves_a_tail_the_next_append_moves_aside(study_dir):
    before = _finished(study_dir)
    # A writer that takes the lock, writes half an operation and is killed (SIGKILL).
    script = (
        "import os, signal, sys\n"
        "from nas.journal import FlockJournalLock\n"
        "lock = FlockJournalLock(sys.argv[1]); lock.acquire()\n"
        "with open(sys.argv[1], 'ab') as f:\n"
        '    f.write(b\'{"op_code": 4, "trial_id": 8, "par\'); f.flush()\n'
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(study_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL
    storage = optuna.storages.JournalStorage(StudyJournal(study_dir))
    study = optuna.load_study(study_name="v010", storage=storage)
    with pytest.warns(UserWarning, match="moved them to"):
        study.set_user_attr("touched", True)  # any append
    assert _finished(study_dir) == before
    assert _side_files(study_dir, "torn")[0].read_bytes().startswith(b'{"op_code": 4')


def test_a_damaged_line_in_the_middle_names_the_file_line_and_repair(study_dir, capsys):
    before = _finished(study_dir)
    lines = study_dir.read_bytes().splitlines(keepends=True)
    # What an older release left: a torn line with the next append glued to it.
    lines[40] = b'{"op_code": 5, "trial_id": 2, "va' + lines[40]
    lines.insert(60, b"\x00\x00\x00\n")
    study_dir.write_bytes(b"".join(lines))
    with pytest.raises(JournalDamaged, match=r"journal\.log: line 41 is not .* `nas doctor "):
        _finished(study_dir)
    assert main(["status", "study.toml"]) == 2
    err = capsys.readouterr().err
    assert "line 41" in err and "nas doctor" in err and "Traceback" not in err

    assert main(["doctor", "study.toml"]) == 0
    out = capsys.readouterr().out
    assert "recovered 1 operation" in out and "set aside 2" in out and "8 trials" in out
    assert _finished(study_dir) == before
    (backup,) = _side_files(study_dir, "bak")
    assert backup.read_bytes() == b"".join(lines)
    assert main(["doctor", str(study_dir)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_repair_of_a_healthy_journal_changes_nothing(study_dir):
    data = study_dir.read_bytes()
    report = repair_journal(study_dir)
    assert report == Repair(len(data.splitlines()), 0, 0, None, None)
    assert (
        report.describe()
        == f"{len(data.splitlines())} journal entries, all readable: nothing to repair"
    )
    assert study_dir.read_bytes() == data


def test_commands_that_change_nothing_write_nothing(study_dir, tmp_path, capsys):
    data = study_dir.read_bytes()
    assert main(["status", "study.toml"]) == 0
    assert main(["search", "study.toml", "--no-progress"]) == 0  # 8 of 8 trials: nothing to do
    assert main(["report", "study.toml", "--out", str(tmp_path / "r")]) == 0
    config = Path("study.toml")
    config.write_text(config.read_text().replace("epochs = 3", "epochs = 4"))
    assert main(["search", "study.toml", "--no-progress"]) == 2  # refused
    assert study_dir.read_bytes() == data


def test_lookups_with_a_new_storage_create_nothing(tmp_path, capsys):
    for url in (str(tmp_path / "new" / "journal.log"), f"sqlite:///{tmp_path / 'new.db'}"):
        assert main(["status", "quickstart", "--storage", url]) == 2
        assert "no study storage" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert main(["status", "nothing-here", "--runs-dir", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_storage_path_under_a_regular_file_is_an_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"cannot open the journal .*file/x/journal\.log"):
        open_storage(str(tmp_path / "file" / "x" / "journal.log"))


def test_repair_keeps_a_trial_state_written_after_a_torn_line(tmp_path):
    storage = optuna.storages.JournalStorage(StudyJournal(tmp_path / "j.log"))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    lines = (tmp_path / "j.log").read_bytes().splitlines(keepends=True)
    last_state = max(i for i, line in enumerate(lines) if b'"state":1' in line)
    lines[last_state] = b'{"op_code": 9, "tr' + lines[last_state]
    (tmp_path / "j.log").write_bytes(b"".join(lines))
    repair_journal(tmp_path / "j.log")
    storage = optuna.storages.JournalStorage(StudyJournal(tmp_path / "j.log"))
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3


def test_repair_keeps_every_operation_and_sets_aside_exactly_the_rest(study_dir, monkeypatch):
    """By hand: a line of garbage, one torn byte glued to an operation, a broken operation glued
    to a whole one, and a last operation without its newline. The repaired journal is the
    original's lines; the side file holds the three broken pieces, each on its own line; the
    backup is the damaged file; names carry the UTC stamp and the next free number."""
    from nas import journal as journal_module

    monkeypatch.setattr(
        journal_module.time, "gmtime", lambda: time.struct_time((2026, 12, 6, 10, 15, 0, 6, 340, 0))
    )
    lines = study_dir.read_bytes().splitlines(keepends=True)
    damaged = [
        *lines[:5],
        b"garbage without an operation\n",
        b"x" + lines[5],
        b'y{"op_code": 9, "torn' + lines[6],
        *lines[7:-1],
        lines[-1].rstrip(b"\n"),
    ]
    study_dir.write_bytes(b"".join(damaged))
    taken = study_dir.with_name("journal.log.damaged-20261206T101500")
    taken.write_bytes(b"an earlier repair's\n")
    taken.with_name(taken.name + ".1").write_bytes(b"and another's\n")
    study_dir.with_name("journal.log.bak-20261206T101500").write_bytes(b"an earlier backup\n")

    report = repair_journal(study_dir)

    assert (report.lines, report.recovered, report.set_aside) == (len(lines) - 2, 2, 3)
    assert study_dir.read_bytes() == b"".join(lines)
    assert report.backup == study_dir.with_name("journal.log.bak-20261206T101500.1")
    assert report.backup.read_bytes() == b"".join(damaged)
    assert report.side_file == taken.with_name(taken.name + ".2")
    assert report.side_file.read_bytes() == (
        b'garbage without an operation\nx\ny{"op_code": 9, "torn\n'
    )
    assert len(_finished(study_dir)) == 8


def test_repair_of_a_missing_journal_names_it(tmp_path):
    missing = tmp_path / "runs" / "journal.log"
    with pytest.raises(FileNotFoundError) as refused:
        repair_journal(missing)
    assert str(refused.value) == f"no journal at {missing}"


def test_repair_waits_for_the_journal_lock(study_dir):
    """A worker appending holds the journal's lock: repair waits until it is released."""
    import threading

    from nas.journal import FlockJournalLock

    lines = study_dir.read_bytes().splitlines(keepends=True)
    study_dir.write_bytes(b"".join([*lines[:3], b"garbage\n", *lines[3:]]))
    done = threading.Event()
    lock = FlockJournalLock(str(study_dir))
    lock.acquire()
    try:
        threading.Thread(target=lambda: (repair_journal(study_dir), done.set())).start()
        assert not done.wait(1.0)
    finally:
        lock.release()
    assert done.wait(30) and study_dir.read_bytes() == b"".join(lines)


def test_first_damaged_line_skips_a_torn_tail_and_reads_bytes(tmp_path):
    from nas.journal import first_damaged_line

    lines = (FIXTURE / "journal.log").read_bytes().splitlines(keepends=True)
    journal = tmp_path / "journal.log"
    journal.write_bytes(b"".join([*lines[:4], b'{"op_code": 4, "wor']))
    assert first_damaged_line(journal) is None  # the torn last line is the next append's job
    journal.write_bytes(b"".join([*lines[:4], b"\xff\xfe not text\n", *lines[4:]]))
    assert first_damaged_line(journal) == 5


def test_a_torn_tail_is_moved_aside_with_its_size_named(tmp_path, monkeypatch):
    from nas import journal as journal_module
    from nas.journal import set_aside_torn_tail

    monkeypatch.setattr(
        journal_module.time, "gmtime", lambda: time.struct_time((2026, 12, 6, 10, 15, 0, 6, 340, 0))
    )
    lines = (FIXTURE / "journal.log").read_bytes().splitlines(keepends=True)
    journal = tmp_path / "journal.log"
    journal.write_bytes(b"".join([*lines[:4], b'{"op_code": 4, "wor']))
    side = journal.with_name("journal.log.torn-20261206T101500")
    with pytest.warns(UserWarning) as caught:
        assert set_aside_torn_tail(journal) == side
    assert str(caught[0].message) == (
        f"{journal}: its last 19 bytes were not a complete journal entry (a writer was killed "
        f"mid-write, or the disk filled up); moved them to {side}. No completed trial is "
        "affected."
    )
    assert side.read_bytes() == b'{"op_code": 4, "wor' and journal.read_bytes() == b"".join(
        lines[:4]
    )


def test_good_length_keeps_a_line_whose_newline_starts_a_read_chunk(tmp_path):
    """The journal is read back in chunks of _TAIL_CHUNK bytes: a last line exactly one chunk
    long (its newline included) puts the previous newline at the start of the chunk read, and
    both lines are still whole operations. A trailing empty line is not an operation."""
    from nas.journal import _TAIL_CHUNK

    first = b'{"op_code":0}\n'
    filler = _TAIL_CHUNK - 1 - len(b'{"op_code":1,"pad":""}')
    last = b'{"op_code":1,"pad":"' + b"x" * filler + b'"}\n'
    assert len(last) == _TAIL_CHUNK
    path = tmp_path / "j.log"
    path.write_bytes(first + last)
    assert good_length(path) == len(first + last)
    path.write_bytes(first + last + b"\n")
    assert good_length(path) == len(first + last)


def test_open_lock_file_reads_an_existing_lock_where_it_may_not_write(tmp_path, monkeypatch):
    """A read-only place: an existing lock file is opened for reading (flock needs no more); a
    missing one, or another error (a full disk), is raised as it is."""
    import builtins
    import errno

    from nas.journal import open_lock_file

    real_open, refused = builtins.open, {"errno": errno.EACCES}

    def open_(path, mode="r", *args, **kwargs):
        if "a" in mode:
            raise OSError(refused["errno"], os.strerror(refused["errno"]), str(path))
        return real_open(path, mode, *args, **kwargs)

    lock = tmp_path / "journal.log.flock"
    lock.write_text("")
    monkeypatch.setattr(builtins, "open", open_)
    with open_lock_file(lock) as handle:
        assert handle.mode == "r" and handle.name == str(lock)
    with pytest.raises(PermissionError):
        open_lock_file(tmp_path / "missing.flock")
    refused["errno"] = errno.ENOSPC
    with pytest.raises(OSError) as full:
        open_lock_file(lock)
    assert full.value.errno == errno.ENOSPC


def test_appends_wait_for_the_journal_lock_and_write_one_line_per_operation(tmp_path):
    """StudyJournal writes under the flock every worker takes (so it waits while another holds
    it) and each operation of one append on a line of its own."""
    import threading

    from nas.journal import FlockJournalLock

    path = tmp_path / "journal.log"
    journal = StudyJournal(path)
    done = threading.Event()
    lock = FlockJournalLock(str(path))
    lock.acquire()
    try:
        threading.Thread(
            target=lambda: (journal.append_logs([{"op_code": 0}, {"op_code": 1}]), done.set())
        ).start()
        assert not done.wait(1.0)
    finally:
        lock.release()
    assert done.wait(30)
    assert path.read_bytes() == b'{"op_code":0}\n{"op_code":1}\n'


def test_a_lock_file_that_cannot_be_opened_raises_its_error_and_frees_the_lock(
    tmp_path, monkeypatch
):
    """The lock file's own error reaches the caller (here: no permission), and the lock is
    free again: the next acquire tries again instead of waiting for ever."""
    from nas import journal as journal_module
    from nas.journal import FlockJournalLock

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(journal_module, "open_lock_file", refuse)
    lock = FlockJournalLock(str(tmp_path / "journal.log"))
    for _ in range(2):
        with pytest.raises(PermissionError, match="Permission denied"):
            lock.acquire()
