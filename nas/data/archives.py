"""Dataset archives: checksums and a safe extraction that refuses links and paths leaving the
target."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _unsafe_member(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """Why extracting ``member`` could write outside the target folder, or None when it cannot.

    A static check on the names alone (the target is a fresh empty folder): no absolute path, no
    ``..`` out of the folder, no device or FIFO, links only to paths inside, and no path through
    (or over) a symlink of the archive, which could point anywhere once extracted. ``links``
    collects the archive's symlinks seen so far.
    """

    def outside(relative: str) -> bool:
        return relative == ".." or relative.startswith("../")

    def through_link(relative: str) -> bool:
        parts = relative.split("/")
        return any("/".join(parts[: end + 1]) in links for end in range(len(parts)))

    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return "an absolute path"
    relative = os.path.normpath(name)
    if outside(relative):
        return "a path outside the extraction folder"
    if through_link(relative):
        return "a path through a symlink of the archive"
    if member.isdev():
        return "a device or FIFO"
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            return f"a link to the absolute path {member.linkname}"
        # Symlinks resolve from their own folder, hard links from the archive's root.
        base = os.path.dirname(relative) if member.issym() else ""
        target = os.path.normpath(os.path.join(base, member.linkname))
        if outside(target) or through_link(target):
            return f"a link to {member.linkname}, outside the extraction folder"
        if member.issym():
            links.add(relative)
    return None


def safe_extract(archive: Path, target: Path) -> None:
    """Extract the tar ``archive`` into the empty folder ``target``, refusing any member that
    could write outside it (:func:`_unsafe_member`) with an error naming the archive and member.

    The check runs on every interpreter; where ``tarfile`` has extraction filters (Python 3.12,
    3.11.4+) ``filter="data"`` applies as well (it also drops set-uid bits), and before them
    (Debian 12's 3.11.2) the check alone guards the extraction.
    """
    with tarfile.open(archive) as tar:
        links: set[str] = set()
        for member in tar.getmembers():
            reason = _unsafe_member(member, links)
            if reason is not None:
                raise ValueError(
                    f"DataConfig.root: archive {archive} has the member {member.name!r}, "
                    f"{reason}; nothing was extracted. Rebuild the archive with relative paths "
                    "inside one folder (tar -czf data.tar.gz -C parent folder)"
                )
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:
            tar.extractall(target)


def extract_archive(archive: Path, cache_dir: Path) -> Path:
    """Extract ``archive`` once to ``cache_dir/<stem>-<sha256[:12]>`` and return that folder.

    Extraction goes to a temporary sibling that is renamed into place, so an interrupted run never
    leaves a half-extracted cache; a concurrent extraction of the same archive is harmless.
    Members that could write outside the folder are refused (:func:`safe_extract`).
    """
    target = cache_dir / f"{_archive_stem(archive)}-{_sha256(archive)[:12]}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_dir))
    try:
        safe_extract(archive, staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
