"""The local journal file: its lock, a torn tail moved aside before each append, and repair.

Optuna's journal is one JSON operation per line, appended under a lock. A writer that dies in the
middle of an append (SIGKILL, the OOM killer, a full disk) leaves a torn last line. Optuna reads
past a bad *last* line, but the next append glues its operation onto the torn bytes, and from then
on every read fails. :class:`StudyJournal` checks the tail under the lock before it appends and
moves a torn or unparsable tail to a side file (``journal.log.torn-<time>``) with a warning that
names both files: the operation it held was never acknowledged to its writer, so no completed
trial is lost. A damaged line in the middle (written by another program, or by an older release)
is reported with the file, the line number and the repair, :func:`repair_journal`
(``nas doctor``), which keeps a backup of the original.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import threading
import time
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from optuna.storages.journal import JournalFileBackend

from .files import written_in_one_step

#: Bytes read from the end of the journal per step when looking for the last complete line.
_TAIL_CHUNK = 64 * 1024
#: Every operation Optuna writes is a JSON object with this key.
_OP_KEY = b'{"op_code"'


#: Errors that mean "this place is not writable" (a read-only folder or file system).
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def open_lock_file(path: str | os.PathLike) -> IO[str]:
    """The lock file ``path`` opened to ``flock`` it: for appending, created where missing; an
    existing one in a place this process may not write is opened for reading (an flock needs
    no write access), so reading a study needs no write access to its folder."""
    try:
        return open(path, "a")
    except OSError as exc:
        if exc.errno in _READ_ONLY and os.path.isfile(path):
            return open(path)
        raise


class FlockJournalLock:
    """The journal file's lock, held with ``fcntl.flock`` so the kernel drops it when its holder
    dies.

    Optuna's default ``JournalFileSymlinkLock`` is a lock *file*: a worker killed (SIGKILL, the
    OOM killer) while it writes leaves the file behind, and every other worker waits out the
    lock's 30 s grace period before breaking it. An flock needs no grace period. Like SQLite's
    locks it is not reliable on network filesystems, where the journal is not supported anyway.
    A thread lock in front makes it exclusive between the threads of one process too.
    """

    def __init__(self, journal_path: str) -> None:
        self.path = f"{journal_path}.flock"
        self._threads = threading.Lock()
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        self._threads.acquire()
        handle = None
        try:
            # Opened per acquire, never inherited: a forked child sharing the open file
            # description would share the lock instead of waiting for it.
            handle = open_lock_file(self.path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            if handle is not None:
                handle.close()
            self._threads.release()
            raise
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        finally:
            self._threads.release()

    def __enter__(self) -> FlockJournalLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class JournalDamaged(ValueError):
    """A line in the middle of a journal is not an Optuna operation; the message says how to
    repair the file."""


def _is_operation(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _side_file(path: Path, kind: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    candidate = path.with_name(f"{path.name}.{kind}-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{kind}-{stamp}.{n}")
        n += 1
    return candidate


def good_length(path: Path) -> int:
    """Bytes of ``path`` up to the end of its last complete, parsable line (0 if none)."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = _line_start(f, end)
            f.seek(start)
            line = f.read(end - start)
            if line.endswith(b"\n") and _is_operation(line):
                return end
            end = start
    return 0


def _line_start(f: IO[bytes], end: int) -> int:
    """Offset of the first byte of the line that ends at ``end`` (its newline excluded)."""
    pos = end - 1
    while pos > 0:
        start = max(0, pos - _TAIL_CHUNK)
        f.seek(start)
        cut = f.read(pos - start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def set_aside_torn_tail(path: Path) -> Path | None:
    """Move whatever follows the last good line of ``path`` to a side file; returns that file.

    Call it with the journal's lock held."""
    size = path.stat().st_size
    keep = good_length(path)
    if keep == size:
        return None
    side = _side_file(path, "torn")
    with open(path, "rb+") as f:
        f.seek(keep)
        with written_in_one_step(side) as partial:
            partial.write_bytes(f.read())
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(
        f"{path}: its last {size - keep} bytes were not a complete journal entry (a writer was "
        f"killed mid-write, or the disk filled up); moved them to {side}. No completed trial is "
        "affected.",
        stacklevel=3,
    )
    return side


def first_damaged_line(path: Path) -> int | None:
    """1-based number of the first line of ``path`` that is not an operation, the torn last line
    excepted; None when every line is."""
    with open(path, "rb") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, start=1):
        torn_tail = number == len(lines)
        if not torn_tail and not _is_operation(line):
            return number
    return None


