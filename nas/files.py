"""Files written in one step: a reader, a concurrent writer or a process killed midway sees the
old file or the new one, never a half-written one, and a failed write (a full disk) leaves no
partial file behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def written_in_one_step(path: Path) -> Iterator[Path]:
    """A hidden partial path beside ``path`` for the block to write; renamed over ``path`` when
    the block succeeds, removed when it fails."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
