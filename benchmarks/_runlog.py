"""The run log of a resumable benchmark: one JSON record per finished run, gzip-compressed, beside
its results (``<out>.runs.jsonl.gz``).

A benchmark resumes by reading the log and running only what it lacks. Records are appended and
flushed one by one, so a killed run loses at most the runs in flight: :func:`read_runs` keeps
every complete record of a gzip stream a kill cut short, and :func:`run_log` first rewrites the
log as one clean stream of those records. A plain ``<out>.runs.jsonl`` of an earlier release is
read too, and folded into the compressed log the next time runs are appended (JSON lines of
benchmark runs compress about 20-fold, which keeps the committed logs small).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUFFIX = ".runs.jsonl.gz"
LEGACY_SUFFIX = ".runs.jsonl"


def runs_file(out: Path) -> Path:
    """Where the runs of the results file ``out`` are logged."""
    return out.with_suffix(SUFFIX)


def read_runs(out: Path) -> list[dict[str, Any]]:
    """Every complete record logged for ``out`` (compressed log, then an earlier release's plain
    one); none where nothing was logged yet."""
    records = []
    for path, read in ((runs_file(out), _read_gzip), (out.with_suffix(LEGACY_SUFFIX), _read_text)):
        if path.is_file():
            records += _records(read(path), path)
    return records


@contextmanager
def run_log(out: Path) -> Iterator[Callable[[Mapping[str, Any]], None]]:
    """An ``append(record)`` for the runs of ``out``: the log is first rewritten (atomically)
    as one stream of every complete record so far, a plain log of an earlier release folded in
    and removed; each appended record is flushed at once."""
    records = read_runs(out)
    path = runs_file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    with _open(scratch, "wb") as sink:
        sink.writelines(_line(r) for r in records)
    os.replace(scratch, path)
    out.with_suffix(LEGACY_SUFFIX).unlink(missing_ok=True)
    with _open(path, "ab") as sink:

        def append(record: Mapping[str, Any]) -> None:
            sink.write(_line(record))
            sink.flush()  # a sync flush: what is written survives a kill

        yield append


def _open(path: Path, mode: str) -> io.TextIOWrapper:
    """A gzip text stream with no timestamp in its header (the same records, the same bytes)."""
    return io.TextIOWrapper(gzip.GzipFile(path, mode, mtime=0), encoding="utf-8")


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(record) + "\n"


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _read_gzip(path: Path) -> str:
    """The text of every gzip member in ``path``, up to where a kill may have cut the last."""
    data, parts = path.read_bytes(), []
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            parts.append(member.decompress(data))
        except zlib.error:
            break  # damaged from here on: keep what came before
        if not member.eof:
            break  # a member cut short: its flushed records are in hand
        data = member.unused_data
    return b"".join(parts).decode("utf-8", errors="replace")


def _records(text: str, path: Path) -> list[dict[str, Any]]:
    """The records of JSON-lines ``text``; a last line without its newline is a record a kill
    cut, and is dropped. A damaged line before it is an error that names it."""
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(
                f"{path}: line {number} is not a JSON record; remove that line (the run is "
                "repeated on resume) or the file to start over"
            ) from None
    return records