class StudyJournal(JournalFileBackend):
    """Optuna's ``JournalFileBackend`` locked with :class:`FlockJournalLock`, which moves a torn
    tail aside before each append and names the file, line and repair of a damaged line."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._flock = FlockJournalLock(str(self.path))
        super().__init__(str(self.path), self._flock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with self._flock:
            set_aside_torn_tail(self.path)
            with open(self.path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)
        except ValueError as exc:  # json.JSONDecodeError or Optuna's "Invalid log format."
            line = first_damaged_line(self.path)
            raise JournalDamaged(
                f"{self.path}: line {line} is not an Optuna journal entry ({exc}); repair the "
                f"file with `nas doctor {self.path}` (it keeps a backup of the original)"
            ) from None


@dataclass(frozen=True)
class Repair:
    """What :func:`repair_journal` did: lines kept as they were, operations recovered from
    damaged lines, and the files it wrote (None where nothing needed repair)."""

    lines: int
    recovered: int
    set_aside: int
    backup: Path | None
    side_file: Path | None

    def describe(self) -> str:
        if self.backup is None:
            return f"{self.lines} journal entries, all readable: nothing to repair"
        return (
            f"kept {self.lines} entries, recovered {self.recovered} operation(s) from damaged "
            f"lines, set aside {self.set_aside} damaged piece(s) in {self.side_file}; the "
            f"original is backed up as {self.backup}"
        )


def _recover(line: bytes) -> tuple[bytes | None, bytes]:
    """(the operation at the end of a damaged line, or None; the bytes before it).

    A torn write followed by a good append leaves ``<torn bytes><operation>`` on one line: the
    operation was written whole by a live writer and is kept; the torn bytes never were."""
    start = line.find(_OP_KEY, 1)
    while start > 0:
        if _is_operation(line[start:]):
            return line[start:], line[:start]
        start = line.find(_OP_KEY, start + 1)
    return None, line


def repair_journal(path: str | os.PathLike) -> Repair:
    """Rewrite a damaged journal so that Optuna reads it, keeping a backup of the original.

    Lines that are operations stay as they are; a damaged line keeps the whole operation it ends
    with (see :func:`_recover`) and its other bytes go to a side file, as do lines with no
    operation at all. Holds the journal's lock, so no worker writes meanwhile."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no journal at {path}")
    with FlockJournalLock(str(path)):
        kept: list[bytes] = []
        pieces: list[bytes] = []
        recovered = 0
        with open(path, "rb") as f:
            for line in f:
                body = line if line.endswith(b"\n") else line + b"\n"
                if _is_operation(body):
                    kept.append(body)
                    continue
                operation, rest = _recover(body)
                if operation is not None:
                    kept.append(operation)
                    recovered += 1
                if rest.strip():
                    pieces.append(rest if rest.endswith(b"\n") else rest + b"\n")
        if not recovered and not pieces:
            return Repair(len(kept), 0, 0, None, None)
        backup = _side_file(path, "bak")
        side = _side_file(path, "damaged")
        with (
            written_in_one_step(backup) as backup_part,
            written_in_one_step(side) as side_part,
            written_in_one_step(path) as repaired,
        ):
            shutil.copy2(path, backup_part)
            side_part.write_bytes(b"".join(pieces))
            repaired.write_bytes(b"".join(kept))
    return Repair(len(kept) - recovered, recovered, len(pieces), backup, side)
